//! What every client shares about its connection to the brokers: librdkafka's log lines and
//! errors sent to sg-host's log, and a failed connection explained by what librdkafka last
//! reported (a TLS handshake, a SASL authentication) instead of a bare timeout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use rdkafka::ClientContext;
use rdkafka::client::Client;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;

use crate::META_TIMEOUT;

/// Why the brokers could not be used, as librdkafka reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionFault {
    /// The TLS handshake failed (an untrusted or mismatched certificate, a plaintext listener).
    Tls(String),
    /// SASL authentication was refused (a wrong user or password, a mechanism the broker lacks).
    Authentication(String),
    /// The brokers could not be reached or resolved.
    Transport(String),
}

impl ConnectionFault {
    /// A TLS or authentication fault: retrying with the same settings cannot succeed.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ConnectionFault::Tls(_) | ConnectionFault::Authentication(_))
    }
}

impl std::fmt::Display for ConnectionFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectionFault::Tls(r) => write!(f, "TLS handshake with the broker failed (check ssl.ca.location, the certificate's names, security.protocol): {r}"),
            ConnectionFault::Authentication(r) => write!(f, "SASL authentication failed (check sasl.mechanism, sasl.username, sasl.password): {r}"),
            ConnectionFault::Transport(r) => write!(f, "the brokers could not be reached: {r}"),
        }
    }
}

/// The part of a client's context every sg-host client has: it logs librdkafka's lines under
/// the `librdkafka` target and keeps the last connection fault, so an operation that failed
/// for want of a broker can say why.
#[derive(Default)]
pub struct Connection {
    fault: Mutex<Option<ConnectionFault>>,
}

impl Connection {
    /// The last TLS, authentication or transport fault librdkafka reported.
    pub fn fault(&self) -> Option<ConnectionFault> {
        self.fault.lock().expect("not poisoned").clone()
    }

    /// `error` with the last connection fault attached, when there is one.
    pub fn explain(&self, error: anyhow::Error) -> anyhow::Error {
        match self.fault() {
            Some(fault) => error.context(fault.to_string()),
            None => error,
        }
    }

    /// Records a fault and logs it; what [`ClientContext::error`] does for every context here.
    pub fn record(&self, error: &KafkaError, reason: &str) {
        let fault = match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::SSL) => Some(ConnectionFault::Tls(reason.to_string())),
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed) => {
                Some(ConnectionFault::Authentication(reason.to_string()))
            }
            Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::Resolve) => {
                Some(ConnectionFault::Transport(reason.to_string()))
            }
            _ => None,
        };
        tracing::warn!(target: "librdkafka", error = %error, "{reason}");
        if let Some(fault) = fault {
            let mut last = self.fault.lock().expect("not poisoned");
            // A TLS or authentication fault explains the transport faults that follow it.
            if !last.as_ref().is_some_and(|f| f.is_fatal() && !fault.is_fatal()) {
                *last = Some(fault);
            }
        }
    }

    /// Forwards one librdkafka log line; what [`ClientContext::log`] does for every context here.
    pub fn log(level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!(target: "librdkafka", facility, "{message}"),
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }
}

impl ClientContext for Connection {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        Connection::log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.record(&error, reason);
    }
}

impl rdkafka::consumer::ConsumerContext for Connection {}

/// A context that holds a [`Connection`].
pub trait HasConnection: ClientContext {
    /// The connection part of this context.
    fn connection(&self) -> &Connection;
}

impl HasConnection for Connection {
    fn connection(&self) -> &Connection {
        self
    }
}

/// Metadata of `topic` (all topics when `None`), asked in short attempts for up to
/// [`META_TIMEOUT`]: a TLS or authentication fault ends the wait at once with its reason (it
/// cannot heal by itself), and a timeout names the last fault seen.
pub fn metadata<C: HasConnection>(client: &Client<C>, topic: Option<&str>) -> Result<Metadata> {
    let deadline = Instant::now() + META_TIMEOUT;
    loop {
        let attempt = Duration::from_secs(1).min(deadline.saturating_duration_since(Instant::now()));
        let error = match client.fetch_metadata(topic, attempt) {
            Ok(metadata) => return Ok(metadata),
            Err(e) => e,
        };
        let connection = client.context().connection();
        if let Some(fault) = connection.fault().filter(ConnectionFault::is_fatal) {
            return Err(anyhow!("{fault}"));
        }
        if Instant::now() >= deadline {
            return Err(connection.explain(anyhow::Error::new(error).context(format!("no metadata within {META_TIMEOUT:?}"))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_fault_is_not_hidden_by_the_transport_faults_after_it() {
        let c = Connection::default();
        c.record(&KafkaError::Global(RDKafkaErrorCode::SSL), "certificate verify failed");
        c.record(&KafkaError::Global(RDKafkaErrorCode::AllBrokersDown), "1/1 brokers are down");
        let fault = c.fault().unwrap();
        assert!(matches!(fault, ConnectionFault::Tls(ref r) if r.contains("certificate verify failed")), "{fault:?}");
        assert!(fault.to_string().contains("TLS"));
        c.record(&KafkaError::Global(RDKafkaErrorCode::Authentication), "invalid credentials");
        assert!(matches!(c.fault(), Some(ConnectionFault::Authentication(_))));
    }
}
