//! What a stateful processor does with its input ([`Transform`]) and the records it hands back
//! ([`Outgoing`]); the exactly-once loop around it is in `transactional`.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use rdkafka::message::OwnedMessage;

use super::ProcessorError;

/// One record to produce in the batch's transaction.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Topic.
    pub topic: String,
    /// Key.
    pub key: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// A fixed partition (a changelog record goes to its input's partition); else by key.
    pub partition: Option<i32>,
}

/// What a processor does with its input; the loop does the Kafka part.
pub trait Transform: Send + Sync + 'static {
    /// What one session keeps: the state of the assigned partitions, and anything rebuilt per session.
    type Session: Send;

    /// A name for logs.
    fn name(&self) -> &'static str;

    /// Starts a session (empty state: partitions are restored as they are assigned).
    fn open(&self) -> impl Future<Output = Result<Self::Session, ProcessorError>> + Send;

    /// Runs before each batch's transaction, e.g. catching up on a configuration topic.
    fn prepare(
        &self,
        _session: &mut Self::Session,
    ) -> impl Future<Output = Result<(), ProcessorError>> + Send {
        async { Ok(()) }
    }

    /// Forgets the state of partitions no longer assigned.
    fn retain(&self, session: &mut Self::Session, assigned: &HashSet<i32>);

    /// Takes the changelog of a newly assigned partition: the latest record of each key. Returns how many
    /// keys it restored.
    fn restore(
        &self,
        session: &mut Self::Session,
        partition: i32,
        records: HashMap<String, Vec<u8>>,
    ) -> usize;

    /// Processes the messages of one batch (of assigned partitions, in order) and returns the records to
    /// produce with them: its output and the changelog records of the state it changed.
    fn process(
        &self,
        session: &mut Self::Session,
        batch: &[&OwnedMessage],
    ) -> Result<Vec<Outgoing>, ProcessorError>;
}
