//! Argument groups shared by the commands (flattened into each), with their defaults written
//! once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use sg_pipeline::admin::AdminSettings;
use sg_core::runtime::Limits;
use sg_pipeline::sink::alerts::{AlertOptions, AlertTarget, WebhookSettings};
use sg_pipeline::source::Input;

/// Settings of every Kafka client a command makes.
#[derive(Args, Debug, Clone, Default)]
pub(super) struct KafkaClientArgs {
    /// A librdkafka property, `key=value` (repeatable), e.g. `-X security.protocol=SASL_PLAINTEXT`.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    property: Vec<String>,
}

impl KafkaClientArgs {
    /// The properties as pairs.
    pub(super) fn properties(&self) -> Result<Vec<(String, String)>> {
        self.property
            .iter()
            .map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect::<Option<Vec<_>>>()
            .context("-X takes key=value")
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

/// The admin API of a stream.
#[derive(Args, Debug, Clone, Default)]
pub(super) struct AdminArgs {
    /// With --follow: serve the admin API (components, upload, rollback, /metrics) on this
    /// loopback address, e.g. `127.0.0.1:9900`.
    #[arg(long, requires = "follow")]
    admin: Option<SocketAddr>,
    /// File holding the bearer token the admin API requires for changes (or `SG_ADMIN_TOKEN`).
    #[arg(long, requires = "admin")]
    admin_token_file: Option<PathBuf>,
}

impl AdminArgs {
    /// The settings, when the API is wanted; uploaded candidates are kept in `uploads`.
    pub(super) fn settings(&self, uploads: PathBuf) -> Result<Option<AdminSettings>> {
        let Some(address) = self.admin else { return Ok(None) };
        Ok(Some(AdminSettings { address, token: admin_token(self.admin_token_file.as_deref())?, uploads }))
    }
}

/// The admin API's bearer token: from `file`, else `SG_ADMIN_TOKEN`, else none (changes off).
fn admin_token(file: Option<&Path>) -> Result<Option<String>> {
    Ok(match file {
        Some(f) => Some(std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?.trim().to_string()),
        None => std::env::var("SG_ADMIN_TOKEN").ok(),
    })
}

/// `500ms`, `10s`, `2` (seconds), `10min`, `1h`.
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.find(|c: char| c.is_ascii_alphabetic()).map_or((s, "s"), |i| s.split_at(i));
    let v: f64 = num.trim().parse().map_err(|_| format!("not a duration: {s}"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("unknown unit in {s} (ms, s, min)")),
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
            kafka_properties: kafka.properties()?,
            authorization_file: self.alert_auth_file.clone(),
            webhook: WebhookSettings { timeout: self.alert_timeout, attempts: self.alert_attempts.max(1), ..WebhookSettings::default() },
        })
    }
}
