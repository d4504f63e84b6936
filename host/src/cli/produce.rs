//! `sg-host produce`: loads JSON lines into a Kafka topic fast (demos, tests, benchmarks), and
//! creates topics.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use super::KafkaClientArgs;
use sg_model::events::decode::decode_event;
use sg_kafka::{KafkaTopic, Producer, create_topic};

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

#[derive(Args, Debug)]
pub(super) struct ProduceArgs {
    /// JSON lines to send, one record each.
    #[arg(long)]
    input: PathBuf,
    /// `kafka://HOST:PORT/TOPIC`, or a topic name on `--brokers`.
    #[arg(long)]
    topic: String,
    /// Brokers for a bare topic name.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Record key.
    #[arg(long, value_enum, default_value = "event-id")]
    key: KeyBy,
    /// Create the topic with this many partitions first (kept if it exists).
    #[arg(long)]
    create_partitions: Option<i32>,
    #[command(flatten)]
    client: KafkaClientArgs,
}

/// Runs `sg-host produce`.
pub(super) fn produce(args: ProduceArgs) -> Result<()> {
    let topic = if args.topic.starts_with("kafka://") {
        KafkaTopic::parse(&args.topic)?
    } else {
        KafkaTopic { brokers: args.brokers.clone(), topic: args.topic.clone() }
    };
    let client = args.client.settings()?;
    if let Some(n) = args.create_partitions {
        create_topic(&topic, &client, n)?;
    }
    let properties = client.properties;
    let started = std::time::Instant::now();
    let sent = produce_file(&topic, &properties, &args.input, args.key)?;
    let secs = started.elapsed().as_secs_f64();
    tracing::info!("produced {sent} records to {} in {secs:.2}s ({:.0}/s)", topic.url(), sent as f64 / secs.max(1e-9));
    Ok(())
}

/// Sends every non-blank line of `input` to `topic`; returns how many were sent. Lines that are
/// not valid events are sent too (unkeyed), so a topic can hold bad messages for tests.
fn produce_file(topic: &KafkaTopic, properties: &[(String, String)], input: &Path, key_by: KeyBy) -> Result<u64> {
    let tuning = [("linger.ms", "5"), ("batch.num.messages", "10000"), ("queue.buffering.max.messages", "1000000")];
    let mut producer = Producer::open(topic, properties, &tuning)?;
    let file = std::fs::File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
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
        producer.send(&topic.topic, key.map(str::as_bytes), line, &[])?;
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(producer.sent())
}
