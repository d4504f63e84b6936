//! Liveness and readiness of the process, as `/healthz` and `/readyz` report them: the run
//! loop beats once per turn (a stalled loop stops beating), the source says when partitions are
//! assigned, and the pipeline says when its components are loaded.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// The process's health, shared by the run loop, the source and the probe endpoints.
pub struct Health {
    started: Instant,
    /// Milliseconds since `started` of the loop's last turn; `u64::MAX` before the first.
    last_beat_ms: AtomicU64,
    /// Partitions assigned to a group member; −1 for a source that has no assignment.
    assigned: AtomicI64,
    /// The pipeline's components are loaded.
    loaded: AtomicBool,
    /// A durable write waiting for space (the disk is full), and why.
    storage_fault: std::sync::Mutex<Option<String>>,
    /// The output directory and the free bytes its filesystem must keep for readiness.
    space: std::sync::Mutex<Option<(std::path::PathBuf, u64)>>,
}

/// The one health record of the process.
pub static HEALTH: LazyLock<Health> = LazyLock::new(Health::new);

/// What `/healthz` answers.
#[derive(Clone, Debug, PartialEq)]
pub struct Liveness {
    /// Whether the loop turned within the deadline (or has not started yet).
    pub alive: bool,
    /// Time since the loop's last turn, if it turned.
    pub since_last_turn: Option<Duration>,
}

impl Health {
    /// A process that has not started its loop: no beat, no assignment, nothing loaded.
    fn new() -> Health {
        Health {
            started: Instant::now(),
            last_beat_ms: AtomicU64::new(u64::MAX),
            assigned: AtomicI64::new(-1),
            loaded: AtomicBool::new(false),
            storage_fault: std::sync::Mutex::new(None),
            space: std::sync::Mutex::new(None),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The run loop turned (read, processed or waited one batch).
    pub fn beat(&self) {
        self.last_beat_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A group member's assignment: `partitions` partitions now (0 after a revocation).
    pub fn set_assigned(&self, partitions: usize) {
        self.assigned.store(partitions as i64, Ordering::Relaxed);
    }

    /// The pipeline's components are loaded (or no longer are).
    pub fn set_loaded(&self, loaded: bool) {
        self.loaded.store(loaded, Ordering::Relaxed);
    }

    /// A durable write is waiting for space (`Some(why)`), or no longer is.
    pub fn set_storage_fault(&self, fault: Option<String>) {
        *self.storage_fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
    }

    /// Ready only while the filesystem of `dir` has `min_free` bytes available.
    pub fn watch_space(&self, dir: std::path::PathBuf, min_free: u64) {
        *self.space.lock().unwrap_or_else(|e| e.into_inner()) = Some((dir, min_free));
    }

    /// Alive when the loop turned within `deadline`; a loop that has not started yet is alive
    /// while the process is younger than `deadline` (start-up: loading, connecting).
    pub fn liveness(&self, deadline: Duration) -> Liveness {
        let now = self.now_ms();
        let last = self.last_beat_ms.load(Ordering::Relaxed);
        let since = (last != u64::MAX).then(|| Duration::from_millis(now.saturating_sub(last)));
        let alive = since.unwrap_or(Duration::from_millis(now)) <= deadline;
        Liveness { alive, since_last_turn: since }
    }

    /// Ready when the components are loaded and, for a group member, partitions are assigned;
    /// otherwise the reason.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.loaded.load(Ordering::Relaxed) {
            return Err("components are not loaded yet".into());
        }
        if let Some(why) = &*self.storage_fault.lock().unwrap_or_else(|e| e.into_inner()) {
            return Err(format!("waiting for disk space: {why}"));
        }
        if let Some((dir, min_free)) = &*self.space.lock().unwrap_or_else(|e| e.into_inner())
            && let Ok(free) = free_bytes(dir)
            && free < *min_free
        {
            return Err(format!("{free} bytes free on the filesystem of {} (fewer than --min-free-space, {min_free})", dir.display()));
        }
        match self.assigned.load(Ordering::Relaxed) {
            0 => Err("no partitions are assigned to this member".into()),
            _ => Ok(()),
        }
    }
}

/// Bytes an unprivileged writer may still use on the filesystem holding `path`.
pub fn free_bytes(path: &std::path::Path) -> std::io::Result<u64> {
    let s = rustix::fs::statvfs(path)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_loaded_and_assigned_alive_while_the_loop_turns() {
        let h = Health::new();
        assert!(h.readiness().unwrap_err().contains("not loaded"));
        h.set_loaded(true);
        assert!(h.readiness().is_ok(), "a source without an assignment is ready once loaded");
        h.set_assigned(0);
        assert!(h.readiness().unwrap_err().contains("no partitions"));
        h.set_assigned(2);
        assert!(h.readiness().is_ok());
        h.set_storage_fault(Some("writing window=x: No space left on device".into()));
        assert!(h.readiness().unwrap_err().contains("waiting for disk space"));
        h.set_storage_fault(None);
        assert!(h.readiness().is_ok());
        let here = std::env::temp_dir();
        h.watch_space(here.clone(), u64::MAX);
        assert!(h.readiness().unwrap_err().contains("--min-free-space"));
        h.watch_space(here, 1);
        assert!(h.readiness().is_ok());
        assert!(h.liveness(Duration::from_secs(5)).alive, "starting up");
        h.beat();
        assert!(h.liveness(Duration::from_secs(5)).alive);
        std::thread::sleep(Duration::from_millis(30));
        let stalled = h.liveness(Duration::from_millis(10));
        assert!(!stalled.alive && stalled.since_last_turn.unwrap() >= Duration::from_millis(30), "{stalled:?}");
    }
}
