//! Prometheus metrics of the process, served by the admin API's and `sg-host serve`'s
//! `/metrics`: per component version (calls, records, call latency, traps, timeouts,
//! dead-lettered records), per source (batches, commits, lag), per alert sink, and per route of
//! `serve`.

#![deny(missing_docs)]

pub mod health;

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A component version: `name@version`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabels {
    /// `name@version`, e.g. `streamguard@0.1.0`.
    pub component: String,
}

/// A source partition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// `kafka://…/topic` or a file name.
    pub source: String,
}

/// A partition of a source.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    /// Source name.
    pub source: String,
    /// Partition number.
    pub partition: i64,
}

/// An alert sink.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabels {
    /// The sink's URL (secrets are never part of it).
    pub sink: String,
}

/// A route of `sg-host serve`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route's pattern, e.g. `/api/users/{user}`.
    pub route: String,
}

/// A route of `sg-host serve` and the status it answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabels {
    /// The route's pattern.
    pub route: String,
    /// The HTTP status code.
    pub status: u16,
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// Calls into a component.
    pub calls: Family<ComponentLabels, Counter>,
    /// Records passed to a component.
    pub records: Family<ComponentLabels, Counter>,
    /// Call latency.
    pub latency: Family<ComponentLabels, Histogram>,
    /// Calls that trapped (including memory faults).
    pub traps: Family<ComponentLabels, Counter>,
    /// Calls that ran past their deadline.
    pub timeouts: Family<ComponentLabels, Counter>,
    /// Records dead-lettered because of a component.
    pub dead_lettered: Family<ComponentLabels, Counter>,
    /// Swaps to a version.
    pub swaps: Family<ComponentLabels, Counter>,
    /// Candidates refused.
    pub refused: Counter,
    /// Component versions quarantined (failing every record), by version.
    pub quarantined: Family<ComponentLabels, Counter>,
    /// Micro-batches read.
    pub batches: Family<SourceLabels, Counter>,
    /// Offset commits.
    pub commits: Family<SourceLabels, Counter>,
    /// Records behind the high watermark.
    pub lag: Family<PartitionLabels, Gauge>,
    /// Windows written before the watermark passed them (too many open).
    pub windows_closed_early: Counter,
    /// Durable writes retried because the disk was full.
    pub storage_retries: Counter,
    /// Flushes of the dead-letter topic the brokers did not fully acknowledge (the file holds
    /// every dead letter).
    pub dead_letter_topic_failures: Counter,
    /// A stream's event-time watermark, in seconds since the epoch (a stalled watermark holds
    /// every window open).
    pub watermark: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// The process's peak resident memory, bytes (set when rendered).
    pub peak_rss: Gauge,
    /// Alerts a sink acknowledged.
    pub alerts_sent: Family<SinkLabels, Counter>,
    /// Attempts to deliver alerts that were retried.
    pub alerts_retried: Family<SinkLabels, Counter>,
    /// Alerts a sink did not take after its last attempt.
    pub alerts_failed: Family<SinkLabels, Counter>,
    /// Requests `sg-host serve` answered, by route and status.
    pub requests: Family<ResponseLabels, Counter>,
    /// Time to answer a request, by route.
    pub request_latency: Family<RouteLabels, Histogram>,
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("sg"),
            calls: Family::default(),
            records: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_05, 4.0, 10))),
            traps: Family::default(),
            timeouts: Family::default(),
            dead_lettered: Family::default(),
            swaps: Family::default(),
            refused: Counter::default(),
            quarantined: Family::default(),
            batches: Family::default(),
            commits: Family::default(),
            lag: Family::default(),
            windows_closed_early: Counter::default(),
            storage_retries: Counter::default(),
            dead_letter_topic_failures: Counter::default(),
            watermark: Gauge::default(),
            peak_rss: Gauge::default(),
            alerts_sent: Family::default(),
            alerts_retried: Family::default(),
            alerts_failed: Family::default(),
            requests: Family::default(),
            request_latency: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_1, 4.0, 10))),
        };
        m.registry.register("component_calls", "Calls into a component version", m.calls.clone());
        m.registry.register("component_records", "Records passed to a component version", m.records.clone());
        m.registry.register("component_call_seconds", "Latency of calls into a component version", m.latency.clone());
        m.registry.register("component_traps", "Calls that trapped or exhausted memory", m.traps.clone());
        m.registry.register("component_timeouts", "Calls stopped at their deadline", m.timeouts.clone());
        m.registry.register("component_dead_lettered", "Records dead-lettered by a component version", m.dead_lettered.clone());
        m.registry.register("component_swaps", "Switches to a component version", m.swaps.clone());
        m.registry.register("component_candidates_refused", "Candidate versions refused", m.refused.clone());
        m.registry.register("component_quarantined", "Component versions given up on after failing every record", m.quarantined.clone());
        m.registry.register("source_batches", "Micro-batches read from a source", m.batches.clone());
        m.registry.register("source_commits", "Offset commits to a source", m.commits.clone());
        m.registry.register("source_lag", "Records of a partition behind its high watermark, from the group's committed offset (what a restart would re-read)", m.lag.clone());
        m.registry.register("stream_watermark_seconds", "The stream's event-time watermark (seconds since the epoch)", m.watermark.clone());
        m.registry.register("stream_windows_closed_early", "Windows written before the watermark passed them, because too many were open", m.windows_closed_early.clone());
        m.registry.register("dead_letter_topic_failures", "Flushes of the dead-letter topic with dead letters the brokers refused or did not acknowledge (the dead-letter file holds them)", m.dead_letter_topic_failures.clone());
        m.registry.register("storage_retries", "Durable writes retried because the disk was full (or a quota or file-size limit was reached)", m.storage_retries.clone());
        m.registry.register("alerts_sent", "Alerts an alert sink acknowledged", m.alerts_sent.clone());
        m.registry.register("alerts_retried", "Deliveries of alerts to a sink that were retried", m.alerts_retried.clone());
        m.registry.register("alerts_failed", "Alerts a sink did not take after its last attempt", m.alerts_failed.clone());
        m.registry.register("http_requests", "Requests answered by sg-host serve, by route and status", m.requests.clone());
        m.registry.register("http_request_seconds", "Time to answer a request of sg-host serve, by route", m.request_latency.clone());
        m.registry.register("process_peak_resident_bytes", "Peak resident memory of the process (VmHWM)", m.peak_rss.clone());
        m
    }

    /// One call into `component` over `records` records that took `elapsed`; `fault` is the
    /// trap message when it failed.
    pub fn call(&self, component: &str, records: usize, elapsed: Duration, fault: Option<&str>) {
        let l = ComponentLabels { component: component.to_string() };
        self.calls.get_or_create(&l).inc();
        self.records.get_or_create(&l).inc_by(records as u64);
        self.latency.get_or_create(&l).observe(elapsed.as_secs_f64());
        match fault {
            Some(f) if f.contains("deadline") => {
                self.timeouts.get_or_create(&l).inc();
            }
            Some(_) => {
                self.traps.get_or_create(&l).inc();
            }
            None => {}
        }
    }

    /// `n` records of `component` dead-lettered.
    pub fn dead(&self, component: &str, n: usize) {
        if n > 0 {
            self.dead_lettered.get_or_create(&ComponentLabels { component: component.to_string() }).inc_by(n as u64);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        if let Some(bytes) = peak_rss_bytes() {
            self.peak_rss.set(bytes as i64);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

/// The peak resident memory of this process (Linux `VmHWM`), bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}
