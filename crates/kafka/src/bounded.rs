//! Bounded reads of a Kafka topic: exactly the offsets needed per partition, from the
//! watermarks (never the whole topic), ending when every partition reached its end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::{Connection, KafkaOptions, META_TIMEOUT, OffsetCommitter, StartAt, client_config, metadata};
use sg_model::{Chunk, Position};

/// Splits `want` messages over partitions with `available[i]` each: equal shares, and what a
/// short partition cannot take goes to the others (water-filling). Deterministic.
pub fn share(available: &[u64], want: u64) -> Vec<u64> {
    let mut take = vec![0u64; available.len()];
    let mut left = want.min(available.iter().sum());
    while left > 0 {
        let open: Vec<usize> = (0..available.len()).filter(|&i| take[i] < available[i]).collect();
        let each = (left / open.len() as u64).max(1);
        for &i in &open {
            let t = each.min(available[i] - take[i]).min(left);
            take[i] += t;
            left -= t;
            if left == 0 {
                break;
            }
        }
    }
    take
}

/// The offsets a bounded read covers in one partition: `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First offset to read.
    pub start: i64,
    /// One past the last offset to read.
    pub end: i64,
}

/// A bounded read of a topic.
pub struct KafkaSource {
    options: KafkaOptions,
    consumer: Arc<BaseConsumer<Connection>>,
    spans: BTreeMap<i32, Span>,
    /// Next offset expected per partition still open.
    next: BTreeMap<i32, i64>,
}

fn offsets_for_time(consumer: &BaseConsumer<Connection>, topic: &str, partitions: &[i32], ms: i64) -> Result<BTreeMap<i32, Option<i64>>> {
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Offset(ms))?;
    }
    let found = consumer.offsets_for_times(tpl, META_TIMEOUT).context("offsets_for_times")?;
    Ok(found
        .elements()
        .iter()
        .map(|e| (e.partition(), if let Offset::Offset(o) = e.offset() { Some(o) } else { None }))
        .collect())
}

impl KafkaSource {
    /// Looks up partitions and watermarks, computes each partition's span and assigns it.
    /// (`options.follow` is for [`crate::GroupSource`]; refused here.)
    pub fn open(options: KafkaOptions) -> Result<KafkaSource> {
        if options.follow.is_some() {
            bail!("a followed topic is read as a group member (GroupSource), not as a bounded read");
        }
        let topic = options.topic.topic.clone();
        let consumer: BaseConsumer<Connection> = client_config(&options.topic, &options.client.properties)
            .set("group.id", &options.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // The end of a partition is reported: a span can end in offsets no record is
            // delivered for (a transaction's control marker, aborted records), which would
            // otherwise be waited for forever.
            .set("enable.partition.eof", "true")
            .create_with_context(Connection::default())
            .with_context(|| format!("creating a Kafka consumer for {}", options.topic.url()))?;
        let metadata =
            metadata(&consumer, Some(&topic)).with_context(|| format!("reading metadata of {}", options.topic.url()))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .filter(|t| t.error().is_none())
            .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            .unwrap_or_default();
        if partitions.is_empty() {
            bail!("topic {} does not exist or has no partitions", options.topic.url());
        }
        let mut watermarks = BTreeMap::new();
        for &p in &partitions {
            let w = consumer.fetch_watermarks(&topic, p, META_TIMEOUT).with_context(|| format!("watermarks of {topic}/{p}"))?;
            watermarks.insert(p, w);
        }
        let starts: BTreeMap<i32, i64> = match options.start {
            StartAt::Earliest => watermarks.iter().map(|(&p, &(low, _))| (p, low)).collect(),
            StartAt::Latest => watermarks.iter().map(|(&p, &(_, high))| (p, high)).collect(),
            StartAt::Committed => {
                let mut tpl = TopicPartitionList::new();
                for &p in &partitions {
                    tpl.add_partition(&topic, p);
                }
                let committed = consumer.committed_offsets(tpl, META_TIMEOUT).context("reading committed offsets")?;
                partitions
                    .iter()
                    .map(|&p| {
                        let c = committed.find_partition(&topic, p).and_then(|e| match e.offset() {
                            Offset::Offset(o) => Some(o),
                            _ => None,
                        });
                        (p, c.unwrap_or(watermarks[&p].0).max(watermarks[&p].0))
                    })
                    .collect()
            }
            StartAt::Time(ms) => offsets_for_time(&consumer, &topic, &partitions, ms)?
                .into_iter()
                .map(|(p, o)| (p, o.unwrap_or(watermarks[&p].1)))
                .collect(),
        };
        let ends: BTreeMap<i32, i64> = match options.to_time {
            Some(ms) => offsets_for_time(&consumer, &topic, &partitions, ms)?
                .into_iter()
                .map(|(p, o)| (p, o.unwrap_or(watermarks[&p].1)))
                .collect(),
            None => watermarks.iter().map(|(&p, &(_, high))| (p, high)).collect(),
        };
        let mut spans: BTreeMap<i32, Span> =
            partitions.iter().map(|&p| (p, Span { start: starts[&p], end: ends[&p].max(starts[&p]) })).collect();
        if let Some(n) = options.max_events {
            let available: Vec<u64> = spans.values().map(|s| (s.end - s.start) as u64).collect();
            for (span, take) in spans.values_mut().zip(share(&available, n)) {
                span.end = span.start + take as i64;
            }
        }
        let mut tpl = TopicPartitionList::new();
        for (&p, span) in &spans {
            if span.end > span.start {
                tpl.add_partition_offset(&topic, p, Offset::Offset(span.start))?;
            }
        }
        consumer.assign(&tpl).context("assigning partitions")?;
        let next = spans.iter().filter(|(_, s)| s.end > s.start).map(|(&p, s)| (p, s.start)).collect();
        Ok(KafkaSource { options, consumer: Arc::new(consumer), spans, next })
    }

    /// The source's URL.
    pub fn name(&self) -> String {
        self.options.topic.url()
    }

    /// The next chunk, or None once every partition reached its end.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        if self.next.is_empty() {
            return Ok(None);
        }
        let mut chunk = Chunk::default();
        while chunk.len() < self.options.chunk_messages && !self.next.is_empty() {
            let wait = Duration::from_millis(if chunk.is_empty() { 1000 } else { 50 });
            let Some(message) = self.consumer.poll(wait) else {
                if chunk.is_empty() {
                    continue;
                }
                break;
            };
            let message = match message {
                Err(rdkafka::error::KafkaError::PartitionEOF(p)) => {
                    // Every offset below the high watermark was delivered or is not a record.
                    if self.next.remove(&p).is_some() {
                        self.pause(p)?;
                    }
                    continue;
                }
                other => other.context("reading from Kafka")?,
            };
            let (p, offset) = (message.partition(), message.offset());
            let Some(&expected) = self.next.get(&p) else { continue };
            let end = self.spans[&p].end;
            if offset < expected || offset >= end {
                continue;
            }
            chunk.push(message.payload().unwrap_or_default(), Position::Kafka { partition: p, offset });
            if offset + 1 >= end {
                self.next.remove(&p);
                self.pause(p)?;
            } else {
                self.next.insert(p, offset + 1);
            }
        }
        Ok(Some(chunk))
    }

    /// Stops fetching partition `p` (its span is read).
    fn pause(&self, p: i32) -> Result<()> {
        let mut done = TopicPartitionList::new();
        done.add_partition(&self.options.topic.topic, p);
        self.consumer.pause(&done).context("pausing a finished partition")
    }

    /// What commits this read's offsets.
    pub fn committer(&self) -> OffsetCommitter {
        OffsetCommitter::bounded(self.consumer.clone(), self.options.topic.topic.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_fill_short_partitions_first() {
        assert_eq!(share(&[100, 100, 100, 0], 1000), vec![100, 100, 100, 0]);
        assert_eq!(share(&[100, 100, 100, 0], 90), vec![30, 30, 30, 0]);
        assert_eq!(share(&[5, 100, 100, 0], 100), vec![5, 48, 47, 0]);
        assert_eq!(share(&[3, 3, 3, 3], 2), vec![1, 1, 0, 0]);
        assert_eq!(share(&[10, 10], 0), vec![0, 0]);
    }
}
