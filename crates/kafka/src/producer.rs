//! Producing to Kafka and creating topics: [`Producer`] sends records with headers and counts
//! what the brokers did not acknowledge (the `produce` command and the dead-letter topic use it).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use std::num::NonZeroU16;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientContext;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer as _, ProducerContext, ThreadedProducer};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{ClientSettings, Connection, HasConnection, KafkaTopic, client_config, metadata};

/// Copies of each partition of a topic sg-host creates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Replication {
    /// The brokers' `default.replication.factor` (KIP-464, Kafka ≥ 2.4), so a dead-letter
    /// topic on a three-broker cluster is not left on one broker.
    #[default]
    BrokerDefault,
    /// This many copies.
    Factor(NonZeroU16),
}

impl std::str::FromStr for Replication {
    type Err = anyhow::Error;

    /// `default`, or a number of copies from 1.
    fn from_str(s: &str) -> Result<Replication> {
        match s {
            "default" => Ok(Replication::BrokerDefault),
            n => n.parse().map(Replication::Factor).map_err(|_| anyhow::anyhow!("{n:?}: expected `default` or a replication factor from 1")),
        }
    }
}

impl std::fmt::Display for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Replication::BrokerDefault => f.write_str("default"),
            Replication::Factor(n) => write!(f, "{n}"),
        }
    }
}

impl Replication {
    fn factor(self) -> i32 {
        match self {
            Replication::BrokerDefault => -1,
            Replication::Factor(n) => i32::from(n.get()),
        }
    }
}

/// librdkafka's own default `message.max.bytes`: the largest request a producer sends.
const CLIENT_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// Kafka's default topic `max.message.bytes` (1 MiB and the 12-byte log overhead), assumed
/// when the brokers do not say.
const BROKER_MESSAGE_MAX_BYTES: usize = 1_048_588;

/// Makes sure `topic` exists: left alone if the brokers know it, else created with
/// `partitions` partitions and the client's replication.
pub fn ensure_topic(topic: &KafkaTopic, client: &ClientSettings, partitions: i32) -> Result<()> {
    use rdkafka::consumer::BaseConsumer;
    let probe: BaseConsumer<Connection> =
        client_config(topic, &client.properties).create_with_context(Connection::default()).context("creating a Kafka client")?;
    let metadata = metadata(&probe, Some(&topic.topic)).context("reading topic metadata")?;
    let known = metadata.topics().iter().any(|t| t.name() == topic.topic && t.error().is_none() && !t.partitions().is_empty());
    if known { Ok(()) } else { create_topic(topic, client, partitions) }
}

/// An admin client to `topic`'s cluster, connected, and a runtime to await its answers.
fn admin(topic: &KafkaTopic, properties: &[(String, String)]) -> Result<(AdminClient<Connection>, tokio::runtime::Runtime)> {
    let admin: AdminClient<Connection> =
        client_config(topic, properties).create_with_context(Connection::default()).context("creating a Kafka admin client")?;
    metadata(&admin, None).context("connecting the admin client")?;
    Ok((admin, tokio::runtime::Builder::new_current_thread().enable_time().build()?))
}

/// Creates `topic` with `partitions` partitions and the client's replication; an existing
/// topic is left as it is.
pub fn create_topic(topic: &KafkaTopic, client: &ClientSettings, partitions: i32) -> Result<()> {
    let (admin, runtime) = admin(topic, &client.properties)?;
    let new = NewTopic::new(&topic.topic, partitions, TopicReplication::Fixed(client.replication.factor()));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(15)));
    let results = runtime.block_on(admin.create_topics([&new], &options)).context("creating the topic")?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("creating topic {name} (replication {}): {code}", client.replication),
        }
    }
    Ok(())
}

/// How long the brokers have to describe a topic's configuration.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest record `topic` takes from this client: the smaller of the topic's
/// `max.message.bytes`, as the brokers report it, and the client's `message.max.bytes`. Where
/// the brokers do not say (no `DescribeConfigs` permission, a broker without the API), Kafka's
/// default is assumed, with a warning.
pub fn message_limit(topic: &KafkaTopic, properties: &[(String, String)]) -> Result<usize> {
    let client = properties
        .iter()
        .rev()
        .find(|(k, _)| k == "message.max.bytes")
        .map(|(_, v)| v.trim().parse::<usize>().with_context(|| format!("message.max.bytes={v}: not a number")))
        .transpose()?
        .unwrap_or(CLIENT_MESSAGE_MAX_BYTES);
    let broker = topic_message_max_bytes(topic, properties).unwrap_or_else(|e| {
        tracing::warn!("{e:#}; assuming Kafka's default max.message.bytes ({BROKER_MESSAGE_MAX_BYTES})");
        BROKER_MESSAGE_MAX_BYTES
    });
    Ok(client.min(broker))
}

/// The topic's `max.message.bytes` as the brokers describe it.
fn topic_message_max_bytes(topic: &KafkaTopic, properties: &[(String, String)]) -> Result<usize> {
    let (admin, runtime) = admin(topic, properties)?;
    let options = AdminOptions::new().request_timeout(Some(DESCRIBE_TIMEOUT));
    let context = || format!("reading the configuration of topic {}", topic.topic);
    let described = runtime.block_on(admin.describe_configs([&ResourceSpecifier::Topic(&topic.topic)], &options)).with_context(context)?;
    match described.into_iter().next() {
        Some(Ok(resource)) => match resource.get("max.message.bytes").and_then(|e| e.value.as_deref()) {
            Some(v) => v.trim().parse::<usize>().with_context(|| format!("topic {}: max.message.bytes={v}", topic.topic)),
            None => Ok(BROKER_MESSAGE_MAX_BYTES),
        },
        Some(Err(code)) => Err(anyhow::anyhow!("{}: {code}", context())),
        None => Ok(BROKER_MESSAGE_MAX_BYTES),
    }
}

/// Counts records the brokers did not acknowledge.
#[derive(Default)]
struct DeliveryCount {
    failed: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
    connection: Connection,
}

impl DeliveryCount {
    /// Fails if any record sent since the last check was not delivered (of `sent` in all);
    /// the count starts again, so one failure is reported once.
    fn check(&self, sent: u64) -> Result<()> {
        let failed = self.failed.swap(0, Ordering::Relaxed);
        if failed > 0 {
            let first = self.first_error.lock().unwrap().take().unwrap_or_default();
            return Err(self.connection.explain(anyhow::anyhow!("{failed} of {sent} records were not delivered (first error: {first})")));
        }
        Ok(())
    }
}

impl ClientContext for DeliveryCount {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        self.connection.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.connection.record(&error, reason);
    }
}

impl HasConnection for DeliveryCount {
    fn connection(&self) -> &Connection {
        &self.connection
    }
}

impl ProducerContext for DeliveryCount {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            self.first_error.lock().unwrap().get_or_insert_with(|| e.to_string());
        }
    }
}

/// A producer to one cluster: records are queued (waiting while librdkafka's queue is full) and
/// [`Producer::flush`] fails if any sent record was not acknowledged.
pub struct Producer {
    inner: ThreadedProducer<DeliveryCount>,
    sent: u64,
}

impl Producer {
    /// A producer with the brokers and properties of `topic`, plus `tuning` (e.g. `linger.ms`).
    pub fn open(topic: &KafkaTopic, properties: &[(String, String)], tuning: &[(&str, &str)]) -> Result<Producer> {
        let mut config = client_config(topic, properties);
        for (k, v) in tuning {
            config.set(*k, *v);
        }
        let inner: ThreadedProducer<DeliveryCount> =
            config.create_with_context(DeliveryCount::default()).context("creating a Kafka producer")?;
        // Connect now: a TLS or SASL fault is an error here, not records that time out minutes later.
        metadata(&inner, None).with_context(|| format!("connecting to {}", topic.brokers))?;
        Ok(Producer { inner, sent: 0 })
    }

    /// Queues one record for `topic` with an optional key and `headers` (name, value).
    pub fn send(&mut self, topic: &str, key: Option<&[u8]>, payload: &[u8], headers: &[(&str, &str)]) -> Result<()> {
        use rdkafka::message::{Header, OwnedHeaders};
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (key, value) in headers {
            owned = owned.insert(Header { key, value: Some(*value) });
        }
        let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(payload);
        if !headers.is_empty() {
            record = record.headers(owned);
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        loop {
            match self.inner.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(e).context("producing"),
            }
        }
        self.sent += 1;
        Ok(())
    }

    /// Records queued so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Waits (up to `timeout`) until every queued record is acknowledged; fails if one was not.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.inner.flush(timeout).context("flushing the producer")?;
        self.inner.context().check(self.sent)
    }
}
