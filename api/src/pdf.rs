//! A small report writer on top of `pdf-writer`: headings, text, tables that break across pages, and bar
//! charts drawn as vector shapes. Text uses the standard Helvetica fonts (no font files), so it is limited to
//! printable ASCII; other characters print as `?`.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

const MARGIN: f32 = 40.0;
const REGULAR: Name<'static> = Name(b"F1");
const BOLD: Name<'static> = Name(b"F2");

/// An RGB colour, components 0 to 1.
pub type Rgb = (f32, f32, f32);

/// Colours of the charts.
pub mod colours {
    use super::Rgb;
    /// Critical.
    pub const RED: Rgb = (0.80, 0.15, 0.15);
    /// Warning.
    pub const AMBER: Rgb = (0.95, 0.60, 0.10);
    /// Info.
    pub const BLUE: Rgb = (0.20, 0.45, 0.80);
    /// Healthy.
    pub const GREEN: Rgb = (0.20, 0.60, 0.30);
    /// Neutral.
    pub const GREY: Rgb = (0.55, 0.55, 0.55);
}

/// One bar of a chart.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Label under (or beside) the bar.
    pub label: String,
    /// Its value.
    pub value: f64,
    /// Its colour.
    pub colour: Rgb,
    /// Printed instead of the value, when set.
    pub caption: Option<String>,
}

/// The top of a count axis: 4 ticks of a round step (1, 2 or 5 times a power of ten) covering `max`.
fn axis_top(max: f64) -> f64 {
    let raw = (max / 4.0).max(0.25);
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    step * 4.0
}

/// A report under construction.
pub struct Report {
    title: String,
    width: f32,
    height: f32,
    pages: Vec<Content>,
    page: Content,
    y: f32,
}

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Report")
            .field("title", &self.title)
            .finish()
    }
}

/// Printable ASCII of `s`, for the standard fonts' encoding; PDF string escaping is `pdf-writer`'s.
fn ascii(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| {
            if (' '..='~').contains(&c) {
                c as u8
            } else {
                b'?'
            }
        })
        .collect()
}

/// Helvetica is about half as wide as it is high on average; good enough to fit cells.
fn fits(s: &str, width: f32, size: f32) -> String {
    let max = ((width - 4.0) / (size * 0.52)).max(1.0) as usize;
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut cut: String = s.chars().take(max.saturating_sub(2)).collect();
        cut.push_str("..");
        cut
    }
}

impl Report {
    /// A report titled `title` on A4, portrait or landscape.
    pub fn new(title: &str, landscape: bool) -> Self {
        let (width, height) = if landscape {
            (842.0, 595.0)
        } else {
            (595.0, 842.0)
        };
        let mut report = Self {
            title: title.to_owned(),
            width,
            height,
            pages: Vec::new(),
            page: Content::new(),
            y: height - MARGIN,
        };
        report.start_page();
        report
    }

    fn start_page(&mut self) {
        self.y = self.height - MARGIN;
        let number = self.pages.len() + 1;
        let footer = format!("{}  -  page {number}", self.title);
        self.text_at(MARGIN, MARGIN / 2.0, &footer, 8.0, false, colours::GREY);
    }

    fn new_page(&mut self) {
        let done = std::mem::replace(&mut self.page, Content::new());
        self.pages.push(done);
        self.start_page();
    }

    /// Breaks the page unless `needed` points remain.
    fn ensure(&mut self, needed: f32) {
        if self.y - needed < MARGIN {
            self.new_page();
        }
    }

    fn text_at(&mut self, x: f32, y: f32, text: &str, size: f32, bold: bool, colour: Rgb) {
        let bytes = ascii(text);
        self.page
            .set_fill_rgb(colour.0, colour.1, colour.2)
            .begin_text()
            .set_font(if bold { BOLD } else { REGULAR }, size)
            .next_line(x, y)
            .show(Str(&bytes))
            .end_text();
    }

    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, colour: Rgb) {
        self.page
            .set_fill_rgb(colour.0, colour.1, colour.2)
            .rect(x, y, w, h)
            .fill_nonzero();
    }

    fn line(&mut self, from: (f32, f32), to: (f32, f32), colour: Rgb) {
        self.page
            .set_stroke_rgb(colour.0, colour.1, colour.2)
            .set_line_width(0.7)
            .move_to(from.0, from.1)
            .line_to(to.0, to.1)
            .stroke();
    }

    /// A heading.
    pub fn heading(&mut self, text: &str, size: f32) {
        self.ensure(size * 2.0);
        self.y -= size;
        self.text_at(MARGIN, self.y, text, size, true, (0.0, 0.0, 0.0));
        self.y -= size * 0.6;
    }

    /// A line of text.
    pub fn text(&mut self, text: &str) {
        self.ensure(14.0);
        self.y -= 11.0;
        self.text_at(MARGIN, self.y, text, 10.0, false, (0.1, 0.1, 0.1));
        self.y -= 3.0;
    }

    /// Vertical space.
    pub fn gap(&mut self, points: f32) {
        self.y -= points;
    }

    /// A table: `columns` as (header, share of the width); rows break across pages, repeating the header.
    pub fn table(&mut self, columns: &[(&str, f32)], rows: &[Vec<String>]) {
        let total: f32 = columns.iter().map(|c| c.1).sum::<f32>().max(f32::EPSILON);
        let usable = self.width - 2.0 * MARGIN;
        let widths: Vec<f32> = columns.iter().map(|c| c.1 / total * usable).collect();
        let row_height = 13.0;
        let header = |r: &mut Self| {
            r.ensure(row_height * 2.0);
            r.y -= row_height;
            r.rect(MARGIN, r.y - 3.0, usable, row_height, (0.88, 0.90, 0.94));
            let mut x = MARGIN + 2.0;
            for ((name, _), w) in columns.iter().zip(&widths) {
                r.text_at(x, r.y, &fits(name, *w, 8.0), 8.0, true, (0.0, 0.0, 0.0));
                x += w;
            }
        };
        header(self);
        for (i, row) in rows.iter().enumerate() {
            if self.y - row_height < MARGIN {
                self.new_page();
                header(self);
            }
            self.y -= row_height;
            if i % 2 == 1 {
                self.rect(MARGIN, self.y - 3.0, usable, row_height, (0.96, 0.96, 0.96));
            }
            let mut x = MARGIN + 2.0;
            for (cell, w) in row.iter().zip(&widths) {
                self.text_at(x, self.y, &fits(cell, *w, 8.0), 8.0, false, (0.1, 0.1, 0.1));
                x += w;
            }
        }
        if rows.is_empty() {
            self.text("(none)");
        }
        self.y -= 6.0;
    }

    /// A vertical bar chart with a value axis, titled `title`.
    pub fn column_chart(&mut self, title: &str, bars: &[Bar]) {
        let height = 150.0;
        self.heading(title, 12.0);
        self.ensure(height + 30.0);
        let usable = self.width - 2.0 * MARGIN - 30.0;
        let base = self.y - height;
        let left = MARGIN + 30.0;
        let max = axis_top(
            bars.iter()
                .map(|b| b.value)
                .fold(0.0_f64, f64::max)
                .max(1.0),
        );
        let axis = (0.3, 0.3, 0.3);
        self.line((left, base), (left + usable, base), axis);
        self.line((left, base), (left, base + height), axis);
        for tick in 0..=4 {
            let value = max * f64::from(tick) / 4.0;
            let y = base + height * tick as f32 / 4.0;
            self.text_at(MARGIN, y - 3.0, &format!("{value}"), 7.0, false, axis);
            self.line((left - 3.0, y), (left, y), axis);
        }
        let slot = usable / bars.len().max(1) as f32;
        for (i, bar) in bars.iter().enumerate() {
            let h = (bar.value / max) as f32 * height;
            let x = left + slot * i as f32 + slot * 0.2;
            self.rect(x, base, slot * 0.6, h, bar.colour);
            self.text_at(
                x,
                base + h + 3.0,
                &format!("{}", bar.value),
                8.0,
                true,
                axis,
            );
            self.text_at(
                x,
                base - 11.0,
                &fits(&bar.label, slot, 8.0),
                8.0,
                false,
                axis,
            );
        }
        self.y = base - 20.0;
    }

    /// A horizontal bar chart (one row per bar, labels on the left), titled `title`, values in `unit`.
    pub fn bar_chart(&mut self, title: &str, bars: &[Bar], unit: &str) {
        self.heading(title, 12.0);
        let label_width = 120.0;
        let usable = self.width - 2.0 * MARGIN - label_width - 60.0;
        let max = bars
            .iter()
            .map(|b| b.value)
            .fold(0.0_f64, f64::max)
            .max(1.0);
        let row = 14.0;
        for bar in bars {
            self.ensure(row + 4.0);
            self.y -= row;
            let w = ((bar.value / max) as f32 * usable).max(0.5);
            self.text_at(
                MARGIN,
                self.y + 2.0,
                &fits(&bar.label, label_width, 8.0),
                8.0,
                false,
                (0.1, 0.1, 0.1),
            );
            self.rect(MARGIN + label_width, self.y, w, row - 4.0, bar.colour);
            let value = bar
                .caption
                .clone()
                .unwrap_or_else(|| format!("{:.1} {unit}", bar.value));
            self.text_at(
                MARGIN + label_width + w + 4.0,
                self.y + 2.0,
                &value,
                8.0,
                false,
                (0.3, 0.3, 0.3),
            );
        }
        self.y -= 10.0;
    }

    /// The finished document.
    pub fn finish(mut self) -> Vec<u8> {
        let last = std::mem::replace(&mut self.page, Content::new());
        self.pages.push(last);
        let mut pdf = Pdf::new();
        let catalog = Ref::new(1);
        let tree = Ref::new(2);
        let regular = Ref::new(3);
        let bold = Ref::new(4);
        let info = Ref::new(5);
        let first = 6;
        let page_ids: Vec<Ref> = (0..self.pages.len())
            .map(|i| Ref::new(first + 2 * i as i32))
            .collect();
        pdf.catalog(catalog).pages(tree);
        pdf.pages(tree)
            .kids(page_ids.iter().copied())
            .count(page_ids.len() as i32);
        pdf.type1_font(regular).base_font(Name(b"Helvetica"));
        pdf.type1_font(bold).base_font(Name(b"Helvetica-Bold"));
        pdf.document_info(info)
            .title(TextStr(&self.title))
            .producer(TextStr("Haltless"));
        for (content, id) in self.pages.into_iter().zip(&page_ids) {
            let content_id = Ref::new(id.get() + 1);
            let mut page = pdf.page(*id);
            page.media_box(Rect::new(0.0, 0.0, self.width, self.height))
                .parent(tree)
                .contents(content_id);
            let mut resources = page.resources();
            resources.fonts().pair(REGULAR, regular).pair(BOLD, bold);
            resources.finish();
            page.finish();
            pdf.stream(content_id, &content.finish());
        }
        pdf.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_a_pdf_with_its_pages_text_and_shapes() {
        let mut r = Report::new("Test report", false);
        r.heading("Fleet", 18.0);
        r.column_chart(
            "Open alerts by severity",
            &[
                Bar {
                    label: "critical".into(),
                    value: 3.0,
                    colour: colours::RED,
                    caption: None,
                },
                Bar {
                    label: "warning".into(),
                    value: 1.0,
                    colour: colours::AMBER,
                    caption: None,
                },
            ],
        );
        let rows: Vec<Vec<String>> = (0..120)
            .map(|i| vec![format!("m-{i}"), "ok".into()])
            .collect();
        r.table(&[("machine", 2.0), ("status", 1.0)], &rows);
        let bytes = r.finish();
        let text = String::from_utf8_lossy(&bytes);
        assert!(bytes.starts_with(b"%PDF-"));
        assert!(text.contains("/Type /Page"));
        assert!(text.matches("/Type /Page\n").count() + text.matches("/Type /Page ").count() >= 1);
        assert!(text.contains("(Open alerts by severity) Tj"));
        assert!(
            text.contains("(m-119) Tj"),
            "the table runs onto later pages"
        );
        assert!(text.contains(" re"), "bars are rectangles");
        assert!(text.trim_end().ends_with("%%EOF"));
    }

    #[test]
    fn count_axes_have_round_ticks() {
        assert_eq!(axis_top(1.0), 1.0);
        assert_eq!(axis_top(2.0), 2.0);
        assert_eq!(axis_top(3.0), 4.0);
        assert_eq!(axis_top(7.0), 8.0);
        assert_eq!(axis_top(37.0), 40.0);
        assert_eq!(axis_top(900.0), 1000.0);
    }

    #[test]
    fn text_is_ascii_and_cells_are_cut_to_fit() {
        assert_eq!(ascii("Größe"), b"Gr??e".to_vec());
        assert_eq!(fits("short", 100.0, 8.0), "short");
        assert!(fits(&"x".repeat(100), 50.0, 8.0).ends_with(".."));
    }
}
