//! Columnar event batches as they cross into a features component.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use sg_features_core::columns::{ABSENT, OwnedDict};

use super::decode::EventRow;
use crate::Position;

/// Builds one dictionary-encoded string column.
#[derive(Default)]
pub struct DictBuilder {
    /// Each entry's code, found by its bytes in `column` (no copy of a key: a value is stored
    /// once, in the dictionary).
    index: HashTable<u32>,
    column: OwnedDict,
}

/// Dictionary entry `code`'s bytes.
fn entry(column: &OwnedDict, code: u32) -> &[u8] {
    let (start, end) = (column.dict_offsets[code as usize], column.dict_offsets[code as usize + 1]);
    &column.dict_bytes[start as usize..end as usize]
}

impl DictBuilder {
    fn new(rows: usize) -> Self {
        let mut column = OwnedDict::default();
        column.dict_offsets.push(0);
        column.codes.reserve(rows);
        DictBuilder { index: HashTable::new(), column }
    }

    /// Appends a row.
    pub fn push(&mut self, value: Option<&str>) {
        let code = match value {
            None => ABSENT,
            Some(v) => {
                let (bytes, hash) = (v.as_bytes(), FxBuildHasher.hash_one(v.as_bytes()));
                let column = &mut self.column;
                match self.index.find(hash, |&code| entry(column, code) == bytes) {
                    Some(&code) => code,
                    None => {
                        let code = self.index.len() as u32;
                        column.dict_bytes.extend_from_slice(bytes);
                        column.dict_offsets.push(column.dict_bytes.len() as u32);
                        self.index.insert_unique(hash, code, |&c| FxBuildHasher.hash_one(entry(column, c)));
                        code
                    }
                }
            }
        };
        self.column.codes.push(code);
    }

    fn finish(self) -> OwnedDict {
        self.column
    }
}

/// A batch of decoded events in the `event-batch` layout, with each event's input position.
#[derive(Clone, Debug, Default)]
pub struct EventBatch {
    /// Epoch milliseconds.
    pub timestamp_ms: Vec<i64>,
    /// `event_type`.
    pub event_type: OwnedDict,
    /// `user`.
    pub user: OwnedDict,
    /// `source_ip`.
    pub source_ip: OwnedDict,
    /// `status`.
    pub status: OwnedDict,
    /// `threat_score`, NaN where absent.
    pub threat_score: Vec<f64>,
    /// Top-level `location`.
    pub location: OwnedDict,
    /// `metadata.geo_location`.
    pub geo_location: OwnedDict,
    /// `destination_ip` (passed to `features@2` components).
    pub destination_ip: OwnedDict,
    /// Input position of each event, for dead letters.
    pub positions: Vec<Position>,
    /// Byte range of each event's original message in its chunk, for dead letters.
    pub raw: Vec<std::ops::Range<u32>>,
}

fn select_dict(d: &OwnedDict, rows: &[usize]) -> OwnedDict {
    OwnedDict {
        dict_bytes: d.dict_bytes.clone(),
        dict_offsets: d.dict_offsets.clone(),
        codes: rows.iter().map(|&r| d.codes[r]).collect(),
    }
}

impl EventBatch {
    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        let dicts = [
            &self.event_type,
            &self.user,
            &self.source_ip,
            &self.status,
            &self.location,
            &self.geo_location,
            &self.destination_ip,
        ];
        let dict_bytes: usize = dicts.iter().map(|d| d.dict_bytes.len() + 4 * (d.dict_offsets.len() + d.codes.len())).sum();
        dict_bytes + self.len() * (8 + 8 + std::mem::size_of::<Position>() + 8)
    }

    /// The events at `rows` (in that order), sharing this batch's dictionaries.
    pub fn select(&self, rows: &[usize]) -> EventBatch {
        EventBatch {
            timestamp_ms: rows.iter().map(|&r| self.timestamp_ms[r]).collect(),
            event_type: select_dict(&self.event_type, rows),
            user: select_dict(&self.user, rows),
            source_ip: select_dict(&self.source_ip, rows),
            status: select_dict(&self.status, rows),
            threat_score: rows.iter().map(|&r| self.threat_score[r]).collect(),
            location: select_dict(&self.location, rows),
            geo_location: select_dict(&self.geo_location, rows),
            destination_ip: select_dict(&self.destination_ip, rows),
            positions: rows.iter().map(|&r| self.positions[r]).collect(),
            raw: rows.iter().map(|&r| self.raw[r].clone()).collect(),
        }
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.timestamp_ms.len()
    }

    /// Whether the batch holds no events.
    pub fn is_empty(&self) -> bool {
        self.timestamp_ms.is_empty()
    }

    /// Borrowed view in the layout the feature logic reads natively.
    pub fn columns(&self) -> sg_features_core::EventColumns<'_> {
        sg_features_core::EventColumns {
            timestamp_ms: &self.timestamp_ms,
            event_type: self.event_type.view(),
            user: self.user.view(),
            source_ip: self.source_ip.view(),
            status: self.status.view(),
            threat_score: &self.threat_score,
            location: self.location.view(),
            geo_location: self.geo_location.view(),
            destination_ip: Some(self.destination_ip.view()),
        }
    }
}

/// Accumulates rows into an [`EventBatch`].
pub struct EventBatchBuilder {
    timestamp_ms: Vec<i64>,
    event_type: DictBuilder,
    user: DictBuilder,
    source_ip: DictBuilder,
    status: DictBuilder,
    threat_score: Vec<f64>,
    location: DictBuilder,
    geo_location: DictBuilder,
    destination_ip: DictBuilder,
    positions: Vec<Position>,
    raw: Vec<std::ops::Range<u32>>,
}

impl EventBatchBuilder {
    /// A builder expecting about `rows` events.
    pub fn with_capacity(rows: usize) -> Self {
        EventBatchBuilder {
            timestamp_ms: Vec::with_capacity(rows),
            event_type: DictBuilder::new(rows),
            user: DictBuilder::new(rows),
            source_ip: DictBuilder::new(rows),
            status: DictBuilder::new(rows),
            threat_score: Vec::with_capacity(rows),
            location: DictBuilder::new(rows),
            geo_location: DictBuilder::new(rows),
            destination_ip: DictBuilder::new(rows),
            positions: Vec::with_capacity(rows),
            raw: Vec::with_capacity(rows),
        }
    }

    /// Appends an event found at input `position`, whose message is `raw` in its chunk.
    pub fn push(&mut self, row: &EventRow<'_>, position: Position, raw: std::ops::Range<u32>) {
        self.raw.push(raw);
        self.timestamp_ms.push(row.timestamp_ms);
        self.event_type.push(Some(&row.event_type));
        self.user.push(row.user.as_deref());
        self.source_ip.push(row.source_ip.as_deref());
        self.status.push(row.status.as_deref());
        self.threat_score.push(row.threat_score.unwrap_or(f64::NAN));
        self.location.push(row.location.as_deref());
        self.geo_location.push(row.geo_location.as_deref());
        self.destination_ip.push(row.destination_ip.as_deref());
        self.positions.push(position);
    }

    /// The finished batch.
    pub fn finish(self) -> EventBatch {
        EventBatch {
            timestamp_ms: self.timestamp_ms,
            event_type: self.event_type.finish(),
            user: self.user.finish(),
            source_ip: self.source_ip.finish(),
            status: self.status.finish(),
            threat_score: self.threat_score,
            location: self.location.finish(),
            geo_location: self.geo_location.finish(),
            destination_ip: self.destination_ip.finish(),
            positions: self.positions,
            raw: self.raw,
        }
    }
}
