//! Retrying: exponential backoff (backon's) and which HTTP answers are worth another attempt,
//! one policy for every HTTP client of the host (webhooks, embedders); and waiting out a full
//! disk, one policy for every durable write of a stream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use backon::BackoffBuilder;
use sg_metrics::health::HEALTH;

/// `attempts` tries in all, waiting `first` after the first failure, doubling, at most `cap`.
pub fn backoff(first: Duration, cap: Duration, attempts: u32) -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(first)
        .with_max_delay(cap)
        .with_max_times(attempts.saturating_sub(1) as usize)
}

/// Whether an HTTP status is worth retrying: 5xx, 408 (timeout) and 429 (slow down).
pub fn retryable_status(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// Whether `e` is a full disk, an exceeded quota or the file-size limit anywhere in its chain:
/// faults that pass once space is freed.
pub fn out_of_space(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
    e.chain().any(|cause| match cause.downcast_ref::<std::io::Error>() {
        Some(io) => matches!(io.kind(), StorageFull | QuotaExceeded | FileTooLarge),
        // Libraries that keep only the text of an I/O error (Parquet's, Arrow's).
        None => {
            let text = cause.to_string();
            ["No space left on device", "Disk quota exceeded", "File too large"].iter().any(|m| text.contains(m))
        }
    })
}

/// Runs `write` until it succeeds, fails for a reason other than space, or `stop` is set.
/// While the disk is full it waits (1 s, doubling to 30 s) and tries again: the process stays
/// alive (the loop beats) and not ready (`/readyz` gives the reason), and nothing after this
/// write is done — no offset is committed past what is not written.
pub fn while_out_of_space<T>(what: &str, stop: &AtomicBool, mut write: impl FnMut() -> Result<T>) -> Result<T> {
    let mut waits = backoff(Duration::from_secs(1), Duration::from_secs(30), u32::MAX).without_max_times().build();
    let mut attempt = 0u64;
    loop {
        HEALTH.beat();
        match write() {
            Ok(done) => {
                if attempt > 0 {
                    tracing::info!("{what}: written after {attempt} retries; space is back");
                    HEALTH.set_storage_fault(None);
                }
                return Ok(done);
            }
            Err(e) if out_of_space(&e) && !stop.load(Ordering::SeqCst) => {
                attempt += 1;
                let wait = waits.next().unwrap_or(Duration::from_secs(30));
                tracing::warn!("{what}: {e:#}; retry {attempt} in {wait:?} (nothing is committed past it meanwhile)");
                HEALTH.set_storage_fault(Some(format!("{what}: {e:#}")));
                sg_metrics::METRICS.storage_retries.inc();
                // Sleep in short steps, beating, so a stop is seen and liveness holds.
                let until = std::time::Instant::now() + wait;
                while std::time::Instant::now() < until && !stop.load(Ordering::SeqCst) {
                    HEALTH.beat();
                    std::thread::sleep(Duration::from_millis(100).min(until - std::time::Instant::now()));
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_waited_out_and_other_errors_are_not() {
        let full = || anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::StorageFull)).context("writing window=x");
        assert!(out_of_space(&full()));
        assert!(out_of_space(&anyhow::anyhow!("External: No space left on device (os error 28)")));
        assert!(!out_of_space(&anyhow::anyhow!("permission denied")));
        let stop = AtomicBool::new(false);
        let mut tries = 0;
        let written = while_out_of_space("test", &stop, || {
            tries += 1;
            if tries < 2 { Err(full()) } else { Ok(tries) }
        });
        assert_eq!(written.unwrap(), 2);
        assert!(HEALTH.readiness().err().is_none_or(|r| !r.contains("test")), "ready again once written");
        let other = while_out_of_space("test", &stop, || -> Result<()> { Err(anyhow::anyhow!("permission denied")) });
        assert!(other.is_err());
        stop.store(true, Ordering::SeqCst);
        assert!(while_out_of_space("test", &stop, || -> Result<()> { Err(full()) }).is_err(), "a stop ends the wait");
    }

    #[test]
    fn server_errors_and_throttling_are_retried_client_errors_are_not() {
        assert!(retryable_status(503) && retryable_status(429) && retryable_status(408));
        assert!(!retryable_status(400) && !retryable_status(401) && !retryable_status(200));
    }
}
