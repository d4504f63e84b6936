//! The log store served: `POST /api/logs/search` and `/api/logs/score` over a store `dedup`
//! built (scoring measured on a held-out split of the labelled HDFS sample), their errors,
//! `sg-host store …`, and a follower serving the store it writes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};

use crate::serve::Server;
use crate::support::{HDFS_SAMPLE, fixture_lines, model_dir, python, sg_host};

/// Runs a Python snippet with `args`; its stdout as JSON.
fn python_c(script: &str, args: &[&str]) -> Value {
    let out = python().arg("-c").arg(script).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The labelled sample split by id: every fifth line held out.
fn split() -> (Vec<String>, Vec<(String, i64)>) {
    let mut train = Vec::new();
    let mut held_out = Vec::new();
    for line in fixture_lines(HDFS_SAMPLE) {
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["id"].as_i64().unwrap() % 5 == 0 {
            held_out.push((v["text"].as_str().unwrap().to_string(), v["label"].as_i64().unwrap()));
        } else {
            train.push(line);
        }
    }
    (train, held_out)
}

/// `sg-host dedup` of `lines` into `store`.
fn build_store(lines: &[String], dir: &Path, store: &Path) {
    let input = dir.join("train.jsonl");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let o = sg_host()
        .args(["dedup", "-q", "--input"])
        .arg(&input)
        .arg("--store")
        .arg(store)
        .arg("--dead-letters")
        .arg(dir.join("dead.jsonl"))
        .env("SG_MODEL_DIR", model_dir())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `sg-host store ARGS --store STORE`: (success, stdout, stderr).
fn store_cmd(store: &Path, args: &[&str]) -> (bool, String, String) {
    let o = sg_host().arg("store").args(args).arg("--store").arg(store).env("SG_MODEL_DIR", model_dir()).output().unwrap();
    (o.status.success(), String::from_utf8(o.stdout).unwrap(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// A request declaring a body of `length` bytes, of which `body` is sent (a server refuses a
/// declared length over its limit before reading; sending no more keeps the close clean).
fn raw(address: &str, head: &str, length: usize, body: &[u8]) -> u16 {
    let mut s = std::net::TcpStream::connect(address).unwrap();
    write!(s, "{head}Content-Length: {length}\r\nConnection: close\r\n\r\n").unwrap();
    s.write_all(body).unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    reply.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no status in {reply:?}"))
}

#[test]
#[ignore = "services: needs the all-MiniLM-L6-v2 weights and Python (scripts/test.sh runs it)"]
fn search_finds_stored_near_duplicates_first_and_scoring_is_measured_on_a_held_out_split() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (train, held_out) = split();
    build_store(&train, dir.path(), &store);

    // The stored keys (read before the server opens the store: one process at a time).
    let (ok, exported, err) = store_cmd(&store, &["export", "--out", "-"]);
    assert!(ok, "{err}");
    let stored: BTreeMap<String, Value> =
        exported.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).map(|p| (p["dedup_key"].as_str().unwrap().to_string(), p)).collect();
    assert!(!stored.is_empty());

    let server = Server::with(&[std::ffi::OsStr::new("--store"), store.as_os_str(), "--model-dir".as_ref(), model_dir().as_os_str()]);
    // While it serves, no other process opens the store.
    let (ok, _, err) = store_cmd(&store, &["count"]);
    assert!(!ok && err.contains("open in another process"), "{err}");
    let stats = server.json("/api/logs");
    assert_eq!(stats["points"], stored.len() as u64);

    // Scoring: every held-out line, its key, whether seen, the vote; measured against the labels.
    let texts: Vec<&str> = held_out.iter().map(|(t, _)| t.as_str()).collect();
    let started = Instant::now();
    let (status, answer) = server.post("/api/logs/score", &json!({ "texts": texts }));
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(status, 200, "{answer}");
    let scores = answer["scores"].as_array().unwrap();
    assert_eq!(scores.len(), held_out.len());
    let (mut tp, mut fp, mut fn_, mut tn) = (0u32, 0u32, 0u32, 0u32);
    for (s, (_, label)) in scores.iter().zip(&held_out) {
        let key = s["key"].as_str().unwrap();
        assert_eq!(s["seen"], stored.contains_key(key), "{s}");
        if s["seen"] == true {
            // A stored key finds its own point first, at similarity 1.
            assert_eq!(s["neighbours"][0]["payload"]["dedup_key"], key, "{s}");
            assert!(s["neighbours"][0]["similarity"].as_f64().unwrap() > 0.999, "{s}");
        }
        let sims: Vec<f64> = s["neighbours"].as_array().unwrap().iter().map(|n| n["similarity"].as_f64().unwrap()).collect();
        assert!(sims.windows(2).all(|w| w[0] >= w[1]), "most similar first: {sims:?}");
        match (s["is_anomaly"].as_bool().unwrap(), *label == 1) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => {
                fn_ += 1;
                if fn_ <= 5 {
                    eprintln!("missed: seen {} score {} nearest {} {}", s["seen"], s["anomaly_score"], s["neighbours"][0]["similarity"], s["neighbours"][0]["payload"]["text"]);
                }
            }
            (false, false) => tn += 1,
        }
    }
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / (tp + fn_).max(1) as f64;
    let f1 = 2.0 * precision * recall / (precision + recall).max(1e-9);
    let accuracy = (tp + tn) as f64 / held_out.len() as f64;
    let novel = scores.iter().filter(|s| s["novel"] == true).count();
    eprintln!(
        "held-out scoring: {} lines ({} anomalous), {novel} novel: accuracy {accuracy:.4}, precision {precision:.4}, recall {recall:.4}, F1 {f1:.4}; {:.2} ms per line ({seconds:.2} s)",
        held_out.len(),
        tp + fn_,
        seconds * 1000.0 / held_out.len() as f64
    );
    assert!(f1 >= 0.98 && accuracy >= 0.99, "F1 {f1}, accuracy {accuracy} (the reference service: F1 0.78)");

    // Unseen keys: a variant of a normal template is voted normal by its neighbours; a line
    // like nothing stored is novel, unscored and flagged.
    let (status, answer) = server.post(
        "/api/logs/score",
        &json!({"texts": ["Receiving block blk_77 src: /10.1.2.3:4000 dest: /10.1.2.3:50010 after a retry", "kernel: Out of memory: Kill process 4242 (java) score 900 or sacrifice child"]}),
    );
    assert_eq!(status, 200, "{answer}");
    let (variant, alien) = (&answer["scores"][0], &answer["scores"][1]);
    assert_eq!((variant["seen"].as_bool(), variant["novel"].as_bool(), variant["is_anomaly"].as_bool()), (Some(false), Some(false), Some(false)), "{variant}");
    assert!(variant["anomaly_score"].as_f64().unwrap() < 0.5, "{variant}");
    assert_eq!((alien["seen"].as_bool(), alien["novel"].as_bool(), alien["is_anomaly"].as_bool()), (Some(false), Some(true), Some(true)), "{alien}");
    assert!(alien["anomaly_score"].is_null(), "{alien}");

    // Search: a held-out line's stored near-duplicates (its template) come first.
    let (query, _) = held_out.iter().find(|(t, _)| t.starts_with("Receiving block")).unwrap();
    let (status, found) = server.post("/api/logs/search", &json!({ "text": query, "k": 5 }));
    assert_eq!(status, 200, "{found}");
    let hits = found["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 5.min(stored.len()));
    assert!(hits[0]["payload"]["text"].as_str().unwrap().starts_with("Receiving block"), "{}", hits[0]);
    assert!(hits[0]["similarity"].as_f64().unwrap() > 0.999);
    for field in ["text", "log_level", "node_type", "label", "policy", "dedup_key"] {
        assert!(hits[0]["payload"].get(field).is_some(), "{field} in {}", hits[0]);
    }
    // A payload filter: only anomalous lines.
    let (status, found) = server.post("/api/logs/search", &json!({ "text": query, "k": 3, "filter": {"label": 1} }));
    assert_eq!(status, 200, "{found}");
    assert!(found["hits"].as_array().unwrap().iter().all(|h| h["payload"]["label"] == 1), "{found}");

    // Bad requests: a JSON error naming the problem, never a crash.
    let bad = [
        (json!({"text": "x", "k": 0}), 400, "k: 1 to"),
        (json!({"txt": "x"}), 422, "unknown field"),
        (json!({"text": "x", "filter": {"label": [1]}}), 400, "filter"),
        (json!({"text": "x", "filter": {"a.b": 1}}), 400, "filter"),
    ];
    for (body, code, says) in bad {
        let (status, answer) = server.post("/api/logs/search", &body);
        assert_eq!(status, code, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{body}: {answer}");
    }
    let (status, answer) = server.post("/api/logs/score", &json!({"texts": []}));
    assert_eq!((status, answer["error"].as_str().unwrap().contains("texts")), (400, true), "{answer}");
    let post = |head: &str, length: usize, body: &[u8]| raw(&server.address, &format!("POST /api/logs/search HTTP/1.1\r\nHost: x\r\n{head}"), length, body);
    let json = "Content-Type: application/json\r\n";
    assert_eq!(post(json, 9, b"{\"text\": "), 400, "malformed JSON");
    assert_eq!(post("", 0, b""), 415, "not declared JSON");
    assert_eq!(post(json, 5 << 20, b""), 413, "a body over the limit, refused before it is sent");
    let (status, _) = server.get("/api/logs/search", &[]);
    assert_eq!(status, 405);

    // The dashboard's search box, in headless Chromium: `#search=LINE` runs the search.
    let encoded: String = query.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect();
    let page = crate::serve::rendered(&format!("http://{}/#search={encoded}", server.address));
    assert!(page.contains("data-searched=\"yes\""), "the search ran: {page}");
    let first_hit = page.split("id=\"logs-hits\"").nth(1).unwrap();
    assert!(first_hit.contains(">1.0000<") && first_hit.contains("Receiving block"), "{first_hit}");
    assert_eq!(server.get("/healthz", &[]).0, 200, "still up");
}

#[test]
#[ignore = "services: needs the all-MiniLM-L6-v2 weights and Python (scripts/test.sh runs it)"]
fn store_commands_count_show_search_delete_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let lines = fixture_lines(HDFS_SAMPLE);
    build_store(&lines, dir.path(), &store);
    let run = |args: &[&str]| {
        let (ok, out, err) = store_cmd(&store, args);
        assert!(ok, "store {args:?}: {err}");
        out
    };
    let total: u64 = run(&["count"]).trim().parse().unwrap();
    let anomalous: u64 = run(&["count", "--filter", "label=1"]).trim().parse().unwrap();
    assert!(total > 0 && anomalous > 0 && anomalous < total, "{anomalous} of {total}");

    // Export as Parquet, read by pyarrow: every point, its payload columns and vectors.
    let parquet = dir.path().join("points.parquet");
    run(&["export", "--vectors", "--out", parquet.to_str().unwrap()]);
    let table = python_c(
        "import json, sys, pyarrow.parquet as pq\n\
         t = pq.read_table(sys.argv[1])\n\
         print(json.dumps({'rows': t.num_rows, 'columns': t.column_names, 'ids': sorted(t.column('id').to_pylist()),\n\
                           'dims': sorted(set(len(v) for v in t.column('vector').to_pylist())),\n\
                           'anomalous': sum(1 for l in t.column('label').to_pylist() if l == 1)}))",
        &[parquet.to_str().unwrap()],
    );
    assert_eq!(table["rows"], total);
    assert_eq!(table["dims"], json!([384]));
    assert_eq!(table["anomalous"], anomalous);
    for c in ["id", "text", "dedup_key", "label", "policy", "vector"] {
        assert!(table["columns"].as_array().unwrap().contains(&json!(c)), "{c} in {}", table["columns"]);
    }
    // JSON lines carry the same ids.
    let jsonl: BTreeSet<u64> = run(&["export", "--out", "-"]).lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_u64().unwrap()).collect();
    let parquet_ids: BTreeSet<u64> = table["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(jsonl, parquet_ids);

    let shown: Vec<Value> = run(&["show", "--limit", "3", "--filter", "label=1"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(shown.len(), 3.min(anomalous as usize));
    assert!(shown.iter().all(|p| p["payload"]["label"] == 1), "{shown:?}");

    let hits: Vec<Value> = run(&["search", "Receiving block blk_1 src: /10.0.0.1:1 dest: /10.0.0.1:50010", "-k", "2"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(hits.len(), 2);
    assert!(hits[0]["payload"]["text"].as_str().unwrap().starts_with("Receiving block"), "{:?}", hits[0]);

    // Deletion needs a filter (or --all), and removes exactly the matching points, durably.
    let (ok, _, err) = store_cmd(&store, &["delete"]);
    assert!(!ok && err.contains("--all"), "{err}");
    assert_eq!(run(&["delete", "--filter", "label=1"]).trim(), format!("{anomalous} points deleted"));
    assert_eq!(run(&["count", "--filter", "label=1"]).trim(), "0");
    assert_eq!(run(&["count"]).trim(), (total - anomalous).to_string());
    let (ok, _, err) = store_cmd(&store, &["count", "--filter", "label"]);
    assert!(!ok && err.contains("FIELD=VALUE"), "{err}");
}

#[test]
#[ignore = "services: needs the nisshi Kafka broker and the all-MiniLM-L6-v2 weights (scripts/test.sh runs it)"]
fn a_follower_serves_search_over_the_store_it_writes() {
    use crate::support::{free_port, http, sigint, wait_for};
    let broker = crate::support::Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let lines = fixture_lines(HDFS_SAMPLE);
    crate::support::produce(&broker.address, "served", "none", &lines[..2000], dir.path());
    let address = format!("127.0.0.1:{}", free_port());
    let stderr = dir.path().join("follower.log");
    let child = sg_host()
        .args(["dedup", "--follow", "-q", "--source", &format!("kafka://{}/served", broker.address), "--serve", &address])
        .args(["-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000"])
        .arg("--store")
        .arg(dir.path().join("store"))
        .arg("--dead-letters")
        .arg(dir.path().join("dead.jsonl"))
        .env("SG_MODEL_DIR", model_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    wait_for("the follower's store API", 60, || std::net::TcpStream::connect(&address).is_ok());
    // The points appear in the served store as the follower writes them.
    let templates: BTreeSet<String> = lines[..2000]
        .iter()
        .map(|l| sg_dedup_core::normalize::template(serde_json::from_str::<Value>(l).unwrap()["text"].as_str().unwrap()))
        .collect();
    let points = || serde_json::from_str::<Value>(&http(&address, "GET", "/api/logs", None, b"").1).unwrap()["points"].as_u64().unwrap();
    wait_for(format_args!("{} points served", templates.len()), 180, || points() == templates.len() as u64);
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    let body = json!({"text": first["text"], "k": 1}).to_string();
    let mut s = std::net::TcpStream::connect(&address).unwrap();
    write!(s, "POST /api/logs/search HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200") && reply.contains("\"similarity\""), "{reply}");
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", std::fs::read_to_string(&stderr).unwrap());
}
