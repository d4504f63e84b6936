//! What every client shares about its connection to the brokers: librdkafka's log lines and
//! errors sent to sg-host's log, and a failed connection explained by what librdkafka last
//! reported (a TLS handshake, a SASL authentication) instead of a bare timeout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use rdkafka::ClientContext;
use rdkafka::admin::AdminClient;
use rdkafka::client::Client;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::producer::{Producer, ProducerContext, ThreadedProducer};
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
    /// librdkafka's last connection failure line (facility `FAIL`): the reason behind an
    /// error that arrives as a bare code.
    last_failure: Mutex<Option<String>>,
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
            self.note(fault);
        }
    }

    /// Keeps `fault` as the last one, unless it is a transport fault after a TLS or
    /// authentication fault (which explains it).
    fn note(&self, fault: ConnectionFault) {
        let mut last = self.fault.lock().expect("not poisoned");
        if !last.as_ref().is_some_and(|f| f.is_fatal() && !fault.is_fatal()) {
            *last = Some(fault);
        }
    }

    /// The fault a connection-failure line of librdkafka's (facility `FAIL`) reports. These
    /// lines arrive as they happen, while error events wait for the client's queue to be
    /// served, so a TLS or SASL failure is known at the first attempt.
    fn fault_of_failure(message: &str) -> Option<ConnectionFault> {
        if message.contains("SSL handshake failed") || message.contains("SSL routines") {
            Some(ConnectionFault::Tls(message.to_string()))
        } else if message.contains("SASL authentication error") || message.contains("SASL SCRAM authentication failed") {
            Some(ConnectionFault::Authentication(message.to_string()))
        } else {
            None
        }
    }

    /// Records an error that came without librdkafka's text (a consumer's poll returns codes):
    /// the reason is the last connection failure librdkafka logged.
    pub fn record_code(&self, error: &KafkaError) {
        let reason = self.last_failure.lock().expect("not poisoned").clone().unwrap_or_else(|| error.to_string());
        self.record(error, &reason);
    }

    /// Forwards one librdkafka log line; what [`ClientContext::log`] does for every context here.
    pub fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if facility == "FAIL" {
            *self.last_failure.lock().expect("not poisoned") = Some(message.to_string());
            if let Some(fault) = Connection::fault_of_failure(message) {
                self.note(fault);
            }
        }
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
        Connection::log(self, level, facility, message);
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

/// A client whose connection faults can be read: librdkafka hands errors and log lines to a
/// client's context only when its event queue is served, which a consumer does in `poll` and
/// a threaded producer or an admin client on their own threads.
pub trait Connects {
    /// The client's context.
    type Context: HasConnection;
    /// The client.
    fn client(&self) -> &Client<Self::Context>;
    /// Serves the client's pending events (errors, log lines) without waiting.
    fn serve_events(&self) {}
}

impl<C: HasConnection + ConsumerContext> Connects for BaseConsumer<C> {
    type Context = C;
    fn client(&self) -> &Client<C> {
        Consumer::client(self)
    }
    /// Called before anything is assigned, so no message can be taken here; the errors a
    /// consumer's poll returns are recorded as connection faults.
    fn serve_events(&self) {
        for _ in 0..64 {
            match self.poll(Duration::ZERO) {
                Some(Err(e)) => self.context().connection().record_code(&e),
                Some(Ok(_)) => {}
                None => break,
            }
        }
    }
}

impl<C: HasConnection + ProducerContext> Connects for ThreadedProducer<C> {
    type Context = C;
    fn client(&self) -> &Client<C> {
        Producer::client(self)
    }
}

impl<C: HasConnection> Connects for AdminClient<C> {
    type Context = C;
    fn client(&self) -> &Client<C> {
        self.inner()
    }
}

/// Metadata of `topic` (all topics when `None`), asked in short attempts for up to
/// [`META_TIMEOUT`]: a TLS or authentication fault ends the wait at once with its reason (it
/// cannot heal by itself), and a timeout names the last fault seen.
pub fn metadata<K: Connects>(connects: &K, topic: Option<&str>) -> Result<Metadata> {
    let client = connects.client();
    let deadline = Instant::now() + META_TIMEOUT;
    loop {
        let attempt = Duration::from_millis(500).min(deadline.saturating_duration_since(Instant::now()));
        let result = client.fetch_metadata(topic, attempt);
        connects.serve_events();
        let error = match result {
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

    #[test]
    fn librdkafka_failure_lines_name_the_fault_as_they_arrive() {
        let c = Connection::default();
        c.log(RDKafkaLogLevel::Error, "FAIL", "ssl://h:1/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed");
        assert!(matches!(c.fault(), Some(ConnectionFault::Tls(ref r)) if r.contains("certificate verify failed")));
        let c = Connection::default();
        c.log(RDKafkaLogLevel::Error, "FAIL", "sasl_ssl://h:1/bootstrap: SASL authentication error: SASL SCRAM authentication failed: broker responded with invalid-proof");
        assert!(matches!(c.fault(), Some(ConnectionFault::Authentication(_))));
        let c = Connection::default();
        c.log(RDKafkaLogLevel::Error, "FAIL", "h:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused");
        assert_eq!(c.fault(), None, "a refused connection may heal: it is not fatal");
    }
}
