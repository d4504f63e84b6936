//! Argument groups shared by the commands (flattened into each), with their defaults written
//! once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use sg_pipeline::admin::{AdminSettings, TlsFiles};
use sg_core::bundle::{Bundle, Signer, Trust};
use sg_core::runtime::Limits;
use sg_pipeline::sink::alerts::{AlertOptions, AlertTarget, WebhookSettings};
use sg_pipeline::source::Input;
use sg_kafka::{ClientSettings, Replication};
use sg_dedup::EmbedderChoice;
use sg_dedup::embed::{DEFAULT_MODEL_DIR, Precision};

/// Settings of every Kafka client a command makes.
#[derive(Args, Debug, Clone, Default)]
pub(super) struct KafkaClientArgs {
    /// A librdkafka property, `key=value` (repeatable), e.g. `-X security.protocol=SASL_SSL`.
    /// Secrets belong in --kafka-config or `SG_RDKAFKA_…` variables, not here, where `ps` shows them.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    property: Vec<String>,
    /// librdkafka properties from a file, one `key=value` per line (`#` comments; the format
    /// kcat's `-F` reads): where passwords and keys go. `-X` and `SG_RDKAFKA_…` override it.
    #[arg(long, value_name = "FILE")]
    kafka_config: Option<PathBuf>,
    /// Copies of each partition of a topic sg-host creates (the dead-letter and alert topics,
    /// `produce --create-partitions`): a number, or `default` for the brokers' own
    /// `default.replication.factor`.
    #[arg(long, value_name = "N|default", default_value = "default")]
    replication_factor: Replication,
}

impl KafkaClientArgs {
    /// The properties in force and the replication of created topics.
    pub(super) fn settings(&self) -> Result<ClientSettings> {
        Ok(ClientSettings { properties: self.properties()?, replication: self.replication_factor })
    }

    /// The properties in force: the --kafka-config file's, then each `-X` (the config file's
    /// `[kafka]` and `SG_RDKAFKA_…` arrive as `-X` before the command line's); later wins.
    pub(super) fn properties(&self) -> Result<Vec<(String, String)>> {
        let mut properties = match &self.kafka_config {
            Some(path) => super::config::read_properties(path)?,
            None => Vec::new(),
        };
        for kv in &self.property {
            let (k, v) = kv.split_once('=').with_context(|| format!("-X {kv:?}: expected key=value"))?;
            properties.push((k.trim().to_string(), v.to_string()));
        }
        Ok(properties)
    }
}

/// A deployment bundle and whom its signature must come from.
#[derive(Args, Debug, Clone, Default)]
pub(super) struct BundleArgs {
    /// A deployment bundle (`sg-host bundle create`): its components and model replace
    /// --component/--policy, --detector and --model. Its signature and every digest are
    /// verified before anything runs.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// A public key whose signature makes a bundle runnable: a minisign `.pub` file, a file
    /// of keys (one base64 key per line) or a base64 key (repeatable).
    #[arg(long, value_name = "PUBKEY|KEYS_FILE")]
    trust: Vec<String>,
    /// Run a bundle that no trusted key signed (logged at warn). Its digests are still checked.
    #[arg(long)]
    allow_unsigned: bool,
}

impl BundleArgs {
    /// The bundle, opened and verified, when one is given.
    pub(super) fn open(&self) -> Result<Option<Bundle>> {
        let Some(dir) = &self.bundle else { return Ok(None) };
        let trust = Trust::new(&self.trust, self.allow_unsigned)?;
        let bundle = Bundle::open(dir, &trust)?;
        if let Signer::Trusted(key) = bundle.signer() {
            tracing::info!(bundle = %dir.display(), "signature by trusted key {key} verified");
        }
        Ok(Some(bundle))
    }
}

/// The sandbox every component call runs in.
#[derive(Args, Debug, Clone)]
pub(super) struct SandboxArgs {
    /// Deadline for one call into a component (e.g. `10s`, `500ms`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    call_timeout: Duration,
    /// Memory cap of a component instance (e.g. `512MiB`).
    #[arg(long, default_value = "512MiB", value_parser = parse_size)]
    memory_limit: usize,
}

impl SandboxArgs {
    /// The limits, with the defaults for the rest.
    pub(super) fn limits(&self) -> Limits {
        Limits { call_deadline: self.call_timeout, memory_bytes: self.memory_limit, ..Limits::default() }
    }
}

/// The in-process embedding model: where it is and its arithmetic (`dedup`, `store`, `serve`).
#[derive(Args, Debug, Clone)]
pub(super) struct ModelArgs {
    /// all-MiniLM-L6-v2 directory for the in-process embedder (scripts/fetch-model.sh fills it;
    /// a store is queried with the model that embedded it).
    #[arg(long, global = true, env = "SG_MODEL_DIR", default_value = DEFAULT_MODEL_DIR)]
    model_dir: PathBuf,
    /// The in-process model's arithmetic: `fp32` (the model's own vectors) or `int8` (vectors
    /// within cosine ~0.996 of fp32's; faster only on CPUs with int8 dot products, e.g. VNNI).
    #[arg(long, global = true, env = "SG_EMBED_PRECISION", default_value = "fp32")]
    embed_precision: Precision,
}

impl ModelArgs {
    /// The in-process embedder these name.
    pub(super) fn in_process(&self) -> EmbedderChoice {
        EmbedderChoice::InProcess(self.model_dir.clone(), self.embed_precision)
    }
}

/// Where dead letters go besides the file, with a Kafka source.
#[derive(Args, Debug, Clone, Default)]
pub(super) struct DeadLetterArgs {
    /// With `--source kafka://…`: the dead-letter topic (default `<topic>.dlq`). Dead letters
    /// are always also written to the dead-letter file.
    #[arg(long)]
    dead_letter_topic: Option<String>,
    /// With `--source kafka://…`: no dead-letter topic, only the file.
    #[arg(long, conflicts_with = "dead_letter_topic")]
    no_dead_letter_topic: bool,
}

impl DeadLetterArgs {
    /// The dead-letter topic for `input`: none for files.
    pub(super) fn topic(&self, input: &Input) -> Option<String> {
        match input {
            Input::Kafka(k) if !self.no_dead_letter_topic => {
                Some(self.dead_letter_topic.clone().unwrap_or_else(|| format!("{}.dlq", k.topic.topic)))
            }
            _ => None,
        }
    }
}

/// The admin API of a stream, and the probe and metrics endpoint of any run.
#[derive(Args, Debug, Clone, Default)]
pub(super) struct AdminArgs {
    /// With --follow: serve the admin API (health, readiness, components, upload, rollback,
    /// /metrics) on this address, e.g. `127.0.0.1:9900`; a non-loopback address needs TLS.
    #[arg(long, requires = "follow")]
    admin: Option<SocketAddr>,
    /// Serve only `/healthz`, `/readyz` and `/metrics` on this address (any run, bounded ones
    /// included); a non-loopback address needs TLS.
    #[arg(long, conflicts_with = "admin")]
    metrics_listen: Option<SocketAddr>,
    /// File holding the bearer token the admin API requires for changes (or `SG_ADMIN_TOKEN`).
    #[arg(long, requires = "admin")]
    admin_token_file: Option<PathBuf>,
    /// TLS certificate chain (PEM) of the admin API or metrics endpoint.
    #[arg(long, requires = "admin_tls_key")]
    admin_tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of the admin API or metrics endpoint.
    #[arg(long, requires = "admin_tls_cert")]
    admin_tls_key: Option<PathBuf>,
    /// CA (PEM) that clients' certificates must chain to: mutual TLS, clients without one are
    /// refused in the handshake (and may make changes without the token when none is set).
    #[arg(long, requires = "admin_tls_cert")]
    admin_client_ca: Option<PathBuf>,
    /// `/healthz` answers 503 when the run loop has not turned for this long.
    #[arg(long, default_value = "2min", value_parser = parse_duration)]
    liveness_deadline: Duration,
}

impl AdminArgs {
    fn tls(&self) -> Option<TlsFiles> {
        let (cert, key) = (self.admin_tls_cert.clone()?, self.admin_tls_key.clone()?);
        Some(TlsFiles { cert, key, client_ca: self.admin_client_ca.clone() })
    }

    /// The settings, when the API is wanted; uploaded candidates are kept in `uploads`.
    pub(super) fn settings(&self, uploads: PathBuf) -> Result<Option<AdminSettings>> {
        let Some(address) = self.admin else { return Ok(None) };
        let token = admin_token(self.admin_token_file.as_deref())?;
        let settings = AdminSettings { address, token, uploads, tls: self.tls(), liveness_deadline: self.liveness_deadline };
        settings.check(true)?;
        Ok(Some(settings))
    }

    /// Starts the probe and metrics endpoint when `--metrics-listen` asks for one, and the
    /// systemd notifier when systemd started the process.
    pub(super) fn start_probes(&self) -> Result<()> {
        super::systemd::start(self.liveness_deadline);
        let Some(address) = self.metrics_listen else { return Ok(()) };
        let settings = AdminSettings { address, token: None, uploads: PathBuf::new(), tls: self.tls(), liveness_deadline: self.liveness_deadline };
        let bound = sg_pipeline::admin::serve(settings, None)?;
        tracing::info!("health, readiness and metrics on {}://{bound}", if self.tls().is_some() { "https" } else { "http" });
        Ok(())
    }
}

/// The admin API's bearer token: from `file`, else `SG_ADMIN_TOKEN`, else none (changes off).
/// An empty token is refused: it would let any request with `Bearer ` through.
fn admin_token(file: Option<&Path>) -> Result<Option<String>> {
    let (token, from) = match file {
        Some(f) => (std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?, f.display().to_string()),
        None => match std::env::var("SG_ADMIN_TOKEN") {
            Ok(t) => (t, "SG_ADMIN_TOKEN".to_string()),
            Err(_) => return Ok(None),
        },
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        anyhow::bail!("the admin token in {from} is empty");
    }
    Ok(Some(token))
}

/// `500ms`, `10s`, `2` (seconds), `10min`, `1h`.
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.find(|c: char| c.is_ascii_alphabetic()).map_or((s, "s"), |i| s.split_at(i));
    let v: f64 = num.trim().parse().map_err(|_| format!("not a duration: {s}"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("not a duration: {s}"));
    }
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        "d" => v * 86_400.0,
        _ => return Err(format!("unknown unit in {s} (ms, s, min, h, d)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// `512MiB`, `4M`, `1024` (bytes).
pub(super) fn parse_size(s: &str) -> Result<usize, String> {
    let (num, unit) = s.find(|c: char| c.is_ascii_alphabetic()).map_or((s, ""), |i| s.split_at(i));
    let v: f64 = num.trim().parse().map_err(|_| format!("not a size: {s}"))?;
    let mult = match unit {
        "" | "B" => 1.0,
        "KiB" | "K" => 1024.0,
        "MiB" | "M" => 1024.0 * 1024.0,
        "GiB" | "G" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("unknown unit in {s} (B, KiB, MiB, GiB)")),
    };
    Ok((v * mult) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert!(parse_size("3 parsecs").is_err());
    }
}

/// Where alerts go.
#[derive(Args, Debug, Clone, Default)]
pub(super) struct AlertArgs {
    /// Send every alerting row as an OCSF Detection Finding to `kafka://HOST:PORT/TOPIC`,
    /// `http(s)://…` (a webhook, POSTed JSON arrays) or `file://PATH` (JSON lines). Repeatable;
    /// each sink acknowledges an output's alerts before its input is.
    #[arg(long = "alerts", value_name = "URL")]
    targets: Vec<String>,
    /// A file holding the webhooks' `Authorization` header value (e.g. `Bearer …`).
    #[arg(long, value_name = "FILE")]
    alert_auth_file: Option<PathBuf>,
    /// Attempts per webhook request before the delivery fails (with exponential backoff).
    #[arg(long, default_value_t = 6)]
    alert_attempts: u32,
    /// Timeout of one webhook request.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    alert_timeout: Duration,
}

impl AlertArgs {
    /// The sinks named by `--alerts`.
    pub(super) fn targets(&self) -> Result<Vec<AlertTarget>> {
        self.targets.iter().map(|t| AlertTarget::parse(t)).collect()
    }

    /// What the sinks need besides their URLs (`kafka` gives the Kafka sinks' properties).
    pub(super) fn options(&self, kafka: &KafkaClientArgs) -> Result<AlertOptions> {
        Ok(AlertOptions {
            kafka: kafka.settings()?,
            authorization_file: self.alert_auth_file.clone(),
            webhook: WebhookSettings { timeout: self.alert_timeout, attempts: self.alert_attempts.max(1), ..WebhookSettings::default() },
        })
    }
}
