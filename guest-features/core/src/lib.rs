//! The logic of the features components: per-user behavioural features over security events.
//!
//! Plain Rust with no host or WASM dependency, so the same code runs inside the
//! `spark-compat` and `streamguard` components and natively (benchmarks, reference checks).
//! With the `component` feature it also carries the `streamguard:features@1.0.0` bindings.

mod aggregate;
pub mod columns;
pub mod schema;
mod stats;
mod time;

#[cfg(feature = "component")]
pub mod component;
#[cfg(feature = "component")]
pub mod component_v2;
#[cfg(feature = "state")]
pub mod state;

pub use aggregate::Aggregator;
pub use columns::{ColumnData, ColumnRole, ColumnSpec, ColumnType, EventColumns, FeatureTable};

/// Which table an aggregation computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "state", derive(serde::Serialize, serde::Deserialize))]
pub enum Flavor {
    /// The legacy Spark job's 31 columns, bugs included, for number-for-number checks.
    SparkCompat,
    /// The corrected features (see [`Flavor::description`]).
    Streamguard,
    /// The corrected features plus `unique_destinations` (reads `destination_ip`, which only
    /// `streamguard:features@2` carries).
    Streamguard2,
}

impl Flavor {
    /// Implementation name, as the component reports it.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::SparkCompat => "spark-compat",
            Flavor::Streamguard | Flavor::Streamguard2 => "streamguard",
        }
    }

    /// Implementation version (semver), independent of the contract version.
    pub const fn version(self) -> &'static str {
        match self {
            Flavor::SparkCompat | Flavor::Streamguard => env!("CARGO_PKG_VERSION"),
            Flavor::Streamguard2 => "0.2.0",
        }
    }

    /// Whether this is a corrected flavor (geo locations, millisecond intervals, …).
    pub fn corrected(self) -> bool {
        self != Flavor::SparkCompat
    }

    /// What this implementation computes, for the component's self-description.
    pub fn description(self) -> &'static str {
        match self {
            Flavor::SparkCompat => {
                "The legacy Spark job's 31 per-user columns, bugs included: times truncated to whole \
                 seconds (UTC), unique_locations from top-level `location` (always 0 on real events), \
                 rare_ip_ratio = rare_ip_count / avg_ip_frequency, events without an IP counted as one \
                 more IP."
            }
            Flavor::Streamguard => {
                "Corrected per-user features: unique_locations from metadata.geo_location; \
                 rare_ip_ratio = rare_ip_count / unique_ips; intervals, bursts and first/last seen at \
                 millisecond precision (min_event_interval is fractional seconds); events without a \
                 source IP left out of the IP-frequency features instead of counted as one more IP."
            }
            Flavor::Streamguard2 => {
                "The corrected per-user features of `streamguard` 0.1, plus unique_destinations \
                 (distinct destination_ip, an output column, not a model input), so models trained \
                 on 0.1 keep scoring. Aggregations are bounded to their event-time window and carry \
                 their state across upgrades (format `streamguard-state/1`)."
            }
        }
    }

    /// Output schema.
    pub fn schema(self) -> &'static [ColumnSpec] {
        schema::schema(self)
    }
}
