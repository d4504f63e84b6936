//! Connecting to a secured cluster: TLS with a CA the test makes, SASL SCRAM over TLS, every
//! compression codec a topic may use, and settings from files and the environment with no
//! secret in the logs — against the real broker (nisshi serves TLS and SCRAM users).

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::support::{Broker, BrokerSettings, ca, pki, sg_host};

/// A `--kafka-config` file (kcat's `-F` format) with these lines, readable by its owner only.
fn kafka_config(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("# written by the test\n{}\n", lines.join("\n"))).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn events(dir: &Path, n: u64) -> PathBuf {
    let file = dir.join("e.jsonl");
    assert!(sg_host().args(["gen-events", &n.to_string(), "--compromised", "1", "--out"]).arg(&file).output().unwrap().status.success());
    file
}

/// `sg-host produce` of `file` into a new 2-partition `topic`, with `extra` arguments.
fn produce(broker: &str, topic: &str, file: &Path, extra: &[&str]) -> Output {
    sg_host()
        .args(["produce", "--log", "debug", "--brokers", broker, "--topic", topic, "--create-partitions", "2", "--input"])
        .arg(file)
        .args(extra)
        .output()
        .unwrap()
}

/// A bounded run of the whole topic; its report.
fn bounded(broker: &str, topic: &str, out: &Path, extra: &[&str]) -> Value {
    let o = sg_host()
        .args(["run", "--log", "debug", "--no-dead-letter-topic", "--source", &format!("kafka://{broker}/{topic}"), "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&std::fs::read(out.join("_anomaly_report.json")).unwrap()).unwrap()
}

/// The report of the same events read from the file, to compare a Kafka read with.
fn from_file(file: &Path, out: &Path) -> Value {
    let o = sg_host().args(["run", "-q", "--input"]).arg(file).arg("--out").arg(out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&std::fs::read(out.join("_anomaly_report.json")).unwrap()).unwrap()
}

/// The same top findings as `expected` — users, counts, alerts exactly; scores and means to
/// within float summation order (a topic's partitions are read in another order than a file).
fn same_findings(report: &Value, expected: &Value, what: &str) {
    let (a, b) = (report["top_anomalies"].as_array().unwrap(), expected["top_anomalies"].as_array().unwrap());
    assert_eq!(a.len(), b.len(), "{what}");
    let close = |x: &Value, y: &Value| (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() <= 1e-9 * y.as_f64().unwrap().abs().max(1.0);
    for (x, y) in a.iter().zip(b) {
        for exact in ["user", "total_events", "is_alert"] {
            assert_eq!(x[exact], y[exact], "{what}: {exact}");
        }
        for float in ["anomaly_score", "raw_score", "avg_threat_score"] {
            assert!(close(&x[float], &y[float]), "{what}: {float} {} vs {}", x[float], y[float]);
        }
        let (ex, ey) = (x["explanation"].as_array().unwrap(), y["explanation"].as_array().unwrap());
        assert_eq!(ex.iter().map(|e| &e["feature"]).collect::<Vec<_>>(), ey.iter().map(|e| &e["feature"]).collect::<Vec<_>>(), "{what}");
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
#[ignore = "services: needs the nisshi Kafka broker and openssl (scripts/test.sh installs them)"]
fn over_tls_produce_a_bounded_run_and_a_stream_read_everything_and_a_wrong_ca_is_a_certificate_error() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let broker = Broker::start_with(&BrokerSettings { tls: Some((pki.cert.clone(), pki.key.clone())), ..Default::default() });
    let tls = kafka_config(dir.path(), "tls.properties", &["security.protocol=ssl".into(), format!("ssl.ca.location={}", pki.ca.display())]);
    let file = events(dir.path(), 3000);
    let config = ["--kafka-config", tls.to_str().unwrap()];

    let o = produce(&broker.address, "secure-events", &file, &config);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = bounded(&broker.address, "secure-events", &dir.path().join("k"), &config);
    assert_eq!(report["lineage"]["events"], 3000);
    same_findings(&report, &from_file(&file, &dir.path().join("f")), "over TLS");

    // A stream over TLS: it connects, is assigned both partitions and stops cleanly.
    let log = dir.path().join("stream.log");
    let mut child = sg_host()
        .args(["run", "--follow", "--window", "10s", "--no-dead-letter-topic", "-X", "session.timeout.ms=6000"])
        .args(["--source", &format!("kafka://{}/secure-events", broker.address), "--out"])
        .arg(dir.path().join("s"))
        .args(config)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    crate::support::wait_for("the stream's assignment over TLS", 60, || {
        std::fs::read_to_string(&log).unwrap_or_default().contains("assigned partitions [0, 1]")
    });
    crate::support::sigint(&child);
    assert!(child.wait().unwrap().success(), "{}", std::fs::read_to_string(&log).unwrap());

    // A client that trusts another CA: an error that says TLS and certificate, quickly.
    let other = ca(dir.path(), "other-ca");
    let wrong = kafka_config(dir.path(), "wrong.properties", &["security.protocol=ssl".into(), format!("ssl.ca.location={}", other.display())]);
    let started = std::time::Instant::now();
    let o = sg_host()
        .args(["run", "--source", &format!("kafka://{}/secure-events", broker.address), "--out"])
        .arg(dir.path().join("w"))
        .args(["--kafka-config", wrong.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("TLS") && err.contains("certificate"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "a certificate error is not waited out: {:?}", started.elapsed());
    // Plaintext against the TLS listener fails too, with an error rather than a hang.
    let o = produce(&broker.address, "secure-events", &file, &[]);
    assert!(!o.status.success());
}

#[test]
#[ignore = "services: needs the nisshi Kafka broker and openssl (scripts/test.sh installs them)"]
fn sasl_scram_over_tls_with_the_right_password_works_and_the_wrong_one_is_refused_and_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let password = "s3cr3t-Pa55word";
    let users = [("analyst256", "SCRAM-SHA-256", "scram256"), ("analyst512", "SCRAM-SHA-512", "scram512")];
    let broker = Broker::start_with(&BrokerSettings {
        tls: Some((pki.cert.clone(), pki.key.clone())),
        users: users.iter().map(|(u, _, m)| (u.to_string(), password.to_string(), m.to_string())).collect(),
        ..Default::default()
    });
    let file = events(dir.path(), 1000);
    for (i, (user, mechanism, _)) in users.iter().enumerate() {
        let topic = format!("scram-{i}");
        let base = ["security.protocol=SASL_SSL".to_string(), format!("ssl.ca.location={}", pki.ca.display()), format!("sasl.mechanism={mechanism}"), format!("sasl.username={user}")];
        // The password from a file…
        let mut lines = base.to_vec();
        lines.push(format!("sasl.password={password}"));
        let good = kafka_config(dir.path(), &format!("good{i}.properties"), &lines);
        let o = produce(&broker.address, &topic, &file, &["--kafka-config", good.to_str().unwrap()]);
        assert!(o.status.success(), "{mechanism}: {}", stderr(&o));
        assert!(!stderr(&o).contains(password), "{mechanism}: the password is in the log");
        // …or from the environment, with the rest from the file.
        let rest = kafka_config(dir.path(), &format!("rest{i}.properties"), &base);
        let out = dir.path().join(format!("k{i}"));
        let o = sg_host()
            .args(["run", "--log", "debug,librdkafka=debug", "--no-dead-letter-topic", "--source", &format!("kafka://{}/{topic}", broker.address), "--out"])
            .arg(&out)
            .args(["--kafka-config", rest.to_str().unwrap()])
            .env("SG_RDKAFKA_SASL_PASSWORD", password)
            .output()
            .unwrap();
        assert!(o.status.success(), "{mechanism}: {}", stderr(&o));
        assert!(!stderr(&o).contains(password), "{mechanism}: the password is in the debug log");
        let report: Value = serde_json::from_slice(&std::fs::read(out.join("_anomaly_report.json")).unwrap()).unwrap();
        assert_eq!(report["lineage"]["events"], 1000, "{mechanism}");

        let mut lines = base.to_vec();
        lines.push("sasl.password=not-the-password".into());
        let bad = kafka_config(dir.path(), &format!("bad{i}.properties"), &lines);
        let started = std::time::Instant::now();
        let o = sg_host()
            .args(["run", "--source", &format!("kafka://{}/{topic}", broker.address), "--out"])
            .arg(dir.path().join(format!("w{i}")))
            .args(["--kafka-config", bad.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!o.status.success(), "{mechanism}: a wrong password must fail");
        let err = stderr(&o);
        assert!(err.contains("SASL authentication failed"), "{mechanism}: {err}");
        assert!(!err.contains("not-the-password"), "{mechanism}: the password is in the log: {err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(15), "{mechanism}: a refused login is not waited out: {:?}", started.elapsed());
    }
}

#[test]
#[ignore = "services: needs the nisshi Kafka broker (scripts/test.sh runs it)"]
fn zstd_lz4_snappy_and_gzip_compressed_topics_are_read_whole() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let file = events(dir.path(), 2000);
    let expected = from_file(&file, &dir.path().join("f"));
    for codec in ["zstd", "lz4", "snappy", "gzip"] {
        let topic = format!("events-{codec}");
        let o = produce(&broker.address, &topic, &file, &["-X", &format!("compression.type={codec}")]);
        assert!(o.status.success(), "{codec}: {}", stderr(&o));
        let report = bounded(&broker.address, &topic, &dir.path().join(codec), &[]);
        assert_eq!(report["lineage"]["events"], 2000, "{codec}");
        same_findings(&report, &expected, codec);
    }
}

#[test]
fn config_show_prints_flag_over_environment_over_file_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let props = kafka_config(dir.path(), "k.properties", &["sasl.password=from-properties-file".into(), "client.id=edge-7".into()]);
    let config = dir.path().join("sg-host.toml");
    std::fs::write(
        &config,
        format!(
            "group = \"file-group\"\nkafka-config = \"{}\"\n[run]\nbatch-events = 100\nmax-open-windows = 7\n[kafka]\n\"ssl.key.password\" = \"file-key-secret\"\n",
            props.display()
        ),
    )
    .unwrap();
    let show = |env: &[(&str, &str)], args: &[&str]| {
        let mut c = sg_host();
        c.args(["config", "show", "run", "--config"]).arg(&config).args(["--source", "kafka://127.0.0.1:1/t", "--out", "o"]).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let line = |text: &str, key: &str| text.lines().find(|l| l.starts_with(&format!("{key} = "))).map(str::to_string).unwrap_or_default();

    let file_only = show(&[], &[]);
    assert_eq!(line(&file_only, "group"), "group = \"file-group\"  # config file", "{file_only}");
    assert_eq!(line(&file_only, "batch-events"), "batch-events = \"100\"  # config file");
    assert_eq!(line(&file_only, "batch-wait"), "batch-wait = \"500ms\"  # default");
    let env = show(&[("SG_GROUP", "env-group"), ("SG_BATCH_EVENTS", "200"), ("SG_RDKAFKA_SASL_USERNAME", "env-user")], &["--batch-events", "300"]);
    assert_eq!(line(&env, "group"), "group = \"env-group\"  # environment SG_GROUP", "{env}");
    assert_eq!(line(&env, "batch-events"), "batch-events = \"300\"  # command line");
    assert_eq!(line(&env, "max-open-windows"), "max-open-windows = \"7\"  # config file");
    // librdkafka properties in force: the properties file, the config file, the environment, -X.
    let with_x = show(&[("SG_RDKAFKA_SASL_USERNAME", "env-user")], &["-X", "client.id=flag-id"]);
    assert!(with_x.contains("\"client.id\" = \"flag-id\""), "{with_x}");
    assert!(with_x.contains("\"sasl.username\" = \"env-user\""), "{with_x}");
    for text in [&file_only, &env, &with_x] {
        assert!(text.contains("\"sasl.password\" = \"********\"") && text.contains("\"ssl.key.password\" = \"********\""), "{text}");
        assert!(!text.contains("from-properties-file") && !text.contains("file-key-secret"), "a secret is shown: {text}");
    }
    // A key no command has is an error naming it.
    std::fs::write(&config, "gruop = \"x\"\n").unwrap();
    let o = sg_host().args(["config", "show", "run", "--config"]).arg(&config).args(["--input", "x", "--out", "o"]).output().unwrap();
    assert!(!o.status.success() && stderr(&o).contains("gruop"), "{}", stderr(&o));
}
