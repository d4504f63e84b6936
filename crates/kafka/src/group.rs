//! Following a topic as a member of a consumer group: librdkafka spreads the partitions over the
//! group's members and moves them when members come and go. Offsets are committed only behind
//! output the caller says is durable; when partitions are taken away, what was read and not yet
//! written is dropped, and whoever owns the partitions next re-reads it from the committed
//! offsets. That needs eager rebalancing (every partition revoked, then assigned afresh from its
//! committed offset); cooperative assignors are refused.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::{Connection, HasConnection, KafkaOptions, META_TIMEOUT, StartAt, client_config, metadata};
use sg_metrics::health::HEALTH;
use sg_metrics::{METRICS, PartitionLabels};
use sg_model::{Chunk, Position};

/// What the rebalance callback shares with the reading loop: the offsets safe to commit, and a
/// flag saying partitions were taken away.
#[derive(Default)]
struct Shared {
    /// Per partition, the offset below which the output is durable.
    pub safe: Mutex<BTreeMap<i32, i64>>,
    /// Set when partitions are revoked; the loop drops what it has not written.
    pub revoked: AtomicBool,
}

/// Commits what is safe when partitions are taken away, tells the loop to drop its state, and
/// feeds the lag gauge from librdkafka's statistics.
struct GroupContext {
    shared: Arc<Shared>,
    topic: String,
    /// The source's name in metrics.
    source: String,
    connection: Connection,
}

impl HasConnection for GroupContext {
    fn connection(&self) -> &Connection {
        &self.connection
    }
}

impl ClientContext for GroupContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        self.connection.log(level, facility, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.connection.record(&error, reason);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else { return };
        for (&partition, p) in &topic.partitions {
            // librdkafka reports -1 for the internal partition and for lags it does not know.
            if partition >= 0 && p.consumer_lag >= 0 {
                let labels = PartitionLabels { source: self.source.clone(), partition: partition.into() };
                METRICS.lag.get_or_create(&labels).set(p.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            let safe = self.shared.safe.lock().expect("not poisoned").clone();
            if let Err(e) = commit_with_patience(consumer, &self.topic, &safe, Duration::ZERO) {
                tracing::warn!(source = %self.source, "committing before a rebalance failed ({e:#}); the next owner re-reads more");
            }
            self.shared.revoked.store(true, Ordering::SeqCst);
            HEALTH.set_assigned(0);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            HEALTH.set_assigned(partitions.len());
            tracing::info!(source = %self.source, "assigned partitions {partitions:?}");
        }
    }
}

/// What one poll of a followed topic gave.
pub enum Polled {
    /// Records (possibly none).
    Records(Chunk),
    /// Partitions were taken away meanwhile: what was read is dropped (not written, so whoever
    /// owns the partitions now reads it again), and so must be everything not yet written.
    Revoked,
}

/// A topic followed as a member of a consumer group: polled in chunks, committed only where the
/// caller says the output is durable, with the partitions it was given.
pub struct FollowedTopic {
    consumer: BaseConsumer<GroupContext>,
    shared: Arc<Shared>,
    topic: String,
    name: String,
}

impl FollowedTopic {
    /// Joins `options.group` and subscribes to its topic (manual commits; `start` applies to a
    /// group without committed offsets). Cooperative assignors are refused (module doc).
    pub fn join(options: &KafkaOptions) -> Result<FollowedTopic> {
        let (consumer, shared) = join(options)?;
        Ok(FollowedTopic { consumer, shared, topic: options.topic.topic.clone(), name: options.topic.url() })
    }

    /// `kafka://…/topic`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Polls until `max` records, `wait` passed or `stop` is set (see [`fill`]).
    pub fn poll(&self, max: usize, wait: Duration, stop: Option<&AtomicBool>) -> Polled {
        match fill(&self.consumer, &self.shared, max, wait, stop) {
            Some(chunk) => Polled::Records(chunk),
            None => Polled::Revoked,
        }
    }

    /// Per partition, the offsets below which the output is durable: what a rebalance commits
    /// before the partitions move.
    pub fn set_durable(&self, offsets: BTreeMap<i32, i64>) {
        *self.shared.safe.lock().expect("not poisoned") = offsets;
    }

    /// Commits `offsets`, waiting up to `patience` for a coordinator (see
    /// [`commit_with_patience`]); counts the commit in the source's metrics.
    pub fn commit(&self, offsets: &BTreeMap<i32, i64>, patience: Duration) -> Result<()> {
        commit_with_patience(&self.consumer, &self.topic, offsets, patience)?;
        METRICS.commits.get_or_create(&sg_metrics::SourceLabels { source: self.name.clone() }).inc();
        Ok(())
    }

    /// The partitions assigned to this member now.
    pub fn assignment(&self) -> Result<Vec<i32>> {
        let assignment = self.consumer.assignment().context("reading the assignment")?;
        Ok(assignment.elements().iter().map(|e| e.partition()).collect())
    }

    /// Whether `partition` holds no record past its committed offset (it is empty, or committed
    /// at its end) — asked afresh each time, since records may arrive at any moment. A broker
    /// that does not answer counts as "may hold records".
    pub fn is_idle(&self, partition: i32) -> bool {
        let wait = Duration::from_secs(2).min(META_TIMEOUT);
        let Ok((low, high)) = self.consumer.fetch_watermarks(&self.topic, partition, wait) else { return false };
        if high <= low {
            return true;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topic, partition);
        let Ok(committed) = self.consumer.committed_offsets(tpl, wait) else { return false };
        let at = committed.find_partition(&self.topic, partition).and_then(|e| match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        });
        at.is_some_and(|o| o >= high)
    }
}

/// How long leaving the group may wait for the revocation to be served.
const LEAVE_PATIENCE: Duration = Duration::from_secs(5);

impl Drop for FollowedTopic {
    /// Leaves the group before the consumer closes: unsubscribes and serves the revocation
    /// (which commits what is durable) until nothing is assigned. librdkafka aborts the process
    /// when a consumer closes while an assignment is still being applied (a rebalance started
    /// by another member stopping at the same moment); what is polled meanwhile is dropped, not
    /// written, so the next owner reads it.
    fn drop(&mut self) {
        self.consumer.unsubscribe();
        let until = std::time::Instant::now() + LEAVE_PATIENCE;
        while std::time::Instant::now() < until {
            let _ = self.consumer.poll(Duration::from_millis(100));
            if self.consumer.assignment().is_ok_and(|a| a.count() == 0) {
                break;
            }
        }
    }
}

/// A consumer that joined `options.group` and subscribed to its topic, with the [`Shared`]
/// state of its rebalances.
fn join(options: &KafkaOptions) -> Result<(BaseConsumer<GroupContext>, Arc<Shared>)> {
    let (topic, name) = (options.topic.topic.clone(), options.topic.url());
    if let Some((_, v)) = options.client.properties.iter().find(|(k, v)| k == "partition.assignment.strategy" && v.contains("cooperative")) {
        // A cooperative rebalance keeps some partitions where they are, reading on past what
        // was dropped; only eager rebalances send every dropped record round again.
        bail!("partition.assignment.strategy={v}: sg-host needs an eager assignor (range, roundrobin): what it has not written when partitions move is dropped and re-read from the committed offsets");
    }
    let shared = Arc::new(Shared::default());
    let reset = match options.start {
        StartAt::Latest => "latest",
        _ => "earliest",
    };
    let mut config = client_config(&options.topic, &options.client.properties);
    if !options.client.properties.iter().any(|(k, _)| k == "statistics.interval.ms") {
        // Feeds `sg_source_lag` once a second.
        config.set("statistics.interval.ms", "1000");
    }
    let consumer: BaseConsumer<GroupContext> = config
        .set("group.id", &options.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", reset)
        .create_with_context(GroupContext {
            shared: shared.clone(),
            topic: topic.clone(),
            source: name.clone(),
            connection: Connection::default(),
        })
        .with_context(|| format!("creating a Kafka consumer for {name}"))?;
    // Connect before joining: a TLS or SASL fault is an error at start, not a stream that waits
    // forever for an assignment. A topic not created yet is waited for, as Kafka consumers do.
    let known = metadata(&consumer, Some(&topic)).with_context(|| format!("reading metadata of {name}"))?;
    if !known.topics().iter().any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty()) {
        tracing::warn!(source = %name, "the topic does not exist yet; waiting for it");
    }
    HEALTH.set_assigned(0); // a member is not ready until the group assigns it partitions
    consumer.subscribe(&[&topic]).with_context(|| format!("subscribing to {name}"))?;
    Ok((consumer, shared))
}

/// Commits `offsets`, retrying for up to `patience` while the group coordinator is being
/// (re)found, as after a broker outage. librdkafka finds it on its own thread, so no poll is
/// needed (a poll here could hand over records the caller would then skip).
fn commit_with_patience<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
    patience: Duration,
) -> Result<()> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode as Code};
    let mut tpl = TopicPartitionList::new();
    for (&p, &o) in offsets {
        tpl.add_partition_offset(topic, p, Offset::Offset(o))?;
    }
    if tpl.count() == 0 {
        return Ok(());
    }
    let until = Instant::now() + patience;
    loop {
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => return Ok(()),
            Err(KafkaError::ConsumerCommit(
                Code::WaitingForCoordinator
                | Code::CoordinatorNotAvailable
                | Code::NotCoordinator
                | Code::RequestTimedOut
                | Code::OperationTimedOut
                | Code::BrokerTransportFailure
                | Code::AllBrokersDown
                | Code::CoordinatorLoadInProgress,
            )) if Instant::now() < until => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(e).context("committing offsets"),
        }
    }
}

/// Polls `consumer` into a chunk until it holds `max` records, `wait` has passed or `stop` is
/// set. `None` when
/// partitions were taken away meanwhile: what was read is dropped (not written, so whoever owns
/// the partitions now reads it again), and polling stops at the poll that saw it, so records
/// of the next assignment are never dropped with it (they would not come again). Kafka errors
/// are logged and polling goes on (librdkafka retries on its own; a stream outlives them).
fn fill(
    consumer: &BaseConsumer<GroupContext>,
    shared: &Shared,
    max: usize,
    wait: Duration,
    stop: Option<&AtomicBool>,
) -> Option<Chunk> {
    let mut chunk = Chunk::default();
    let until = Instant::now() + wait;
    while chunk.len() < max && !stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let polled = consumer.poll(left.min(Duration::from_millis(200)));
        if shared.revoked.load(Ordering::SeqCst) {
            break;
        }
        let message = match polled {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                tracing::warn!(target: "librdkafka", "consuming: {e}");
                continue;
            }
            None => continue,
        };
        let (p, offset) = (message.partition(), message.offset());
        chunk.push(message.payload().unwrap_or_default(), Position::Kafka { partition: p, offset });
    }
    if shared.revoked.swap(false, Ordering::SeqCst) {
        return None;
    }
    Some(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KafkaTopic;

    #[test]
    fn cooperative_assignors_are_refused() {
        let options = KafkaOptions {
            topic: KafkaTopic::parse("kafka://127.0.0.1:1/t").unwrap(),
            group: "g".into(),
            client: crate::ClientSettings {
                properties: vec![("partition.assignment.strategy".into(), "cooperative-sticky".into())],
                ..Default::default()
            },
            start: StartAt::Committed,
            to_time: None,
            max_events: None,
            chunk_messages: 10,
            follow: Some(Duration::from_millis(100)),
        };
        let err = join(&options).err().expect("refused").to_string();
        assert!(err.contains("eager assignor"), "{err}");
    }
}
