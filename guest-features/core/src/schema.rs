//! The output schema of each flavor: the 31 columns of the reference job, in its order.

use crate::Flavor;
use crate::columns::{ColumnRole as R, ColumnSpec, ColumnType as T};

const fn col(name: &'static str, ty: T, role: R, doc: &'static str) -> ColumnSpec {
    ColumnSpec { name, ty, role, doc }
}

/// The event types that always get a count column, alphabetical as Spark's pivot orders them.
pub const EVENT_TYPES: [&str; 5] =
    ["auth_attempt", "dns_query", "file_access", "network_connection", "process_execution"];

macro_rules! schema {
    ($min_interval_ty:expr, $loc_doc:expr, $rare_doc:expr, $interval_unit:expr) => {
        [
            col("user", T::Utf8, R::Key, "user the row describes"),
            col("total_events", T::Int64, R::ModelInput, "events of the user"),
            col("unique_ips", T::Int64, R::ModelInput, "distinct source_ip"),
            col("unique_event_types", T::Int64, R::ModelInput, "distinct event_type"),
            col("avg_threat_score", T::Float64, R::ModelInput, "mean threat_score"),
            col("max_threat_score", T::Float64, R::ModelInput, "max threat_score"),
            col("failed_events", T::Int64, R::ModelInput, "events with status exactly `failed`"),
            col("unusual_hour_events", T::Int64, R::ModelInput, "events at hours 0..=6 UTC"),
            col("unique_locations", T::Int64, R::ModelInput, $loc_doc),
            col("first_seen", T::TimestampMs, R::Internal, "earliest event time"),
            col("last_seen", T::TimestampMs, R::Internal, "latest event time"),
            col("failed_auth_rate", T::Float64, R::ModelInput, "failed_events / total_events"),
            col("unusual_hour_rate", T::Float64, R::ModelInput, "unusual_hour_events / total_events"),
            col("ip_diversity_score", T::Float64, R::ModelInput, "unique_ips / total_events"),
            col("activity_days", T::Int64, R::ModelInput, "UTC calendar days from first to last event, inclusive"),
            col("events_per_day", T::Float64, R::ModelInput, "total_events / activity_days"),
            col("auth_attempt", T::Int64, R::ModelInput, "auth_attempt events"),
            col("dns_query", T::Int64, R::ModelInput, "dns_query events"),
            col("file_access", T::Int64, R::ModelInput, "file_access events"),
            col("network_connection", T::Int64, R::ModelInput, "network_connection events"),
            col("process_execution", T::Int64, R::ModelInput, "process_execution events"),
            col("hourly_stddev", T::Float64, R::ModelInput, "sample stddev of per-hour-of-day event counts over active hours"),
            col("hourly_variance", T::Float64, R::ModelInput, "sample variance of the same"),
            col("avg_ip_frequency", T::Float64, R::ModelInput, "mean over events of the user's event count from that event's IP"),
            col("ip_frequency_stddev", T::Float64, R::ModelInput, "sample stddev of that per-event count"),
            col("rare_ip_count", T::Int64, R::ModelInput, "events from an IP the user used once"),
            col("rare_ip_ratio", T::Float64, R::ModelInput, $rare_doc),
            col("avg_event_interval", T::Float64, R::ModelInput, $interval_unit),
            col("event_interval_stddev", T::Float64, R::ModelInput, "sample stddev of the gaps, seconds"),
            col("min_event_interval", $min_interval_ty, R::ModelInput, "smallest gap, seconds"),
            col("burst_events", T::Int64, R::ModelInput, "gaps under one second"),
        ]
    };
}

/// `spark-compat`: the reference job's table, bugs included.
pub static SPARK_COMPAT: [ColumnSpec; 31] = schema!(
    T::Int64,
    "distinct top-level `location` (legacy bug: real events have none, so 0)",
    "rare_ip_count / avg_ip_frequency (legacy formula)",
    "mean gap between consecutive events, whole seconds"
);

/// `streamguard`: the corrected table.
pub static STREAMGUARD: [ColumnSpec; 31] = schema!(
    T::Float64,
    "distinct metadata.geo_location",
    "rare_ip_count / unique_ips",
    "mean gap between consecutive events, seconds at millisecond precision"
);

/// `streamguard` 0.2: the corrected table plus `unique_destinations` (an output, not a model
/// input, so 0.1's models keep scoring).
pub static STREAMGUARD_2: [ColumnSpec; 32] = {
    let mut out = [col("unique_destinations", T::Int64, R::Output, "distinct destination_ip"); 32];
    let mut i = 0;
    while i < STREAMGUARD.len() {
        out[i] = STREAMGUARD[i];
        i += 1;
    }
    out
};

/// The schema of `flavor`.
pub fn schema(flavor: Flavor) -> &'static [ColumnSpec] {
    match flavor {
        Flavor::SparkCompat => &SPARK_COMPAT,
        Flavor::Streamguard => &STREAMGUARD,
        Flavor::Streamguard2 => &STREAMGUARD_2,
    }
}
