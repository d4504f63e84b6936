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

pub use aggregate::Aggregator;
pub use columns::{ColumnData, ColumnRole, ColumnSpec, ColumnType, EventColumns, FeatureTable};

/// Which table an aggregation computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// The legacy Spark job's 31 columns, bugs included, for number-for-number checks.
    SparkCompat,
    /// The corrected features (see [`Flavor::description`]).
    Streamguard,
}

impl Flavor {
    /// Implementation name, as the component reports it.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::SparkCompat => "spark-compat",
            Flavor::Streamguard => "streamguard",
        }
    }

    /// Implementation version (semver), independent of the contract version.
    pub fn version(self) -> &'static str {
        env!("CARGO_PKG_VERSION")
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
        }
    }

    /// Output schema.
    pub fn schema(self) -> &'static [ColumnSpec] {
        schema::schema(self)
    }
}
