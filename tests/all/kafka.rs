//! The Kafka source, against librdkafka's in-process mock cluster: bounded reads that take
//! exactly the offsets needed, commits after the output is written, dead letters with
//! partition and offset.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::Value;

use crate::support::{assert_exactly_once, ledger_ids, mock_cluster, produce_round_robin, sg_host, sigint, topic_ids, wait_for};

/// Generated events, `per_partition[p]` of them sent to partition `p` (in order).
fn fill(brokers: &str, topic: &str, per_partition: &[usize], extra: &[(i32, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("e.jsonl");
    let total: usize = per_partition.iter().sum();
    assert!(sg_host().args(["gen-events", &total.to_string(), "--compromised", "1", "--out"]).arg(&file).output().unwrap().status.success());
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines = text.lines();
    let producer: ThreadedProducer<DefaultProducerContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).set("linger.ms", "5").create().unwrap();
    for (p, &n) in per_partition.iter().enumerate() {
        for _ in 0..n {
            let line = lines.next().unwrap();
            producer.send(BaseRecord::<str, str>::to(topic).payload(line).partition(p as i32)).unwrap();
        }
    }
    for (p, payload) in extra {
        producer.send(BaseRecord::<str, str>::to(topic).payload(*payload).partition(*p)).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

fn run(source: &str, out: &std::path::Path, args: &[&str]) -> Value {
    let o = sg_host().args(["run", "-q", "--source", source, "--out"]).arg(out).args(args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&std::fs::read(out.join("_anomaly_report.json")).unwrap()).unwrap()
}

#[test]
fn bounded_reads_take_exactly_what_is_needed_and_commit_after_writing() {
    let (_cluster, brokers) = mock_cluster("security-events", 4);
    // Partition 3 stays empty; partition 2 is short.
    fill(&brokers, "security-events", &[3000, 3000, 500, 0], &[]);
    let source = format!("kafka://{brokers}/security-events");
    let dir = tempfile::tempdir().unwrap();

    let first = run(&source, &dir.path().join("a"), &["--max-events", "4000", "--group", "g1"]);
    assert_eq!(first["lineage"]["events"], 4000, "exactly --max-events");
    assert_eq!(first["lineage"]["input"], source.as_str());

    // The group committed after writing: the next bounded read continues where it stopped.
    let second = run(&source, &dir.path().join("b"), &["--start", "committed", "--max-events", "100000", "--group", "g1"]);
    assert_eq!(second["lineage"]["events"], 6500 - 4000, "the rest, and nothing twice");
    // Nothing left for the group: an empty read is an error, not a hang.
    let o = sg_host()
        .args(["run", "-q", "--source", &source, "--start", "committed", "--group", "g1", "--out"])
        .arg(dir.path().join("c"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no valid events"));

    // Another group reads the whole topic; equal to reading the same events from a file.
    let all = run(&source, &dir.path().join("d"), &["--group", "g2"]);
    assert_eq!(all["lineage"]["events"], 6500);
}

#[test]
fn a_bounded_read_of_a_transactional_topic_ends_at_the_commit_marker() {
    // A committed transaction ends with a control marker: the high watermark is one past it,
    // and no record is ever delivered at that offset.
    let (_cluster, brokers) = mock_cluster("tx", 1);
    let producer: ThreadedProducer<DefaultProducerContext> =
        ClientConfig::new().set("bootstrap.servers", &brokers).set("transactional.id", "sg-test").create().unwrap();
    producer.init_transactions(Duration::from_secs(10)).unwrap();
    producer.begin_transaction().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("e.jsonl");
    assert!(sg_host().args(["gen-events", "300", "--out"]).arg(&file).output().unwrap().status.success());
    for line in std::fs::read_to_string(&file).unwrap().lines() {
        producer.send(BaseRecord::<str, str>::to("tx").payload(line).partition(0)).unwrap();
    }
    producer.commit_transaction(Duration::from_secs(10)).unwrap();
    let out = dir.path().join("out");
    let mut child = sg_host().args(["run", "-q", "--source", &format!("kafka://{brokers}/tx"), "--group", "tx-reader", "--out"]).arg(&out).spawn().unwrap();
    let status = (0..600).find_map(|_| {
        std::thread::sleep(Duration::from_millis(100));
        child.try_wait().unwrap()
    });
    let Some(status) = status else {
        let _ = child.kill();
        panic!("the bounded read waited for the control marker for a minute");
    };
    assert!(status.success());
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("_anomaly_report.json")).unwrap()).unwrap();
    assert_eq!(report["lineage"]["events"], 300);
}

#[test]
fn bad_messages_are_dead_lettered_with_partition_and_offset() {
    let (_cluster, brokers) = mock_cluster("events", 2);
    let oversized = format!(r#"{{"event_id":"big","timestamp":1,"event_type":"x","pad":"{}"}}"#, "x".repeat(4096));
    fill(&brokers, "events", &[200, 200], &[(0, "not json"), (1, r#"{"timestamp":1,"event_type":"auth_attempt"}"#), (1, &oversized)]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let report = run(&format!("kafka://{brokers}/events"), &out, &["--max-message-bytes", "2KiB"]);
    assert_eq!(report["lineage"]["events"], 400);
    assert_eq!(report["lineage"]["dead_lettered"], 3);
    let letters: Vec<Value> =
        std::fs::read_to_string(out.join("_dead_letters.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut found: Vec<(i64, i64, String)> = letters
        .iter()
        .map(|l| (l["partition"].as_i64().unwrap(), l["offset"].as_i64().unwrap(), l["reason"].as_str().unwrap().to_string()))
        .collect();
    found.sort();
    assert_eq!((found[0].0, found[0].1), (0, 200));
    assert!(found[0].2.starts_with("not valid JSON"));
    assert_eq!((found[1].0, found[1].1), (1, 200));
    assert_eq!(found[1].2, "missing required field `event_id`");
    assert_eq!((found[2].0, found[2].1), (1, 201));
    assert!(found[2].2.contains("exceeds the limit"));

    // The same three went to `events.dlq`, original bytes and the reason in headers.
    let dlq = read_topic(&brokers, "events.dlq", 3);
    let mut seen: Vec<(String, String, String, Vec<u8>)> = dlq
        .iter()
        .map(|(payload, headers)| {
            let h = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
            (h("sg-source-partition"), h("sg-source-offset"), h("sg-reason"), payload.clone())
        })
        .collect();
    seen.sort();
    assert_eq!(seen[0].0, "0");
    assert_eq!(seen[0].1, "200");
    assert_eq!(seen[0].3, b"not json");
    assert_eq!(seen[1].2, "missing required field `event_id`");
    assert_eq!(seen[2].3, oversized.as_bytes());
    assert!(dlq.iter().all(|(_, h)| h.iter().any(|(k, v)| k == "sg-source-topic" && v == "events")));
}

/// A dead-letter topic that refuses dead letters (the brokers answer every produce with
/// TOPIC_AUTHORIZATION_FAILED): the reason is logged and counted, the run goes on to the end,
/// and the dead-letter file holds every dead letter.
#[test]
fn dead_letters_the_topic_refuses_are_logged_and_the_file_holds_them() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let (cluster, brokers) = mock_cluster("refusing", 1);
    fill(&brokers, "refusing", &[200], &[(0, "not json"), (0, "{oops")]);
    cluster.request_errors(RDKafkaApiKey::Produce, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 64]);
    let dir = tempfile::tempdir().unwrap();
    let (out, metrics) = (dir.path().join("out"), dir.path().join("metrics.prom"));
    let o = sg_host()
        .args(["run", "-q", "--source", &format!("kafka://{brokers}/refusing"), "--metrics-out"])
        .arg(&metrics)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("dead-letter topic refusing.dlq") && stderr.contains("the dead-letter file holds them"), "{stderr}");
    assert!(stderr.to_lowercase().contains("authorization"), "the brokers' reason is in the log: {stderr}");
    let letters = std::fs::read_to_string(out.join("_dead_letters.jsonl")).unwrap();
    assert_eq!(letters.lines().count(), 2, "{letters}");
    let metrics = std::fs::read_to_string(&metrics).unwrap();
    assert!(metrics.lines().any(|l| l.starts_with("sg_dead_letter_topic_failures_total ") && !l.ends_with(" 0")), "{metrics}");
}

/// A record as read back: payload and headers.
type Record = (Vec<u8>, Vec<(String, String)>);

/// Reads `n` records of `topic` from the start.
fn read_topic(brokers: &str, topic: &str, n: usize) -> Vec<Record> {
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Headers;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "dlq-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while out.len() < n && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let headers = m
                .headers()
                .map(|h| h.iter().map(|x| (x.key.to_string(), String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned())).collect())
                .unwrap_or_default();
            out.push((m.payload().unwrap_or_default().to_vec(), headers));
        }
    }
    assert_eq!(out.len(), n, "records on {topic}");
    out
}

/// The same bounded reads against a real Kafka-protocol broker process on loopback.
#[test]
#[ignore = "services: needs the nisshi Kafka broker (scripts/test.sh runs it)"]
fn against_a_real_broker_bounded_reads_commits_and_dead_letters() {
    let broker = crate::support::Broker::start();
    let topic = sg_kafka::KafkaTopic { brokers: broker.address.clone(), topic: "security-events".into() };
    sg_kafka::create_topic(&topic, &Default::default(), 4).unwrap();
    // Partition 3 stays empty; partition 1 carries two bad messages at its end.
    fill(&broker.address, "security-events", &[1500, 1500, 600, 0], &[(1, "{oops"), (1, r#"{"event_id":"e","timestamp":"x","event_type":"y"}"#)]);
    let source = topic.url();
    let dir = tempfile::tempdir().unwrap();

    let first = run(&source, &dir.path().join("a"), &["--max-events", "1000", "--group", "edge"]);
    assert_eq!(first["lineage"]["events"], 1000, "exactly --max-events over the partitions");
    let second = run(&source, &dir.path().join("b"), &["--start", "committed", "--group", "edge"]);
    assert_eq!(second["lineage"]["events"], 3600 - 1000, "the rest after the committed offsets");
    assert_eq!(second["lineage"]["dead_lettered"], 2);
    let dlq = read_topic(&broker.address, "security-events.dlq", 2);
    assert!(dlq.iter().any(|(p, _)| p == b"{oops"));
}

/// A dead-letter topic that takes smaller records than the dead letter (its `max.message.bytes`
/// read from the broker): the record is sent cut, with the original's size and digest, and the
/// run goes on. Before, the send failed and the stream stopped at the same offset on every
/// restart.
#[test]
#[ignore = "services: needs the nisshi Kafka broker (scripts/test.sh runs it)"]
fn a_dead_letter_larger_than_the_topic_takes_is_sent_cut_and_the_run_goes_on() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use sha2::Digest;
    let broker = crate::support::Broker::start();
    let topic = sg_kafka::KafkaTopic { brokers: broker.address.clone(), topic: "big".into() };
    sg_kafka::create_topic(&topic, &Default::default(), 1).unwrap();
    let admin: AdminClient<_> = ClientConfig::new().set("bootstrap.servers", &broker.address).create().unwrap();
    let dlq = NewTopic::new("big.dlq", 1, TopicReplication::Fixed(1)).set("max.message.bytes", "20000");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let created = runtime.block_on(admin.create_topics([&dlq], &AdminOptions::new())).unwrap();
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
    // Not JSON, 60 KB: under --max-message-bytes (1 MiB), over what big.dlq takes.
    let bad = format!("{{{}", "x".repeat(60_000));
    fill(&broker.address, "big", &[300], &[(0, &bad)]);
    let dir = tempfile::tempdir().unwrap();
    let report = run(&topic.url(), &dir.path().join("out"), &["--replication-factor", "1"]);
    assert_eq!(report["lineage"]["dead_lettered"], 1);
    let letters = read_topic(&broker.address, "big.dlq", 1);
    let (payload, headers) = &letters[0];
    let h = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    assert!(payload.len() < 20_000 && bad.as_bytes().starts_with(payload), "{} bytes", payload.len());
    assert_eq!(h("sg-original-bytes"), bad.len().to_string());
    assert_eq!(h("sg-original-sha256"), hex::encode(sha2::Sha256::digest(bad.as_bytes())));
    assert!(h("sg-reason").starts_with("not valid JSON"), "{}", h("sg-reason"));
    // The file keeps the whole message.
    let file = std::fs::read_to_string(dir.path().join("out/_dead_letters.jsonl")).unwrap();
    assert!(file.contains(&bad[..1000]) && file.len() > 60_000);
    // A replication factor is a number from 1, or `default`.
    let o = sg_host().args(["run", "-q", "--source", &topic.url(), "--replication-factor", "0", "--out"]).arg(dir.path().join("x")).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("replication factor from 1"), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `sg-host produce` keyed by user into a new 4-partition topic, read back whole.
#[test]
#[ignore = "services: needs the nisshi Kafka broker (scripts/test.sh runs it)"]
fn produce_then_read_a_whole_topic_from_a_real_broker() {
    let broker = crate::support::Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("e.jsonl");
    assert!(sg_host().args(["gen-events", "5000", "--compromised", "2", "--out"]).arg(&file).output().unwrap().status.success());
    let o = sg_host()
        .args(["produce", "--brokers", &broker.address, "--topic", "logs-and-events", "--key", "user", "--create-partitions", "4", "--input"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let from_kafka = run(&format!("kafka://{}/logs-and-events", broker.address), &dir.path().join("k"), &["--no-dead-letter-topic"]);
    let o = sg_host().args(["run", "-q", "--input"]).arg(&file).arg("--out").arg(dir.path().join("f")).output().unwrap();
    assert!(o.status.success());
    let from_file: Value = serde_json::from_slice(&std::fs::read(dir.path().join("f/_anomaly_report.json")).unwrap()).unwrap();
    assert_eq!(from_kafka["lineage"]["events"], 5000);
    // Keyed by user, each user's events keep their order within a partition: same features.
    assert_eq!(from_kafka["top_anomalies"], from_file["top_anomalies"]);
}

/// Events of `file` sent round-robin over `partitions` partitions.
fn fill_round_robin(brokers: &str, topic: &str, file: &std::path::Path, partitions: i32) {
    produce_round_robin(brokers, topic, std::fs::read_to_string(file).unwrap().lines(), partitions);
}

fn windows_written(out: &std::path::Path) -> Vec<(String, u64)> {
    crate::support::written_windows(out).into_iter().map(|(name, r)| (name, r["lineage"]["events"].as_u64().unwrap())).collect()
}

/// A `sg-host run --follow` child, killed if the test ends without stopping it.
struct Follower(Option<std::process::Child>);

impl Drop for Follower {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sends SIGINT and expects a clean exit within 30 s.
fn interrupt(mut follower: Follower) {
    let mut child = follower.0.take().expect("running");
    sigint(&child);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the stream did not stop within 30 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "a stopped stream exits cleanly: {status}");
}

#[test]
fn a_stream_writes_windows_and_survives_a_restart_with_nothing_lost_or_written_twice() {
    let (_cluster, brokers) = mock_cluster("stream", 2);
    stream_survives_a_restart(&brokers);
}

#[test]
#[ignore = "services: needs the nisshi Kafka broker (scripts/test.sh runs it)"]
fn a_stream_on_a_real_broker_survives_a_restart() {
    let broker = crate::support::Broker::start();
    let topic = sg_kafka::KafkaTopic { brokers: broker.address.clone(), topic: "stream".into() };
    sg_kafka::create_topic(&topic, &Default::default(), 2).unwrap();
    stream_survives_a_restart(&broker.address);
}

/// 6000 events (six 10-second windows) round-robin over the 2 partitions of `stream`; a
/// follower stopped with SIGINT after two windows and restarted writes every window once.
fn stream_survives_a_restart(brokers: &str) {
    let brokers = brokers.to_string();
    let dir = tempfile::tempdir().unwrap();
    // 6000 events at 100/s from 2026-01-01T00:00:00Z: six 10-second windows.
    let file = dir.path().join("e.jsonl");
    assert!(sg_host().args(["gen-events", "6000", "--compromised", "1", "--out"]).arg(&file).output().unwrap().status.success());
    let mut expected: std::collections::BTreeMap<i64, u64> = Default::default();
    for line in std::fs::read_to_string(&file).unwrap().lines() {
        let ts = serde_json::from_str::<Value>(line).unwrap()["timestamp"].as_i64().unwrap();
        *expected.entry(ts.div_euclid(10_000)).or_default() += 1;
    }
    fill_round_robin(&brokers, "stream", &file, 2);
    let out = dir.path().join("out");
    let follow = || {
        let child = sg_host()
            .args(["run", "-q", "--follow", "--ledger", "--window", "10s", "--batch-events", "500", "--batch-wait", "100ms", "--group", "watch"])
            .args(["-X", "session.timeout.ms=6000", "--source", &format!("kafka://{brokers}/stream"), "--out"])
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Follower(Some(child))
    };
    let first = follow();
    wait_for("two windows", 60, || windows_written(&out).len() >= 2);
    interrupt(first);
    let after_first = windows_written(&out);

    let second = follow();
    // One event an hour later on each partition moves the watermark past every window.
    let tick_ts = 1_767_225_600_000i64 + 3_600_000;
    let tick = serde_json::to_string(&{
        let mut v: Value = serde_json::from_str(std::fs::read_to_string(&file).unwrap().lines().next().unwrap()).unwrap();
        v["timestamp"] = tick_ts.into();
        v["event_id"] = "tick".into();
        v
    })
    .unwrap();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    for p in 0..2 {
        producer.send(BaseRecord::<str, str>::to("stream").payload(&tick).partition(p)).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    wait_for("all six windows", 60, || windows_written(&out).len() == expected.len());
    interrupt(second);

    let written = windows_written(&out);
    // The windows of the first run were not written again.
    for w in &after_first {
        assert!(written.contains(w));
    }
    let counts: Vec<u64> = written.iter().map(|(_, n)| *n).collect();
    assert_eq!(counts, expected.values().copied().collect::<Vec<_>>(), "the generated count in each window");
    let ids = topic_ids(&brokers, "stream", 6002);
    assert_exactly_once(&ledger_ids(&[&out], &ids), events_only(&ids));
    assert_eq!(std::fs::read_to_string(out.join("_dead_letters.jsonl")).unwrap_or_default(), "", "nothing late, nothing bad");
}

/// The ids of `ids` that are events, not ticks (which stay in the open window an hour later).
fn events_only(ids: &std::collections::BTreeMap<(i64, i64), String>) -> impl Iterator<Item = &String> {
    ids.values().filter(|id| !id.starts_with("tick"))
}

/// `n` generated events in `dir/e.jsonl`, followed by `ticks` events an hour later (one per
/// partition when sent round-robin), which move every partition's watermark past every window.
fn events_with_ticks(dir: &std::path::Path, n: u64, ticks: usize) -> std::path::PathBuf {
    let file = dir.join("e.jsonl");
    assert!(sg_host().args(["gen-events", &n.to_string(), "--out"]).arg(&file).output().unwrap().status.success());
    let mut text = std::fs::read_to_string(&file).unwrap();
    let mut tick: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    tick["timestamp"] = (tick["timestamp"].as_i64().unwrap() + 3_600_000).into();
    for i in 0..ticks {
        tick["event_id"] = format!("tick-{i}").into();
        text.push_str(&format!("{tick}\n"));
    }
    std::fs::write(&file, text).unwrap();
    file
}

/// `sg-host run --follow` on `topic` in 10-second windows as a member of `group`; its stderr
/// goes to `stderr`.
fn spawn_follower(brokers: &str, topic: &str, group: &str, out: &std::path::Path, stderr: &std::path::Path) -> Follower {
    let child = sg_host()
        .args(["run", "-q", "--follow", "--ledger", "--window", "10s", "--batch-events", "200", "--batch-wait", "100ms", "--group", group])
        .args(["-X", "session.timeout.ms=6000", "--source", &format!("kafka://{brokers}/{topic}"), "--out"])
        .arg(out)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap();
    Follower(Some(child))
}

#[test]
fn a_stream_rides_out_a_broker_going_down_and_back() {
    let (cluster, brokers) = mock_cluster("flaky", 2);
    let dir = tempfile::tempdir().unwrap();
    let file = events_with_ticks(dir.path(), 4000, 2);
    fill_round_robin(&brokers, "flaky", &file, 2);
    let out = dir.path().join("out");
    let follower = spawn_follower(&brokers, "flaky", "flaky", &out, &dir.path().join("stderr"));
    wait_for("the first window", 60, || !windows_written(&out).is_empty());
    cluster.broker_down(1).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    cluster.broker_up(1).unwrap();
    wait_for("all four windows", 60, || windows_written(&out).len() == 4);
    let stderr = dir.path().join("stderr");
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| interrupt(follower))).is_err() {
        panic!("stop failed; sg-host said: {}", std::fs::read_to_string(&stderr).unwrap_or_default());
    }
    let ids = topic_ids(&brokers, "flaky", 4002);
    assert_exactly_once(&ledger_ids(&[&out], &ids), events_only(&ids));
    let late = std::fs::read_to_string(out.join("_dead_letters.jsonl")).unwrap_or_default();
    assert_eq!(late, "", "nothing re-read was counted twice or called late");
}

#[test]
#[ignore = "services: needs the nisshi Kafka broker (scripts/test.sh runs it)"]
fn two_hosts_in_one_group_split_the_partitions_and_each_event_is_written_once() {
    let (_cluster, brokers) = mock_cluster("shared", 4);
    let dir = tempfile::tempdir().unwrap();
    let file = events_with_ticks(dir.path(), 8000, 4);
    let host = |name: &str| {
        let out = dir.path().join(name);
        (spawn_follower(&brokers, "shared", "pair", &out, &dir.path().join(format!("{name}.stderr"))), out)
    };
    let (a, out_a) = host("a");
    let (b, out_b) = host("b");
    // Let both join the group (and split the partitions) before the events arrive.
    std::thread::sleep(Duration::from_secs(5));
    fill_round_robin(&brokers, "shared", &file, 4);
    let total = || -> u64 { windows_written(&out_a).iter().chain(&windows_written(&out_b)).map(|(_, n)| n).sum() };
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while total() < 8000 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    if total() < 8000 {
        panic!(
            "only {} events written; a: {:?} {} ; b: {:?} {}",
            total(),
            windows_written(&out_a),
            std::fs::read_to_string(dir.path().join("a.stderr")).unwrap_or_default(),
            windows_written(&out_b),
            std::fs::read_to_string(dir.path().join("b.stderr")).unwrap_or_default()
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    interrupt(a);
    interrupt(b);
    let ids = topic_ids(&brokers, "shared", 8004);
    assert_exactly_once(&ledger_ids(&[&out_a, &out_b], &ids), events_only(&ids));
    assert!(!windows_written(&out_a).is_empty() && !windows_written(&out_b).is_empty(), "both hosts took partitions");
}

#[test]
#[ignore = "services: needs the nisshi Kafka broker (scripts/test.sh runs it)"]
fn time_bounded_reads_on_a_real_broker_use_record_timestamps() {
    // (librdkafka's mock cluster does not answer offset-for-time lookups.)
    let broker = crate::support::Broker::start();
    let brokers = broker.address.clone();
    let topic = sg_kafka::KafkaTopic { brokers: brokers.clone(), topic: "timed".into() };
    sg_kafka::create_topic(&topic, &Default::default(), 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("e.jsonl");
    assert!(sg_host().args(["gen-events", "6000", "--out"]).arg(&file).output().unwrap().status.success());
    let producer: ThreadedProducer<DefaultProducerContext> =
        ClientConfig::new().set("bootstrap.servers", &brokers).set("linger.ms", "5").create().unwrap();
    let (from, to) = (1_767_225_620_000i64, 1_767_225_640_000i64); // 00:00:20Z .. 00:00:40Z
    let mut expected = 0;
    for (i, line) in std::fs::read_to_string(&file).unwrap().lines().enumerate() {
        let ts = serde_json::from_str::<Value>(line).unwrap()["timestamp"].as_i64().unwrap();
        expected += u64::from((from..to).contains(&ts));
        producer.send(BaseRecord::<str, str>::to("timed").payload(line).partition(i as i32 % 2).timestamp(ts)).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let report = run(
        &format!("kafka://{brokers}/timed"),
        &dir.path().join("out"),
        &["--from-time", "2026-01-01T00:00:20Z", "--to-time", &to.to_string()],
    );
    assert_eq!(report["lineage"]["events"], expected);
}

/// A follower with `extra` flags on `topic`, writing to `out`, its stderr to `stderr`.
fn follow_with(brokers: &str, topic: &str, out: &std::path::Path, stderr: &std::path::Path, extra: &[&str]) -> Follower {
    let child = sg_host()
        .args(["run", "-q", "--follow", "--ledger", "--window", "10s", "--batch-events", "200", "--batch-wait", "100ms", "--group", "g"])
        .args(["-X", "session.timeout.ms=6000", "--source", &format!("kafka://{brokers}/{topic}"), "--out"])
        .arg(out)
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap();
    Follower(Some(child))
}

/// The dead letters of a stream output.
fn dead_letters(out: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("_dead_letters.jsonl")).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
#[ignore = "services: needs the nisshi Kafka broker (scripts/test.sh runs it)"]
fn a_far_future_event_in_each_partition_is_dead_lettered_and_every_window_is_written() {
    let broker = crate::support::Broker::start();
    let brokers = broker.address.clone();
    sg_kafka::create_topic(&sg_kafka::KafkaTopic { brokers: brokers.clone(), topic: "future".into() }, &Default::default(), 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = events_with_ticks(dir.path(), 3000, 2);
    let mut lines: Vec<String> = std::fs::read_to_string(&file).unwrap().lines().map(str::to_string).collect();
    // One event per partition stamped a year past the wall clock, in the middle of the stream.
    let year_ahead = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 + 365 * 86_400_000;
    for p in 0..2 {
        let mut v: Value = serde_json::from_str(&lines[1500]).unwrap();
        v["timestamp"] = year_ahead.into();
        v["event_id"] = format!("forged-{p}").into();
        lines.insert(1500, v.to_string());
    }
    produce_round_robin(&brokers, "future", lines.iter().map(String::as_str), 2);
    let ids = topic_ids(&brokers, "future", lines.len());
    let out = dir.path().join("out");
    let stderr = dir.path().join("stderr");
    let follower = follow_with(&brokers, "future", &out, &stderr, &[]);
    wait_for("three windows", 60, || windows_written(&out).len() == 3);
    interrupt(follower);
    let letters = dead_letters(&out);
    assert_eq!(letters.len(), 2, "{letters:?}");
    for l in &letters {
        assert_eq!(l["stage"], "future");
        assert!(l["reason"].as_str().unwrap().contains("is past the future-skew limit"), "{l}");
        assert!(ids[&(l["partition"].as_i64().unwrap(), l["offset"].as_i64().unwrap())].starts_with("forged-"));
    }
    let events = || ids.values().filter(|id| !id.starts_with("tick") && !id.starts_with("forged"));
    assert_exactly_once(&ledger_ids(&[&out], &ids), events());
    // The forged events pin nothing: everything before the ticks is covered by the checkpoint,
    // so a restart re-reads only the ticks and writes nothing again.
    let checkpoint: Value = serde_json::from_slice(&std::fs::read(out.join("_checkpoint.json")).unwrap()).unwrap();
    let ticks: Vec<(i64, i64)> = ids.iter().filter(|(_, id)| id.starts_with("tick")).map(|(at, _)| *at).collect();
    for (p, o) in &ticks {
        assert_eq!(checkpoint["covered"][p.to_string()], *o, "{checkpoint}");
    }
    let before: Vec<_> = windows_written(&out);
    let again = follow_with(&brokers, "future", &out, &stderr, &[]);
    std::thread::sleep(Duration::from_secs(8));
    interrupt(again);
    assert_eq!(windows_written(&out), before);
    assert_eq!(dead_letters(&out).len(), 2, "nothing re-read was dead-lettered again");
    assert_exactly_once(&ledger_ids(&[&out], &ids), events());
}

/// `--retain 15s` over 10-second windows: once a window is written, those that ended more than
/// 15 s (event time) before its end are deleted — behind the checkpoint, so nothing re-reads
/// them.
#[test]
fn retention_deletes_windows_older_than_it_keeps() {
    let (_cluster, brokers) = mock_cluster("kept", 2);
    let dir = tempfile::tempdir().unwrap();
    let file = events_with_ticks(dir.path(), 3000, 2);
    fill_round_robin(&brokers, "kept", &file, 2);
    let out = dir.path().join("out");
    let stderr = dir.path().join("stderr");
    let follower = follow_with(&brokers, "kept", &out, &stderr, &["--retain", "15s"]);
    let names = || windows_written(&out).into_iter().map(|(name, _)| name).collect::<Vec<_>>();
    wait_for("the last two windows, and only them", 60, || names() == ["window=2026-01-01T00:00:10Z", "window=2026-01-01T00:00:20Z"]);
    interrupt(follower);
    assert!(std::fs::read_to_string(&stderr).unwrap().contains("--retain: removed"));
    assert!(!out.join("window=2026-01-01T00:00:00Z").exists());
}

/// The offsets `group` committed on the partitions of `topic` (`None` where it committed none).
fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers).set("group.id", group).create().unwrap();
    let mut list = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let found = consumer.committed_offsets(list, Duration::from_secs(10)).unwrap();
    (0..partitions).map(|p| found.find_partition(topic, p).and_then(|e| e.offset().to_raw()).filter(|&o| o >= 0)).collect()
}

/// A full disk (a tmpfs the test fills): the stream waits and retries the window's write, stays
/// alive and says in `/readyz` why it is not ready, commits nothing, and once space returns
/// writes every window — each event exactly once, compared as sets of event ids.
#[test]
#[ignore = "services: needs the nisshi Kafka broker and root for a tmpfs (scripts/test.sh runs it)"]
fn a_full_disk_holds_the_stream_which_loses_nothing_once_space_returns() {
    let broker = crate::support::Broker::start();
    let brokers = broker.address.clone();
    sg_kafka::create_topic(&sg_kafka::KafkaTopic { brokers: brokers.clone(), topic: "full".into() }, &Default::default(), 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = std::fs::read_to_string(events_with_ticks(dir.path(), 3000, 2)).unwrap().lines().map(str::to_string).collect();
    produce_round_robin(&brokers, "full", lines.iter().map(String::as_str), 2);
    let ids = topic_ids(&brokers, "full", lines.len());
    let fs = crate::support::Tmpfs::mount(&dir.path().join("fs"), "8m");
    let out = dir.path().join("fs/out");
    std::fs::create_dir_all(&out).unwrap();
    let filler = fs.fill("filler");
    let port = crate::support::free_port();
    let listen = format!("127.0.0.1:{port}");
    let stderr = dir.path().join("stderr");
    let follower = follow_with(&brokers, "full", &out, &stderr, &["--metrics-listen", &listen, "--min-free-space", "1MiB"]);
    let readyz = || std::net::TcpStream::connect(&listen).ok().map(|_| crate::support::http(&listen, "GET", "/readyz", None, b""));
    wait_for("/readyz to say the stream waits for disk space", 60, || {
        readyz().is_some_and(|(status, body)| status == 503 && body.contains("waiting for disk space") && body.contains("No space left on device"))
    });
    // It waits without exiting, stays alive, and has committed nothing and written no window.
    std::thread::sleep(Duration::from_secs(3));
    assert!(crate::support::http(&listen, "GET", "/healthz", None, b"").0 == 200, "alive while it waits");
    assert_eq!(committed(&brokers, "g", "full", 2), vec![None, None], "nothing committed past what is not written");
    assert!(windows_written(&out).is_empty());
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(log.contains("retry") && log.contains("nothing is committed past it"), "{log}");
    // Space returns: every window is written, and it is ready again.
    std::fs::remove_file(&filler).unwrap();
    wait_for("three windows", 90, || windows_written(&out).len() == 3);
    wait_for("ready again", 30, || readyz().is_some_and(|(status, _)| status == 200));
    interrupt(follower);
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(log.contains("space is back"), "{log}");
    let events = ids.values().filter(|id| !id.starts_with("tick"));
    assert_exactly_once(&ledger_ids(&[&out], &ids), events);
    assert!(committed(&brokers, "g", "full", 2).iter().all(Option::is_some), "committed once written");
    drop(fs);
}

#[test]
#[ignore = "services: needs the nisshi Kafka broker (scripts/test.sh runs it)"]
fn an_idle_partition_stops_holding_windows_after_the_idle_timeout() {
    let broker = crate::support::Broker::start();
    let brokers = broker.address.clone();
    sg_kafka::create_topic(&sg_kafka::KafkaTopic { brokers: brokers.clone(), topic: "idle".into() }, &Default::default(), 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = events_with_ticks(dir.path(), 4000, 1);
    let lines: Vec<String> = std::fs::read_to_string(&file).unwrap().lines().map(str::to_string).collect();
    // Partition 1 gets the first 100 events (the first window) and then goes quiet; partition 0
    // gets the rest of the forty seconds and a tick an hour later.
    let send = |p: i32, payloads: &[String]| {
        let producer: ThreadedProducer<DefaultProducerContext> =
            ClientConfig::new().set("bootstrap.servers", &brokers).set("linger.ms", "5").create().unwrap();
        for payload in payloads {
            producer.send(BaseRecord::<str, str>::to("idle").payload(payload).partition(p)).unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
    };
    send(1, &lines[..100]);
    send(0, &lines[100..]);
    let out = dir.path().join("out");
    let stderr = dir.path().join("stderr");
    // 8 s: long enough that partition 1's first batch is heard before it counts as idle even on
    // a loaded machine (at 3 s a slow first batch of partition 0 once made all of it late).
    let follower = follow_with(&brokers, "idle", &out, &stderr, &["--idle-timeout", "8s"]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(windows_written(&out).len() <= 1, "partition 1 still holds the watermark before its timeout");
    wait_for("the four windows once partition 1 is quiet", 60, || windows_written(&out).len() == 4);
    // Partition 1 delivers again: an event of a written window is late; one of a new window
    // (the tick's hour) joins it, and partition 1 holds the watermark again.
    let mut late: Value = serde_json::from_str(&lines[50]).unwrap();
    late["event_id"] = "late-1".into();
    let mut fresh: Value = serde_json::from_str(&lines[3999]).unwrap();
    fresh["event_id"] = "fresh-1".into();
    fresh["timestamp"] = (fresh["timestamp"].as_i64().unwrap() + 3_600_000).into();
    send(1, &[late.to_string(), fresh.to_string()]);
    // Once both partitions are quiet, the newest event time (fresh-1's) sets the watermark: the
    // ticks' window is written too; fresh-1's own window stays open.
    wait_for("the late event's dead letter and the ticks' window", 30, || !dead_letters(&out).is_empty() && windows_written(&out).len() == 5);
    interrupt(follower);
    let letters = dead_letters(&out);
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["stage"], "late");
    let ids = topic_ids(&brokers, "idle", lines.len() + 2);
    assert_eq!(ids[&(letters[0]["partition"].as_i64().unwrap(), letters[0]["offset"].as_i64().unwrap())], "late-1");
    assert_exactly_once(&ledger_ids(&[&out], &ids), ids.values().filter(|id| *id != "late-1" && *id != "fresh-1"));
}

#[test]
fn at_the_open_window_limit_the_oldest_window_is_written_early_and_the_stream_goes_on() {
    // One partition: events arrive in event-time order (with several, one partition read ahead
    // of another would make the early-written windows' stragglers late).
    let (_cluster, brokers) = mock_cluster("crowded", 1);
    let dir = tempfile::tempdir().unwrap();
    // Six 10-second windows that a lateness of an hour keeps open; ticks three hours later
    // close what is left. With room for three, the oldest is written early as the fourth opens.
    let file = dir.path().join("e.jsonl");
    assert!(sg_host().args(["gen-events", "6000", "--out"]).arg(&file).output().unwrap().status.success());
    let mut text = std::fs::read_to_string(&file).unwrap();
    let mut tick: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    tick["timestamp"] = (tick["timestamp"].as_i64().unwrap() + 3 * 3_600_000).into();
    tick["event_id"] = "tick-0".into();
    text.push_str(&format!("{tick}\n"));
    std::fs::write(&file, text).unwrap();
    fill_round_robin(&brokers, "crowded", &file, 1);
    let out = dir.path().join("out");
    let stderr = dir.path().join("stderr");
    let follower = follow_with(&brokers, "crowded", &out, &stderr, &["--lateness", "1h", "--max-open-windows", "3"]);
    wait_for("six windows", 60, || windows_written(&out).len() == 6);
    interrupt(follower);
    let log = std::fs::read_to_string(&stderr).unwrap();
    // Windows 3, 4, 5 and the ticks' window each found three open: windows 0–3 were written
    // early, 4 and 5 when the ticks moved the watermark.
    assert_eq!(log.matches("(the limit): writing window").count(), 4, "{log}");
    let ids = topic_ids(&brokers, "crowded", 6001);
    assert_exactly_once(&ledger_ids(&[&out], &ids), events_only(&ids));
    assert!(dead_letters(&out).is_empty());
}
