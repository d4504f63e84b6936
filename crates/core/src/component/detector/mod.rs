//! Detector components (`streamguard:detector`): train and score in the sandbox.

mod v1;

use std::sync::Mutex;

use anyhow::{Result, anyhow, bail};

use super::contain::{self, Budget, GiveUp, bisect};
use super::{ComponentSource, Contract, LoadedComponent};

/// Call deadlines one scoring's bisection may take.
const BISECTION_DEADLINES: u32 = 4;
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
    /// When to give up on it (shared: windows score through one `Arc`).
    give_up: Mutex<GiveUp>,
}

/// A row-major f32 matrix: values, rows, columns.
pub type MatrixRef<'a> = (&'a [f32], usize, usize);

impl DetectorComponent {
    /// Loads and checks the contract.
    pub fn load(runtime: &Runtime, source: &ComponentSource) -> Result<DetectorComponent> {
        let loaded = LoadedComponent::load(runtime, source)?;
        let (contract, binding) = loaded.bind(runtime, PACKAGE, ACCEPTED_MAJORS, |_, linker, c| Ok(Binding::V1(v1::Pre::new(linker, c)?)))?;
        Ok(DetectorComponent { loaded, contract, binding, give_up: Mutex::new(GiveUp::default()) })
    }

    /// Where it came from.
    pub fn origin(&self) -> &str {
        &self.loaded.origin
    }

    /// sha256 of its bytes.
    pub fn digest(&self) -> &str {
        &self.loaded.digest
    }

    /// sha256 of the precompiled code it runs, when it was loaded from a bundle's.
    pub fn precompiled_digest(&self) -> Option<&str> {
        self.loaded.precompiled.as_deref()
    }

    /// The contract it was bound as.
    pub fn contract(&self) -> &Contract {
        &self.contract
    }

    /// Trains in the sandbox (one contained call); returns the model artefact.
    pub fn train(&self, runtime: &Runtime, x: MatrixRef<'_>, names: &[String], p: &sg_iforest::Params) -> Result<Vec<u8>> {
        let mut store = runtime.store();
        let Binding::V1(pre) = &self.binding;
        let ticks = runtime.limits().deadline_ticks();
        contain::call(&mut store, ticks, (self.origin(), self.origin(), "train"), x.1, |s| pre.train(s, x, names, p))?
            .map_err(|e| anyhow!("{}: train refused: {e}", self.origin()))
    }

    /// Scores in the sandbox. A call that faults, or answers other than one finite score per
    /// row, is bisected over the rows ([`contain::bisect`]): the rows it fails on come back in
    /// [`Scored::failed`] (their scores NaN) and every other row has the score a clean call
    /// gives. Fails when every row of [`contain::GIVE_UP_AFTER`] consecutive matrices fails.
    pub fn score(&self, runtime: &Runtime, model: &[u8], x: MatrixRef<'_>) -> Result<Scored> {
        let (values, rows, cols) = x;
        let fault = match self.score_rows(runtime, model, values, rows, cols, runtime.limits().deadline_ticks()) {
            Ok((scores, offset)) => {
                self.give_up.lock().expect("not poisoned").failed_all(false);
                return Ok(Scored { score_samples: scores, offset, failed: Vec::new() });
            }
            Err(fault) => fault,
        };
        let mut scores = vec![f64::NAN; rows];
        let mut offset = None;
        let mut budget = Budget::new(runtime, BISECTION_DEADLINES);
        let failed = bisect((0..rows).collect(), fault, &mut budget, &mut |part: &[usize]| {
            let (start, n) = (part[0], part.len());
            let ticks = contain::probe_ticks(runtime, n, rows);
            Ok(match self.score_rows(runtime, model, &values[start * cols..(start + n) * cols], n, cols, ticks) {
                Ok((s, o)) => {
                    scores[start..start + n].copy_from_slice(&s);
                    offset = Some(o);
                    None
                }
                Err(fault) => Some(fault),
            })
        })?;
        if self.give_up.lock().expect("not poisoned").failed_all(failed.len() == rows) {
            bail!("{} {}: {}", self.origin(), GiveUp::reason("row"), failed[0].1);
        }
        Ok(Scored { score_samples: scores, offset: offset.unwrap_or(f64::NAN), failed })
    }

    /// One contained `score` call over `rows` rows, checked: one finite score per row.
    fn score_rows(&self, runtime: &Runtime, model: &[u8], values: &[f32], rows: usize, cols: usize, ticks: u64) -> Result<(Vec<f64>, f64), String> {
        let mut store = runtime.store();
        let Binding::V1(pre) = &self.binding;
        let origin = self.origin();
        let answer = contain::call(&mut store, ticks, (origin, origin, "score"), rows, |s| pre.score(s, model, (values, rows, cols)));
        let (scores, offset) = answer.map_err(|e| format!("{e:#}"))?.map_err(|e| format!("{origin}: score refused: {e}"))?;
        if scores.len() != rows {
            return Err(format!("{origin}: score answered {} scores for {rows} rows", scores.len()));
        }
        if let Some(bad) = scores.iter().find(|s| !s.is_finite()) {
            return Err(format!("{origin}: score answered {bad}"));
        }
        Ok((scores, offset))
    }
}

/// What a detector component's scoring gave.
#[derive(Debug)]
pub struct Scored {
    /// `score_samples` per row (NaN for the rows in `failed`).
    pub score_samples: Vec<f64>,
    /// The model's offset as the component reports it.
    pub offset: f64,
    /// Rows the component failed on, with the fault, in order.
    pub failed: Vec<(usize, String)>,
}
