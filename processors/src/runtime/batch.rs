//! Batching of consumed messages, shared by every processor.

use std::time::Duration;

use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use rdkafka::message::OwnedMessage;

use super::error::ProcessorError;

/// Waits for one message, then takes more until `max` are in hand or `wait` has passed since the first.
///
/// An error after the first message ends the batch early instead of failing it: the messages already
/// taken have moved the consumer's position and must be processed, or they would be skipped.
pub async fn next_batch<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    max: usize,
    wait: Duration,
) -> Result<Vec<OwnedMessage>, ProcessorError> {
    let first = consumer.recv().await?.detach();
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + wait;
    while batch.len() < max {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(received) => {
                if !take(&mut batch, received) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    Ok(batch)
}

/// Adds a message received after a batch's first to it: whether the batch may take more. An error ends
/// the batch early instead of failing it (see [`next_batch`]).
pub fn take(
    batch: &mut Vec<OwnedMessage>,
    received: rdkafka::error::KafkaResult<rdkafka::message::BorrowedMessage<'_>>,
) -> bool {
    match received {
        Ok(msg) => {
            batch.push(msg.detach());
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "kafka consumer error; processing the batch so far");
            false
        }
    }
}
