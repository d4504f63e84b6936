//! `file://PATH`: alerts appended as JSON lines and fsynced before they count as delivered.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use super::{AlertSink, Finding};

/// A JSON-lines alert file.
pub struct AlertFile {
    name: String,
    file: File,
}

impl AlertFile {
    /// Opens `path` for appending (created, with its directory entry synced, when missing).
    pub fn open(path: &Path) -> Result<AlertFile> {
        let existed = path.exists();
        let file = OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("opening {}", path.display()))?;
        if !existed && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", dir.display()))?;
        }
        Ok(AlertFile { name: format!("file://{}", path.display()), file })
    }
}

impl AlertSink for AlertFile {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&mut self, findings: &[Finding]) -> Result<u64> {
        let mut lines = Vec::new();
        for f in findings {
            serde_json::to_writer(&mut lines, &f.record)?;
            lines.push(b'\n');
        }
        // One write of whole lines, then fsync: a crash leaves whole alerts (a torn last line
        // at worst, which a re-run's identical alert follows).
        self.file.write_all(&lines).and_then(|()| self.file.sync_data()).with_context(|| format!("writing {}", self.name))?;
        Ok(0)
    }
}
