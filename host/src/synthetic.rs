//! Synthetic security events following the reference generator's distributions, with optional
//! compromised users as ground truth.

use std::io::Write;

use anyhow::Result;
use rand::{Rng, RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

/// The reference generator's 14 users.
pub const USERS: [&str; 14] = [
    "alice", "bob", "charlie", "david", "eve", "frank", "grace", "henry", "admin", "contractor", "developer",
    "analyst", "manager", "guest",
];

const CITIES: [&str; 8] = [
    "US-CA-San Francisco",
    "US-NY-New York",
    "US-TX-Austin",
    "US-WA-Seattle",
    "GB-LND-London",
    "DE-BE-Berlin",
    "JP-TK-Tokyo",
    "US-MN-Minneapolis",
];
const HOSTILE_CITIES: [&str; 3] = ["RU-MOW-Moscow", "CN-BJ-Beijing", "KP-PY-Pyongyang"];

/// Generator settings.
#[derive(Clone, Debug)]
pub struct GenSettings {
    /// Number of events.
    pub events: u64,
    /// Number of users (the reference's 14 first, then `user-0015`, …).
    pub users: usize,
    /// Users that behave anomalously.
    pub compromised: usize,
    /// Seed.
    pub seed: u64,
    /// Timestamp of the first event, epoch ms.
    pub start_ms: i64,
    /// Events per second (the reference default is 100).
    pub rate: f64,
}

impl Default for GenSettings {
    fn default() -> Self {
        GenSettings { events: 10_000, users: 14, compromised: 0, seed: 42, start_ms: 1_767_225_600_000, rate: 100.0 }
    }
}

/// Ground truth of a generated set.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct GroundTruth {
    /// Users made to behave anomalously.
    pub compromised: Vec<String>,
    /// Seed used.
    pub seed: u64,
    /// Events written.
    pub events: u64,
}

fn user_name(i: usize) -> String {
    USERS.get(i).map(|s| s.to_string()).unwrap_or_else(|| format!("user-{:04}", i + 1))
}

fn primary_ip(i: usize) -> String {
    if i < 24 { format!("192.168.1.{}", 10 * (i + 1)) } else { format!("10.{}.{}.10", (i >> 8) & 255, i & 255) }
}

fn alternate_ip(i: usize, k: usize) -> String {
    format!("172.16.{}.{}", i & 255, 20 + 10 * k)
}

#[derive(Serialize)]
struct Metadata<'a> {
    hostname: String,
    geo_location: &'a str,
    user_agent: &'a str,
    session_id: String,
}

#[derive(Serialize)]
struct Event<'a> {
    event_id: String,
    timestamp: i64,
    event_type: &'a str,
    source_ip: String,
    destination_ip: &'a str,
    user: &'a str,
    threat_score: f64,
    status: &'a str,
    metadata: Metadata<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_details: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    network_details: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_details: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    process_details: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns_details: Option<serde_json::Value>,
}

fn pick<'a, T>(rng: &mut impl Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// Writes `settings.events` JSON lines to `out`; returns the ground truth.
pub fn generate(settings: &GenSettings, out: &mut impl Write) -> Result<GroundTruth> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(settings.seed);
    let users: Vec<String> = (0..settings.users.max(1)).map(user_name).collect();
    let mut order: Vec<usize> = (0..users.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let compromised: Vec<usize> = order.into_iter().take(settings.compromised.min(users.len())).collect();
    let step_ms = 1000.0 / settings.rate.max(1e-3);
    for n in 0..settings.events {
        let u = rng.random_range(0..users.len());
        let is_compromised = compromised.contains(&u);
        // Every 50th event is anomalous; a compromised user's events are anomalous 40% of the time.
        let anomalous = (n + 1) % 50 == 0 || (is_compromised && rng.random_bool(0.4));
        let roll: f64 = rng.random();
        let mut event_type = match roll {
            r if r < 0.40 => "auth_attempt",
            r if r < 0.65 => "network_connection",
            r if r < 0.85 => "file_access",
            r if r < 0.95 => "process_execution",
            _ => "dns_query",
        };
        if anomalous && rng.random_bool(0.5) {
            event_type = "process_execution";
        }
        let source_ip = if anomalous {
            format!("192.168.2.{}", rng.random_range(1..255))
        } else if rng.random_bool(0.8) {
            primary_ip(u)
        } else {
            alternate_ip(u, rng.random_range(0..2))
        };
        let geo = if anomalous {
            *pick(&mut rng, &HOSTILE_CITIES)
        } else if rng.random_bool(0.9) {
            CITIES[u % CITIES.len()]
        } else {
            *pick(&mut rng, &CITIES)
        };
        let mut status = "success";
        let (lo, hi) = match event_type {
            "auth_attempt" => {
                if anomalous {
                    status = "failed";
                    (0.7, 0.95)
                } else {
                    match rng.random_range(0..100) {
                        0..92 => (0.0, 0.2),
                        92..98 => {
                            status = "failed";
                            (0.3, 0.6)
                        }
                        _ => {
                            status = "blocked";
                            (0.7, 0.9)
                        }
                    }
                }
            }
            "network_connection" if anomalous => (0.7, 0.95),
            "network_connection" if rng.random_bool(0.8) => (0.0, 0.2),
            "network_connection" => (0.2, 0.5),
            "file_access" if anomalous => (0.7, 0.95),
            "process_execution" if anomalous => (0.8, 1.0),
            "file_access" | "process_execution" => (0.0, 0.3),
            _ if anomalous => (0.7, 0.95),
            _ => (0.0, 0.2),
        };
        let threat_score = ((lo + (hi - lo) * rng.random::<f64>()) * 1e4).floor() / 1e4;
        let jitter = rng.random_range(0..(step_ms.max(1.0) as i64));
        let timestamp = settings.start_ms + (n as f64 * step_ms) as i64 + jitter;
        let details = |v: serde_json::Value, t: &str| (event_type == t).then_some(v);
        let event = Event {
            event_id: format!("evt_{:016x}{:016x}", rng.next_u64(), rng.next_u64()),
            timestamp,
            event_type,
            source_ip,
            destination_ip: "10.0.0.5",
            user: &users[u],
            threat_score,
            status,
            metadata: Metadata {
                hostname: format!("ws-{:02}", u % 100),
                geo_location: geo,
                user_agent: if anomalous { "curl/7.68.0" } else { "Mozilla/5.0 (Windows NT 10.0; Win64; x64)" },
                session_id: format!("sess_{:08x}", rng.next_u32()),
            },
            auth_details: details(
                serde_json::json!({"auth_type": "password", "status": status,
                    "failure_reason": if status == "success" { None } else { Some("invalid_credentials") },
                    "attempts_count": if status == "success" { 1 } else { rng.random_range(1..6) }}),
                "auth_attempt",
            ),
            network_details: details(
                serde_json::json!({"port": if anomalous { 4444 } else { 443 }, "protocol": "TCP",
                    "bytes_transferred": rng.random_range(100..1_000_000)}),
                "network_connection",
            ),
            file_details: details(
                serde_json::json!({"file_path": if anomalous { "/etc/shadow" } else { "/home/user/report.docx" },
                    "operation": "read"}),
                "file_access",
            ),
            process_details: details(
                serde_json::json!({"process_name": if anomalous { "nc" } else { "chrome.exe" }}),
                "process_execution",
            ),
            dns_details: details(
                serde_json::json!({"domain": if anomalous { "evil.example" } else { "example.com" }, "query_type": "A"}),
                "dns_query",
            ),
        };
        serde_json::to_writer(&mut *out, &event)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    let mut names: Vec<String> = compromised.iter().map(|&i| users[i].clone()).collect();
    names.sort();
    Ok(GroundTruth { compromised: names, seed: settings.seed, events: settings.events })
}
