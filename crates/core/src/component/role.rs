//! What a part does in a pipeline: the one name for it in bundles, upgrades, the admin API and
//! logs.

use serde::{Deserialize, Serialize};

/// What a part does in a pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The features component (`streamguard:features`).
    Features,
    /// The detector component (`streamguard:detector`), or `native`.
    Detector,
    /// The saved model the detector scores with.
    Model,
    /// The dedup policy component (`streamguard:dedup`).
    Policy,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Features, Role::Detector, Role::Model, Role::Policy];

    /// Name in logs, manifests and the admin API's paths.
    pub fn name(self) -> &'static str {
        match self {
            Role::Features => "features",
            Role::Detector => "detector",
            Role::Model => "model",
            Role::Policy => "policy",
        }
    }

    /// The role called `name`.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Whether it is a WebAssembly component (a model is a file of sg-host's model format).
    pub fn is_component(self) -> bool {
        self != Role::Model
    }
}
