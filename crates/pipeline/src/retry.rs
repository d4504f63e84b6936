//! Retrying a remote call: exponential backoff (backon's), and which HTTP answers are worth
//! another attempt. One policy for every HTTP client of the host (webhooks, embedders).

use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_and_throttling_are_retried_client_errors_are_not() {
        assert!(retryable_status(503) && retryable_status(429) && retryable_status(408));
        assert!(!retryable_status(400) && !retryable_status(401) && !retryable_status(200));
    }
}
