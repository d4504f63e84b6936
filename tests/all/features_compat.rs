//! `spark-compat`: the 31 reference columns, bugs included, against values worked out by hand.

use sg_core::bundled::SPARK_COMPAT;

use crate::support::{assert_col, event, features, fixture};

/// All events of the reference system's sample file (six single events + the brute-force run).
fn sample_lines() -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("streamguard-sample-events.json")).unwrap()).unwrap();
    let mut lines = Vec::new();
    for s in v["sample_events"].as_array().unwrap() {
        if let Some(e) = s.get("event") {
            lines.push(e.to_string());
        }
        for e in s.get("events").and_then(|e| e.as_array()).into_iter().flatten() {
            lines.push(e.to_string());
        }
    }
    lines
}

#[test]
fn schema_is_the_reference_table() {
    let rows = features(&SPARK_COMPAT, &sample_lines());
    let names: Vec<&str> = rows["admin"].keys().map(String::as_str).collect();
    // 31 columns: user (key, not in the map) + 30 numeric, first/last_seen included.
    assert_eq!(names.len(), 30);
    let d = sg_features_core::Flavor::SparkCompat.schema();
    let expected = [
        "user", "total_events", "unique_ips", "unique_event_types", "avg_threat_score", "max_threat_score",
        "failed_events", "unusual_hour_events", "unique_locations", "first_seen", "last_seen", "failed_auth_rate",
        "unusual_hour_rate", "ip_diversity_score", "activity_days", "events_per_day", "auth_attempt", "dns_query",
        "file_access", "network_connection", "process_execution", "hourly_stddev", "hourly_variance",
        "avg_ip_frequency", "ip_frequency_stddev", "rare_ip_count", "rare_ip_ratio", "avg_event_interval",
        "event_interval_stddev", "min_event_interval", "burst_events",
    ];
    assert_eq!(d.iter().map(|c| c.name).collect::<Vec<_>>(), expected);
}

#[test]
fn brute_force_sample_matches_hand_computation() {
    let rows = features(&SPARK_COMPAT, &sample_lines());
    assert_eq!(rows.len(), 6, "alice, admin, bob, charlie, david, eve");
    let admin = &rows["admin"];
    // admin: 00:01:00 failed 0.85 from 203.45.67.89; 00:06:40, :50, 00:07:00 failed 0.5/0.6/0.7
    // and 00:07:10 success 0.9, all four from 89.163.145.23 (2024-01-01 UTC).
    assert_col(admin, "total_events", 5.0);
    assert_col(admin, "unique_ips", 2.0);
    assert_col(admin, "unique_event_types", 1.0);
    assert_col(admin, "avg_threat_score", 3.55 / 5.0);
    assert_col(admin, "max_threat_score", 0.9);
    assert_col(admin, "failed_events", 4.0);
    assert_col(admin, "unusual_hour_events", 5.0);
    assert_col(admin, "unique_locations", 0.0); // the legacy `$.location` bug
    assert_col(admin, "first_seen", 1_704_067_260_000.0);
    assert_col(admin, "last_seen", 1_704_067_630_000.0);
    assert_col(admin, "failed_auth_rate", 0.8);
    assert_col(admin, "unusual_hour_rate", 1.0);
    assert_col(admin, "ip_diversity_score", 0.4);
    assert_col(admin, "activity_days", 1.0);
    assert_col(admin, "events_per_day", 5.0);
    assert_col(admin, "auth_attempt", 5.0);
    for t in ["dns_query", "file_access", "network_connection", "process_execution"] {
        assert_col(admin, t, 0.0);
    }
    // One active hour (00h, 5 events): stddev and variance 0.
    assert_col(admin, "hourly_stddev", 0.0);
    assert_col(admin, "hourly_variance", 0.0);
    // Per-event IP counts 1,4,4,4,4: mean 3.4, sample variance 7.2/4 = 1.8.
    assert_col(admin, "avg_ip_frequency", 3.4);
    assert_col(admin, "ip_frequency_stddev", 1.8f64.sqrt());
    assert_col(admin, "rare_ip_count", 1.0);
    assert_col(admin, "rare_ip_ratio", 1.0 / 3.4); // the legacy formula
    // Gaps 340, 10, 10, 10 s: mean 92.5, sample variance 81675/3 = 27225.
    assert_col(admin, "avg_event_interval", 92.5);
    assert_col(admin, "event_interval_stddev", 165.0);
    assert_col(admin, "min_event_interval", 10.0);
    assert_col(admin, "burst_events", 0.0);

    // A user with one event: no gaps, one IP used once, one active hour.
    let alice = &rows["alice"];
    assert_col(alice, "total_events", 1.0);
    assert_col(alice, "avg_ip_frequency", 1.0);
    assert_col(alice, "ip_frequency_stddev", 0.0);
    assert_col(alice, "rare_ip_count", 1.0);
    assert_col(alice, "rare_ip_ratio", 1.0);
    assert_col(alice, "avg_event_interval", 0.0);
    assert_col(alice, "event_interval_stddev", 0.0);
    assert_col(alice, "min_event_interval", 0.0);
    // david's event is `blocked`: not counted as failed.
    assert_col(&rows["david"], "failed_events", 0.0);
    assert_col(&rows["david"], "process_execution", 1.0);
}

#[test]
fn same_second_bursts_gaps_and_boundaries() {
    // t0 = 2024-01-01 00:00:00 UTC. Events at +1.000, +1.500, +1.999 (same second), +2.001,
    // then +12.000: whole-second times 1,1,1,2,12 → gaps 0,0,1,10.
    let t0 = 1_704_067_200_000;
    let lines: Vec<String> = [1_000, 1_500, 1_999, 2_001, 12_000]
        .iter()
        .map(|d| event(Some("u"), t0 + d, "auth_attempt", Some("10.0.0.1"), "success", 0.1))
        .collect();
    let u = &features(&SPARK_COMPAT, &lines)["u"];
    assert_col(u, "burst_events", 2.0);
    assert_col(u, "min_event_interval", 0.0);
    assert_col(u, "avg_event_interval", 11.0 / 4.0);
    // gaps 0,0,1,10: mean 2.75, squares 7.5625·2 + 3.0625 + 52.5625 = 70.75, /3.
    assert_col(u, "event_interval_stddev", (70.75f64 / 3.0).sqrt());
    assert_col(u, "first_seen", (t0 + 1_000) as f64);
    assert_col(u, "last_seen", (t0 + 12_000) as f64);
}

#[test]
fn hours_days_types_statuses_and_missing_fields() {
    let day = 86_400_000i64;
    let h = 3_600_000i64;
    let t0 = 1_704_067_200_000; // 2024-01-01 00:00 UTC
    let lines = vec![
        // Hours 6 (unusual), 6, 6 and 7 (not unusual), across two UTC dates.
        event(Some("v"), t0 + 6 * h, "file_access", Some("1.1.1.1"), "failed", 0.2),
        event(Some("v"), t0 + 6 * h + 1_000, "file_access", Some("1.1.1.1"), "blocked", 0.4),
        event(Some("v"), t0 + day + 6 * h, "dns_query", None, "success", 0.6),
        event(Some("v"), t0 + day + 7 * h, "dns_query", Some("2.2.2.2"), "failed", 0.8),
        // An event with a top-level `location`, which the legacy job does count.
        r#"{"event_id":"e9","timestamp":1704067200000,"event_type":"login_magic","user":"w","location":"Mars","threat_score":null}"#.into(),
        // No user at all.
        event(None, t0, "auth_attempt", Some("3.3.3.3"), "success", 0.3),
    ];
    let rows = features(&SPARK_COMPAT, &lines);
    let v = &rows["v"];
    assert_col(v, "unusual_hour_events", 3.0);
    assert_col(v, "unusual_hour_rate", 0.75);
    assert_col(v, "failed_events", 2.0);
    assert_col(v, "activity_days", 2.0);
    assert_col(v, "events_per_day", 2.0);
    assert_col(v, "file_access", 2.0);
    assert_col(v, "dns_query", 2.0);
    assert_col(v, "auth_attempt", 0.0); // a type absent from the whole sample still gets its column
    assert_col(v, "network_connection", 0.0);
    assert_col(v, "unique_event_types", 2.0);
    // Hours of day 6 (3 events) and 7 (1): counts [3, 1] → variance 2.
    assert_col(v, "hourly_variance", 2.0);
    assert_col(v, "hourly_stddev", 2f64.sqrt());
    // IPs: 1.1.1.1 ×2, none ×1 (counted as one more IP by the legacy window), 2.2.2.2 ×1.
    assert_col(v, "unique_ips", 2.0);
    assert_col(v, "avg_ip_frequency", (4.0 + 1.0 + 1.0) / 4.0);
    assert_col(v, "rare_ip_count", 2.0);
    assert_col(v, "rare_ip_ratio", 2.0 / 1.5);
    // `w`: unknown type counted as a type, location counted, null threat → 0.
    let w = &rows["w"];
    assert_col(w, "unique_event_types", 1.0);
    assert_col(w, "unique_locations", 1.0);
    assert_col(w, "avg_threat_score", 0.0);
    assert_col(w, "max_threat_score", 0.0);
    assert_col(w, "unique_ips", 0.0);
    // The user-less event forms its own row.
    assert_col(&rows[""], "total_events", 1.0);
}
