//! The loader thread: compiles, links and describes candidates (and reads models) off the hot
//! path.

use std::sync::{Arc, Mutex};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::time::Duration;

use anyhow::Result;

use crate::component::{ComponentSource, Role};
use crate::component::features::FeatureComponent;
use crate::component::policy::PolicyComponent;
use crate::detector::{DetectorChoice, DetectorEngine, ModelChoice, SavedModel};
use crate::runtime::Runtime;

/// A loaded candidate, by role.
pub enum Candidate {
    /// A features component.
    Features(Arc<FeatureComponent>),
    /// A detector component.
    Detector(Arc<DetectorEngine>),
    /// A saved model.
    Model(Arc<ModelChoice>),
    /// A dedup policy (it keeps a live instance: used under its lock).
    Policy(Arc<Mutex<PolicyComponent>>),
}

impl Candidate {
    /// Reads, compiles and checks `source` for `role` (a model is a file of `sg-host`'s model
    /// format).
    fn load(runtime: &Runtime, role: Role, source: &ComponentSource) -> Result<Candidate> {
        Ok(match role {
            Role::Features => Candidate::Features(FeatureComponent::load(runtime, source)?),
            Role::Detector => Candidate::Detector(Arc::new(DetectorEngine::load(runtime, &DetectorChoice::Component(source.clone()))?)),
            Role::Model => match source {
                ComponentSource::File(path) => Candidate::Model(Arc::new(ModelChoice::Saved(SavedModel::load(path)?))),
                other => anyhow::bail!("a model is a file, not {}", other.origin()),
            },
            Role::Policy => Candidate::Policy(Arc::new(Mutex::new(PolicyComponent::load(runtime, source)?))),
        })
    }
}

/// What asked for a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The component file changed.
    FileChanged,
    /// `SIGHUP`: reload the component file.
    Signal,
    /// An upload through the admin API.
    Admin,
    /// A rollback through the admin API.
    Rollback,
}

impl Trigger {
    /// Name for logs and the history.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::FileChanged => "file changed",
            Trigger::Signal => "SIGHUP",
            Trigger::Admin => "admin upload",
            Trigger::Rollback => "admin rollback",
        }
    }
}

/// Where the outcome of a request goes, when someone waits for it.
pub struct Reply(Option<SyncSender<Result<String, String>>>);

impl Reply {
    /// Sends the outcome (`name@version` serving, or why the candidate was refused).
    pub fn send(self, outcome: Result<String, String>) {
        if let Some(s) = self.0 {
            let _ = s.send(outcome);
        }
    }
}

enum Request {
    Load(Role, ComponentSource, Trigger, Reply),
    Rollback(Role, Reply),
}

/// A loaded candidate (`Ok(None)`: roll back to the previous version).
pub struct Loaded {
    /// What it is for.
    pub role: Role,
    /// What asked.
    pub trigger: Trigger,
    /// Where it came from.
    pub origin: String,
    /// The candidate, or why it did not load.
    pub result: Result<Option<Candidate>>,
    /// Who waits for the outcome.
    pub reply: Reply,
}

/// A handle to ask for candidates (cheap to clone).
#[derive(Clone)]
pub struct Requests(Sender<Request>);

impl Requests {
    /// Asks for `source` to be loaded as a candidate for `role`; nobody waits.
    pub fn load(&self, role: Role, source: ComponentSource, trigger: Trigger) {
        let _ = self.0.send(Request::Load(role, source, trigger, Reply(None)));
    }

    /// Asks for `source` and waits until it serves or is refused.
    pub fn load_and_wait(&self, role: Role, source: ComponentSource, trigger: Trigger, timeout: Duration) -> Result<String, String> {
        let (tx, rx) = sync_channel(1);
        self.0.send(Request::Load(role, source, trigger, Reply(Some(tx)))).map_err(|_| "the pipeline has stopped".to_string())?;
        rx.recv_timeout(timeout).map_err(|_| "no answer from the pipeline in time".to_string())?
    }

    /// Asks for the previous version of `role` back and waits for the outcome.
    pub fn rollback_and_wait(&self, role: Role, timeout: Duration) -> Result<String, String> {
        let (tx, rx) = sync_channel(1);
        self.0.send(Request::Rollback(role, Reply(Some(tx)))).map_err(|_| "the pipeline has stopped".to_string())?;
        rx.recv_timeout(timeout).map_err(|_| "no answer from the pipeline in time".to_string())?
    }
}

/// The loader thread and its channels.
pub struct Loader {
    requests: Sender<Request>,
    loaded: Receiver<Loaded>,
}

impl Loader {
    /// Starts the thread; it compiles with `runtime`'s engine.
    pub fn start(runtime: Arc<Runtime>) -> Loader {
        let (requests, inbox) = channel::<Request>();
        let (done, loaded) = channel();
        std::thread::Builder::new()
            .name("sg-loader".into())
            .spawn(move || {
                for request in inbox {
                    let loaded = match request {
                        Request::Rollback(role, reply) => {
                            Loaded { role, trigger: Trigger::Rollback, origin: "previous".into(), result: Ok(None), reply }
                        }
                        Request::Load(role, source, trigger, reply) => Loaded {
                            role,
                            trigger,
                            origin: source.origin(),
                            result: Candidate::load(&runtime, role, &source).map(Some),
                            reply,
                        },
                    };
                    if done.send(loaded).is_err() {
                        break;
                    }
                }
            })
            .expect("starting the loader thread");
        Loader { requests, loaded }
    }

    /// A handle for requests.
    pub fn requests(&self) -> Requests {
        Requests(self.requests.clone())
    }

    /// A candidate that finished loading, if any.
    pub fn try_next(&self) -> Option<Loaded> {
        self.loaded.try_recv().ok()
    }
}
