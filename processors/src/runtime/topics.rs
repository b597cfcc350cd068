//! Creation of the platform's topics.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use super::error::ProcessorError;

/// A topic the platform needs.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication: i32,
    /// Extra topic configuration (`cleanup.policy`, `retention.ms`, ...).
    pub config: Vec<(String, String)>,
}

/// Creates the topics that do not exist yet; returns the names it created.
pub async fn ensure_topics(
    brokers: &str,
    topics: &[TopicSpec],
) -> Result<Vec<String>, ProcessorError> {
    let admin: AdminClient<DefaultClientContext> = super::kafka::admin_config(brokers).create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            t.config.iter().fold(
                NewTopic::new(
                    &t.name,
                    t.partitions,
                    TopicReplication::Fixed(t.replication),
                ),
                |nt, (k, v)| nt.set(k, v),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let mut created = Vec::new();
    for result in admin.create_topics(&new, &opts).await? {
        match result {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                tracing::error!(topic = %name, error = %code, "could not create topic");
                return Err(rdkafka::error::KafkaError::AdminOp(code).into());
            }
        }
    }
    Ok(created)
}

/// Grows `topic` to `count` partitions if it has fewer (a detector changelog must match its input topic).
/// Returns the partition count it found.
pub async fn ensure_partition_count(
    brokers: &str,
    topic: &str,
    count: i32,
) -> Result<i32, ProcessorError> {
    let admin: AdminClient<DefaultClientContext> = super::kafka::admin_config(brokers).create()?;
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let found = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len() as i32)
        .unwrap_or(0);
    if found > 0 && found < count {
        tracing::warn!(
            topic,
            found,
            count,
            "adding partitions to match the readings topic"
        );
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        for result in admin
            .create_partitions(
                &[rdkafka::admin::NewPartitions::new(topic, count as usize)],
                &opts,
            )
            .await?
        {
            result.map_err(|(_, code)| rdkafka::error::KafkaError::AdminOp(code))?;
        }
    }
    Ok(found)
}

/// Deletes `topics`, best effort (a benchmark's or test's throw-away topics).
pub async fn delete_topics(brokers: &str, topics: &[&str]) {
    if let Ok(admin) =
        super::kafka::admin_config(brokers).create::<AdminClient<DefaultClientContext>>()
    {
        let _ = admin.delete_topics(topics, &AdminOptions::new()).await;
    }
}
