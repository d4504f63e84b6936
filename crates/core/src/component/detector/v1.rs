//! Bindings for `streamguard:detector@1.x`.

use wasmtime::Store;
use wasmtime::component::{Component, Linker};

use crate::runtime::Sandbox;

wasmtime::component::bindgen!({
    path: "../../wit/detector-1",
    world: "detector",
});

use exports::streamguard::detector::model as wire;

/// The contract major this module binds.
pub const MAJOR: u64 = 1;

/// Pre-instantiated detector.
pub struct Pre(DetectorPre<Sandbox>);

fn params(p: &sg_iforest::Params) -> wire::Params {
    wire::Params {
        n_estimators: p.n_estimators as u32,
        max_samples: match p.max_samples {
            sg_iforest::MaxSamples::Auto => wire::MaxSamples::Auto,
            sg_iforest::MaxSamples::Count(n) => wire::MaxSamples::Count(n as u32),
            sg_iforest::MaxSamples::Fraction(f) => wire::MaxSamples::Fraction(f),
        },
        max_features: p.max_features,
        contamination: match p.contamination {
            sg_iforest::Contamination::Auto => wire::Contamination::Auto,
            sg_iforest::Contamination::Fraction(f) => wire::Contamination::Fraction(f),
        },
        random_state: p.random_state,
    }
}

fn matrix(values: &[f32], rows: usize, cols: usize) -> wire::Matrix {
    wire::Matrix { rows: rows as u32, cols: cols as u32, values: values.to_vec() }
}

impl Pre {
    /// Links and type-checks.
    pub fn new(linker: &Linker<Sandbox>, component: &Component) -> wasmtime::Result<Pre> {
        Ok(Pre(DetectorPre::new(linker.instantiate_pre(component)?)?))
    }

    /// `train`: the model artefact, or the component's error message.
    pub fn train(
        &self,
        store: &mut Store<Sandbox>,
        x: (&[f32], usize, usize),
        names: &[String],
        p: &sg_iforest::Params,
    ) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let b = self.0.instantiate(&mut *store)?;
        b.streamguard_detector_model().call_train(&mut *store, &matrix(x.0, x.1, x.2), names, params(p))
    }

    /// `score`: (score_samples, offset), or the component's error message.
    pub fn score(
        &self,
        store: &mut Store<Sandbox>,
        model: &[u8],
        x: (&[f32], usize, usize),
    ) -> wasmtime::Result<Result<(Vec<f64>, f64), String>> {
        let b = self.0.instantiate(&mut *store)?;
        let r = b.streamguard_detector_model().call_score(&mut *store, model, &matrix(x.0, x.1, x.2))?;
        Ok(r.map(|s| (s.score_samples, s.offset)))
    }
}
