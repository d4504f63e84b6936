//! The one signal handler: a thread, started when a live job first asks, that turns `SIGINT`
//! and `SIGTERM` into a stop flag (the job finishes the batch in hand and commits) and `SIGHUP`
//! into reload requests. Bounded runs never start it, so Ctrl-C ends them at once (their output
//! is staged, so nothing half-written is left).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// What a `SIGHUP` calls.
type Reload = Box<dyn Fn() + Send>;

struct Signals {
    stop: Arc<AtomicBool>,
    reloads: Mutex<Vec<Reload>>,
}

fn signals() -> &'static Signals {
    static SIGNALS: OnceLock<Signals> = OnceLock::new();
    SIGNALS.get_or_init(|| {
        let started = std::thread::Builder::new().name("sg-signals".into()).spawn(listen);
        if let Err(e) = started {
            eprintln!("sg-host: no signal handling: {e}");
        }
        Signals { stop: Arc::new(AtomicBool::new(false)), reloads: Mutex::new(Vec::new()) }
    })
}

fn listen() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    runtime.block_on(async {
        let (Ok(mut interrupt), Ok(mut terminate), Ok(mut hangup)) =
            (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup()))
        else {
            eprintln!("sg-host: cannot install signal handlers");
            return;
        };
        loop {
            tokio::select! {
                _ = interrupt.recv() => stop(),
                _ = terminate.recv() => stop(),
                _ = hangup.recv() => {
                    signals().reloads.lock().expect("not poisoned").iter().for_each(|reload| reload());
                }
            }
        }
    });
}

fn stop() {
    eprintln!("sg-host: stopping: finishing the batch in hand and committing");
    signals().stop.store(true, Ordering::SeqCst);
}

/// The flag `SIGINT` and `SIGTERM` set (handling them from now on).
pub fn stop_flag() -> Arc<AtomicBool> {
    signals().stop.clone()
}

/// Calls `reload` on every `SIGHUP` (handling signals from now on).
pub fn on_hangup(reload: impl Fn() + Send + 'static) {
    signals().reloads.lock().expect("not poisoned").push(Box::new(reload));
}
