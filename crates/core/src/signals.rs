//! The one signal handler: a thread, started when a job first asks, that turns `SIGINT` and
//! `SIGTERM` into a stop flag (a live job finishes the batch in hand and commits) and `SIGHUP`
//! into reload requests. A bounded run asks instead ([`exit_on_stop`]) that the signal end the
//! process at once, after removing its staging directories ([`remove_on_exit`]): nothing is
//! committed and nothing half-written is left behind.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// What a `SIGHUP` calls.
type Reload = Box<dyn Fn() + Send>;

struct Signals {
    stop: Arc<AtomicBool>,
    reloads: Mutex<Vec<Reload>>,
    /// A stop signal ends the process (a bounded run).
    exit: AtomicBool,
}

/// Directories a stop signal that ends the process removes first (registering one does not
/// start the handler).
static CLEANUP: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn cleanup() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    CLEANUP.lock().unwrap_or_else(|p| p.into_inner())
}

fn signals() -> &'static Signals {
    static SIGNALS: OnceLock<Signals> = OnceLock::new();
    SIGNALS.get_or_init(|| {
        let started = std::thread::Builder::new().name("sg-signals".into()).spawn(listen);
        if let Err(e) = started {
            tracing::warn!("no signal handling: {e}");
        }
        Signals {
            stop: Arc::new(AtomicBool::new(false)),
            reloads: Mutex::new(Vec::new()),
            exit: AtomicBool::new(false),
        }
    })
}

fn listen() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    runtime.block_on(async {
        let (Ok(mut interrupt), Ok(mut terminate), Ok(mut hangup)) =
            (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup()))
        else {
            tracing::warn!("cannot install signal handlers");
            return;
        };
        loop {
            tokio::select! {
                _ = interrupt.recv() => stop(130),
                _ = terminate.recv() => stop(143),
                _ = hangup.recv() => {
                    signals().reloads.lock().expect("not poisoned").iter().for_each(|reload| reload());
                }
            }
        }
    });
}

fn stop(exit_code: i32) {
    let signals = signals();
    if signals.exit.load(Ordering::SeqCst) {
        let cleanup = cleanup();
        for dir in cleanup.iter() {
            let _ = std::fs::remove_dir_all(dir);
        }
        tracing::warn!("stopped by a signal: nothing written, nothing committed ({} staging directories removed)", cleanup.len());
        std::process::exit(exit_code);
    }
    tracing::info!("stopping: finishing the batch in hand and committing");
    signals.stop.store(true, Ordering::SeqCst);
}

/// From now on `SIGINT` and `SIGTERM` end the process at once (exit status 130 and 143) after
/// removing the directories registered with [`remove_on_exit`]: a bounded run has nothing to
/// finish, and commits nothing it did not write.
pub fn exit_on_stop() {
    signals().exit.store(true, Ordering::SeqCst);
}

/// A directory removed if a stop signal ends the process while this is held.
pub struct RemovedOnExit(PathBuf);

/// Registers `dir` for removal by a stop signal that ends the process ([`exit_on_stop`]).
pub fn remove_on_exit(dir: PathBuf) -> RemovedOnExit {
    cleanup().push(dir.clone());
    RemovedOnExit(dir)
}

impl RemovedOnExit {
    /// Runs `f` (which moves the directory into place) with signals' removal held off, then
    /// unregisters the directory: a signal removes it either before `f` or not at all.
    pub fn release_with<T>(self, f: impl FnOnce() -> T) -> T {
        let mut registered = cleanup();
        let result = f();
        registered.retain(|d| *d != self.0);
        drop(registered);
        std::mem::forget(self);
        result
    }
}

impl Drop for RemovedOnExit {
    fn drop(&mut self) {
        cleanup().retain(|d| *d != self.0);
    }
}

/// The flag `SIGINT` and `SIGTERM` set (handling them from now on).
pub fn stop_flag() -> Arc<AtomicBool> {
    signals().stop.clone()
}

/// Calls `reload` on every `SIGHUP` (handling signals from now on).
pub fn on_hangup(reload: impl Fn() + Send + 'static) {
    signals().reloads.lock().expect("not poisoned").push(Box::new(reload));
}
