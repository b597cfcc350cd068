//! What a paced run reads from the platform's `GET /metrics`: the consumer lag its consumers report and the
//! rows the readings projection wrote.

use std::collections::BTreeMap;
use std::time::Duration;

use haltless_schemas::metric_names;
use secrecy::{ExposeSecret, SecretString};

/// The platform's `GET /metrics`.
pub(super) struct Metrics {
    pub(super) client: reqwest::Client,
    pub(super) url: String,
    pub(super) token: Option<SecretString>,
}

/// What a paced run reads from the metrics.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Scrape {
    /// Per consumer of the readings topic (the readings projection, each processor): its group and its lag
    /// summed over partitions.
    pub(super) lag: BTreeMap<String, (String, i64)>,
    /// Rows the readings projection wrote.
    pub(super) rows: f64,
}

impl Metrics {
    pub(super) async fn scrape(&self) -> Option<Scrape> {
        let mut request = self.client.get(&self.url).timeout(Duration::from_secs(2));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose_secret());
        }
        let response = request.send().await.ok()?.error_for_status().ok()?;
        Some(parse_metrics(&response.text().await.ok()?))
    }
}

/// Reads the lag gauges the platform's consumers report (see `haltless_processors::runtime::lag`) and the
/// readings projection's row counter from a Prometheus text exposition.
fn parse_metrics(text: &str) -> Scrape {
    let mut scrape = Scrape::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((head, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = head.split_once('{').unwrap_or((head, ""));
        let label = |key: &str| {
            labels.trim_end_matches('}').split(',').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
            })
        };
        let consumer = match name {
            metric_names::PROJECTION_LAG if label("projection").as_deref() == Some("readings") => {
                "readings projection".to_owned()
            }
            metric_names::PROCESSOR_LAG => label("processor").unwrap_or_default(),
            metric_names::PROJECTION_ROWS if label("projection").as_deref() == Some("readings") => {
                scrape.rows += value;
                continue;
            }
            _ => continue,
        };
        let entry = scrape
            .lag
            .entry(consumer)
            .or_insert_with(|| (label("group").unwrap_or_default(), 0));
        entry.1 += value as i64;
    }
    scrape
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_of_the_readings_consumers_is_summed_over_partitions() {
        let text = r#"# TYPE haltless_projection_lag_messages gauge
haltless_projection_lag_messages{group="g-readings",partition="0",projection="readings"} 5
haltless_projection_lag_messages{group="g-readings",partition="1",projection="readings"} 7
haltless_projection_lag_messages{group="g-alerts",partition="0",projection="alerts"} 100
haltless_processor_lag_messages{group="g-det",partition="0",processor="detectors"} 3
haltless_projection_rows_total{projection="readings"} 1200
haltless_projection_rows_total{projection="alerts"} 9
"#;
        let scrape = parse_metrics(text);
        assert_eq!(
            scrape.lag,
            BTreeMap::from([
                ("detectors".to_owned(), ("g-det".to_owned(), 3)),
                (
                    "readings projection".to_owned(),
                    ("g-readings".to_owned(), 12)
                ),
            ])
        );
        assert_eq!(scrape.rows, 1200.0);
    }
}
