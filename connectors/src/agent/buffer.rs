//! Store-and-forward on disk: every delivered poll becomes one segment file, written whole (temporary
//! file, fsync, rename) before the poll counts as delivered. The pusher sends the oldest segments and
//! deletes them only after the cloud acknowledged them, so a crash or restart re-sends at most what was
//! in flight, which the platform stores once (readings are keyed by machine, metric and time).
//!
//! The buffer is bounded: past `max_readings` the oldest segments are deleted and their readings added
//! to a persistent `dropped` counter.

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::source::PointReading;

/// A buffer error: the disk failed.
#[derive(Debug, thiserror::Error)]
#[error("agent buffer {path}: {source}")]
pub struct BufferError {
    path: PathBuf,
    source: std::io::Error,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BufferError + '_ {
    move |source| BufferError {
        path: path.to_owned(),
        source,
    }
}

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Order of writing.
    pub seq: u64,
    /// Readings in it.
    pub count: u64,
    /// Its file.
    pub path: PathBuf,
}

#[derive(Debug, Default)]
struct State {
    segments: VecDeque<Segment>,
    next_seq: u64,
    buffered: u64,
    dropped: u64,
}

/// The agent's bounded disk buffer.
#[derive(Debug)]
pub struct DiskBuffer {
    dir: PathBuf,
    max_readings: u64,
    state: Mutex<State>,
}

const DROPPED_FILE: &str = "dropped";

impl DiskBuffer {
    /// Opens (or creates) the buffer in `dir`, finding the segments a previous run left.
    pub fn open(dir: &Path, max_readings: u64) -> Result<Self, BufferError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let mut segments = Vec::new();
        for entry in fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.ends_with(".tmp") {
                // A write that never completed was never reported as delivered.
                let _ = fs::remove_file(&path);
                continue;
            }
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            if let Some((seq, count)) = stem.split_once('-') {
                if let (Ok(seq), Ok(count)) = (seq.parse(), count.parse()) {
                    segments.push(Segment { seq, count, path });
                }
            }
        }
        segments.sort_by_key(|s| s.seq);
        let dropped = fs::read_to_string(dir.join(DROPPED_FILE))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let state = State {
            next_seq: segments.last().map_or(0, |s| s.seq + 1),
            buffered: segments.iter().map(|s| s.count).sum(),
            segments: segments.into(),
            dropped,
        };
        Ok(Self {
            dir: dir.to_owned(),
            max_readings: max_readings.max(1),
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the state itself stays consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `readings` durably; past the bound, drops the oldest segments.
    pub fn append(&self, readings: &[PointReading]) -> Result<(), BufferError> {
        if readings.is_empty() {
            return Ok(());
        }
        let entries: Vec<Value> = readings
            .iter()
            .map(|r| {
                let mut e = json!({"machine": r.machine, "metric": r.reading.metric,
                                   "ts": r.reading.event_time_ms, "value": r.reading.value});
                if let Some(q) = r.reading.quality {
                    e["quality"] = json!(q);
                }
                e
            })
            .collect();
        let body = serde_json::to_vec(&entries).map_err(|e| BufferError {
            path: self.dir.clone(),
            source: std::io::Error::other(e),
        })?;
        let mut state = self.lock();
        let seq = state.next_seq;
        let count = readings.len() as u64;
        let path = self.dir.join(format!("{seq:020}-{count}.json"));
        let tmp = self.dir.join(format!("{seq:020}.tmp"));
        {
            let mut file = fs::File::create(&tmp).map_err(io(&tmp))?;
            file.write_all(&body).map_err(io(&tmp))?;
            file.sync_all().map_err(io(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io(&path))?;
        state.next_seq += 1;
        state.buffered += count;
        state.segments.push_back(Segment { seq, count, path });
        let mut dropped_now = 0;
        while state.buffered > self.max_readings && state.segments.len() > 1 {
            let Some(oldest) = state.segments.pop_front() else {
                break;
            };
            let _ = fs::remove_file(&oldest.path);
            state.buffered -= oldest.count;
            dropped_now += oldest.count;
        }
        if dropped_now > 0 {
            state.dropped += dropped_now;
            metrics::counter!(crate::metric_names::AGENT_DROPPED).increment(dropped_now);
            tracing::warn!(
                dropped = dropped_now,
                total = state.dropped,
                "agent buffer full: dropped the oldest readings"
            );
            let _ = fs::write(self.dir.join(DROPPED_FILE), state.dropped.to_string());
        }
        metrics::gauge!(crate::metric_names::AGENT_BUFFERED).set(state.buffered as f64);
        Ok(())
    }

    /// The oldest segments holding at most `max_readings` together (at least one segment when any),
    /// with their entries.
    pub fn oldest(&self, max_readings: u64) -> Result<(Vec<Segment>, Vec<Value>), BufferError> {
        let chosen: Vec<Segment> = {
            let state = self.lock();
            let mut total = 0;
            state
                .segments
                .iter()
                .take_while(|s| {
                    let take = total == 0 || total + s.count <= max_readings;
                    total += s.count;
                    take
                })
                .cloned()
                .collect()
        };
        let mut entries = Vec::new();
        let mut read = Vec::new();
        for segment in chosen {
            // A segment dropped for space meanwhile is simply gone.
            let Ok(bytes) = fs::read(&segment.path) else {
                continue;
            };
            match serde_json::from_slice::<Vec<Value>>(&bytes) {
                Ok(mut e) => entries.append(&mut e),
                Err(e) => {
                    tracing::error!(path = %segment.path.display(), error = %e, "unreadable buffer segment")
                }
            }
            read.push(segment);
        }
        Ok((read, entries))
    }

    /// Forgets segments the cloud acknowledged (or refused for good).
    pub fn remove(&self, done: &[Segment]) {
        let mut state = self.lock();
        for segment in done {
            if let Some(pos) = state.segments.iter().position(|s| s.seq == segment.seq) {
                state.segments.remove(pos);
                state.buffered -= segment.count;
                let _ = fs::remove_file(&segment.path);
            }
        }
        metrics::gauge!(crate::metric_names::AGENT_BUFFERED).set(state.buffered as f64);
    }

    /// Readings waiting.
    pub fn buffered(&self) -> u64 {
        self.lock().buffered
    }

    /// Readings dropped for space since the buffer was created.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use haltless_schemas::Reading;

    use super::*;

    fn readings(n: usize, t0: i64) -> Vec<PointReading> {
        (0..n)
            .map(|i| PointReading {
                machine: "m".into(),
                reading: Reading {
                    metric: "t".into(),
                    event_time_ms: t0 + i as i64,
                    value: i as f64,
                    quality: None,
                },
            })
            .collect()
    }

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!("haltless-buffer-{}", uuid::Uuid::new_v4()))
    }

    #[test]
    fn survives_a_restart_and_hands_out_the_oldest_first() {
        let dir = temp_dir();
        let buffer = DiskBuffer::open(&dir, 1000).unwrap();
        buffer.append(&readings(3, 0)).unwrap();
        buffer.append(&readings(4, 100)).unwrap();
        fs::write(dir.join("00000000000000000009.tmp"), b"[{").unwrap();
        drop(buffer);
        let buffer = DiskBuffer::open(&dir, 1000).unwrap();
        assert_eq!(buffer.buffered(), 7);
        let (segments, entries) = buffer.oldest(5).unwrap();
        assert_eq!(segments.len(), 1, "3 + 4 exceeds 5");
        assert_eq!(entries[0]["ts"], 0);
        buffer.remove(&segments);
        buffer.append(&readings(1, 200)).unwrap();
        let (segments, entries) = buffer.oldest(100).unwrap();
        assert_eq!(segments.len(), 2);
        assert_eq!(entries.len(), 5);
        assert_eq!(entries[4]["ts"], 200, "order kept across the restart");
        fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn drops_the_oldest_past_the_bound_and_counts_them() {
        let dir = temp_dir();
        let buffer = DiskBuffer::open(&dir, 10).unwrap();
        for i in 0..4 {
            buffer.append(&readings(4, i * 10)).unwrap();
        }
        assert_eq!(buffer.buffered(), 8);
        assert_eq!(buffer.dropped(), 8);
        let (_, entries) = buffer.oldest(100).unwrap();
        assert_eq!(entries[0]["ts"], 20, "the two oldest polls went");
        drop(buffer);
        assert_eq!(
            DiskBuffer::open(&dir, 10).unwrap().dropped(),
            8,
            "the counter persists"
        );
        fs::remove_dir_all(dir).ok();
    }
}
