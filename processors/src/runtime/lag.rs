//! Consumer lag from librdkafka's periodic statistics, per group and partition, for every consumer that
//! reads a topic in a group (the projections, the detectors, the RUL predictor).
//!
//! librdkafka's own `consumer_lag` counts from the last committed offset, which stops before a
//! transaction's commit marker: a caught-up reader of a transactional topic would show 1 for ever. This
//! counts from the consumer's fetch position, which is past the markers it has read, so it reaches 0; the
//! messages fetched but not yet taken by the application are added back (see [`lag`]).

use rdkafka::statistics::Partition;
use rdkafka::Statistics;

/// How often the consumers report their statistics (and so their lag).
pub const STATISTICS_INTERVAL_MS: &str = "5000";

/// A partition's lag: the messages between what the application has taken and the last stable offset.
/// `None` while the partition has no position yet.
///
/// With nothing waiting in the consumer's queue it is the distance from the fetch position, which is past
/// the commit markers read. With messages waiting it counts from the last message the application took
/// (`app_offset`): the queue's length is not the partition's (librdkafka reports the whole consumer's queue
/// for each partition it forwards there), and the markers in between, at most one per transaction, are
/// counted as lag only while the reader is behind anyway. Before the application took anything, it counts
/// from the committed offset, else from the log's start (where a new group's consumers begin).
pub fn lag(p: &Partition) -> Option<i64> {
    let end = if p.ls_offset >= 0 {
        p.ls_offset
    } else {
        p.hi_offset
    };
    let from = if p.fetchq_cnt > 0 {
        [p.app_offset, p.committed_offset, p.lo_offset, p.next_offset]
            .into_iter()
            .find(|&o| o >= 0)?
    } else {
        p.next_offset
    };
    (from >= 0 && end >= 0).then(|| (end - from).max(0))
}

/// Sets gauge `name`, labelled `group`, `label` (the consumer's name) and `partition`, to the lag of each
/// partition in `statistics`; a partition no longer assigned here shows 0, so a gauge does not keep the
/// last value of a partition that moved to another instance.
pub fn report(
    statistics: &Statistics,
    name: &'static str,
    (label, value): (&'static str, &str),
    group: &str,
) {
    for topic in statistics.topics.values() {
        for (id, p) in &topic.partitions {
            if *id < 0 {
                continue;
            }
            let lag = if p.desired { lag(p) } else { Some(0) };
            if let Some(lag) = lag {
                metrics::gauge!(name, "group" => group.to_owned(), label => value.to_owned(), "partition" => id.to_string())
                    .set(lag as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::lag;
    use rdkafka::statistics::Partition;

    fn partition(next_offset: i64, app_offset: i64, ls_offset: i64, fetchq_cnt: i64) -> Partition {
        Partition {
            next_offset,
            app_offset,
            ls_offset,
            hi_offset: ls_offset,
            fetchq_cnt,
            committed_offset: -1001,
            desired: true,
            ..Partition::default()
        }
    }

    #[test]
    fn a_reader_past_the_last_commit_marker_has_no_lag() {
        // Data up to offset 10, the transaction's marker at 11: the last stable offset is 12, and the
        // application's position stops at 11, before the marker.
        assert_eq!(lag(&partition(12, 11, 12, 0)), Some(0));
        // No position yet (just assigned).
        assert_eq!(lag(&partition(-1001, -1001, 12, 0)), None);
    }

    #[test]
    fn a_reader_behind_counts_from_what_the_application_took() {
        // Fetched up to 10, the application took up to 5; the queue holds messages of other partitions too.
        assert_eq!(lag(&partition(10, 5, 12, 40)), Some(7));
        // Fetched, nothing taken yet: from the committed offset, else from the log's start.
        let mut p = partition(10, -1001, 12, 40);
        p.lo_offset = 1;
        assert_eq!(lag(&p), Some(11));
        p.committed_offset = 2;
        assert_eq!(lag(&p), Some(10));
    }
}
