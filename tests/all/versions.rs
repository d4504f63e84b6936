//! Contract majors side by side: `streamguard:features@2.0.0` (destination IPs, windows, state
//! export/import) beside 1.x, and an aggregation moved between versions by state or by replay.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;
use sg_features_core::columns::{ColumnData, ColumnRole};
use sg_core::bundled::{STREAMGUARD, STREAMGUARD_V2};
use sg_core::component::ComponentSource;
use sg_core::component::features::{Carried, FeatureComponent, Window};
use sg_model::events::{EventBatch, decode_chunk};
use sg_core::runtime::{Limits, Runtime};
use sg_model::Chunk;

use crate::support::{features, sg_host};

fn generated(n: u64) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("e.jsonl");
    assert!(sg_host().args(["gen-events", &n.to_string(), "--compromised", "2", "--out"]).arg(&file).status().unwrap().success());
    std::fs::read_to_string(&file).unwrap().lines().map(String::from).collect()
}

fn batch(lines: &[String]) -> Arc<EventBatch> {
    let decoded = decode_chunk(Chunk::from_lines(lines.join("\n").into_bytes(), 1), 1 << 20);
    assert!(decoded.dead.is_empty());
    Arc::new(decoded.batch)
}

fn load(source: ComponentSource, runtime: &Runtime) -> Arc<FeatureComponent> {
    FeatureComponent::load(runtime, &source).unwrap()
}

/// The table as (column name → column) with the key column's rows as strings.
fn by_name(c: &FeatureComponent, table: &sg_features_core::FeatureTable) -> BTreeMap<String, ColumnData> {
    c.descriptor().columns.iter().zip(&table.columns).map(|(s, d)| (s.name.clone(), d.clone())).collect()
}

#[test]
fn a_v2_component_keeps_v1_model_inputs_and_reads_destination_ips() {
    // The generator sends everything to one destination; give some events others.
    let lines: Vec<String> = generated(20_000)
        .into_iter()
        .enumerate()
        .map(|(i, l)| if i % 7 == 0 { l.replacen("\"destination_ip\":\"10.0.0.5\"", &format!("\"destination_ip\":\"10.9.{}.1\"", i % 13), 1) } else { l })
        .collect();
    let v1 = features(&STREAMGUARD, &lines);
    let v2 = features(&STREAMGUARD_V2, &lines);
    assert_eq!(v1.keys().collect::<Vec<_>>(), v2.keys().collect::<Vec<_>>());
    let runtime = Runtime::new(Limits::default()).unwrap();
    let c1 = load(ComponentSource::Builtin(&STREAMGUARD), &runtime);
    let c2 = load(ComponentSource::Builtin(&STREAMGUARD_V2), &runtime);
    assert_eq!(c2.contract().to_string(), "streamguard:features@2.0.0");
    assert_eq!(c1.descriptor().model_input_names(), c2.descriptor().model_input_names(), "a model trained on 0.1 scores 0.2");
    assert_eq!(c2.descriptor().state_format.as_deref(), Some("streamguard-state/1"));
    let extra = c2.descriptor().columns.iter().find(|c| c.name == "unique_destinations").unwrap();
    assert_eq!(extra.role, ColumnRole::Output);
    // Distinct destination IPs per user, counted here from the JSON.
    let mut destinations: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap();
        let user = v["user"].as_str().unwrap_or_default().to_string();
        let set = destinations.entry(user).or_default();
        if let Some(d) = v["destination_ip"].as_str() {
            set.insert(d.to_string());
        }
    }
    for (user, row) in &v2 {
        for (name, value) in &v1[user] {
            assert_eq!(row[name].to_bits(), value.to_bits(), "{user} {name}");
        }
        assert_eq!(row["unique_destinations"], destinations[user].len() as f64, "{user}");
    }
    assert!(v2.values().any(|r| r["unique_destinations"] > 1.0), "the sample has users with several destinations");
}

#[test]
fn a_window_refuses_events_outside_it() {
    let lines = generated(2_000);
    let b = batch(&lines);
    let runtime = Runtime::new(Limits::default()).unwrap();
    let c2 = load(ComponentSource::Builtin(&STREAMGUARD_V2), &runtime);
    let mut sorted = b.timestamp_ms.clone();
    sorted.sort_unstable();
    let window = Window { start_ms: sorted[0], end_ms: sorted[1_000] };
    let mut agg = c2.windowed_aggregation(&runtime, window).unwrap();
    let failed = agg.push(&b).unwrap();
    let outside: Vec<usize> = (0..b.len()).filter(|&i| b.timestamp_ms[i] >= window.end_ms).collect();
    assert_eq!(failed.iter().map(|f| f.index).collect::<Vec<_>>(), outside);
    assert!(failed[0].reason.contains("is outside the window"), "{}", failed[0].reason);
    let table = agg.take().unwrap().table;
    let total: i64 = match &by_name(&c2, &table)["total_events"] {
        ColumnData::Int64(v) => v.iter().sum(),
        _ => panic!(),
    };
    assert_eq!(total as usize, b.len() - outside.len());
    // A 1.x component has no window: it takes every event.
    let c1 = load(ComponentSource::Builtin(&STREAMGUARD), &runtime);
    assert!(c1.windowed_aggregation(&runtime, window).unwrap().push(&b).unwrap().is_empty());
}

#[test]
fn an_upgrade_carries_state_between_v2_versions_and_replays_from_v1() {
    let lines = generated(30_000);
    let (first, second) = lines.split_at(18_000);
    let (first, second, all) = (batch(first), batch(second), batch(&lines));
    let runtime = Runtime::new(Limits::default()).unwrap();
    let v1 = load(ComponentSource::Builtin(&STREAMGUARD), &runtime);
    let v2 = load(ComponentSource::Builtin(&STREAMGUARD_V2), &runtime);
    let next = load(ComponentSource::File(sg_test_programs::FEATURES_NEXT.into()), &runtime);
    assert_eq!(next.label(), "streamguard@0.2.1");

    // The reference: every event in one aggregation of 0.2.1.
    let mut whole = next.aggregation(&runtime).unwrap();
    assert!(whole.push(&all).unwrap().is_empty());
    let expected = by_name(&next, &whole.take().unwrap().table);

    // 0.1 (features@1) → 0.2 (features@2): no common state, so the batches are replayed.
    let mut agg = v1.aggregation(&runtime).unwrap();
    agg.push(&first).unwrap();
    let moved = agg.migrate(&v2).unwrap().unwrap();
    assert!(matches!(moved.how, Carried::Replayed { events: 18_000, .. }));
    let mut agg = moved.aggregation;
    // 0.2 → 0.2.1: the state is exported and imported; nothing is replayed.
    let moved = agg.migrate(&next).unwrap().unwrap();
    let Carried::State { bytes } = moved.how else { panic!("state was not carried") };
    assert!(bytes > 0);
    let mut agg = moved.aggregation;
    assert_eq!(agg.component().label(), "streamguard@0.2.1");
    assert!(agg.push(&second).unwrap().is_empty());
    let got = by_name(&next, &agg.take().unwrap().table);
    assert_eq!(got, expected, "the window holds every event, as if one version had seen them all");

    // A 0.2 → 0.1 downgrade cannot take the state: replayed.
    let mut agg = v2.aggregation(&runtime).unwrap();
    agg.push(&first).unwrap();
    assert!(matches!(agg.migrate(&v1).unwrap().unwrap().how, Carried::Replayed { .. }));
}

#[test]
fn a_windows_share_of_a_batch_has_rows_only_for_its_users() {
    // A stream routes each window its rows of a batch, sharing the batch's dictionaries; users
    // with no event in the window must not become rows (they once made `take` trap).
    let b = batch(&generated(3_000));
    let first_user = b.user.codes[0];
    let rows: Vec<usize> = (0..b.len()).filter(|&i| b.user.codes[i] == first_user).collect();
    let share = Arc::new(b.select(&rows));
    let runtime = Runtime::new(Limits::default()).unwrap();
    for builtin in [&STREAMGUARD, &STREAMGUARD_V2, &sg_core::bundled::SPARK_COMPAT] {
        let c = load(ComponentSource::Builtin(builtin), &runtime);
        let mut agg = c.aggregation(&runtime).unwrap();
        assert!(agg.push(&share).unwrap().is_empty());
        let taken = agg.take().unwrap();
        assert!(taken.failed.is_empty());
        assert_eq!(taken.table.rows, 1, "{}", c.label());
    }
}
