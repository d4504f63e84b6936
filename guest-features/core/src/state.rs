//! An aggregation's state as bytes (format [`FORMAT`]), so a window survives an upgrade of the
//! component that computes it.

use crate::{Aggregator, Flavor};

/// Name and version of the state format; a format change gets a new version.
pub const FORMAT: &str = "streamguard-state/1";

impl Aggregator {
    /// The state, in [`FORMAT`].
    pub fn export_state(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("an aggregator always serializes")
    }

    /// An aggregator computing `flavor` from state exported in `format`; says why not when the
    /// format or the flavor differ or the bytes do not decode.
    pub fn import_state(flavor: Flavor, format: &str, state: &[u8]) -> Result<Aggregator, String> {
        if format != FORMAT {
            return Err(format!("state format {format:?} is not {FORMAT:?}"));
        }
        let aggregator: Aggregator = postcard::from_bytes(state).map_err(|e| format!("state does not decode: {e}"))?;
        if aggregator.flavor() != flavor {
            return Err(format!("state of flavor {:?}, this component computes {flavor:?}", aggregator.flavor()));
        }
        Ok(aggregator)
    }
}
