//! A transform's session split by input partition, so that one batch is processed on several threads.
//!
//! Shard `i` of `n` owns the state of the partitions `p` with `p % n == i`. A key's messages all sit in one
//! partition, so they stay in one shard and in order: the output per key is the same as one session's. Each
//! shard is a whole session of the transform (its own configuration follower, its own state), opened and
//! prepared at the same time as the others.

use std::collections::{HashMap, HashSet};

use rdkafka::message::{Message, OwnedMessage};

use super::transform::{Outgoing, Transform};
use super::ProcessorError;

/// The sessions of one transform, one per shard.
pub(super) struct Shards<S> {
    sessions: Vec<S>,
}

impl<S: Send> Shards<S> {
    /// Opens `n` (at least one) sessions of `transform` at once.
    pub async fn open<T: Transform<Session = S>>(
        transform: &T,
        n: usize,
    ) -> Result<Self, ProcessorError> {
        let sessions =
            futures::future::try_join_all((0..n.max(1)).map(|_| transform.open())).await?;
        Ok(Self { sessions })
    }

    fn of(&self, partition: i32) -> usize {
        partition.rem_euclid(self.sessions.len() as i32) as usize
    }

    /// Prepares every shard for the next batch, at once.
    pub async fn prepare<T: Transform<Session = S>>(
        &mut self,
        transform: &T,
    ) -> Result<(), ProcessorError> {
        futures::future::try_join_all(self.sessions.iter_mut().map(|s| transform.prepare(s)))
            .await?;
        Ok(())
    }

    /// Forgets the state of partitions no longer assigned.
    pub fn retain<T: Transform<Session = S>>(&mut self, transform: &T, assigned: &HashSet<i32>) {
        for s in &mut self.sessions {
            transform.retain(s, assigned);
        }
    }

    /// Hands a newly assigned partition's changelog to its shard.
    pub fn restore<T: Transform<Session = S>>(
        &mut self,
        transform: &T,
        partition: i32,
        records: HashMap<String, Vec<u8>>,
    ) -> usize {
        let shard = self.of(partition);
        transform.restore(&mut self.sessions[shard], partition, records)
    }

    /// Processes `batch`, each shard its partitions' messages on a thread of its own (the caller's thread
    /// takes the first), and returns every shard's records.
    pub fn process<T: Transform<Session = S>>(
        &mut self,
        transform: &T,
        batch: &[&OwnedMessage],
    ) -> Result<Vec<Outgoing>, ProcessorError> {
        if let [session] = &mut self.sessions[..] {
            return transform.process(session, batch);
        }
        let mut parts: Vec<Vec<&OwnedMessage>> = vec![Vec::new(); self.sessions.len()];
        for msg in batch {
            parts[self.of(msg.partition())].push(msg);
        }
        let mut work = self
            .sessions
            .iter_mut()
            .zip(&parts)
            .filter(|(_, part)| !part.is_empty());
        let Some((here, here_part)) = work.next() else {
            return Ok(Vec::new());
        };
        std::thread::scope(|scope| {
            let elsewhere: Vec<_> = work
                .map(|(session, part)| scope.spawn(move || transform.process(session, part)))
                .collect();
            let mut out = transform.process(here, here_part);
            for thread in elsewhere {
                let records = thread.join().unwrap_or_else(|_| {
                    Err(ProcessorError::Internal(
                        "a processing thread panicked".into(),
                    ))
                });
                match (&mut out, records) {
                    (Ok(out), Ok(records)) => out.extend(records),
                    (Ok(_), Err(e)) => out = Err(e),
                    (Err(_), _) => {}
                }
            }
            out
        })
    }
}
