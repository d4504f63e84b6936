//! Shared helpers: the reference data, running a features component on JSON lines, pyarrow.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sg_features_core::columns::ColumnData;
use sg_core::bundled::Builtin;
use sg_core::component::ComponentSource;
use sg_core::component::features::FeatureComponent;
use sg_model::events::decode_chunk;
use sg_core::runtime::{Limits, Runtime};
use sg_model::Chunk;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A fixture of `tests/fixtures/` (small copies of the reference data).
pub fn fixture(name: &str) -> PathBuf {
    let p = workspace().join("tests/fixtures").join(name);
    assert!(p.exists(), "fixture {} is missing", p.display());
    p
}

/// The 10,000 labelled HDFS log lines of the fixtures (gzip; sg-host reads it as it is).
pub const HDFS_SAMPLE: &str = "hdfs-logs-10k-labelled.jsonl.gz";

/// The lines of a gzip fixture.
pub fn fixture_lines(name: &str) -> Vec<String> {
    use std::io::BufRead;
    let file = std::fs::File::open(fixture(name)).unwrap();
    std::io::BufReader::new(flate2::read::GzDecoder::new(file)).lines().map(Result::unwrap).collect()
}

/// `../shared/data` beside the checkout (the reference data too large to copy).
pub fn shared_data(name: &str) -> PathBuf {
    let p = workspace().join("../shared/data").join(name);
    assert!(p.exists(), "reference data {} is missing (../shared must sit beside the checkout)", p.display());
    p
}

/// The `sg-host` binary built for these tests.
pub fn sg_host() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sg-host"))
}

/// One output row: column name → value as f64 (ints and timestamps converted).
pub type Row = BTreeMap<String, f64>;

/// Runs `component` over JSON lines; returns rows by user ("" for events without a user).
pub fn features(component: &'static Builtin, lines: &[String]) -> BTreeMap<String, Row> {
    let runtime = Runtime::new(Limits::default()).unwrap();
    let c = FeatureComponent::load(&runtime, &ComponentSource::Builtin(component)).unwrap();
    let mut agg = c.aggregation(&runtime).unwrap();
    let chunk = Chunk::from_lines(lines.join("\n").into_bytes(), 1);
    let decoded = decode_chunk(chunk, 1 << 20);
    assert!(decoded.dead.is_empty(), "test input rejected: {:?}", decoded.dead);
    assert!(agg.push(&std::sync::Arc::new(decoded.batch)).unwrap().is_empty());
    let table = agg.take().unwrap().table;
    let d = c.descriptor();
    let mut rows = BTreeMap::new();
    let ColumnData::Utf8(keys) = &table.columns[d.key_index()] else { panic!("key is not utf8") };
    for r in 0..table.rows {
        let user = keys.get(r).map(|b| String::from_utf8(b.to_vec()).unwrap()).unwrap_or_default();
        let mut row = Row::new();
        for (spec, col) in d.columns.iter().zip(&table.columns) {
            let v = match col {
                ColumnData::Int64(v) | ColumnData::TimestampMs(v) => v[r] as f64,
                ColumnData::Float64(v) => v[r],
                ColumnData::Utf8(_) => continue,
            };
            row.insert(spec.name.clone(), v);
        }
        rows.insert(user, row);
    }
    rows
}

/// Asserts `row[col]` equals `expected` to 1e-12 relative.
#[track_caller]
pub fn assert_col(row: &Row, col: &str, expected: f64) {
    let got = *row.get(col).unwrap_or_else(|| panic!("no column {col}"));
    let tol = 1e-12 * expected.abs().max(1.0);
    assert!((got - expected).abs() <= tol, "{col}: got {got}, expected {expected}");
}

/// A compact event as a JSON line.
pub fn event(user: Option<&str>, ts: i64, ty: &str, ip: Option<&str>, status: &str, threat: f64) -> String {
    let mut v = serde_json::json!({
        "event_id": format!("evt_{ts}_{}", user.unwrap_or("-")),
        "timestamp": ts,
        "event_type": ty,
        "status": status,
        "threat_score": threat,
    });
    if let Some(u) = user {
        v["user"] = u.into();
    }
    if let Some(ip) = ip {
        v["source_ip"] = ip.into();
    }
    v.to_string()
}

/// The Python with pyarrow that `scripts/test.sh` installs (override with `SG_PYTHON`).
pub fn python() -> Command {
    let python = std::env::var("SG_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace().join(".venv/bin/python"));
    assert!(python.exists(), "{} not found: run scripts/test.sh (it installs pyarrow into .venv)", python.display());
    Command::new(python)
}

/// Runs a helper script of tests/helpers and parses its JSON output.
pub fn python_json(script: &str, args: &[&str]) -> serde_json::Value {
    let out = python().arg(workspace().join("tests/helpers").join(script)).args(args).output().unwrap();
    assert!(out.status.success(), "{script} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// ROC AUC of `scores` (higher = more positive) against 0/1 `labels`, ties averaged.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut ranks = vec![0f64; scores.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[idx[k]] = avg;
        }
        i = j + 1;
    }
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    let rank_sum: f64 = ranks.iter().zip(labels).filter(|(_, l)| **l).map(|(r, _)| r).sum();
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// A Kafka-protocol broker (Tansu's successor `nisshi`, installed by `scripts/test-env.sh`)
/// running on a free loopback port; stopped when dropped.
pub struct Broker {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// The broker's storage (SQLite) when it has users.
    _storage: Option<tempfile::TempDir>,
}

/// How a test broker listens and whom it lets in.
#[derive(Default)]
pub struct BrokerSettings {
    /// TLS only, with this certificate chain and PKCS#8 key (PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// SASL SCRAM users (name, password, `scram256`|`scram512`); with any, authentication is
    /// required (and the storage is SQLite, the engine that keeps credentials).
    pub users: Vec<(String, String, String)>,
}

fn nisshi() -> PathBuf {
    let binary = std::env::var("SG_KAFKA_BROKER").map(PathBuf::from).unwrap_or_else(|_| {
        let home = std::env::var("CARGO_HOME").map(PathBuf::from).unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cargo")
        });
        home.join("bin/nisshi")
    });
    assert!(binary.exists(), "{} not found: run scripts/test.sh (it installs the nisshi broker)", binary.display());
    binary
}

impl Broker {
    /// Starts a plaintext broker with in-memory storage and waits until it accepts connections.
    pub fn start() -> Broker {
        Broker::start_with(&BrokerSettings::default())
    }

    /// Starts a broker as `settings` say. Users are created on a plaintext broker over the same
    /// storage first, which is then restarted requiring authentication.
    pub fn start_with(settings: &BrokerSettings) -> Broker {
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let storage = (!settings.users.is_empty()).then(|| tempfile::tempdir().unwrap());
        // nisshi reads a sqlite:// path relative to its working directory.
        let (engine, cwd) = match &storage {
            Some(dir) => ("sqlite://nisshi.db", dir.path().to_path_buf()),
            None => ("memory://nisshi/", std::env::temp_dir()),
        };
        if !settings.users.is_empty() {
            let setup = Broker::spawn(&address, engine, &cwd, &[]);
            for (name, password, mechanism) in &settings.users {
                let o = Command::new(nisshi())
                    .args(["user", "create", "--broker", &format!("tcp://{address}"), "--mechanism", mechanism, name, password])
                    .output()
                    .unwrap();
                assert!(o.status.success(), "nisshi user create {name}: {}", String::from_utf8_lossy(&o.stderr));
            }
            drop(setup);
        }
        let mut extra: Vec<String> = Vec::new();
        if let Some((cert, key)) = &settings.tls {
            extra.extend(["--cert".into(), cert.display().to_string(), "--key".into(), key.display().to_string()]);
        }
        if !settings.users.is_empty() {
            extra.push("--authentication".into());
        }
        let mut broker = Broker::spawn(&address, engine, &cwd, &extra);
        broker._storage = storage;
        broker
    }

    fn spawn(address: &str, engine: &str, cwd: &Path, extra: &[String]) -> Broker {
        let url = format!("tcp://{address}");
        let child = Command::new(nisshi())
            .current_dir(cwd)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", engine])
            .args(["--group-initial-rebalance-delay", "0s"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let broker = Broker { child, address: address.to_string(), _storage: None };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(&broker.address).is_err() {
            assert!(std::time::Instant::now() < deadline, "the broker did not start listening on {}", broker.address);
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        broker
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// all-MiniLM-L6-v2 as `scripts/fetch-model.sh` fetches it (override with `SG_MODEL_DIR`).
pub fn model_dir() -> PathBuf {
    let dir = std::env::var("SG_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace().join(sg_dedup::embed::DEFAULT_MODEL_DIR));
    assert!(dir.join("model.safetensors").exists(), "{} has no model: run scripts/test.sh (it runs scripts/fetch-model.sh)", dir.display());
    dir
}

/// The reference embedding service (tests/helpers/embed_server.py: the real model in numpy)
/// on a free loopback port; stopped when dropped.
pub struct EmbedServer {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

impl EmbedServer {
    /// Starts the server and waits until it serves.
    pub fn start() -> EmbedServer {
        use std::io::BufRead;
        let mut child = python()
            .arg(workspace().join("tests/helpers/embed_server.py"))
            .arg(model_dir())
            .env("OPENBLAS_NUM_THREADS", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("embed server said {line:?}"));
        EmbedServer { child, address: format!("127.0.0.1:{port}") }
    }

    /// The `/embed` URL.
    pub fn url(&self) -> String {
        format!("http://{}/embed", self.address)
    }

    /// A small JSON request to the server (`/control`, `/stats`).
    pub fn call(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&self.address).unwrap();
        write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        let json = reply.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{path}: {e}: {reply}"))
    }
}

impl Drop for EmbedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every window a streaming run wrote to `out` (`window=…` with `_SUCCESS`), by name, with its
/// report.
pub fn written_windows(out: &Path) -> Vec<(String, serde_json::Value)> {
    let mut found: Vec<_> = std::fs::read_dir(out)
        .map(|d| d.filter_map(|e| e.ok()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.file_name().to_string_lossy().starts_with("window=") && e.path().join("_SUCCESS").exists())
        .map(|e| {
            let report = serde_json::from_slice(&std::fs::read(e.path().join("_anomaly_report.json")).unwrap()).unwrap();
            (e.file_name().to_string_lossy().into_owned(), report)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// One HTTP/1.1 request (to an admin API); returns (status, body).
pub fn http(address: &str, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let (status, reply) = http_request(address, method, path, &headers, body);
    (status, String::from_utf8(reply).unwrap())
}

/// One HTTP/1.1 request with `headers`; returns (status, body bytes).
pub fn http_request(address: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(address).unwrap();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n", body.len()).unwrap();
    s.write_all(body).unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    let split = reply.windows(4).position(|w| w == b"\r\n\r\n").map_or(reply.len(), |i| i + 4);
    let head = String::from_utf8_lossy(&reply[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "a chunked answer: {head}");
    (status, reply[split..].to_vec())
}

/// `sg-host produce` of `lines` into `topic` on the real broker (created with two partitions if
/// new), keyed by `key` (`none`, `user`, …).
pub fn produce(broker: &str, topic: &str, key: &str, lines: &[String], dir: &Path) {
    let file = tempfile::NamedTempFile::new_in(dir).unwrap();
    std::fs::write(file.path(), lines.join("\n")).unwrap();
    let o = sg_host()
        .args(["produce", "--brokers", broker, "--topic", topic, "--key", key, "--create-partitions", "2", "--input"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `done` every 100 ms; fails naming `what` after `secs` seconds.
pub fn wait_for(what: impl std::fmt::Display, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A counter `sg_component_NAME_total` of `component` in Prometheus text (0 when absent).
pub fn counter(metrics: &str, name: &str, component: &str) -> u64 {
    let key = format!("sg_component_{name}_total{{component=\"{component}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(key.as_str())).map_or(0, |v| v.trim().parse().unwrap())
}

/// An event line whose `event_type` becomes `kind` (a test guest's trigger; the old type is
/// kept under `was`).
pub fn mark(line: &str, kind: &str) -> String {
    line.replacen("\"event_type\":\"", &format!("\"event_type\":\"{kind}\",\"was\":\""), 1)
}

/// Sends SIGINT to `child`, as a user stops a stream (it then finishes the batch in hand).
pub fn sigint(child: &std::process::Child) {
    assert!(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
}

/// An in-process mock cluster (librdkafka's) with `topic` (`partitions` partitions) and its
/// `.dlq` topic (the mock does not serve CreateTopics); returns it with its bootstrap servers.
pub fn mock_cluster(
    topic: &str,
    partitions: i32,
) -> (rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>, String) {
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    cluster.create_topic(topic, partitions, 1).unwrap();
    cluster.create_topic(&format!("{topic}.dlq"), 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    (cluster, brokers)
}

/// Sends `payloads` to `topic`, message `i` to partition `i % partitions`.
pub fn produce_round_robin<'a>(brokers: &str, topic: &str, payloads: impl IntoIterator<Item = &'a str>, partitions: i32) {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let producer: ThreadedProducer<DefaultProducerContext> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", brokers).set("linger.ms", "5").create().unwrap();
    for (i, payload) in payloads.into_iter().enumerate() {
        producer.send(BaseRecord::<str, str>::to(topic).payload(payload).partition(i as i32 % partitions)).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

/// Every record of `topic` (`n` of them): (partition, offset) → its event id, or `bad:PAYLOAD`
/// for a record that is not an event.
pub fn topic_ids(brokers: &str, topic: &str, n: usize) -> BTreeMap<(i64, i64), String> {
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "id-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while out.len() < n && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let payload = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            let id = serde_json::from_str::<serde_json::Value>(&payload)
                .ok()
                .and_then(|v| v["event_id"].as_str().map(str::to_string))
                .unwrap_or_else(|| format!("bad:{payload}"));
            out.insert((m.partition() as i64, m.offset()), id);
        }
    }
    assert_eq!(out.len(), n, "records on {topic}");
    out
}

/// The event ids in the ledgers of every complete window of the stream outputs `outs`, one
/// entry per ledger row (a record written twice is there twice), looked up in `ids`.
pub fn ledger_ids(outs: &[&Path], ids: &BTreeMap<(i64, i64), String>) -> Vec<String> {
    use arrow::array::{AsArray, Int32Array};
    use arrow::datatypes::Int64Type;
    let mut found = Vec::new();
    for out in outs {
        for (window, _) in written_windows(out) {
            let file = std::fs::File::open(out.join(window).join("_ledger.parquet")).unwrap();
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                let partitions = batch.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
                let offsets = batch.column(1).as_primitive::<Int64Type>();
                for i in 0..batch.num_rows() {
                    found.push(ids[&(partitions.value(i) as i64, offsets.value(i))].clone());
                }
            }
        }
    }
    found
}

/// Asserts that `found` holds every id of `expected` exactly once and nothing else — on sets,
/// naming what was lost and what was written twice.
#[track_caller]
pub fn assert_exactly_once<'a>(found: &[String], expected: impl IntoIterator<Item = &'a String>) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for id in found {
        *seen.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).map(|(id, _)| *id).collect();
    let expected: std::collections::BTreeSet<&str> = expected.into_iter().map(String::as_str).collect();
    let lost: Vec<_> = expected.iter().filter(|id| !seen.contains_key(**id)).collect();
    let foreign: Vec<_> = seen.keys().filter(|id| !expected.contains(**id)).collect();
    assert!(
        twice.is_empty() && lost.is_empty() && foreign.is_empty(),
        "{} written twice (e.g. {:?}), {} lost (e.g. {:?}), {} not expected (e.g. {:?})",
        twice.len(),
        &twice[..twice.len().min(3)],
        lost.len(),
        &lost[..lost.len().min(3)],
        foreign.len(),
        &foreign[..foreign.len().min(3)]
    );
}

/// A CA and the certificates it signed, made with the openssl CLI for a test.
pub struct Pki {
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    /// A server certificate for 127.0.0.1 (PEM).
    pub cert: PathBuf,
    /// Its key, PKCS#8 (PEM), as nisshi and rustls read it.
    pub key: PathBuf,
    /// A client certificate the CA signed (PEM), for mutual TLS.
    pub client_cert: PathBuf,
    /// Its key, PKCS#8 (PEM).
    pub client_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl (scripts/test-env.sh installs it)");
    assert!(o.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

/// A self-signed CA named `name` in `dir` (`NAME.pem`, `NAME.key`).
pub fn ca(dir: &Path, name: &str) -> PathBuf {
    let (pem, key) = (format!("{name}.pem"), format!("{name}.key"));
    openssl(
        dir,
        &["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-keyout", &key, "-out", &pem, "-subj", &format!("/CN={name}")],
    );
    dir.join(pem)
}

/// A certificate `name` signed by the CA `test-ca` in `dir`, with `extensions`; its PKCS#8 key.
fn signed(dir: &Path, name: &str, subject: &str, extensions: &str) -> (PathBuf, PathBuf) {
    let (key, csr, pem, p8, ext) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.p8"), format!("{name}.ext"));
    openssl(dir, &["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", &key, "-out", &csr, "-subj", subject]);
    std::fs::write(dir.join(&ext), extensions).unwrap();
    openssl(dir, &["x509", "-req", "-in", &csr, "-CA", "test-ca.pem", "-CAkey", "test-ca.key", "-CAcreateserial", "-days", "2", "-out", &pem, "-extfile", &ext]);
    openssl(dir, &["pkcs8", "-topk8", "-nocrypt", "-in", &key, "-out", &p8]);
    (dir.join(pem), dir.join(p8))
}

/// A CA `test-ca`, a server certificate for 127.0.0.1 and a client certificate, all in `dir`.
pub fn pki(dir: &Path) -> Pki {
    let ca = ca(dir, "test-ca");
    let (cert, key) = signed(dir, "srv", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
    let (client_cert, client_key) = signed(dir, "client", "/CN=fleet-controller", "extendedKeyUsage=clientAuth\n");
    Pki { ca, cert, key, client_cert, client_key }
}

/// A small tmpfs mounted for a test (needs root, as `scripts/test.sh` runs on CI), unmounted
/// when dropped.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `8m`) at `at` (created).
    pub fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let o = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(at).output().unwrap();
        assert!(o.status.success(), "mounting a tmpfs (the test needs root): {}", String::from_utf8_lossy(&o.stderr));
        Tmpfs(at.to_path_buf())
    }

    /// Fills the filesystem to its last byte with `name`; returns the file.
    pub fn fill(&self, name: &str) -> PathBuf {
        let path = self.0.join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 << 10];
        let mut size = block.len();
        while size > 0 {
            match f.write(&block[..size]) {
                Ok(0) | Err(_) => size /= 2,
                Ok(_) => {}
            }
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
