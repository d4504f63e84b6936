//! Columnar input (events) and output (feature tables) of the feature logic.

/// Code meaning "absent or null" in a dictionary-encoded column.
pub const ABSENT: u32 = u32::MAX;

/// A borrowed dictionary-encoded string column (the wire layout of `dict-column`).
#[derive(Clone, Copy, Debug)]
pub struct DictColumn<'a> {
    /// UTF-8 bytes of every dictionary entry, back to back.
    pub dict_bytes: &'a [u8],
    /// Entry boundaries; `len = entries + 1`.
    pub dict_offsets: &'a [u32],
    /// One code per row, or [`ABSENT`].
    pub codes: &'a [u32],
}

impl<'a> DictColumn<'a> {
    /// Number of dictionary entries.
    pub fn entries(&self) -> usize {
        self.dict_offsets.len().saturating_sub(1)
    }

    /// Bytes of dictionary entry `k` (must be in range).
    pub fn entry(&self, k: usize) -> &'a [u8] {
        &self.dict_bytes[self.dict_offsets[k] as usize..self.dict_offsets[k + 1] as usize]
    }

    /// Checks offsets and codes against the dictionary and the expected row count.
    fn validate(&self, name: &str, rows: usize) -> Result<(), String> {
        if self.codes.len() != rows {
            return Err(format!("column {name}: {} codes for {rows} rows", self.codes.len()));
        }
        if self.dict_offsets.first().is_some_and(|&o| o != 0)
            || self.dict_offsets.windows(2).any(|w| w[0] > w[1])
            || self.dict_offsets.last().is_some_and(|&o| o as usize != self.dict_bytes.len())
        {
            return Err(format!("column {name}: dictionary offsets out of order or out of bounds"));
        }
        let n = self.entries() as u32;
        // ABSENT wraps to 0; a valid code c < n maps to c + 1 <= n. One branch-free pass.
        if !self.codes.iter().fold(true, |ok, &c| ok & (c.wrapping_add(1) <= n)) {
            let bad = self.codes.iter().find(|&&c| c != ABSENT && c >= n).expect("found above");
            return Err(format!("column {name}: code {bad} outside a dictionary of {n}"));
        }
        Ok(())
    }
}

/// A borrowed batch of security events in columnar layout (the wire layout of `event-batch`).
#[derive(Clone, Copy, Debug)]
pub struct EventColumns<'a> {
    /// `timestamp`, epoch milliseconds.
    pub timestamp_ms: &'a [i64],
    /// `event_type`.
    pub event_type: DictColumn<'a>,
    /// `user`.
    pub user: DictColumn<'a>,
    /// `source_ip`.
    pub source_ip: DictColumn<'a>,
    /// `status`.
    pub status: DictColumn<'a>,
    /// `threat_score`, NaN where absent.
    pub threat_score: &'a [f64],
    /// Top-level `location` (read by the legacy job; absent in real events).
    pub location: DictColumn<'a>,
    /// `metadata.geo_location`.
    pub geo_location: DictColumn<'a>,
    /// `destination_ip`, when the contract carries it (`streamguard:features@2`).
    pub destination_ip: Option<DictColumn<'a>>,
}

impl EventColumns<'_> {
    /// Number of events.
    pub fn rows(&self) -> usize {
        self.timestamp_ms.len()
    }

    /// Checks that every column has one entry per event and every code is in range.
    pub fn validate(&self) -> Result<(), String> {
        let rows = self.rows();
        if self.threat_score.len() != rows {
            return Err(format!("threat-score: {} values for {rows} rows", self.threat_score.len()));
        }
        self.event_type.validate("event-type", rows)?;
        self.user.validate("user", rows)?;
        self.source_ip.validate("source-ip", rows)?;
        self.status.validate("status", rows)?;
        self.location.validate("location", rows)?;
        self.geo_location.validate("geo-location", rows)?;
        match &self.destination_ip {
            Some(d) => d.validate("destination-ip", rows),
            None => Ok(()),
        }
    }
}

/// An owned dictionary-encoded string column.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OwnedDict {
    /// UTF-8 bytes of every dictionary entry, back to back.
    pub dict_bytes: Vec<u8>,
    /// Entry boundaries; `len = entries + 1`.
    pub dict_offsets: Vec<u32>,
    /// One code per row, or [`ABSENT`].
    pub codes: Vec<u32>,
}

impl OwnedDict {
    /// A column whose row `i` is `values[i]`, each value its own dictionary entry.
    pub fn from_values<'v>(values: impl IntoIterator<Item = Option<&'v [u8]>>) -> Self {
        let mut out = OwnedDict { dict_offsets: vec![0], ..Default::default() };
        for v in values {
            match v {
                Some(bytes) => {
                    out.codes.push(out.dict_offsets.len() as u32 - 1);
                    out.dict_bytes.extend_from_slice(bytes);
                    out.dict_offsets.push(out.dict_bytes.len() as u32);
                }
                None => out.codes.push(ABSENT),
            }
        }
        out
    }

    /// Borrowed view.
    pub fn view(&self) -> DictColumn<'_> {
        DictColumn { dict_bytes: &self.dict_bytes, dict_offsets: &self.dict_offsets, codes: &self.codes }
    }

    /// Value of row `i` (None when absent).
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let view = self.view();
        match self.codes[i] {
            ABSENT => None,
            c => Some(view.entry(c as usize)),
        }
    }
}

/// Physical type of an output column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// 64-bit signed integer.
    Int64,
    /// 64-bit float.
    Float64,
    /// Epoch milliseconds, UTC.
    TimestampMs,
    /// UTF-8 string.
    Utf8,
}

/// What the host does with an output column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnRole {
    /// The group key: written, not a model input.
    Key,
    /// Written and fed to the detector.
    ModelInput,
    /// Written only.
    Output,
    /// Neither written nor fed to the detector.
    Internal,
}

/// One output column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnSpec {
    /// Column name.
    pub name: &'static str,
    /// Physical type.
    pub ty: ColumnType,
    /// What the host does with it.
    pub role: ColumnRole,
    /// One line on what it means.
    pub doc: &'static str,
}

/// The data of one output column.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnData {
    /// For [`ColumnType::Int64`].
    Int64(Vec<i64>),
    /// For [`ColumnType::Float64`].
    Float64(Vec<f64>),
    /// For [`ColumnType::TimestampMs`].
    TimestampMs(Vec<i64>),
    /// For [`ColumnType::Utf8`].
    Utf8(OwnedDict),
}

/// A per-key feature table; `columns[i]` follows the flavor's schema `i`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FeatureTable {
    /// Number of rows (keys).
    pub rows: usize,
    /// Column data, in schema order.
    pub columns: Vec<ColumnData>,
}

impl FeatureTable {
    /// The column called `name` under `schema`, if any.
    pub fn column<'t>(&'t self, schema: &[ColumnSpec], name: &str) -> Option<&'t ColumnData> {
        schema.iter().position(|c| c.name == name).map(|i| &self.columns[i])
    }
}
