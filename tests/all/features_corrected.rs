//! `streamguard` (corrected): each difference from `spark-compat`, shown by a case.

use sg_core::bundled::{SPARK_COMPAT, STREAMGUARD};

use crate::support::{assert_col, event, features};

const T0: i64 = 1_704_067_200_000; // 2024-01-01 00:00 UTC

#[test]
fn locations_come_from_geo_location() {
    let line = |ts: i64, geo: &str| {
        format!(
            r#"{{"event_id":"e{ts}","timestamp":{ts},"event_type":"auth_attempt","user":"u","metadata":{{"geo_location":"{geo}"}}}}"#
        )
    };
    let lines = vec![line(T0, "US-CA-San Francisco"), line(T0 + 1, "RU-MOW-Moscow"), line(T0 + 2, "RU-MOW-Moscow")];
    assert_col(&features(&SPARK_COMPAT, &lines)["u"], "unique_locations", 0.0);
    assert_col(&features(&STREAMGUARD, &lines)["u"], "unique_locations", 2.0);
}

#[test]
fn rare_ip_ratio_is_over_unique_ips() {
    // IPs a ×3, b ×1, c ×1: rare = 2, unique = 3, avg frequency = (9 + 1 + 1) / 5.
    let lines: Vec<String> = ["a", "a", "a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, ip)| event(Some("u"), T0 + i as i64 * 60_000, "auth_attempt", Some(ip), "success", 0.1))
        .collect();
    assert_col(&features(&SPARK_COMPAT, &lines)["u"], "rare_ip_ratio", 2.0 / (11.0 / 5.0));
    assert_col(&features(&STREAMGUARD, &lines)["u"], "rare_ip_ratio", 2.0 / 3.0);
}

#[test]
fn intervals_are_in_milliseconds() {
    // 1.999 s → 2.001 s: the legacy whole seconds see a 1 s gap (no burst); 2 ms is a burst.
    let lines: Vec<String> =
        [1_999, 2_001, 3_501].iter().map(|d| event(Some("u"), T0 + d, "dns_query", Some("a"), "success", 0.1)).collect();
    let compat = &features(&SPARK_COMPAT, &lines)["u"];
    let fixed = &features(&STREAMGUARD, &lines)["u"];
    assert_col(compat, "burst_events", 0.0);
    assert_col(compat, "min_event_interval", 1.0);
    assert_col(compat, "avg_event_interval", 1.0); // seconds 1,2,3
    assert_col(fixed, "burst_events", 1.0);
    assert_col(fixed, "min_event_interval", 0.002);
    assert_col(fixed, "avg_event_interval", (0.002 + 1.5) / 2.0);
    assert_col(fixed, "first_seen", (T0 + 1_999) as f64);
    assert_col(compat, "first_seen", (T0 + 1_000) as f64);
}

#[test]
fn events_without_an_ip_are_not_an_ip() {
    let lines = vec![
        event(Some("u"), T0, "auth_attempt", Some("a"), "success", 0.1),
        event(Some("u"), T0 + 1, "auth_attempt", Some("a"), "success", 0.1),
        event(Some("u"), T0 + 2, "auth_attempt", None, "success", 0.1),
    ];
    let compat = &features(&SPARK_COMPAT, &lines)["u"];
    let fixed = &features(&STREAMGUARD, &lines)["u"];
    assert_col(compat, "rare_ip_count", 1.0);
    assert_col(compat, "avg_ip_frequency", 5.0 / 3.0);
    assert_col(fixed, "rare_ip_count", 0.0);
    assert_col(fixed, "avg_ip_frequency", 2.0);
    assert_col(fixed, "ip_frequency_stddev", 0.0);
}
