//! The Numenta Anomaly Benchmark (NAB): its scoring rule and its file formats, as pure functions.
//!
//! NAB labels each stream with anomaly windows. A detector marks rows as anomalous; then:
//! - inside a window, only the first detection counts, earning `tp * S(p) / S(-1)` where
//!   `S(x) = 2 * sigmoid(-5x) - 1` and `p` runs from -1.0 (first row) towards 0 (past the last row);
//! - a detection outside every window costs `fp * S(d)` (negative), `d` being its distance past the
//!   preceding window's last row in units of that window's length (so just after a window costs
//!   little), or the full `-fp` before the first window;
//! - a window without any detection costs `-fn`;
//! - the first 15 % of each stream (at most 750 rows) is a probationary period that is not scored.
//!
//! Raw scores are summed over the streams of a corpus and normalised as
//! `100 * (raw - null) / (perfect - null)`: a never-firing detector scores 0 and one firing on the
//! first row of every window scores 100 (see [`CorpusTally`]). This follows `nab/sweeper.py` and
//! `nab/runner.py` of numenta/NAB; counts and edge cases are documented on each item.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime};

/// Share of each stream, from its start, that NAB leaves unscored (`probationPercent`).
pub const PROBATION_PERCENT: f64 = 0.15;

/// Why NAB input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NabError {
    /// A CSV line is malformed; `line` is 1-based.
    #[error("CSV line {line}: {reason}")]
    Csv {
        /// 1-based line number in the text.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The windows file is not a JSON object of `[start, end]` string pairs.
    #[error("windows JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A window of a stream has a bad timestamp or ends before it starts.
    #[error("windows of {stream:?}: {reason}")]
    Window {
        /// The stream key, e.g. `artificialWithAnomaly/art_daily_jumpsup.csv`.
        stream: String,
        /// What is wrong with its windows.
        reason: String,
    },
}

/// Parses a timestamp as epoch milliseconds (an integer), `YYYY-MM-DD HH:MM:SS[.f]` or
/// `YYYY-MM-DDTHH:MM:SS[.f]` (UTC), or RFC 3339 with an offset.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let s = text.trim();
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Parses a NAB data CSV (`timestamp,value`, optional header, extra columns ignored) into
/// `(epoch ms, value)` rows, in file order. Timestamps may repeat or step back (NAB's data has both, as real
/// plant clocks do); the detectors learn from such rows but never raise on them.
pub fn parse_csv(text: &str) -> Result<Vec<(i64, f64)>, NabError> {
    let mut rows: Vec<(i64, f64)> = Vec::new();
    let mut seen_content = false;
    for (index, raw_line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw_line.trim_start_matches('\u{feff}').trim();
        if line.is_empty() {
            continue;
        }
        let first_content = !seen_content;
        seen_content = true;
        let bad = |reason: String| NabError::Csv {
            line: line_no,
            reason,
        };
        let mut fields = line.split(',').map(|f| f.trim().trim_matches('"'));
        let ts_field = fields.next().unwrap_or_default();
        let Some(value_field) = fields.next() else {
            return Err(bad(format!("expected `timestamp,value`, got {line:?}")));
        };
        let ts = parse_timestamp(ts_field);
        let value = value_field.parse::<f64>().ok();
        if first_content && ts.is_none() && value.is_none() {
            continue; // the header
        }
        let ts = ts.ok_or_else(|| bad(format!("bad timestamp {ts_field:?}")))?;
        let value = value
            .filter(|v| v.is_finite())
            .ok_or_else(|| bad(format!("bad value {value_field:?}")))?;
        rows.push((ts, value));
    }
    Ok(rows)
}

/// Parses NAB's `combined_windows.json` (stream key → list of `[start, end]`) into epoch-ms
/// windows with inclusive bounds, each stream's windows sorted by start.
pub fn parse_windows(json: &str) -> Result<BTreeMap<String, Vec<(i64, i64)>>, NabError> {
    let raw: BTreeMap<String, Vec<(String, String)>> = serde_json::from_str(json)?;
    let mut out = BTreeMap::new();
    for (stream, pairs) in raw {
        let mut windows = Vec::with_capacity(pairs.len());
        for (start, end) in &pairs {
            let parse = |s: &String| {
                parse_timestamp(s).ok_or_else(|| NabError::Window {
                    stream: stream.clone(),
                    reason: format!("bad timestamp {s:?}"),
                })
            };
            let (start_ms, end_ms) = (parse(start)?, parse(end)?);
            if end_ms < start_ms {
                return Err(NabError::Window {
                    stream,
                    reason: format!("window [{start:?}, {end:?}] ends before it starts"),
                });
            }
            windows.push((start_ms, end_ms));
        }
        windows.sort_unstable();
        out.insert(stream, windows);
    }
    Ok(out)
}

/// A NAB application profile: the weights of true positives, false positives and false negatives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Reward for detecting a window at its very start (`tpWeight`).
    pub tp: f64,
    /// Cost of a detection far from any window (`fpWeight`).
    pub fp: f64,
    /// Cost of a window without detection (`fnWeight`).
    pub fn_: f64,
}

impl Profile {
    /// NAB's `standard` profile.
    pub const STANDARD: Profile = Profile {
        tp: 1.0,
        fp: 0.11,
        fn_: 1.0,
    };
    /// NAB's `reward_low_FP_rate` profile.
    pub const REWARD_LOW_FP: Profile = Profile {
        tp: 1.0,
        fp: 0.22,
        fn_: 1.0,
    };
    /// NAB's `reward_low_FN_rate` profile.
    pub const REWARD_LOW_FN: Profile = Profile {
        tp: 1.0,
        fp: 0.11,
        fn_: 2.0,
    };
}

/// The outcome of scoring one stream.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StreamScore {
    /// NAB's raw (unnormalised) score of the stream.
    pub raw: f64,
    /// Scored windows with at least one detection.
    pub true_positives: usize,
    /// Scored detections outside every window (NAB counts rows, and so does this).
    pub false_positives: usize,
    /// Scored windows without any detection.
    pub false_negatives: usize,
}

/// NAB's scaled sigmoid `2 * sigmoid(-5x) - 1`, clamped to -1.0 for `x > 3`.
pub fn scaled_sigmoid(x: f64) -> f64 {
    if x > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * x).exp()) - 1.0
    }
}

/// Number of leading rows NAB leaves unscored: `min(floor(0.15 * n), 0.15 * 5000)`.
pub fn probation_len(n_rows: usize) -> usize {
    let by_share = (PROBATION_PERCENT * n_rows as f64).floor();
    by_share.min(PROBATION_PERCENT * 5000.0) as usize
}

/// Turns anomaly scores into detections the way NAB does: `score >= threshold`.
pub fn detections_from_scores(scores: &[f64], threshold: f64) -> Vec<bool> {
    scores.iter().map(|&s| s >= threshold).collect()
}

/// Scores one stream as NAB does, with its probationary period ([`probation_len`]).
///
/// `timestamps` are in row order (ties and steps back allowed) and as long as `detections`; `windows`
/// are inclusive epoch-ms bounds. See [`score_stream_with_probation`] for the rules.
pub fn score_stream(
    timestamps: &[i64],
    detections: &[bool],
    windows: &[(i64, i64)],
    profile: &Profile,
) -> StreamScore {
    let probation = probation_len(timestamps.len());
    score_stream_with_probation(timestamps, detections, windows, profile, probation)
}

/// A window resolved to row indices (inclusive) of a stream.
#[derive(Debug, Clone, Copy)]
struct Span {
    window: usize,
    left: usize,
    right: usize,
}

/// Resolves windows to rows like NAB: a window starts at the first row at or after its start and
/// ends at the first row stamped exactly at its end (or the last row before it). Windows holding
/// no row are left out; the result is ordered by first row.
fn window_spans(timestamps: &[i64], windows: &[(i64, i64)]) -> Vec<Span> {
    // Linear scans rather than binary searches: a clock that steps back leaves the rows unsorted.
    let mut spans: Vec<Span> = windows
        .iter()
        .enumerate()
        .filter_map(|(window, &(start, end))| {
            let left = timestamps.iter().position(|&t| t >= start)?;
            let right = match timestamps.iter().position(|&t| t == end) {
                Some(at_end) => at_end,
                None => timestamps
                    .iter()
                    .position(|&t| t > end)
                    .unwrap_or(timestamps.len())
                    .checked_sub(1)?,
            };
            (left <= right).then_some(Span {
                window,
                left,
                right,
            })
        })
        .collect();
    spans.sort_by_key(|s| s.left);
    spans
}

/// Scores one stream as `nab/sweeper.py` does, ignoring detections in the first `probation` rows.
///
/// Every row gets a sweep score: in a window spanning `w` rows whose last row is `r`, row `i`
/// scores `tp * S(-(r - i + 1) / w) / S(-1)` (so the first row earns exactly `tp`, the last about
/// 0); after a window it scores `fp * S((i - r) / (w - 1))` (about `-fp` far away; `-fp` if that
/// window had one row); before any window `-fp`. Each window counts `max(-fn, best detection)`,
/// i.e. its first detection, or `-fn` if none; each detection outside windows adds its score.
/// Windows entirely inside the probation are ignored (as NAB does); windows holding no row of the
/// stream count as missed.
pub fn score_stream_with_probation(
    timestamps: &[i64],
    detections: &[bool],
    windows: &[(i64, i64)],
    profile: &Profile,
    probation: usize,
) -> StreamScore {
    debug_assert_eq!(timestamps.len(), detections.len());
    let n = timestamps.len().min(detections.len());
    let max_tp = scaled_sigmoid(-1.0);
    let spans = window_spans(&timestamps[..n], windows);
    // Per window: scored at all (has a row after probation, or holds no row), best detection score.
    let mut scored = vec![true; windows.len()];
    for span in &spans {
        scored[span.window] = span.right >= probation;
    }
    let mut best: Vec<Option<f64>> = vec![None; windows.len()];
    let mut result = StreamScore::default();
    let mut next_span = spans.iter().peekable();
    let mut current: Option<Span> = None;
    let mut previous: Option<(usize, usize)> = None; // (last row, width) of the last window left
    for (i, &detected) in detections.iter().enumerate().take(n) {
        while let Some(span) = next_span.next_if(|s| s.left == i) {
            current = Some(*span);
        }
        let sweep = match (current, previous) {
            (Some(w), _) => {
                let width = (w.right - w.left + 1) as f64;
                let position = -((w.right - i + 1) as f64) / width;
                profile.tp * scaled_sigmoid(position) / max_tp
            }
            (None, Some((right, width))) => {
                let distance = (i - right) as f64 / (width as f64 - 1.0);
                profile.fp * scaled_sigmoid(distance)
            }
            (None, None) => -profile.fp,
        };
        if detected && i >= probation {
            match current {
                Some(w) => {
                    let slot = &mut best[w.window];
                    *slot = Some(slot.map_or(sweep, |b: f64| b.max(sweep)));
                }
                None => {
                    result.raw += sweep;
                    result.false_positives += 1;
                }
            }
        }
        if let Some(w) = current.filter(|w| w.right == i) {
            previous = Some((w.right, w.right - w.left + 1));
            current = None;
        }
    }
    for (window, best) in best.iter().enumerate() {
        match (scored[window], best) {
            (false, _) => {}
            (true, Some(b)) => {
                result.raw += b.max(-profile.fn_);
                result.true_positives += 1;
            }
            (true, None) => {
                result.raw -= profile.fn_;
                result.false_negatives += 1;
            }
        }
    }
    result
}

/// One stream of a threshold sweep: its row times, the anomaly score of each row and its windows.
pub type SweepStream<'a> = (&'a [i64], &'a [f64], &'a [(i64, i64)]);

/// NAB's own threshold sweep over the anomaly scores written for a corpus: every row whose score is at
/// least the threshold is a detection (so a run of high rows outside a window counts once per row), and the
/// threshold that gives the best corpus score wins. NAB searches from 0.5 by hill-climbing; this tries every
/// threshold on a grid of `step` in `(0, 1]`, so it finds NAB's optimum or a better one. Returns the
/// threshold and the corpus' tally at it.
pub fn sweep_threshold(
    streams: &[SweepStream<'_>],
    profile: &Profile,
    step: f64,
) -> (f64, CorpusTally) {
    let steps = (1.0 / step.max(1e-6)).round() as usize;
    let mut best: Option<(f64, CorpusTally)> = None;
    for k in 1..=steps {
        let threshold = k as f64 / steps as f64;
        let mut tally = CorpusTally::default();
        for (ts, scores, windows) in streams {
            let detections = detections_from_scores(scores, threshold);
            tally.add(
                &score_stream(ts, &detections, windows, profile),
                windows,
                profile,
            );
        }
        if best.is_none_or(|(_, b)| tally.normalized() > b.normalized()) {
            best = Some((threshold, tally));
        }
    }
    best.unwrap_or((1.0, CorpusTally::default()))
}

/// NAB's normalisation: `100 * (raw - null) / (perfect - null)`; NaN when `perfect == null`.
///
/// For a corpus, pass the sums over its streams (see [`CorpusTally`]), not per-stream scores.
pub fn normalized_score(raw: f64, null_raw: f64, perfect_raw: f64) -> f64 {
    let span = perfect_raw - null_raw;
    if span == 0.0 {
        f64::NAN
    } else {
        100.0 * (raw - null_raw) / span
    }
}

/// Raw score of a detector that never fires: `-fn` per window.
///
/// Equals NAB's null-detector baseline when no window lies wholly in the probationary period
/// (true of every window in NAB's labels).
pub fn null_raw(windows: &[(i64, i64)], profile: &Profile) -> f64 {
    -profile.fn_ * windows.len() as f64
}

/// Raw score of a perfect detector, as NAB's `runner.normalize` defines it: `tp` per window,
/// which is also what firing once on each window's first row earns.
pub fn perfect_raw(windows: &[(i64, i64)], profile: &Profile) -> f64 {
    profile.tp * windows.len() as f64
}

/// Sums of raw, null and perfect scores over the streams of a corpus, for NAB's final score.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CorpusTally {
    /// Sum of the streams' raw scores.
    pub raw: f64,
    /// Sum of the streams' [`null_raw`].
    pub null: f64,
    /// Sum of the streams' [`perfect_raw`].
    pub perfect: f64,
}

impl CorpusTally {
    /// Adds one stream's score, with the windows and profile it was scored with.
    pub fn add(&mut self, score: &StreamScore, windows: &[(i64, i64)], profile: &Profile) {
        self.raw += score.raw;
        self.null += null_raw(windows, profile);
        self.perfect += perfect_raw(windows, profile);
    }

    /// The corpus' normalised NAB score (0 = never fires, 100 = perfect).
    pub fn normalized(&self) -> f64 {
        normalized_score(self.raw, self.null, self.perfect)
    }
}

/// One row of a NAB results file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResultRow {
    /// Reading time, epoch milliseconds (written to the second, UTC).
    pub ts_ms: i64,
    /// The reading.
    pub value: f64,
    /// The detector's anomaly score in `[0, 1]`.
    pub anomaly_score: f64,
    /// 1 inside a labelled window, else 0.
    pub label: u8,
}

/// Formats epoch ms as NAB's `YYYY-MM-DD HH:MM:SS` (UTC); out-of-range values stay as epoch ms.
fn format_timestamp(ts_ms: i64) -> String {
    match DateTime::from_timestamp_millis(ts_ms) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => ts_ms.to_string(),
    }
}

/// Writes NAB's results CSV: header `timestamp,value,anomaly_score,label`, one line per row.
pub fn write_results_csv(rows: &[ResultRow]) -> String {
    let mut out = String::with_capacity(40 * (rows.len() + 1));
    out.push_str("timestamp,value,anomaly_score,label\n");
    for row in rows {
        out.push_str(&format!(
            "{},{},{},{}\n",
            format_timestamp(row.ts_ms),
            row.value,
            row.anomaly_score,
            row.label
        ));
    }
    out
}

/// NAB's per-row labels: 1 when the timestamp lies in a window (bounds inclusive), else 0.
pub fn labels_for(timestamps: &[i64], windows: &[(i64, i64)]) -> Vec<u8> {
    timestamps
        .iter()
        .map(|&t| u8::from(windows.iter().any(|&(s, e)| s <= t && t <= e)))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const STEP: i64 = 300_000; // 5 minutes
    const WINDOWS_JSON: &str = include_str!("../../../testdata/nab/combined_windows.json");
    const JUMPSUP_CSV: &str = include_str!("../../../testdata/nab/art_daily_jumpsup.csv");
    const JUMPSUP: &str = "artificialWithAnomaly/art_daily_jumpsup.csv";

    /// 1000 rows (probation 150) with one window on rows 400..=499.
    fn stream() -> (Vec<i64>, Vec<(i64, i64)>) {
        let ts: Vec<i64> = (0..1000).map(|i| i * STEP).collect();
        (ts, vec![(400 * STEP, 499 * STEP)])
    }

    fn fire_at(n: usize, rows: &[usize]) -> Vec<bool> {
        (0..n).map(|i| rows.contains(&i)).collect()
    }

    fn score(rows: &[usize], profile: &Profile) -> StreamScore {
        let (ts, windows) = stream();
        score_stream(&ts, &fire_at(ts.len(), rows), &windows, profile)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn scaled_sigmoid_matches_nab_reference_points() {
        assert!((scaled_sigmoid(-1.0) - 0.98661).abs() < 1e-5);
        assert!((scaled_sigmoid(-0.5) - 0.84828).abs() < 1e-5);
        assert!(close(scaled_sigmoid(0.0), 0.0));
        assert!((scaled_sigmoid(1.0) + 0.98661).abs() < 1e-5);
        assert_eq!(scaled_sigmoid(3.01), -1.0);
        assert_eq!(probation_len(1000), 150);
        assert_eq!(probation_len(4032), 604);
        assert_eq!(probation_len(100_000), 750);
    }

    #[test]
    fn detection_at_window_start_earns_full_tp() {
        let s = score(&[400], &Profile::STANDARD);
        assert!(close(s.raw, 1.0), "{s:?}");
        assert_eq!(
            (s.true_positives, s.false_positives, s.false_negatives),
            (1, 0, 0)
        );
        let half = Profile {
            tp: 0.5,
            ..Profile::STANDARD
        };
        assert!(close(score(&[400], &half).raw, 0.5));
    }

    #[test]
    fn reward_falls_along_the_window() {
        let middle = score(&[450], &Profile::STANDARD).raw;
        assert!(
            close(middle, scaled_sigmoid(-0.5) / scaled_sigmoid(-1.0)),
            "{middle}"
        );
        let end = score(&[499], &Profile::STANDARD);
        assert!(end.raw > 0.0 && end.raw < 0.03, "{end:?}");
        assert_eq!(end.true_positives, 1);
    }

    #[test]
    fn only_the_first_detection_in_a_window_counts() {
        let once = score(&[410], &Profile::STANDARD);
        let twice = score(&[410, 420, 499], &Profile::STANDARD);
        assert_eq!(once, twice);
        let later_first = score(&[420], &Profile::STANDARD);
        assert!(once.raw > later_first.raw);
    }

    #[test]
    fn missed_window_costs_fn() {
        let s = score(&[], &Profile::STANDARD);
        assert_eq!((s.raw, s.false_negatives, s.true_positives), (-1.0, 1, 0));
        assert_eq!(score(&[], &Profile::REWARD_LOW_FN).raw, -2.0);
    }

    #[test]
    fn false_positive_costs_depend_on_distance_from_the_window() {
        let p = Profile::STANDARD;
        let hit = score(&[400], &p).raw;
        let far = score(&[400, 900], &p);
        assert!(close(far.raw - hit, -p.fp), "{far:?}");
        assert_eq!(far.false_positives, 1);
        let just_after = score(&[400, 500], &p).raw - hit;
        assert!(just_after < 0.0 && just_after > -0.1 * p.fp, "{just_after}");
        let midway = score(&[400, 550], &p).raw - hit;
        assert!(midway < just_after && midway > -p.fp, "{midway}");
        let before = score(&[400, 200], &p).raw - hit;
        assert!(close(before, -p.fp), "{before}");
        let low_fp = score(&[400, 900], &Profile::REWARD_LOW_FP).raw - hit;
        assert!(close(low_fp, -0.22));
    }

    #[test]
    fn probationary_rows_are_not_scored() {
        let s = score(&[10, 149], &Profile::STANDARD);
        assert_eq!((s.raw, s.false_positives), (-1.0, 0));
        let (ts, windows) = stream();
        let s = score_stream_with_probation(
            &ts,
            &fire_at(1000, &[10]),
            &windows,
            &Profile::STANDARD,
            0,
        );
        assert!(close(s.raw, -1.0 - 0.11));
        // A window wholly inside the probation is ignored, as in NAB.
        let early = vec![(10 * STEP, 20 * STEP)];
        assert_eq!(
            score_stream(&ts, &fire_at(1000, &[]), &early, &Profile::STANDARD).raw,
            0.0
        );
    }

    #[test]
    fn single_row_window_and_missing_rows_are_handled() {
        let ts: Vec<i64> = (0..1000).map(|i| i * STEP).collect();
        let one_row = vec![(400 * STEP, 400 * STEP)];
        let s = score_stream(
            &ts,
            &fire_at(1000, &[400, 401]),
            &one_row,
            &Profile::STANDARD,
        );
        assert!(close(s.raw, 1.0 - 0.11), "{s:?}");
        let outside = vec![(5000 * STEP, 5001 * STEP)];
        let s = score_stream(&ts, &fire_at(1000, &[]), &outside, &Profile::STANDARD);
        assert_eq!((s.raw, s.false_negatives), (-1.0, 1));
    }

    #[test]
    fn window_end_resolves_to_first_row_of_duplicated_timestamps() {
        // Rows 0..1000, then row 500's timestamp repeated: NAB's window ends at its first copy.
        let mut ts: Vec<i64> = (0..1000).map(|i| i * STEP).collect();
        ts.insert(501, 500 * STEP);
        let windows = vec![(400 * STEP, 500 * STEP)];
        let s = score_stream(
            &ts,
            &fire_at(ts.len(), &[501]),
            &windows,
            &Profile::STANDARD,
        );
        assert_eq!((s.false_positives, s.false_negatives), (1, 1), "{s:?}");
    }

    /// Expected values from numenta/NAB's `nab/sweeper.py` (run on the same inputs).
    #[test]
    fn matches_nab_sweeper_on_a_synthetic_stream() {
        let ts: Vec<i64> = (0..2000).collect();
        let windows = vec![(400, 499), (520, 540), (1500, 1600)];
        let d = fire_at(2000, &[299, 300, 450, 505, 530, 545, 560, 1000, 1650, 1999]);
        let expected = [
            (Profile::STANDARD, 0.12628666584813364),
            (Profile::REWARD_LOW_FP, -0.4830983658284558),
            (Profile::REWARD_LOW_FN, -0.8737133341518664),
        ];
        for (profile, raw) in expected {
            let s = score_stream(&ts, &d, &windows, &profile);
            assert!(close(s.raw, raw), "{profile:?}: {s:?} vs {raw}");
            assert_eq!(
                (s.true_positives, s.false_positives, s.false_negatives),
                (2, 7, 1)
            );
        }
    }

    #[test]
    fn matches_nab_sweeper_on_art_daily_jumpsup() {
        let rows = parse_csv(JUMPSUP_CSV).unwrap();
        let ts: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let windows = parse_windows(WINDOWS_JSON)
            .unwrap()
            .remove(JUMPSUP)
            .unwrap();
        let d = fire_at(ts.len(), &[100, 700, 2900, 3000, 3190, 3250, 3500, 4000]);
        let expected = [
            (Profile::STANDARD, 0.5935395990302584),
            (Profile::REWARD_LOW_FP, 0.22753185468665882),
            (Profile::REWARD_LOW_FN, 0.5935395990302584),
        ];
        for (profile, raw) in expected {
            let s = score_stream(&ts, &d, &windows, &profile);
            assert!(close(s.raw, raw), "{profile:?}: {s:?} vs {raw}");
            assert_eq!(
                (s.true_positives, s.false_positives, s.false_negatives),
                (1, 5, 0)
            );
        }
        let end_then_after = fire_at(ts.len(), &[3189, 3190]);
        let s = score_stream(&ts, &end_then_after, &windows, &Profile::STANDARD);
        assert!(close(s.raw, 0.0056034869604174795), "{s:?}");
    }

    #[test]
    fn the_sweep_finds_the_threshold_that_scores_best() {
        let ts: Vec<i64> = (0..2000).collect();
        let windows = vec![(1400, 1499)];
        let mut scores = vec![0.1; 2000];
        scores[1410] = 0.9; // early in the window
        scores[700] = 0.6; // a false positive, weaker
        scores[1000..1010].iter_mut().for_each(|s| *s = 0.3); // a run of weak ones
        let streams = [(ts.as_slice(), scores.as_slice(), windows.as_slice())];
        let (threshold, tally) = sweep_threshold(&streams, &Profile::STANDARD, 0.01);
        assert!(threshold > 0.6 && threshold <= 0.9, "{threshold}");
        let alone = score_stream(
            &ts,
            &detections_from_scores(&scores, 0.9),
            &windows,
            &Profile::STANDARD,
        );
        assert!(close(tally.raw, alone.raw), "{tally:?} {alone:?}");
        assert_eq!((alone.true_positives, alone.false_positives), (1, 0));
        // Nothing worth firing on: the best is not to fire (0).
        let flat = vec![0.1; 2000];
        let streams = [(ts.as_slice(), flat.as_slice(), windows.as_slice())];
        let (_, tally) = sweep_threshold(&streams, &Profile::STANDARD, 0.01);
        assert!(close(tally.normalized(), 0.0), "{tally:?}");
    }

    #[test]
    fn null_normalises_to_0_and_perfect_to_100() {
        let windows = parse_windows(WINDOWS_JSON).unwrap();
        let rows = parse_csv(JUMPSUP_CSV).unwrap();
        let ts: Vec<i64> = rows.iter().map(|r| r.0).collect();
        // One stream with windows, one without: the corpus normalises over sums.
        let quiet_ts: Vec<i64> = (0..1000).map(|i| i * STEP).collect();
        for profile in [
            Profile::STANDARD,
            Profile::REWARD_LOW_FP,
            Profile::REWARD_LOW_FN,
        ] {
            let jumps = &windows[JUMPSUP];
            let starts: Vec<usize> = jumps
                .iter()
                .map(|&(s, _)| ts.iter().position(|&t| t == s).unwrap())
                .collect();
            let (mut null, mut perfect) = (CorpusTally::default(), CorpusTally::default());
            let never = score_stream(&ts, &fire_at(ts.len(), &[]), jumps, &profile);
            null.add(&never, jumps, &profile);
            let best = score_stream(&ts, &fire_at(ts.len(), &starts), jumps, &profile);
            perfect.add(&best, jumps, &profile);
            let quiet = score_stream(&quiet_ts, &fire_at(1000, &[]), &[], &profile);
            null.add(&quiet, &[], &profile);
            perfect.add(&quiet, &[], &profile);
            assert!(close(null.normalized(), 0.0), "{null:?}");
            assert!(close(perfect.normalized(), 100.0), "{perfect:?}");
            assert!(close(never.raw, null_raw(jumps, &profile)));
            assert!(close(best.raw, perfect_raw(jumps, &profile)));
        }
        assert!(close(normalized_score(-1.0, -2.0, 2.0), 25.0));
        assert!(normalized_score(0.0, 0.0, 0.0).is_nan());
    }

    #[test]
    fn parses_the_real_windows_and_stream() {
        let windows = parse_windows(WINDOWS_JSON).unwrap();
        assert_eq!(windows.len(), 28);
        assert_eq!(windows.values().map(Vec::len).sum::<usize>(), 36);
        assert!(windows["artificialNoAnomaly/art_noisy.csv"].is_empty());
        let flat = &windows["artificialWithAnomaly/art_daily_flatmiddle.csv"];
        // 2014-04-10 07:15:00 and 2014-04-11 16:45:00 UTC.
        assert_eq!(flat, &vec![(1_397_114_100_000, 1_397_234_700_000)]);
        let rows = parse_csv(JUMPSUP_CSV).unwrap();
        assert_eq!(rows.len(), 4032);
        assert_eq!(rows[0], (1_396_310_400_000, 19.761251902999998));
        let ts: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let labels = labels_for(&ts, &windows[JUMPSUP]);
        assert_eq!(labels.iter().filter(|&&l| l == 1).count(), 3189 - 2787 + 1);
        assert_eq!(
            (labels[2786], labels[2787], labels[3189], labels[3190]),
            (0, 1, 1, 0)
        );
    }

    #[test]
    fn parse_csv_accepts_nab_rfc3339_and_epoch_ms() {
        let text = "\u{feff}timestamp,value\r\n2014-02-14 14:30:00,1.5\r\n\r\n\
                    2014-02-14T14:35:00Z,2\n2014-02-14T16:40:00+02:00,-3e1\n\
                    1392389100000,4\n2014-02-14 14:45:00.000000,5\n2014-02-14 14:45:00,6\n";
        let rows = parse_csv(text).unwrap();
        let base = 1_392_388_200_000;
        let expected = [1.5, 2.0, -30.0, 4.0, 5.0, 6.0]
            .iter()
            .zip([0, 1, 2, 3, 3, 3])
            .map(|(&v, k)| (base + k * STEP, v))
            .collect::<Vec<_>>();
        assert_eq!(rows, expected);
        assert_eq!(parse_csv("").unwrap(), vec![]);
    }

    #[test]
    fn parse_csv_errors_name_the_line() {
        let cases = [
            ("timestamp,value\n2014-02-14 14:30:00,abc\n", 2, "bad value"),
            (
                "timestamp,value\n2014-02-14 14:30:00,1\n2014-13-14 14:35:00,2\n",
                3,
                "bad timestamp",
            ),
            (
                "2014-02-14 14:30:00,1\n2014-02-14 14:35:00\n",
                2,
                "expected",
            ),
            ("timestamp,value\n2014-02-14 14:30:00,NaN\n", 2, "bad value"),
            ("timestamp,value\ntimestamp,value\n", 2, "bad timestamp"),
        ];
        for (text, line, reason) in cases {
            match parse_csv(text) {
                Err(e @ NabError::Csv { line: l, .. }) => {
                    assert_eq!(l, line, "{text:?}: {e}");
                    assert!(e.to_string().contains(reason), "{e}");
                    assert!(e.to_string().contains(&format!("line {line}")), "{e}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_clock_that_steps_back_is_read_in_file_order_and_scored() {
        // machine_temperature_system_failure's clock steps back one hour on 2014-01-07.
        let text = "timestamp,value\n2014-01-07 02:55:00,1\n2014-01-07 02:00:00,2\n2014-01-07 02:05:00,3\n";
        let rows = parse_csv(text).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            vec![1.0, 2.0, 3.0]
        );
        let ts: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let window = (ts[2], ts[2]);
        let score = score_stream_with_probation(
            &ts,
            &[false, false, true],
            &[window],
            &Profile::STANDARD,
            0,
        );
        assert_eq!(
            (score.true_positives, score.false_positives),
            (1, 0),
            "{score:?}"
        );
    }

    #[test]
    fn parse_windows_rejects_bad_input() {
        assert!(matches!(parse_windows("[]"), Err(NabError::Json(_))));
        assert!(matches!(
            parse_windows(r#"{"a.csv": [["2014-01-01 00:00:00"]]}"#),
            Err(NabError::Json(_))
        ));
        let bad_ts = r#"{"a.csv": [["yesterday", "2014-01-01 00:00:00"]]}"#;
        assert!(matches!(
            parse_windows(bad_ts),
            Err(NabError::Window { .. })
        ));
        let reversed = r#"{"a.csv": [["2014-01-02 00:00:00", "2014-01-01 00:00:00"]]}"#;
        let e = parse_windows(reversed).unwrap_err();
        assert!(
            e.to_string().contains("a.csv") && e.to_string().contains("ends before"),
            "{e}"
        );
        let unsorted = r#"{"a.csv": [["2014-01-03 00:00:00", "2014-01-04 00:00:00"],
                                      ["2014-01-01 00:00:00", "2014-01-02 00:00:00"]]}"#;
        let w = parse_windows(unsorted).unwrap();
        assert!(w["a.csv"][0].0 < w["a.csv"][1].0);
    }

    #[test]
    fn results_csv_has_nab_format_and_round_trips() {
        let rows = [
            ResultRow {
                ts_ms: 1_396_310_400_000,
                value: 19.5,
                anomaly_score: 0.25,
                label: 0,
            },
            ResultRow {
                ts_ms: 1_396_310_700_999,
                value: -2.0,
                anomaly_score: 1.0,
                label: 1,
            },
        ];
        let text = write_results_csv(&rows);
        assert_eq!(
            text,
            "timestamp,value,anomaly_score,label\n\
             2014-04-01 00:00:00,19.5,0.25,0\n\
             2014-04-01 00:05:00,-2,1,1\n"
        );
        let back = parse_csv(&text).unwrap();
        assert_eq!(
            back,
            vec![(1_396_310_400_000, 19.5), (1_396_310_700_000, -2.0)]
        );
        assert_eq!(
            write_results_csv(&[]),
            "timestamp,value,anomaly_score,label\n"
        );
    }

    #[test]
    fn labels_and_detections_helpers() {
        let ts = [0, 10, 20, 30, 40];
        assert_eq!(labels_for(&ts, &[(10, 20), (40, 50)]), vec![0, 1, 1, 0, 1]);
        assert_eq!(labels_for(&ts, &[]), vec![0; 5]);
        assert_eq!(
            detections_from_scores(&[0.2, 0.5, 0.9], 0.5),
            vec![false, true, true]
        );
    }
}
