//! `sg-host dedup` on the shared HDFS sample: stable ids, policies, the embedded store across
//! restarts, the in-process model against the reference service, and embedder failures.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use qdrant_edge::{EdgeShard, PointId, WithPayloadInterface};
use serde_json::Value;
use sg_dedup_core::{InputFormat, LogBatch, Policy, TextColumnBuf, decide, normalize};
use sg_core::bundled;
use sg_core::component::ComponentSource;
use sg_core::component::policy::PolicyComponent;
use sg_dedup::point_id;
use sg_dedup::embed::{Embedder, HttpEmbedder, HttpSettings, MiniLm, Precision};
use sg_core::runtime::{Limits, Runtime};

use crate::support::{EmbedServer, HDFS_SAMPLE, fixture, fixture_lines, model_dir, produce, sg_host, sigint};

fn sample_lines() -> Vec<String> {
    fixture_lines(HDFS_SAMPLE)
}

fn texts(lines: &[String]) -> Vec<String> {
    lines.iter().map(|l| serde_json::from_str::<Value>(l).unwrap()["text"].as_str().unwrap().to_string()).collect()
}

/// Columns for `lines` as JSON records with only the line set.
fn json_batch(texts: &[String]) -> (TextColumnBuf, TextColumnBuf) {
    let mut line = TextColumnBuf::default();
    let mut empty = TextColumnBuf::default();
    for t in texts {
        line.push(t);
        empty.push("");
    }
    (line, empty)
}

fn batch<'a>(format: InputFormat, line: &'a TextColumnBuf, empty: &'a TextColumnBuf) -> LogBatch<'a> {
    let e = empty.view();
    LogBatch { format, line: line.view(), original_text: e, timestamp: e, log_level: e, source: e, node_type: e }
}

fn component(b: &'static bundled::Builtin) -> (Runtime, PolicyComponent) {
    let runtime = Runtime::new(Limits::default()).unwrap();
    let policy = PolicyComponent::load(&runtime, &ComponentSource::Builtin(b)).unwrap();
    (runtime, policy)
}

/// Ids of the kept records, computed natively or by the component.
fn ids(d: &sg_dedup_core::Decisions) -> Vec<Option<u64>> {
    (0..d.keep.len()).map(|i| d.keep[i].then(|| point_id(d.key.get(i)))).collect()
}

#[test]
fn component_ids_equal_native_ids_on_the_sample() {
    let texts = texts(&sample_lines());
    let (line, empty) = json_batch(&texts);
    for (policy, builtin) in [(Policy::Exact, &bundled::DEDUP_EXACT), (Policy::Template, &bundled::DEDUP_TEMPLATE)] {
        let native = decide(policy, &batch(InputFormat::Json, &line, &empty)).unwrap();
        let (runtime, mut component) = component(builtin);
        assert_eq!(component.descriptor().name, policy.name());
        let (wasm, failed) = component.decide(&runtime, &batch(InputFormat::Json, &line, &empty)).unwrap();
        assert!(failed.is_empty());
        assert_eq!(ids(&native), ids(&wasm), "{policy:?}");
        assert_eq!(native, wasm, "{policy:?}: every column equal");
    }
}

#[test]
fn template_groups_hand_picked_lines() {
    let lines = [
        // 0, 1: one template (block ids, addresses, ports differ).
        "Receiving block blk_-8512413998345829498 src: /10.251.31.85:43549 dest: /10.251.31.85:50010",
        "Receiving block blk_3813114133944383323 src: /10.250.17.177:44762 dest: /10.250.17.177:50010",
        // 2, 3: one template (sizes differ).
        "Received block blk_-1608999687919862906 of size 91178 from /10.250.10.6",
        "Received block blk_7503483334202473044 of size 67108864 from /10.251.215.16",
        // 4, 5: one template (responder numbers differ).
        "PacketResponder 1 for block blk_38865049064139660 terminating",
        "PacketResponder 2 for block blk_-6952295868487656571 terminating",
        // 6: another kind of event, its own template.
        "Verification succeeded for blk_-4980916519894289629",
    ];
    let texts: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    let (line, empty) = json_batch(&texts);
    let (runtime, mut policy) = component(&bundled::DEDUP_TEMPLATE);
    let (d, _) = policy.decide(&runtime, &batch(InputFormat::Json, &line, &empty)).unwrap();
    let key = |i: usize| d.key.get(i).to_string();
    assert_eq!(key(0), key(1));
    assert_eq!(key(2), key(3));
    assert_eq!(key(4), key(5));
    let distinct: BTreeSet<String> = (0..7).map(key).collect();
    assert_eq!(distinct.len(), 4, "{distinct:#?}");
    assert_eq!(key(0), "Receiving block BLOCK_ID src: /IP_ADDR:PORT dest: /IP_ADDR:PORT");
    // The exact policy keeps them all apart.
    let (runtime, mut exact) = component(&bundled::DEDUP_EXACT);
    let (d, _) = exact.decide(&runtime, &batch(InputFormat::Json, &line, &empty)).unwrap();
    assert_eq!((0..7).map(|i| d.key.get(i).to_string()).collect::<BTreeSet<_>>().len(), 7);
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
#[ignore = "services: needs the all-MiniLM-L6-v2 weights and Python (scripts/test.sh runs it)"]
fn in_process_model_reproduces_sentence_transformers_and_the_service_and_int8_stays_close() {
    let mut local = MiniLm::load(&model_dir(), Precision::Fp32).unwrap();
    let v = local.embed(&["This is an example sentence"]).unwrap();
    assert_eq!(v[0].len(), 384);
    for (got, want) in v[0].iter().zip([0.0676569, 0.0634959, 0.0487131, 0.0793050]) {
        assert!((got - want).abs() < 1e-4, "{:?}", &v[0][..4]);
    }
    let norm: f32 = v[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);

    let server = EmbedServer::start();
    let mut remote = HttpEmbedder::new(HttpSettings::new(&server.url())).unwrap();
    let texts = texts(&sample_lines()[..40]);
    let mut refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    refs.push("Error 0xDEADBEEF at 1695810645123 from 10.0.0.1");
    let a = local.embed(&refs).unwrap();
    let b = remote.embed(&refs).unwrap();
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let c = cosine(x, y);
        assert!(c >= 0.999, "text {i} {:?}: cosine {c}", refs[i]);
    }

    // int8: each vector within cosine 0.99 of fp32's (issue 18's bound), and not equal to it.
    let mut int8 = MiniLm::load(&model_dir(), Precision::Int8).unwrap();
    assert!(int8.describe().contains("int8"), "{}", int8.describe());
    let q = int8.embed(&refs).unwrap();
    assert_ne!(q, a);
    for (i, (x, y)) in a.iter().zip(&q).enumerate() {
        let c = cosine(x, y);
        assert!(c >= 0.99, "int8, text {i} {:?}: cosine {c}", refs[i]);
    }
}

/// Runs `sg-host dedup`; returns the summary line.
pub(crate) fn dedup(args: &[&str], dir: &Path) -> String {
    let out = sg_host()
        .arg("dedup")
        .args(args)
        .arg("--store")
        .arg(dir.join("store"))
        .arg("--dead-letters")
        .arg(dir.join("dead.jsonl"))
        .env("SG_MODEL_DIR", model_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sg-host dedup {args:?} failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// `N word` from the summary line.
pub(crate) fn count(summary: &str, word: &str) -> u64 {
    let at = summary.find(&format!(" {word}")).unwrap_or_else(|| panic!("no {word:?} in {summary}"));
    summary[..at].rsplit([' ', '(']).next().unwrap().parse().unwrap()
}

/// Stops a `dedup --follow` child with SIGINT and returns its summary (stdout); it must exit
/// cleanly (else the assertion shows its log, written to `stderr`).
fn stop_follower(child: std::process::Child, stderr: &Path) -> String {
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", std::fs::read_to_string(stderr).unwrap());
    String::from_utf8(out.stdout).unwrap()
}

/// Every point of the embedded store of a test directory: id → payload.
fn stored(dir: &Path) -> BTreeMap<u64, serde_json::Map<String, Value>> {
    stored_in(&dir.join("store"))
}

/// Every point of the embedded store in `store`: id → payload.
pub(crate) fn stored_in(store: &Path) -> BTreeMap<u64, serde_json::Map<String, Value>> {
    let shard = EdgeShard::load(&store.join("logs_embeddings"), None).unwrap();
    let n = shard.count(qdrant_edge::CountRequest::new()).unwrap();
    let request = qdrant_edge::ScrollRequest {
        limit: Some(n + 1),
        with_payload: Some(WithPayloadInterface::Bool(true)),
        ..qdrant_edge::ScrollRequest::new()
    };
    let (records, _) = shard.scroll(request).unwrap();
    records
        .into_iter()
        .map(|r| {
            let PointId::NumId(id) = r.id else { panic!("uuid id") };
            (id, r.payload.unwrap().0)
        })
        .collect()
}

#[test]
#[ignore = "services: needs the all-MiniLM-L6-v2 weights and Python (scripts/test.sh runs it)"]
fn exact_policy_embeds_each_distinct_line_once_and_a_restart_embeds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture(HDFS_SAMPLE);
    let input = input.to_str().unwrap();
    let lines = sample_lines();
    let distinct: BTreeSet<String> = texts(&lines).into_iter().collect();
    let first = dedup(&["--policy", "builtin:exact", "--input", input, "-q"], dir.path());
    assert_eq!(count(&first, "records in"), 10_000, "{first}");
    assert_eq!(count(&first, "embedded"), distinct.len() as u64, "{first}");
    assert_eq!(count(&first, "inserted"), distinct.len() as u64, "{first}");
    assert_eq!(count(&first, "duplicates skipped"), 10_000 - distinct.len() as u64, "{first}");
    assert_eq!(count(&first, "points stored"), distinct.len() as u64, "{first}");

    // A new process on the same store: everything is known, nothing embedded.
    let second = dedup(&["--policy", "builtin:exact", "--input", input, "-q"], dir.path());
    assert_eq!(count(&second, "embedded"), 0, "{second}");
    assert_eq!(count(&second, "inserted"), 0, "{second}");
    assert_eq!(count(&second, "duplicates skipped"), 10_000, "{second}");

    // Ids are the documented hash of the line; payloads carry the fields, label and lineage.
    let points = stored(dir.path());
    let want: BTreeSet<u64> = distinct.iter().map(|t| point_id(t)).collect();
    assert_eq!(points.keys().copied().collect::<BTreeSet<_>>(), want);
    let first_line: Value = serde_json::from_str(&lines[0]).unwrap();
    let p = &points[&point_id(first_line["text"].as_str().unwrap())];
    assert_eq!(p["text"], first_line["text"]);
    assert_eq!(p["timestamp"], first_line["timestamp"]);
    assert_eq!(p["source"], first_line["source"]);
    assert_eq!(p["label"], first_line["label"]);
    assert_eq!(p["policy"], format!("exact@{}", env!("CARGO_PKG_VERSION")));
    assert_eq!(p["contract"], "streamguard:dedup@1.0.0");
    assert_eq!(p["policy_digest"].as_str().unwrap().len(), 64);
    let anomalies = points.values().filter(|p| p["label"] == 1).count();
    assert!(anomalies > 0, "labels kept");
}

#[test]
#[ignore = "services: needs the all-MiniLM-L6-v2 weights and Python (scripts/test.sh runs it)"]
fn template_policy_stores_fewer_points_through_the_embedding_service() {
    let dir = tempfile::tempdir().unwrap();
    let server = EmbedServer::start();
    let input = fixture(HDFS_SAMPLE);
    let args = ["--policy", "builtin:template", "--input", input.to_str().unwrap(), "--embedder", &server.url(), "-q"];
    let first = dedup(&args, dir.path());
    let templates: BTreeSet<String> = texts(&sample_lines()).iter().map(|t| normalize::template(t)).collect();
    assert!(templates.len() < 100, "{} templates", templates.len());
    assert_eq!(count(&first, "inserted"), templates.len() as u64, "{first}");
    assert_eq!(count(&first, "embedded"), templates.len() as u64, "{first}");
    assert_eq!(server.call("GET", "/stats", "")["texts"], templates.len() as u64, "each template sent once");
    let points = stored(dir.path());
    let want: BTreeSet<u64> = templates.iter().map(|t| point_id(t)).collect();
    assert_eq!(points.keys().copied().collect::<BTreeSet<_>>(), want);

    let second = dedup(&args, dir.path());
    assert_eq!(count(&second, "embedded"), 0, "{second}");
    assert_eq!(server.call("GET", "/stats", "")["texts"], templates.len() as u64, "nothing sent again");
}

#[test]
#[ignore = "services: needs the all-MiniLM-L6-v2 weights and Python (scripts/test.sh runs it)"]
fn embedder_failures_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = EmbedServer::start();
    // The next requests: two 503s, one that outlasts the client's timeout, one with 383-d
    // vectors, one with a vector missing.
    server.call("POST", "/control", r#"{"fail": 2, "stall": 1, "stall_seconds": 4, "wrong_size": 1, "wrong_count": 1}"#);
    let lines = sample_lines();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, lines[..400].join("\n")).unwrap();
    let args = [
        "--policy", "builtin:template", "--input", input.to_str().unwrap(), "--embedder", &server.url(),
        "--embed-batch", "4", "--embed-timeout", "2s", "--embed-concurrency", "1",
    ];
    let out = sg_host()
        .arg("dedup")
        .args(args)
        .arg("--store")
        .arg(dir.path().join("store"))
        .arg("--dead-letters")
        .arg(dir.path().join("dead.jsonl"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for reason in ["HTTP 503", "timed out", "wrong vector size", "wrong vector count"] {
        assert!(stderr.contains(reason), "no {reason:?} in the log: {stderr}");
    }
    let templates: BTreeSet<String> = texts(&lines[..400]).iter().map(|t| normalize::template(t)).collect();
    assert_eq!(stored(dir.path()).len(), templates.len());
}

#[test]
#[ignore = "services: needs the all-MiniLM-L6-v2 weights (scripts/test.sh runs it)"]
fn malformed_messages_are_dead_lettered_and_message_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let lines = [
        r#"{"text": "Verification succeeded for blk_1", "label": 0}"#,
        r#"{"message": "Verification succeeded for blk_2", "label": null}"#,
        r#"{"text": "half"#,
        r#"{"label": 1}"#,
        r#"{"text": 5}"#,
        r#"{"text": "ok blk_3", "label": "yes"}"#,
        r#"{"text": "   "}"#,
    ];
    std::fs::write(&input, lines.join("\n")).unwrap();
    let server = EmbedServer::start();
    let summary = dedup(&["--policy", "builtin:exact", "--input", input.to_str().unwrap(), "--embedder", &server.url()], dir.path());
    assert_eq!(count(&summary, "inserted"), 2, "{summary}");
    assert_eq!(count(&summary, "dead-lettered"), 5, "{summary}");
    let dead: Vec<Value> = std::fs::read_to_string(dir.path().join("dead.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines_of: Vec<u64> = dead.iter().map(|d| d["line"].as_u64().unwrap()).collect();
    assert_eq!(lines_of, [3, 4, 5, 6, 7]);
    assert!(dead[1]["reason"].as_str().unwrap().contains("no `text` or `message`"), "{dead:?}");
    assert!(dead.iter().all(|d| d["stage"] == "decode"));
    let points = stored(dir.path());
    assert!(points.contains_key(&point_id("Verification succeeded for blk_2")), "a `message` record is stored");
}

#[test]
#[ignore = "services: needs the all-MiniLM-L6-v2 weights (scripts/test.sh runs it)"]
fn raw_hdfs_lines_are_filtered_and_levelled_by_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("HDFS.log");
    let lines = [
        "081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_-1608999687919862906 src: /10.250.19.102:54106 dest: /10.250.19.102:50010",
        "081109 203518 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.allocateBlock: /mnt/hadoop/mapred/system/job_200811092030_0001/job.jar. blk_-1608999687919862906",
        "081109 203519 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_-1608999687919862906 src: /10.250.10.6:40524 dest: /10.250.10.6:50010",
        "081109 203520 142 WARN dfs.DataNode$DataXceiver: 10.251.215.16:50010:Got exception while serving blk_-1608999687919862906 to /10.251.215.16:",
        "081109 203521 19 INFO dfs.FSDataset: Deleting block file /mnt/hadoop/dfs/data/current/subdir1",
        "081109 203522 20 INFO dfs.DataNode: no block mentioned here",
    ];
    std::fs::write(&raw, lines.join("\n")).unwrap();
    let server = EmbedServer::start();
    let summary = dedup(&["--policy", "builtin:template", "--raw-hdfs", raw.to_str().unwrap(), "--embedder", &server.url()], dir.path());
    assert_eq!(count(&summary, "filtered"), 2, "{summary}");
    assert_eq!(count(&summary, "inserted"), 3, "{summary}");
    assert_eq!(count(&summary, "duplicates skipped"), 1, "{summary}");
    let points = stored(dir.path());
    let by_level: BTreeMap<String, usize> = points.values().fold(BTreeMap::new(), |mut m, p| {
        *m.entry(p["log_level"].as_str().unwrap().to_string()).or_default() += 1;
        m
    });
    assert_eq!(by_level, BTreeMap::from([("INFO".to_string(), 2), ("WARN".to_string(), 1)]));
    let receiving = &points[&point_id("Receiving block BLOCK_ID src: /IP_ADDR:PORT dest: /IP_ADDR:PORT")];
    assert_eq!(receiving["original_text"], lines[0]);
    assert_eq!(receiving["timestamp"], "2008-11-09T20:35:18");
    assert_eq!(receiving["node_type"], "datanode");
    assert_eq!(receiving["source"], "hdfs_datanode");
}

#[test]
#[ignore = "services: needs the nisshi Kafka broker and the all-MiniLM-L6-v2 weights (scripts/test.sh runs it)"]
fn a_kafka_topic_of_logs_is_deduplicated_and_committed_batch_by_batch() {
    let broker = crate::support::Broker::start();
    let server = EmbedServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lines = sample_lines();
    produce(&broker.address, "logs", "none", &lines[..3000], dir.path());
    let source = format!("kafka://{}/logs", broker.address);
    let args = ["--source", &source, "--policy", "builtin:template", "--embedder", &server.url(), "--batch-records", "1000", "-q"];
    let first = dedup(&args, dir.path());
    let templates = |ls: &[String]| texts(ls).iter().map(|t| normalize::template(t)).collect::<BTreeSet<_>>();
    assert_eq!(count(&first, "records in"), 3000, "{first}");
    assert_eq!(count(&first, "inserted"), templates(&lines[..3000]).len() as u64, "{first}");

    // More lines and a malformed one: the next run reads only them (offsets were committed).
    let mut more = lines[3000..3500].to_vec();
    more.push("{not json".into());
    produce(&broker.address, "logs", "none", &more, dir.path());
    let second = dedup(&args, dir.path());
    assert_eq!(count(&second, "records in"), 501, "{second}");
    assert_eq!(count(&second, "dead-lettered"), 1, "{second}");
    let all = templates(&lines[..3500]);
    assert_eq!(count(&second, "inserted"), (all.len() - templates(&lines[..3000]).len()) as u64, "{second}");
    assert_eq!(stored(dir.path()).len(), all.len());
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
    assert!(dead.contains("\"partition\"") && dead.contains("{not json"), "{dead}");
}

#[test]
#[ignore = "services: needs the nisshi Kafka broker and the all-MiniLM-L6-v2 weights and Python (scripts/test.sh runs it)"]
fn the_policy_of_a_followed_topic_is_upgraded_live() {
    use crate::support::{counter, free_port, http, wait_for};
    const TOKEN: &str = "dedup-token";
    let broker = crate::support::Broker::start();
    let server = EmbedServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lines = sample_lines();
    produce(&broker.address, "live", "none", &lines[..1000], dir.path());
    let admin = format!("127.0.0.1:{}", free_port());
    let child = sg_host()
        .args(["dedup", "--follow", "--source", &format!("kafka://{}/live", broker.address), "--policy", "builtin:template"])
        .args(["--embedder", &server.url(), "--batch-records", "500", "--batch-wait", "200ms", "--admin", &admin, "-q"])
        .arg("--store")
        .arg(dir.path().join("store"))
        .arg("--dead-letters")
        .arg(dir.path().join("dead.jsonl"))
        .arg("--admin-uploads")
        .arg(dir.path().join("uploads"))
        .env("SG_ADMIN_TOKEN", TOKEN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    wait_for("the admin API", 30, || std::net::TcpStream::connect(&admin).is_ok());
    let records_of = |label: &str| counter(&http(&admin, "GET", "/metrics", None, b"").1, "records", label);
    let template = format!("template@{}", env!("CARGO_PKG_VERSION"));
    let exact = format!("exact@{}", env!("CARGO_PKG_VERSION"));
    wait_for("the first batches", 60, || records_of(&template) >= 1000);

    let post = |path: &str, bytes: &[u8]| {
        let sha = sg_core::bundle::sha256_hex(bytes);
        http(&admin, "POST", &format!("{path}?sha256={sha}"), Some(TOKEN), bytes)
    };
    // Another kind of component, and a role a dedup stream does not have: refused.
    let (code, body) = post("/components/policy", &std::fs::read(bundled::STREAMGUARD.built_at).unwrap());
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("streamguard:dedup"), "{body}");
    assert_eq!(post("/components/features", b"x").0, 404);
    let (code, body) = post("/components/policy", &std::fs::read(bundled::DEDUP_EXACT.built_at).unwrap());
    assert_eq!((code, body.contains(&exact)), (200, true), "{body}");
    produce(&broker.address, "live", "none", &lines[1000..1300], dir.path());
    wait_for("the batch under the new policy", 60, || records_of(&exact) >= 300);
    let (code, body) = http(&admin, "POST", "/rollback", Some(TOKEN), b"");
    assert_eq!((code, body.contains(&template)), (200, true), "{body}");
    let status: Value = serde_json::from_str(&http(&admin, "GET", "/components", None, b"").1).unwrap();
    let summary = stop_follower(child, &dir.path().join("stderr"));

    // Every point names the policy that decided it: the first 1,000 lines by template, the
    // next 300 exactly (one point per distinct line not already stored).
    let points = stored(dir.path());
    let by_policy = |label: &str| points.values().filter(|p| p["policy"] == label).count();
    let first = texts(&lines[..1000]).iter().map(|t| normalize::template(t)).collect::<BTreeSet<_>>();
    let second: BTreeSet<String> = texts(&lines[1000..1300]).into_iter().collect();
    assert_eq!(by_policy(&template), first.len());
    assert_eq!(by_policy(&exact), second.len());
    for p in points.values().filter(|p| p["policy"] == exact.as_str()) {
        assert_eq!(p["dedup_key"], p["text"], "exact keys are the line");
    }
    let outcomes: Vec<&str> = status["policy"]["history"].as_array().unwrap().iter().map(|h| h["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["refused", "switched", "switched"], "{status:#}");
    assert_eq!(status["policy"]["current"]["label"], template.as_str());
    assert_eq!(count(&summary, "records in"), 1300, "{summary}");
}

/// Two `dedup --follow` processes in one consumer group share the topic's partitions: both take
/// some, and nothing is lost — every distinct line is a point in one of their stores. (What a
/// member read but had not stored when partitions moved is re-read by the new owner; a batch
/// stored while a rebalance refused its commit is read again too, and lands on the same ids.)
#[test]
#[ignore = "services: needs the all-MiniLM-L6-v2 weights and Python (scripts/test.sh runs it)"]
fn two_followers_in_one_group_share_the_partitions() {
    use crate::support::{counter, free_port, http, mock_cluster, produce_round_robin, wait_for};
    let (_cluster, brokers) = mock_cluster("shared-logs", 4);
    let server = EmbedServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lines = sample_lines();
    let follower = |name: &str| {
        let admin = format!("127.0.0.1:{}", free_port());
        let child = sg_host()
            .args(["dedup", "-q", "--follow", "--source", &format!("kafka://{brokers}/shared-logs"), "--group", "dedupers"])
            .args(["--policy", "builtin:exact", "--embedder", &server.url(), "--batch-records", "100", "--batch-wait", "200ms"])
            .args(["-X", "session.timeout.ms=6000", "--admin", &admin, "--store"])
            .arg(dir.path().join(name))
            .arg("--dead-letters")
            .arg(dir.path().join(format!("{name}.dead.jsonl")))
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join(format!("{name}.stderr"))).unwrap())
            .spawn()
            .unwrap();
        (child, admin)
    };
    let (a, admin_a) = follower("a");
    let (b, admin_b) = follower("b");
    let records = |admin: &str| counter(&http(admin, "GET", "/metrics", None, b"").1, "records", &format!("exact@{}", env!("CARGO_PKG_VERSION")));
    wait_for("both admin APIs", 30, || std::net::TcpStream::connect(&admin_a).is_ok() && std::net::TcpStream::connect(&admin_b).is_ok());
    // Both in the group, the partitions split between them, before the records arrive: each
    // member's latest assignment (from its log) is its own part of the four.
    let assignment = |name: &str| -> BTreeSet<i32> {
        let log = std::fs::read_to_string(dir.path().join(format!("{name}.stderr"))).unwrap_or_default();
        let Some(line) = log.lines().rfind(|l| l.contains("assigned partitions [")) else { return BTreeSet::new() };
        let list = line.split("assigned partitions [").nth(1).unwrap().split(']').next().unwrap();
        list.split(", ").filter(|p| !p.is_empty()).map(|p| p.parse().unwrap()).collect()
    };
    wait_for("the partitions split between both members", 60, || {
        let (pa, pb) = (assignment("a"), assignment("b"));
        !pa.is_empty() && !pb.is_empty() && pa.is_disjoint(&pb) && pa.len() + pb.len() == 4
    });
    produce_round_robin(&brokers, "shared-logs", lines[..1200].iter().map(String::as_str), 4);
    wait_for("every record", 180, || records(&admin_a) + records(&admin_b) >= 1200);
    let stop = |child, name: &str| count(&stop_follower(child, &dir.path().join(format!("{name}.stderr"))), "records in");
    let (in_a, in_b) = (stop(a, "a"), stop(b, "b"));
    assert!(in_a + in_b >= 1200, "every record processed: a {in_a}, b {in_b}");
    assert!(in_a > 0 && in_b > 0, "both members took partitions: a {in_a}, b {in_b}");
    assert!(in_a < 1200 && in_b < 1200, "neither read the whole topic: a {in_a}, b {in_b}");
    let points: BTreeSet<u64> = stored_in(&dir.path().join("a")).into_keys().chain(stored_in(&dir.path().join("b")).into_keys()).collect();
    let expected: BTreeSet<u64> = texts(&lines[..1200]).iter().map(|t| point_id(t)).collect();
    assert_eq!(points, expected, "every distinct line stored, under its stable id");
}
