//! `sg-host serve` over real outputs: what each route answers, checked against the Parquet
//! files read independently (and the Arrow IPC stream by pyarrow).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::findings::{generated, read_scored};
use crate::support::{free_port, http_request, python, sg_host, wait_for};

/// A running `sg-host serve`, stopped when dropped.
pub struct Server {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

impl Server {
    /// Serves `dirs`; returns once it listens.
    pub fn start(dirs: &[&Path]) -> Server {
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        for d in dirs {
            args.extend(["--data".into(), d.as_os_str().to_owned()]);
        }
        Server::with(&args)
    }

    /// `sg-host serve` with `args`; returns once it listens.
    pub fn with<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Server {
        let address = format!("127.0.0.1:{}", free_port());
        let mut cmd = sg_host();
        cmd.args(["serve", "--listen", &address]).args(args);
        let child = cmd.stdout(std::process::Stdio::null()).spawn().unwrap();
        let server = Server { child, address };
        wait_for("the server", 30, || std::net::TcpStream::connect(&server.address).is_ok());
        server
    }

    /// `GET path` with `headers`: (status, body).
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>) {
        http_request(&self.address, "GET", path, headers, b"")
    }

    /// `POST path` with a JSON body: (status, answer as JSON).
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, reply) = http_request(&self.address, "POST", path, &[("Content-Type", "application/json")], body.to_string().as_bytes());
        (status, serde_json::from_slice(&reply).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&reply).into_owned())))
    }

    /// `GET path` as JSON, expecting 200.
    #[track_caller]
    pub fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path, &[]);
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two bounded runs: 14 users with 2 compromised, 30 users with 3.
fn two_runs(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut outs = Vec::new();
    for (name, n, users, compromised, seed) in [("a", 20_000, 14, 2, 1), ("b", 10_000, 30, 3, 2)] {
        let (input, _) = generated(dir, &format!("{name}.jsonl"), n, users, compromised, seed);
        let out = dir.join(name);
        let o = sg_host().args(["run", "--quiet", "--input"]).arg(&input).arg("--out").arg(&out).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        outs.push(out);
    }
    (outs.remove(0), outs.remove(0))
}

#[test]
fn the_api_answers_runs_anomalies_users_and_training_data_from_the_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_runs(dir.path());
    let server = Server::start(&[&a, &b]);
    let (id_a, id_b) = (a.display().to_string(), b.display().to_string());

    let runs = server.json("/api/runs");
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    for (id, out) in [(&id_a, &a), (&id_b, &b)] {
        let run = runs.iter().find(|r| r["id"] == id.as_str()).unwrap();
        let report: Value = serde_json::from_slice(&std::fs::read(out.join("_anomaly_report.json")).unwrap()).unwrap();
        assert_eq!(run["kind"], "run");
        assert_eq!((&run["users"], &run["anomalies"], &run["alerts"]), (&report["total_users"], &report["anomalous_users"], &report["alerts"]));
        assert_eq!(run["lineage"]["detector"]["model_sha256"], report["lineage"]["detector"]["model_sha256"]);
        assert!(run["period"]["start"].as_i64().unwrap() < run["period"]["end"].as_i64().unwrap());
    }
    // The newest output first (by the event time it covers).
    let starts: Vec<i64> = runs.iter().map(|r| r["period"]["start"].as_i64().unwrap()).collect();
    assert!(starts[0] >= starts[1], "{starts:?}");
    let (newest, oldest) = (runs[0]["id"].as_str().unwrap().to_string(), runs[1]["id"].as_str().unwrap().to_string());

    // Anomalies: every flagged row (is_anomaly or is_alert) of both outputs, and nothing else.
    let expected: BTreeSet<(String, String)> = [(&id_a, &a), (&id_b, &b)]
        .iter()
        .flat_map(|(id, out)| read_scored(out).into_iter().filter(|r| r.is_anomaly || r.is_alert).map(|r| ((*id).clone(), r.user)))
        .collect();
    let all = server.json("/api/anomalies?limit=1000");
    let all = all["anomalies"].as_array().unwrap();
    let got: BTreeSet<(String, String)> = all.iter().map(|x| (x["run"].as_str().unwrap().to_string(), x["user"].as_str().unwrap().to_string())).collect();
    assert_eq!(got, expected);
    assert_eq!(all.len(), expected.len());
    assert_eq!(all[0]["run"], newest.as_str(), "newest output first");
    let newest_scores: Vec<f64> = all.iter().filter(|x| x["run"] == newest.as_str()).map(|x| x["anomaly_score"].as_f64().unwrap()).collect();
    assert!(newest_scores.windows(2).all(|w| w[0] >= w[1]), "highest score first within an output: {newest_scores:?}");
    assert!(all.iter().all(|x| x["explanation"].as_array().is_some_and(|e| e.len() == 5)), "{:?}", all[0]);
    // Filters.
    let user = all[0]["user"].as_str().unwrap().to_string();
    let only = server.json(&format!("/api/anomalies?user={user}"));
    assert!(only["anomalies"].as_array().unwrap().iter().all(|x| x["user"] == user.as_str()));
    let cut = all[all.len() / 2]["anomaly_score"].as_f64().unwrap();
    let high = server.json(&format!("/api/anomalies?min_score={cut}&limit=1000"));
    let high = high["anomalies"].as_array().unwrap();
    assert_eq!(high.len(), all.iter().filter(|x| x["anomaly_score"].as_f64().unwrap() >= cut).count());
    assert_eq!(server.json("/api/anomalies?limit=1")["anomalies"].as_array().unwrap().len(), 1);
    assert_eq!(server.json("/api/anomalies?from=2030-01-01T00:00:00Z")["anomalies"], serde_json::json!([]));
    // Bad requests: 4xx with a JSON error naming the problem.
    for (path, status, says) in [
        ("/api/anomalies?from=soon", 400, "from"),
        ("/api/anomalies?limit=many", 400, "limit"),
        ("/api/training-data?to=later", 400, "to"),
        ("/api/scores?output=nowhere", 404, "nowhere"),
        ("/api/nothing", 404, "no such route"),
    ] {
        let (got, body) = server.get(path, &[]);
        let error: Value = serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {}", String::from_utf8_lossy(&body)));
        assert_eq!(got, status, "{path}: {error}");
        assert!(error["error"].as_str().unwrap().contains(says), "{path}: {error}");
    }

    // The score distribution of one output, with its alert threshold.
    let h = server.json(&format!("/api/scores?output={id_a}"));
    let report: Value = serde_json::from_slice(&std::fs::read(a.join("_anomaly_report.json")).unwrap()).unwrap();
    assert_eq!(h["alert_threshold"], report["alert_threshold"]);
    assert_eq!(h["bins"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum::<u64>(), 14);
    assert_eq!(server.json("/api/scores")["run"], newest.as_str(), "the newest output by default");

    // A user's rows across outputs, oldest first, with the features as written.
    let series = server.json("/api/users/admin");
    let series = series["series"].as_array().unwrap();
    assert_eq!(series.len(), 2, "admin is in both populations");
    assert_eq!(series[0]["run"], oldest.as_str(), "oldest first");
    for entry in series {
        let out = if entry["run"] == id_a.as_str() { &a } else { &b };
        let row = read_scored(out).into_iter().find(|r| r.user == "admin").unwrap();
        assert_eq!(entry["features"]["total_events"].as_f64(), Some(row.values["total_events"]));
        assert_eq!(entry["anomaly_score"].as_f64(), Some(row.anomaly_score));
    }
    assert_eq!(server.get("/api/users/nobody", &[]).0, 404);

    // Training data as JSON lines: every row of both outputs, with its output.
    let (status, body) = server.get("/api/training-data", &[]);
    assert_eq!(status, 200);
    let lines: Vec<Value> = String::from_utf8(body).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 14 + 30);
    assert_eq!(lines.iter().filter(|l| l["output"] == id_a.as_str()).count(), 14);
    assert!(lines.iter().all(|l| l["is_anomaly"].is_boolean() && l["total_events"].is_number()));

    // Every request is counted by route and status.
    let (_, metrics) = server.get("/metrics", &[]);
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(metrics.contains("sg_http_requests_total{route=\"/api/runs\",status=\"200\"} 1"), "{metrics}");
    assert!(metrics.contains("sg_http_requests_total{route=\"/api/users/{user}\",status=\"404\"} 1"), "{metrics}");
    assert!(metrics.contains("sg_http_request_seconds_count{route=\"/api/anomalies\"}"), "{metrics}");
}

#[test]
#[ignore = "services: needs Python with pyarrow (scripts/test.sh runs it)"]
fn training_data_as_an_arrow_stream_opens_in_pyarrow() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_runs(dir.path());
    let server = Server::start(&[&a, &b]);
    let (status, body) = server.get("/api/training-data", &[("Accept", sg_serve::ARROW_STREAM)]);
    assert_eq!(status, 200);
    let file = dir.path().join("rows.arrows");
    std::fs::write(&file, body).unwrap();
    let script = "import json, sys, pyarrow as pa\n\
                  t = pa.ipc.open_stream(open(sys.argv[1], 'rb')).read_all()\n\
                  print(json.dumps({'rows': t.num_rows, 'columns': t.column_names, 'users': sorted(set(t.column('user').to_pylist())), \
                  'outputs': sorted(set(t.column('output').to_pylist())), 'anomalous': sum(t.column('is_anomaly').to_pylist())}))";
    let o = python().args(["-c", script]).arg(&file).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["rows"], 44);
    assert_eq!(v["outputs"], serde_json::json!([a.display().to_string(), b.display().to_string()]));
    let flagged = read_scored(&a).iter().chain(read_scored(&b).iter()).filter(|r| r.is_anomaly).count();
    assert_eq!(v["anomalous"], flagged);
    let columns: Vec<&str> = v["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    for c in ["user", "total_events", "anomaly_score", "is_alert", "explanation", "is_anomaly", "output", "period_start", "period_end"] {
        assert!(columns.contains(&c), "{c} not in {columns:?}");
    }
}

/// The page at `url` after its scripts ran (headless Chromium, as a user's browser renders it).
pub fn rendered(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let o = std::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"])
        .args(["--disable-component-update", "--disable-sync", "--virtual-time-budget=8000", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .expect("chromium (scripts/test.sh installs Debian's package)");
    assert!(o.status.success(), "chromium: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
#[ignore = "services: needs Debian's Chromium (scripts/test.sh installs it)"]
fn the_dashboard_shows_anomalies_with_their_explanations_and_a_user_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    // A user whose name is markup: a burst of events, each from a new address, flags it; the
    // page must show the name as text.
    let hostile = "<img src=x onerror=\"document.title='pwned'\">";
    let (input, _) = generated(dir.path(), "a.jsonl", 10_000, 30, 2, 7);
    let mut lines = std::fs::read_to_string(&input).unwrap();
    for i in 0..300 {
        lines.push_str(&crate::support::event(Some(hostile), 1_767_225_600_000 + i * 5, "auth_attempt", Some(&format!("203.0.{}.{}", i / 200, i % 200)), "failed", 25.0));
        lines.push('\n');
    }
    std::fs::write(&input, lines).unwrap();
    let out = dir.path().join("out");
    let o = sg_host().args(["run", "--quiet", "--input"]).arg(&input).arg("--out").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let flagged: Vec<_> = read_scored(&out).into_iter().filter(|r| r.is_anomaly || r.is_alert).collect();
    assert!(flagged.iter().any(|r| r.user == hostile), "the burst user is flagged");
    let server = Server::start(&[&out]);

    let page = rendered(&format!("http://{}/", server.address));
    assert!(page.contains("data-loaded=\"yes\""), "the page did not load its data: {page}");
    assert!(!page.contains("<img src=\"x\"") && !page.contains("pwned</title>"), "markup in a user name ran: {page}");
    assert!(page.contains("&lt;img src=x onerror="), "the name is shown as text");
    for row in &flagged {
        let escaped = row.user.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
        assert!(page.contains(&format!("data-user=\"{escaped}\"")), "{} is not on the page", row.user);
        // Its first explanation entry, with the typical value beside the row's.
        assert!(page.contains(&format!("<span class=\"feature\">{}</span>", row.explanation[0].0)), "{}: {:?}", row.user, row.explanation[0]);
    }
    assert!(page.contains("(typical "));
    assert!(page.contains(&out.display().to_string()), "the runs table names the output");
    // The score distribution of the output with its alert threshold, and what is serving.
    assert_eq!(page.matches("<rect class=\"bin\"").count(), 20, "twenty bins");
    assert!(page.contains("class=\"threshold\""), "the alert threshold is marked");
    assert!(page.contains("serving: streamguard@"), "the versions serving");
    // A screenshot, as a test artefact (target/test-artefacts/dashboard.png).
    let artefacts = crate::support::workspace().join("target/test-artefacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let shot = artefacts.join("dashboard.png");
    let profile = tempfile::tempdir().unwrap();
    let o = std::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"])
        .args(["--disable-component-update", "--disable-sync", "--virtual-time-budget=8000", "--window-size=1280,1400", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("http://{}/", server.address))
        .output()
        .unwrap();
    assert!(o.status.success() && std::fs::metadata(&shot).unwrap().len() > 10_000, "{}", String::from_utf8_lossy(&o.stderr));

    let user = &flagged.iter().find(|r| r.user != hostile).unwrap().user;
    let page = rendered(&format!("http://{}/#user={user}", server.address));
    let view = &page[page.find("id=\"user-view\"").unwrap()..];
    let view = &view[..view.find("</section>").unwrap()];
    assert!(!view.contains("hidden") && view.contains("data-loaded=\"yes\""), "{view}");
    assert_eq!(view.matches("<circle").count(), 1, "one output, one point: {view}");
    assert_eq!(view.matches("<tr>").count(), 2, "the header and the user's one row: {view}");
}
