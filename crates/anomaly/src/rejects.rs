//! Dead letters for events a features component failed on.

use anyhow::Result;

use sg_core::component::features::{BatchFailures, FailedEvent};
use sg_model::events::EventBatch;
use sg_metrics::METRICS;
use sg_model::Position;
use sg_pipeline::sink::{DeadLetter, DeadLetters, RefusedBy};

/// Dead-letters the events of `batch` that `component` failed on, with their original messages
/// (`raw(i)` gives event `i`'s bytes).
pub fn failed_events<'r>(
    dead: &mut DeadLetters,
    component: &str,
    batch: &EventBatch,
    failed: &[FailedEvent],
    raw: impl Fn(usize) -> &'r [u8],
) -> Result<()> {
    METRICS.dead(component, failed.len());
    for f in failed {
        let stage = RefusedBy::Component(component.to_string());
        dead.write(&DeadLetter::new(batch.positions[f.index], stage, f.reason.clone(), raw(f.index)))?;
    }
    Ok(())
}

/// Dead-letters events found failing after their batch was processed (at `take`, or when a
/// window moved to another version): by input position, without the original message (the
/// chunk is gone; the position says where to re-read it); `note` is added to each reason.
/// Returns their positions.
pub fn batch_failures(dead: &mut DeadLetters, component: &str, failures: &BatchFailures, note: &str) -> Result<Vec<Position>> {
    let mut written = Vec::new();
    for (batch, failed) in failures {
        METRICS.dead(component, failed.len());
        for f in failed {
            let stage = RefusedBy::Component(component.to_string());
            dead.write(&DeadLetter::new(batch.positions[f.index], stage, format!("{}{note}", f.reason), b""))?;
            written.push(batch.positions[f.index]);
        }
    }
    Ok(written)
}
