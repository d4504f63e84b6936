//! systemd integration (`Type=notify`, `WatchdogSec=`): `READY=1` once the pipeline is ready
//! (components loaded, partitions assigned), and watchdog pings only while the run loop turns
//! within its liveness deadline, so systemd restarts a stalled process. Does nothing when not
//! started by systemd (no `NOTIFY_SOCKET`).

use std::time::Duration;

use sd_notify::NotifyState;
use sg_metrics::health::HEALTH;

/// Starts the notifier thread when systemd is listening.
pub(super) fn start(liveness_deadline: Duration) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let watchdog = sd_notify::watchdog_enabled();
    let every = watchdog.map_or(Duration::from_secs(1), |w| (w / 2).clamp(Duration::from_millis(100), Duration::from_secs(1)));
    let spawned = std::thread::Builder::new().name("sd-notify".into()).spawn(move || {
        let mut ready = false;
        loop {
            if !ready && HEALTH.readiness().is_ok() {
                ready = true;
                if let Err(e) = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status("running")]) {
                    tracing::warn!("systemd: READY=1 not sent: {e}");
                }
            }
            if watchdog.is_some() && HEALTH.liveness(liveness_deadline).alive {
                let _ = sd_notify::notify(&[NotifyState::Watchdog]);
            }
            std::thread::sleep(every);
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("systemd: no notifier thread: {e}");
    }
}
