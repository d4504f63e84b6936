//! A learning (`streamguard:dedup@2`) policy's parameters and state, persisted beside the store
//! so that a restart continues with what was learned: a JSON header line (`policy`,
//! `state_format`, `config`) and then the state's bytes, replaced durably after each batch whose
//! points are stored.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use sg_core::component::policy::{Learned, PolicyComponent};
use sg_core::runtime::Runtime;
use sg_dedup_core::drain::{Drain, Listed, STATE_FORMAT};

use crate::StoreChoice;

/// The header of a state file.
#[derive(Serialize, Deserialize)]
struct Header {
    /// `name@version` of the policy that wrote it.
    policy: String,
    /// The state's format.
    state_format: String,
    /// The parameters it learned with (JSON).
    config: String,
}

/// Where a policy's state is kept.
#[derive(Clone, Debug)]
pub struct StateFile(PathBuf);

impl StateFile {
    /// The state file at `path`.
    pub fn at(path: PathBuf) -> StateFile {
        StateFile(path)
    }

    /// Where the state of `collection` in `store` is kept unless told: beside an embedded store
    /// (`STORE/COLLECTION.policy-state`); for a Qdrant server, `./COLLECTION.policy-state`.
    pub fn beside(store: &StoreChoice, collection: &str) -> StateFile {
        let dir = match store {
            StoreChoice::Embedded(dir) => dir.clone(),
            StoreChoice::Server(_) => PathBuf::from("."),
        };
        StateFile(dir.join(format!("{collection}.policy-state")))
    }

    /// The templates a `drain` policy learned (state format `drain-1`), in the order learned.
    pub fn templates(&self) -> Result<Vec<Listed>> {
        let bytes = std::fs::read(&self.0).with_context(|| format!("reading {}", self.0.display()))?;
        let (header, state) = read(&bytes).with_context(|| format!("reading {}", self.0.display()))?;
        if header.state_format != STATE_FORMAT {
            bail!("{} holds state {:?} (from {}); templates can be listed from {STATE_FORMAT:?}", self.0.display(), header.state_format, header.policy);
        }
        Ok(Drain::import_state(&state).map_err(anyhow::Error::msg)?.templates())
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Starts `policy` from the saved state when there is one in its format; `config` (JSON)
    /// replaces the default parameters of a policy that starts afresh. Returns what it did, for
    /// the log. A 1.x policy is left alone (and given `config`, refused).
    pub fn resume(&self, policy: &mut PolicyComponent, runtime: &Runtime, config: Option<String>) -> Result<String> {
        let Some(learned) = policy.learned() else {
            if config.is_some() {
                bail!("--policy-config: {} is a streamguard:dedup@1 policy, which takes no parameters", policy.label());
            }
            return Ok(format!("{} keeps no state", policy.label()));
        };
        let format = policy.descriptor().state_format.clone().unwrap_or_default();
        let saved = match std::fs::read(&self.0) {
            Ok(bytes) => Some(read(&bytes).with_context(|| format!("reading {}", self.0.display()))?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.0.display())),
        };
        match saved {
            Some((header, state)) if header.state_format == format => {
                if config.as_ref().is_some_and(|c| *c != header.config) {
                    tracing::warn!("--policy-config is ignored: {} continues with the parameters it learned with", self.0.display());
                }
                policy.start_from(runtime, Learned { config: header.config, state: Some(state) })?;
                Ok(format!("{} continues from {} (learned by {})", policy.label(), self.0.display(), header.policy))
            }
            Some((header, _)) => {
                let fresh = Learned { config: config.unwrap_or_else(|| learned.config.clone()), state: None };
                policy.start_from(runtime, fresh)?;
                tracing::warn!(
                    "{} holds state format {:?} (from {}); {} reads {format:?} and starts learning afresh",
                    self.0.display(),
                    header.state_format,
                    header.policy,
                    policy.label()
                );
                Ok(format!("{} starts afresh", policy.label()))
            }
            None => {
                if let Some(config) = config {
                    policy.start_from(runtime, Learned { config, state: None })?;
                }
                Ok(format!("{} starts learning", policy.label()))
            }
        }
    }

    /// Saves what `policy` learned (nothing for a 1.x policy or one that learned nothing yet).
    pub fn save(&self, policy: &PolicyComponent) -> Result<()> {
        let (Some(Learned { config, state: Some(state) }), Some(format)) = (policy.learned(), &policy.descriptor().state_format) else {
            return Ok(());
        };
        let header = Header { policy: policy.label(), state_format: format.clone(), config: config.clone() };
        let mut bytes = serde_json::to_vec(&header)?;
        bytes.push(b'\n');
        bytes.extend_from_slice(state);
        if let Some(dir) = self.0.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        sg_pipeline::sink::durable::replace(&self.0, &bytes)
    }
}

/// The header and the state of a state file's bytes.
fn read(bytes: &[u8]) -> Result<(Header, Vec<u8>)> {
    let end = bytes.iter().position(|&b| b == b'\n').context("no header line")?;
    let header = serde_json::from_slice(&bytes[..end]).context("the header line")?;
    Ok((header, bytes[end + 1..].to_vec()))
}
