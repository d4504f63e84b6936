//! Watching the component file: a change is reported once the file has stopped changing
//! (so a copy in progress is not picked up half-written).

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// How long a changed file must stay unchanged before it is reported.
const SETTLE: Duration = Duration::from_millis(300);

/// Size and modification time.
type Stamp = Option<(u64, SystemTime)>;

fn stamp(path: &PathBuf) -> Stamp {
    std::fs::metadata(path).ok().and_then(|m| Some((m.len(), m.modified().ok()?)))
}

/// A watched file.
pub struct FileWatch {
    path: PathBuf,
    seen: Stamp,
    pending: Option<(Stamp, Instant)>,
}

impl FileWatch {
    /// Watches `path` from its present state.
    pub fn new(path: PathBuf) -> FileWatch {
        let seen = stamp(&path);
        FileWatch { path, seen, pending: None }
    }

    /// The path, once a change has settled (a `stat` per call).
    pub fn changed(&mut self) -> Option<PathBuf> {
        let now = stamp(&self.path);
        if now == self.seen {
            self.pending = None;
            return None;
        }
        match self.pending {
            Some((s, since)) if s == now && since.elapsed() >= SETTLE && now.is_some() => {
                self.seen = now;
                self.pending = None;
                Some(self.path.clone())
            }
            Some((s, _)) if s == now => None,
            _ => {
                self.pending = Some((now, Instant::now()));
                None
            }
        }
    }
}
