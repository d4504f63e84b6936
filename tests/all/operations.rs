//! Operating sg-host: the admin API's access rules (TLS off loopback, mutual TLS, the `Host`
//! check against DNS rebinding), liveness and readiness, `--metrics-listen` on a bounded run,
//! and a bounded run stopped by SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{Broker, free_port, http, pki, produce, sg_host, wait_for};

/// `lines` generated events.
fn events(n: usize) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("e.jsonl");
    assert!(sg_host().args(["gen-events", &n.to_string(), "--out"]).arg(&file).output().unwrap().status.success());
    std::fs::read_to_string(&file).unwrap().lines().map(str::to_string).collect()
}

/// A bounded run reading events from a stdin the test holds open (so it runs until told),
/// with `env` set.
fn waiting_run(out: &Path, extra: &[&str], env: &[(&str, &Path)]) -> Child {
    let mut command = sg_host();
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .args(["run", "--input", "-", "--out"])
        .arg(out)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.as_mut().unwrap();
    for line in events(200) {
        writeln!(stdin, "{line}").unwrap();
    }
    stdin.flush().unwrap();
    child
}

fn stderr_of(child: Child) -> (std::process::ExitStatus, String) {
    let o = child.wait_with_output().unwrap();
    (o.status, String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn a_bounded_run_stopped_by_sigterm_removes_its_staging_directory_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let child = waiting_run(&out, &[], &[]);
    let staging = dir.path().join(format!(".out.staging-{}", child.id()));
    wait_for("the run's staging directory", 30, || staging.is_dir());
    assert!(std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let (status, stderr) = stderr_of(child);
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("stopped by a signal") && stderr.contains("1 staging directories removed"), "{stderr}");
    assert!(!staging.exists(), "the staging directory is gone");
    assert!(!out.exists(), "no output");
}

#[test]
fn an_admin_api_off_loopback_without_tls_or_without_client_authentication_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let run = |extra: &[&str]| {
        let o = sg_host()
            .args(["run", "--follow", "--source", "kafka://127.0.0.1:9/t", "--out"])
            .arg(dir.path().join("o"))
            .args(extra)
            .output()
            .unwrap();
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = run(&["--admin", "0.0.0.0:0"]);
    assert!(e.contains("only over TLS") && e.contains("--admin-tls-cert"), "{e}");
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let e = run(&["--admin", "0.0.0.0:0", "--admin-tls-cert", cert.to_str().unwrap(), "--admin-tls-key", key.to_str().unwrap()]);
    assert!(e.contains("needs client certificates") && e.contains("--admin-token-file"), "{e}");
    let e = run(&["--metrics-listen", "0.0.0.0:0"]);
    assert!(e.contains("only over TLS"), "{e}");
    // An empty token file would let `Authorization: Bearer ` through: refused.
    let empty = dir.path().join("token");
    std::fs::write(&empty, "\n").unwrap();
    let e = run(&["--admin", "127.0.0.1:0", "--admin-token-file", empty.to_str().unwrap()]);
    assert!(e.contains("is empty"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(30), "refused at start, before any broker is tried: {:?}", started.elapsed());
}

/// A GET over TLS trusting `ca`, with a client certificate when given; the whole answer, or
/// why there was none.
fn https_get(address: &str, path: &str, ca: &Path, client: Option<(&Path, &Path)>) -> Result<String, String> {
    https_get_over(&rustls::DEFAULT_VERSIONS, address, path, ca, client)
}

/// [`https_get`] offering only the given TLS versions.
fn https_get_over(
    versions: &[&'static rustls::SupportedProtocolVersion],
    address: &str,
    path: &str,
    ca: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<String, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca).unwrap()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider).with_protocol_versions(versions).unwrap().with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(vec![CertificateDer::from_pem_file(cert).unwrap()], PrivateKeyDer::from_pem_file(key).unwrap())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let conn = rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("127.0.0.1").unwrap()).unwrap();
    let sock = TcpStream::connect(address).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    write!(tls, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if answer.is_empty() => return Err(e.to_string()),
            Err(_) => break,
        }
    }
    if answer.is_empty() {
        return Err("no answer".into());
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[test]
#[ignore = "services: needs the openssl CLI for the test's CA (scripts/test.sh installs it)"]
fn metrics_and_probes_of_a_bounded_run_over_mutual_tls_refuse_a_client_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let port = free_port();
    let listen = format!("0.0.0.0:{port}");
    let mut child = waiting_run(
        &dir.path().join("out"),
        &["--metrics-listen", &listen, "--admin-tls-cert", pki.cert.to_str().unwrap(), "--admin-tls-key", pki.key.to_str().unwrap(), "--admin-client-ca", pki.ca.to_str().unwrap()],
        &[],
    );
    let address = format!("127.0.0.1:{port}");
    let client = Some((pki.client_cert.as_path(), pki.client_key.as_path()));
    wait_for("the metrics endpoint over TLS", 30, || https_get(&address, "/healthz", &pki.ca, client).is_ok());
    let health = https_get(&address, "/healthz", &pki.ca, client).unwrap();
    assert!(health.starts_with("HTTP/1.1 200") && health.contains("\"alive\":true"), "{health}");
    let metrics = https_get(&address, "/metrics", &pki.ca, client).unwrap();
    assert!(metrics.starts_with("HTTP/1.1 200") && metrics.contains("# TYPE sg_"), "{metrics}");
    // A bounded run has nothing to change: the change routes are not there.
    let components = https_get(&address, "/components", &pki.ca, client).unwrap();
    assert!(components.starts_with("HTTP/1.1 404"), "{components}");
    // Without a client certificate: refused in the handshake, no HTTP answer. Under TLS 1.2
    // the client waits for the server's Finished, so it reads the alert that names the
    // certificate; under TLS 1.3 the server judges the certificate after the client has
    // finished, so the client may meet a closed socket before the alert.
    let refused = https_get_over(&[&rustls::version::TLS12], &address, "/healthz", &pki.ca, None);
    assert!(refused.as_ref().is_err_and(|e| e.to_lowercase().contains("certificate")), "{refused:?}");
    let refused = https_get(&address, "/healthz", &pki.ca, None);
    assert!(refused.is_err(), "{refused:?}");
    // Plaintext to the TLS port: no HTTP answer either.
    let mut plain = TcpStream::connect(&address).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may close first (a broken pipe): that is no answer too.
    let mut answer = Vec::new();
    if write!(plain, "GET /metrics HTTP/1.1\r\nHost: {address}\r\n\r\n").is_ok() {
        let _ = plain.read_to_end(&mut answer);
    }
    assert!(!String::from_utf8_lossy(&answer).contains("sg_"), "metrics served in plaintext");
    drop(child.stdin.take());
    let (status, stderr) = stderr_of(child);
    assert!(status.success(), "{stderr}");
}

#[test]
#[ignore = "services: needs the nisshi Kafka broker (scripts/test.sh runs it)"]
fn readiness_follows_the_assignment_and_the_host_check_refuses_a_rebinding_name() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let lines = events(500);
    produce(&broker.address, "ready-events", "user", &lines, dir.path());
    let member = |name: &str, port: u16| {
        sg_host()
            .args(["run", "--follow", "--window", "10s", "--no-dead-letter-topic", "--group", "ready", "-X", "session.timeout.ms=6000"])
            .args(["--source", &format!("kafka://{}/ready-events", broker.address), "--admin", &format!("127.0.0.1:{port}"), "--out"])
            .arg(dir.path().join(name))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap())
            .spawn()
            .unwrap()
    };
    let get = |port: u16, path: &str| -> Option<(u16, String)> {
        TcpStream::connect(("127.0.0.1", port)).ok()?;
        Some(http(&format!("127.0.0.1:{port}"), "GET", path, None, b""))
    };
    // Two members of one group on a two-partition topic: each is ready once it holds one.
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let a = member("a", pa);
    wait_for("member a ready", 60, || get(pa, "/readyz").is_some_and(|(s, _)| s == 200));
    let b = member("b", pb);
    wait_for("member b ready", 60, || get(pb, "/readyz").is_some_and(|(s, _)| s == 200));
    // With a third member, one of the three has nothing to read: alive, not ready, and it
    // says why (which one is the assignor's choice).
    let c = member("c", pc);
    let ports = [pa, pb, pc];
    let statuses = || ports.map(|p| get(p, "/readyz").map_or(0, |r| r.0));
    wait_for("two members ready and one idle", 90, || {
        let s = statuses();
        s.iter().filter(|&&x| x == 200).count() == 2 && s.contains(&503)
    });
    let idle = statuses().iter().position(|&s| s == 503).unwrap();
    let (status, body) = get(ports[idle], "/readyz").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no partitions are assigned"), "{body}");
    let (status, body) = get(ports[idle], "/healthz").unwrap();
    assert!(status == 200 && body.contains("\"alive\":true"), "{status}: {body}");
    // When a member that reads leaves, the idle one takes its partition and becomes ready.
    let mut members = vec![a, b, c];
    let leaving = (0..3).find(|&i| i != idle).unwrap();
    let mut gone = members.remove(leaving);
    crate::support::sigint(&gone);
    assert!(gone.wait().unwrap().success());
    wait_for("the idle member ready once another left", 90, || get(ports[idle], "/readyz").is_some_and(|(s, _)| s == 200));
    let pb = ports[idle];
    // A request naming another host (a DNS-rebinding page) is refused on loopback.
    let mut raw = TcpStream::connect(("127.0.0.1", pb)).unwrap();
    write!(raw, "GET /components HTTP/1.1\r\nHost: evil.example:{pb}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 403") && answer.contains("not a loopback name"), "{answer}");
    for mut child in members {
        crate::support::sigint(&child);
        assert!(child.wait().unwrap().success());
    }
}

#[test]
fn the_shipped_config_file_and_properties_example_are_read_as_they_are() {
    let deploy = crate::support::workspace().join("deploy");
    let o = sg_host()
        .args(["config", "show", "run", "--config"])
        .arg(deploy.join("sg-host.toml"))
        .arg("--kafka-config")
        .arg(deploy.join("kafka.properties.example"))
        .args(["--out", "o"])
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains("window = \"1h\"  # config file"), "{stdout}");
    assert!(stdout.contains("\"sasl.mechanism\" = \"SCRAM-SHA-512\"") && stdout.contains("\"sasl.password\" = \"********\""), "{stdout}");
    assert!(!stdout.contains("CHANGE-ME"), "a secret is shown: {stdout}");
}

#[test]
fn under_systemd_ready_is_sent_once_loaded_and_the_watchdog_is_fed_while_the_loop_turns() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // systemd's protocol: datagrams of NAME=VALUE lines on $NOTIFY_SOCKET; WatchdogSec=0.4s.
    let watchdog = Path::new("400000");
    let mut child = waiting_run(&dir.path().join("out"), &[], &[("NOTIFY_SOCKET", path.as_path()), ("WATCHDOG_USEC", watchdog)]);
    let (mut ready, mut pings) = (false, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 512];
    while (!ready || pings < 3) && Instant::now() < deadline {
        let n = socket.recv(&mut buf).expect("a notification from sg-host");
        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
        ready |= message.lines().any(|l| l == "READY=1");
        pings += message.lines().filter(|l| *l == "WATCHDOG=1").count();
    }
    assert!(ready, "READY=1 was sent");
    assert!(pings >= 3, "the watchdog is fed at half its interval: {pings} pings");
    drop(child.stdin.take());
    let (status, stderr) = stderr_of(child);
    assert!(status.success(), "{stderr}");
}
