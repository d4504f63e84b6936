//! Everything sg-host does with Kafka, behind types of its own so no `rdkafka` type reaches the
//! pipelines: topic addresses and client settings (here), bounded reads ([`bounded`]), a topic
//! followed as a consumer-group member ([`group`]), and producing and creating topics
//! ([`producer`]).

mod bounded;
mod connection;
mod group;
mod producer;

pub use bounded::{KafkaSource, Span, share};
pub use connection::{Connection, ConnectionFault, Connects, HasConnection, metadata};
pub use group::{FollowedTopic, Polled};
pub use producer::{Producer, Replication, create_topic, ensure_topic, message_limit};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// Broker round trips (metadata, watermarks, offsets) give up after this.
pub(crate) const META_TIMEOUT: Duration = Duration::from_secs(15);

/// A topic address: `kafka://HOST:PORT[,HOST:PORT…]/TOPIC`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaTopic {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Topic name.
    pub topic: String,
}

impl KafkaTopic {
    /// Parses `kafka://HOST:PORT[,HOST:PORT…]/TOPIC`.
    pub fn parse(url: &str) -> Result<KafkaTopic> {
        let rest = url.strip_prefix("kafka://").ok_or_else(|| anyhow!("{url}: expected kafka://HOST:PORT/TOPIC"))?;
        let (brokers, topic) = rest.split_once('/').ok_or_else(|| anyhow!("{url}: no topic after the brokers"))?;
        if brokers.is_empty() || topic.is_empty() || topic.contains('/') {
            bail!("{url}: expected kafka://HOST:PORT[,HOST:PORT…]/TOPIC");
        }
        Ok(KafkaTopic { brokers: brokers.into(), topic: topic.into() })
    }

    /// `kafka://…/topic` as given.
    pub fn url(&self) -> String {
        format!("kafka://{}/{}", self.brokers, self.topic)
    }
}

/// How sg-host talks to one cluster: librdkafka properties, and the replication of the topics
/// it creates.
#[derive(Clone, Debug, Default)]
pub struct ClientSettings {
    /// librdkafka properties (`-X`, `--kafka-config`, `SG_RDKAFKA_…`), later ones winning.
    pub properties: Vec<(String, String)>,
    /// Copies of each partition of a topic sg-host creates (dead letters, alerts, `produce
    /// --create-partitions`).
    pub replication: Replication,
}

/// Where a bounded read starts in each partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// The low watermark.
    Earliest,
    /// The high watermark (nothing is read unless `--to-time`… this is for streams).
    Latest,
    /// The group's committed offset (the low watermark where none).
    Committed,
    /// The first offset at or after this time (epoch ms).
    Time(i64),
}

/// Settings of a Kafka read.
#[derive(Clone, Debug)]
pub struct KafkaOptions {
    /// Topic and brokers.
    pub topic: KafkaTopic,
    /// Consumer group (offsets are committed to it after the output is written).
    pub group: String,
    /// librdkafka properties and the replication of created topics.
    pub client: ClientSettings,
    /// Where to start.
    pub start: StartAt,
    /// Stop before the first offset at or after this time (epoch ms).
    pub to_time: Option<i64>,
    /// Read at most this many messages in all.
    pub max_events: Option<u64>,
    /// Messages per chunk.
    pub chunk_messages: usize,
    /// Follow the topic as a member of `group` instead of a bounded read (a stream,
    /// [`FollowedTopic`]): a chunk is handed out once it is full or after this long.
    pub follow: Option<Duration>,
}

/// A client config with the brokers and every `-X` property.
pub fn client_config(topic: &KafkaTopic, properties: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &topic.brokers);
    for (k, v) in properties {
        config.set(k, v);
    }
    config
}

/// Commits offsets of the topic a source reads — the one way offsets move, called by the
/// pipeline driver only once the output covering them is durable. Cheap to clone and `Send`, so
/// it works while the source reads ahead on another thread.
#[derive(Clone)]
pub struct OffsetCommitter(Committer);

#[derive(Clone)]
enum Committer {
    /// A bounded read: a failed commit fails the run (nothing else would record progress).
    Bounded { consumer: Arc<BaseConsumer<Connection>>, topic: String },
    /// A group member: a failed commit is logged (the checkpoint or the stable ids keep a
    /// re-read from writing twice), and the offsets are what a rebalance commits.
    Group(Arc<FollowedTopic>),
}

impl FollowedTopic {
    /// What commits this member's offsets.
    pub fn committer(self: &Arc<Self>) -> OffsetCommitter {
        OffsetCommitter(Committer::Group(self.clone()))
    }
}

impl OffsetCommitter {
    pub(crate) fn bounded(consumer: Arc<BaseConsumer<Connection>>, topic: String) -> OffsetCommitter {
        OffsetCommitter(Committer::Bounded { consumer, topic })
    }


    /// Commits `offsets` (per partition, the next offset to read), waiting up to `patience`
    /// for a group coordinator.
    pub fn commit(&self, offsets: &BTreeMap<i32, i64>, patience: Duration) -> Result<()> {
        match &self.0 {
            Committer::Bounded { consumer, topic } => {
                let mut tpl = TopicPartitionList::new();
                for (&p, &o) in offsets {
                    tpl.add_partition_offset(topic, p, Offset::Offset(o))?;
                }
                if tpl.count() > 0 {
                    consumer
                        .commit(&tpl, CommitMode::Sync)
                        .map_err(|e| consumer.context().explain(anyhow::Error::new(e).context("committing offsets")))?;
                }
                Ok(())
            }
            Committer::Group(topic) => {
                topic.set_durable(offsets.clone());
                if let Err(e) = topic.commit(offsets, patience) {
                    tracing::warn!(source = topic.name(), "{e:#}; a later commit covers it, or the next owner of these partitions re-reads more");
                }
                Ok(())
            }
        }
    }

    /// Per partition, offsets below which the output is durable without a commit now: what a
    /// rebalance commits before partitions move (group members only).
    pub fn set_durable(&self, offsets: BTreeMap<i32, i64>) {
        if let Committer::Group(topic) = &self.0 {
            topic.set_durable(offsets);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_topic_urls() {
        let t = KafkaTopic::parse("kafka://a:9092,b:9093/security-events").unwrap();
        assert_eq!(t.brokers, "a:9092,b:9093");
        assert_eq!(t.topic, "security-events");
        assert!(KafkaTopic::parse("kafka://a:9092").is_err());
        assert!(KafkaTopic::parse("http://a/b").is_err());
    }
}
