//! Detector components (`streamguard:detector`): train and score in the sandbox.

mod v1;

use anyhow::{Result, anyhow};
use wasmtime::component::Linker;

use super::{ComponentSource, Contract, LoadedComponent, call_error};
use crate::runtime::Runtime;

/// WIT package of the detector contract.
pub const PACKAGE: &str = "streamguard:detector";
/// Contract majors this host accepts.
pub const ACCEPTED_MAJORS: &[u64] = &[v1::MAJOR];

enum Binding {
    V1(v1::Pre),
}

/// A loaded, type-checked detector component.
pub struct DetectorComponent {
    loaded: LoadedComponent,
    contract: Contract,
    binding: Binding,
}

/// A row-major f32 matrix: values, rows, columns.
pub type MatrixRef<'a> = (&'a [f32], usize, usize);

impl DetectorComponent {
    /// Loads and checks the contract.
    pub fn load(runtime: &Runtime, source: &ComponentSource) -> Result<DetectorComponent> {
        let loaded = LoadedComponent::load(runtime, source)?;
        let contract = loaded.contract(PACKAGE, ACCEPTED_MAJORS)?;
        let mut linker = Linker::new(runtime.engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        let binding = Binding::V1(v1::Pre::new(&linker, &loaded.component).map_err(|e| {
            anyhow!("{} exports {contract} but does not match it: {e:#}", loaded.origin)
        })?);
        Ok(DetectorComponent { loaded, contract, binding })
    }

    /// Where it came from.
    pub fn origin(&self) -> &str {
        &self.loaded.origin
    }

    /// sha256 of its bytes.
    pub fn digest(&self) -> &str {
        &self.loaded.digest
    }

    /// The contract it was bound as.
    pub fn contract(&self) -> &Contract {
        &self.contract
    }

    /// Trains in the sandbox; returns the model artefact.
    pub fn train(&self, runtime: &Runtime, x: MatrixRef<'_>, names: &[String], p: &sg_iforest::Params) -> Result<Vec<u8>> {
        let mut store = runtime.store();
        let Binding::V1(pre) = &self.binding;
        pre.train(&mut store, x, names, p)
            .map_err(|e| call_error(self.origin(), "train", e, store.data().stderr()))?
            .map_err(|e| anyhow!("{}: train refused: {e}", self.origin()))
    }

    /// Scores in the sandbox: (score_samples, offset).
    pub fn score(&self, runtime: &Runtime, model: &[u8], x: MatrixRef<'_>) -> Result<(Vec<f64>, f64)> {
        let mut store = runtime.store();
        let Binding::V1(pre) = &self.binding;
        pre.score(&mut store, model, x)
            .map_err(|e| call_error(self.origin(), "score", e, store.data().stderr()))?
            .map_err(|e| anyhow!("{}: score refused: {e}", self.origin()))
    }
}
