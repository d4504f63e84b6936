//! Containment shared by every component kind: one call wrapper (deadline armed, latency,
//! fault and record counts into the metrics, the trap as a concise error), one bisection that
//! isolates the records a call fails on within one budget, and one give-up rule.
//!
//! A call that traps, times out, runs out of memory or answers something the host refuses
//! poisons only its instance. The caller replaces it and bisects: the records are halved, each
//! half is probed on a throwaway instance, and halves that fail are halved again, until single
//! records are isolated or the budget — [`MAX_PROBES`] probes and a number of call deadlines —
//! is spent (the rest then fail together, saying so). A component failing every record of
//! [`GIVE_UP_AFTER`] consecutive batches is given up on ([`GiveUp`]).

use std::time::Instant;

use anyhow::Result;
use wasmtime::Store;

use super::call_error;
use sg_metrics::METRICS;
use crate::runtime::{Runtime, Sandbox};

/// Probes one bisection may make; enough to isolate ~16 bad records in 8192.
pub const MAX_PROBES: usize = 512;

/// Consecutive batches in which every record failed before a component is given up on.
pub const GIVE_UP_AFTER: u32 = 3;

/// Smallest deadline of a bisection probe, in epoch ticks.
const MIN_PROBE_TICKS: u64 = 5;

/// What a bisection may still spend: probes, and wall time.
#[derive(Debug)]
pub struct Budget {
    probes: usize,
    until: Instant,
}

impl Budget {
    /// [`MAX_PROBES`] probes and `deadlines` call deadlines of `runtime`.
    pub fn new(runtime: &Runtime, deadlines: u32) -> Budget {
        Budget { probes: MAX_PROBES, until: Instant::now() + deadlines * runtime.limits().call_deadline }
    }

    fn spent(&self) -> bool {
        self.probes == 0 || Instant::now() >= self.until
    }
}

/// Finds the records of `rows` (known to fail together with `fault`) on which `probe` fails,
/// halving; they come out in input order with their fault. `probe` answers the fault of a call
/// over some of the rows (always a contiguous run of `rows`), or `None` when it succeeds. When
/// the budget is spent, the rows still undivided fail together with the fault that contains
/// them.
pub fn bisect<R: Copy>(
    rows: Vec<R>,
    fault: String,
    budget: &mut Budget,
    probe: &mut impl FnMut(&[R]) -> Result<Option<String>>,
) -> Result<Vec<(R, String)>> {
    let mut failed = Vec::new();
    split(rows, fault, budget, probe, &mut failed)?;
    Ok(failed)
}

fn split<R: Copy>(
    rows: Vec<R>,
    fault: String,
    budget: &mut Budget,
    probe: &mut impl FnMut(&[R]) -> Result<Option<String>>,
    failed: &mut Vec<(R, String)>,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    if rows.len() == 1 || budget.spent() {
        fail_together(&rows, &fault, failed);
        return Ok(());
    }
    let (left, right) = rows.split_at(rows.len() / 2);
    for half in [left, right] {
        if budget.spent() {
            fail_together(half, &fault, failed);
            continue;
        }
        budget.probes -= 1;
        if let Some(fault) = probe(half)? {
            split(half.to_vec(), fault, budget, probe, failed)?;
        }
    }
    Ok(())
}

fn fail_together<R: Copy>(rows: &[R], fault: &str, failed: &mut Vec<(R, String)>) {
    let reason = match rows.len() {
        1 => fault.to_string(),
        n => format!("{fault} (in a group of {n} not isolated further)"),
    };
    failed.extend(rows.iter().map(|&r| (r, reason.clone())));
}

/// The give-up rule: a component that fails every record of [`GIVE_UP_AFTER`] consecutive
/// batches is broken, not fed bad records.
#[derive(Debug, Default)]
pub struct GiveUp {
    streak: u32,
}

impl GiveUp {
    /// Records a batch's outcome; true when the component is to be given up on.
    pub fn failed_all(&mut self, all: bool) -> bool {
        self.streak = if all { self.streak + 1 } else { 0 };
        self.streak >= GIVE_UP_AFTER
    }

    /// What it was given up for, for messages: `record` names what a batch holds.
    pub fn reason(record: &str) -> String {
        format!("failed on every {record} of {GIVE_UP_AFTER} consecutive batches")
    }
}

/// One contained call into a component instance: arms the deadline (`ticks`), times it, counts
/// it in the metrics under `label` (with its `records` and its fault), and turns a trap into a
/// concise error naming `origin` and `what` was called.
pub fn call<T>(
    store: &mut Store<Sandbox>,
    ticks: u64,
    (label, origin, what): (&str, &str, &str),
    records: usize,
    f: impl FnOnce(&mut Store<Sandbox>) -> wasmtime::Result<T>,
) -> Result<T> {
    store.set_epoch_deadline(ticks);
    let started = Instant::now();
    let answer = f(store).map_err(|e| call_error(origin, what, e, store.data().stderr()));
    let fault = answer.as_ref().err().map(|e| format!("{e:#}"));
    METRICS.call(label, records, started.elapsed(), fault.as_deref());
    answer
}

/// The deadline of a probe over `part` of `whole` records: its share of the full deadline, at
/// least a few ticks.
pub fn probe_ticks(runtime: &Runtime, part: usize, whole: usize) -> u64 {
    let full = runtime.limits().deadline_ticks();
    (full * part as u64 / whole.max(1) as u64).max(MIN_PROBE_TICKS.min(full))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Limits;

    fn runtime() -> Runtime {
        Runtime::on_demand(Limits::default()).unwrap()
    }

    /// A probe failing on any part that holds one of `bad`.
    fn fails_on(bad: &[usize]) -> impl FnMut(&[usize]) -> Result<Option<String>> + '_ {
        move |rows: &[usize]| Ok(rows.iter().find(|r| bad.contains(r)).map(|r| format!("bad {r}")))
    }

    #[test]
    fn isolates_exactly_the_failing_rows_in_order() {
        let mut budget = Budget::new(&runtime(), 4);
        let failed = bisect((0..1000).collect(), "fault".into(), &mut budget, &mut fails_on(&[3, 500, 999])).unwrap();
        assert_eq!(failed, vec![(3, "bad 3".into()), (500, "bad 500".into()), (999, "bad 999".into())]);
    }

    #[test]
    fn a_spent_budget_fails_the_rest_together_and_says_so() {
        let mut budget = Budget::new(&runtime(), 4);
        budget.probes = 2;
        let failed = bisect((0..8).collect(), "fault".into(), &mut budget, &mut fails_on(&[7])).unwrap();
        // Two probes: [0, 4) passes, [4, 8) fails; the budget is spent: [4, 8) fails as one.
        assert_eq!(failed.iter().map(|f| f.0).collect::<Vec<_>>(), vec![4, 5, 6, 7]);
        assert_eq!(failed[0].1, "bad 7 (in a group of 4 not isolated further)");
    }

    #[test]
    fn the_budget_bounds_the_probes_of_a_component_failing_everything() {
        let mut budget = Budget::new(&runtime(), 4);
        let mut probes = 0;
        let failed = bisect((0..8192).collect(), "fault".into(), &mut budget, &mut |_: &[usize]| {
            probes += 1;
            Ok(Some("always".into()))
        })
        .unwrap();
        assert_eq!(failed.len(), 8192, "every row fails");
        assert_eq!(probes, MAX_PROBES, "the budget is the bound");
    }

    #[test]
    fn gives_up_after_consecutive_batches_failing_entirely() {
        let mut rule = GiveUp::default();
        assert!(!rule.failed_all(true));
        assert!(!rule.failed_all(true));
        assert!(!rule.failed_all(false), "a batch with a success resets the streak");
        assert!(!rule.failed_all(true));
        assert!(!rule.failed_all(true));
        assert!(rule.failed_all(true));
    }
}
