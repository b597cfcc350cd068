//! What the list endpoints share: pagination, enumerated filters, time bounds, and the lookup of a machine
//! by name within the caller's tenant.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::parse_instant;

/// A validated page: `limit` rows after skipping `offset`.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// Rows per page.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

impl Page {
    /// Validates `limit` (default `default`, 1 to `max`) and `offset` (default 0, not negative).
    pub fn new(
        limit: Option<i64>,
        offset: Option<i64>,
        default: i64,
        max: i64,
    ) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(default);
        let offset = offset.unwrap_or(0);
        if !(1..=max).contains(&limit) || offset < 0 {
            return Err(ApiError::validation(format!(
                "limit must lie between 1 and {max}, offset must not be negative"
            )));
        }
        Ok(Self { limit, offset })
    }

    /// Rows to fetch: one more than the page, to learn whether there is a next one.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }

    /// Cuts `rows` to the page and returns the offset of the next page, if any.
    pub fn cut<T>(&self, rows: &mut Vec<T>) -> Option<i64> {
        let more = rows.len() as i64 > self.limit;
        rows.truncate(self.limit as usize);
        more.then_some(self.offset.saturating_add(self.limit))
    }
}

/// Deletes row `id` of `table` when it is the caller's tenant's: 204, or 404 `no <what> <id>` (another
/// tenant's row is not found either). `table` is one of the code's own table names, never input.
pub async fn delete_owned(
    state: &AppState,
    caller: &Caller,
    table: &'static str,
    what: &str,
    id: Uuid,
) -> Result<axum::http::StatusCode, ApiError> {
    let gone = sqlx::query(&format!(
        "DELETE FROM {table} WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(caller.tenant_id)
    .execute(state.pool())
    .await?
    .rows_affected();
    if gone == 0 {
        return Err(ApiError::not_found(format!("no {what} {id}")));
    }
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Refuses with 422 unless `value` is absent or one of `allowed`.
pub fn one_of(name: &str, value: Option<&str>, allowed: &[&str]) -> Result<(), ApiError> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(ApiError::validation(format!(
            "{name} must be one of {}",
            allowed.join(", ")
        ))),
        _ => Ok(()),
    }
}

/// Parses an optional time bound (RFC 3339 or epoch ms) within the years 1 to 9999, answering 422 naming
/// the parameter.
pub fn instant(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    use chrono::Datelike as _;
    value
        .map(|s| {
            let t = parse_instant(s).map_err(|e| ApiError::validation(format!("{name}: {e}")))?;
            if (1..=9999).contains(&t.year()) {
                Ok(t)
            } else {
                Err(ApiError::validation(format!(
                    "{name}: `{s}` lies outside the years 1 to 9999"
                )))
            }
        })
        .transpose()
}

/// The id of the caller's machine `name`; 404 when the tenant has none or the caller may not see it.
pub async fn machine_id(state: &AppState, caller: &Caller, name: &str) -> Result<Uuid, ApiError> {
    sqlx::query_scalar("SELECT id FROM machines WHERE tenant_id = $1 AND name = $2")
        .bind(caller.tenant_id)
        .bind(name)
        .fetch_optional(state.pool())
        .await?
        .filter(|id| caller.may_access(*id))
        .ok_or_else(|| ApiError::not_found(format!("no machine named `{name}`")))
}

/// The ids of the caller's machines `names`; 422 `unknown_machine` naming those the tenant lacks.
pub async fn machine_ids(
    state: &AppState,
    caller: &Caller,
    names: &[String],
) -> Result<Vec<Uuid>, ApiError> {
    let found: Vec<(String, Uuid)> =
        sqlx::query_as("SELECT name, id FROM machines WHERE tenant_id = $1 AND name = ANY($2)")
            .bind(caller.tenant_id)
            .bind(names)
            .fetch_all(state.pool())
            .await?;
    let found: Vec<(String, Uuid)> = found
        .into_iter()
        .filter(|(_, id)| caller.may_access(*id))
        .collect();
    let unknown: Vec<&String> = names
        .iter()
        .filter(|n| !found.iter().any(|(f, _)| f == *n))
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_machine",
            format!(
                "unknown machine(s): {}",
                unknown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .with_details(serde_json::json!({ "machines": unknown })));
    }
    let mut ids: Vec<Uuid> = names
        .iter()
        .filter_map(|n| found.iter().find(|(f, _)| f == n).map(|(_, id)| *id))
        .collect();
    ids.dedup();
    Ok(ids)
}

/// Escapes `%`, `_` and `\` for a `LIKE` pattern.
/// A 422 `code` listing, under `field`, the ids a request named that are not the tenant's `noun`s (none:
/// `Ok`).
pub fn refuse_unknown<T: serde::Serialize>(
    unknown: &[T],
    code: &'static str,
    noun: &str,
    field: &str,
) -> Result<(), ApiError> {
    if unknown.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        code,
        format!("{} {noun}(s) are not this tenant's", unknown.len()),
    )
    .with_details(serde_json::json!({ field: unknown })))
}

pub fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// A CSV document written by the `csv` crate: RFC 4180 (fields quoted when they need it), CRLF line ends.
/// A leading `=`, `+`, `-` or `@` of a field that is not a number gets a `'`, so that a spreadsheet does
/// not run a machine name as a formula.
pub struct CsvDocument(csv::Writer<Vec<u8>>);

impl Default for CsvDocument {
    fn default() -> Self {
        Self(
            csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .from_writer(Vec::new()),
        )
    }
}

impl CsvDocument {
    /// Appends one record.
    pub fn row<I, S>(&mut self, fields: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let fields = fields.into_iter().map(|f| defuse(f.as_ref()).into_owned());
        // Writing into memory cannot fail, and every record of a document has the fields its caller gives.
        let _ = self.0.write_record(fields);
    }

    /// The document's text.
    pub fn finish(self) -> String {
        // Flushing into memory cannot fail; the fields were `str`s, so the bytes are UTF-8.
        let bytes = self
            .0
            .into_inner()
            .map_err(|e| e.into_error())
            .unwrap_or_default();
        String::from_utf8(bytes).unwrap_or_default()
    }
}

/// `s`, with a `'` before a leading formula character (OWASP's list: `=`, `+`, `-`, `@`, tab, carriage
/// return) when it is not a number.
fn defuse(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s.parse::<f64>().is_err() {
        format!("'{s}").into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut doc = CsvDocument::default();
        doc.row(["a", "b,c", "say \"hi\""]);
        doc.row(["=cmd()", "-1.5", "line\nbreak"]);
        doc.row(["\t=cmd()", "\r=cmd()", "@x"]);
        assert_eq!(
            doc.finish(),
            "a,\"b,c\",\"say \"\"hi\"\"\"\r\n'=cmd(),-1.5,\"line\nbreak\"\r\n'\t=cmd(),\"'\r=cmd()\",'@x\r\n"
        );
    }

    #[test]
    fn pages_cut_and_point_to_the_next() {
        let page = Page::new(Some(2), Some(4), 50, 500).map_err(|e| e.status());
        let page = page.unwrap_or(Page {
            limit: 0,
            offset: 0,
        });
        let mut rows = vec![1, 2, 3];
        assert_eq!(page.cut(&mut rows), Some(6));
        assert_eq!(rows, vec![1, 2]);
        assert!(Page::new(Some(0), None, 50, 500).is_err());
        assert!(Page::new(None, Some(-1), 50, 500).is_err());
    }
}
