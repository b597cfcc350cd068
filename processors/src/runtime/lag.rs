//! Consumer lag from librdkafka's periodic statistics, per partition, for every consumer that reads a
//! topic in a group (the projections, the detectors, the RUL predictor).
//!
//! librdkafka's own `consumer_lag` counts from the last committed offset, which stops before a
//! transaction's commit marker: a caught-up reader of a transactional topic would show 1 for ever. This
//! counts from the consumer's fetch position, which is past the markers it has read, so it reaches 0.

use rdkafka::statistics::Partition;
use rdkafka::Statistics;

/// How often the consumers report their statistics (and so their lag).
pub const STATISTICS_INTERVAL_MS: &str = "5000";

/// A partition's lag: the messages between the consumer's fetch position and the last stable offset, plus
/// those fetched and not yet taken. `None` while the partition has no position yet.
pub fn lag(p: &Partition) -> Option<i64> {
    let end = if p.ls_offset >= 0 {
        p.ls_offset
    } else {
        p.hi_offset
    };
    (p.next_offset >= 0 && end >= 0).then(|| (end - p.next_offset).max(0) + p.fetchq_cnt.max(0))
}

/// Sets gauge `name`, labelled `label` = `value` and `partition`, to each partition's lag in `statistics`.
pub fn report(statistics: &Statistics, name: &'static str, label: &'static str, value: &str) {
    for topic in statistics.topics.values() {
        for (id, p) in &topic.partitions {
            if let Some(lag) = lag(p).filter(|_| *id >= 0) {
                metrics::gauge!(name, label => value.to_owned(), "partition" => id.to_string())
                    .set(lag as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::lag;
    use rdkafka::statistics::Partition;

    fn partition(next_offset: i64, ls_offset: i64, fetchq_cnt: i64) -> Partition {
        Partition {
            next_offset,
            ls_offset,
            hi_offset: ls_offset,
            fetchq_cnt,
            committed_offset: ls_offset - 1,
            ..Partition::default()
        }
    }

    #[test]
    fn a_reader_past_the_last_commit_marker_has_no_lag() {
        // Data up to offset 10, the transaction's marker at 11: the last stable offset is 12.
        assert_eq!(lag(&partition(12, 12, 0)), Some(0));
        // Behind: 7 messages not fetched yet and 3 fetched but not taken.
        assert_eq!(lag(&partition(5, 12, 3)), Some(10));
        // No position yet (just assigned).
        assert_eq!(lag(&partition(-1001, 12, 0)), None);
    }
}
