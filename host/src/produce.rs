//! `sg-host produce`: loads JSON lines into a Kafka topic fast (demos, tests, benchmarks), and
//! creates topics.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientContext;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::events::decode::decode_event;
use crate::source::kafka::{KafkaTopic, client_config};

/// How records are keyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyBy {
    /// The event's `user` (lets several hosts in one group each own whole users).
    User,
    /// The event's `event_id` (what the reference generator did).
    EventId,
    /// No key.
    None,
}

/// Makes sure `topic` exists: left alone if the brokers know it, else created with
/// `partitions` partitions.
pub fn ensure_topic(topic: &KafkaTopic, properties: &[(String, String)], partitions: i32) -> Result<()> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let probe: BaseConsumer = client_config(topic, properties).create().context("creating a Kafka client")?;
    let metadata = probe.fetch_metadata(Some(&topic.topic), Duration::from_secs(15)).context("reading topic metadata")?;
    let known = metadata.topics().iter().any(|t| t.name() == topic.topic && t.error().is_none() && !t.partitions().is_empty());
    if known { Ok(()) } else { create_topic(topic, properties, partitions) }
}

/// Creates `topic` with `partitions` partitions; an existing topic is left as it is.
pub fn create_topic(topic: &KafkaTopic, properties: &[(String, String)], partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(topic, properties).create().context("creating a Kafka admin client")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    let new = NewTopic::new(&topic.topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(15)));
    let results = runtime.block_on(admin.create_topics([&new], &options)).context("creating the topic")?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("creating topic {name}: {code}"),
        }
    }
    Ok(())
}

/// Counts records the brokers did not acknowledge.
#[derive(Default)]
pub(crate) struct DeliveryCount {
    failed: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl DeliveryCount {
    /// Fails if any of the `sent` records was not delivered.
    pub(crate) fn check(&self, sent: u64) -> Result<()> {
        let failed = self.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let first = self.first_error.lock().unwrap().clone().unwrap_or_default();
            bail!("{failed} of {sent} records were not delivered (first error: {first})");
        }
        Ok(())
    }
}

impl ClientContext for DeliveryCount {}

impl ProducerContext for DeliveryCount {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            self.first_error.lock().unwrap().get_or_insert_with(|| e.to_string());
        }
    }
}

/// Sends every non-blank line of `input` to `topic`; returns how many were sent. Lines that are
/// not valid events are sent too (unkeyed), so a topic can hold bad messages for tests.
pub fn produce_file(topic: &KafkaTopic, properties: &[(String, String)], input: &Path, key_by: KeyBy) -> Result<u64> {
    let producer: ThreadedProducer<DeliveryCount> = client_config(topic, properties)
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(DeliveryCount::default())
        .context("creating a Kafka producer")?;
    let file = std::fs::File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let mut sent = 0u64;
    for line in BufReader::with_capacity(1 << 20, file).split(b'\n') {
        let line = line?;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let event = decode_event(line).ok();
        let key: Option<&str> = match (key_by, &event) {
            (KeyBy::User, Some(e)) => e.user.as_deref(),
            (KeyBy::EventId, Some(e)) => Some(&e.event_id),
            _ => None,
        };
        let mut record = BaseRecord::<str, [u8]>::to(&topic.topic).payload(line);
        if let Some(k) = key {
            record = record.key(k);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(e).context("producing"),
            }
        }
        sent += 1;
    }
    producer.flush(Duration::from_secs(60)).context("flushing the producer")?;
    producer.context().check(sent)?;
    Ok(sent)
}
