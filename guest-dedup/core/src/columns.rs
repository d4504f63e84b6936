//! String columns as they cross the component boundary: one byte buffer plus offsets.

/// A borrowed string column: row `i` is `bytes[offsets[i]..offsets[i + 1]]`.
#[derive(Debug, Clone, Copy)]
pub struct TextColumn<'a> {
    /// UTF-8 bytes of every row, back to back.
    pub bytes: &'a [u8],
    /// Row boundaries; one more than the rows.
    pub offsets: &'a [u32],
}

impl<'a> TextColumn<'a> {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i`, or an error naming the row when the offsets or the UTF-8 are broken.
    pub fn get(&self, i: usize) -> Result<&'a str, String> {
        let (start, end) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        let bytes = self.bytes.get(start..end).ok_or_else(|| format!("row {i}: offsets out of range"))?;
        std::str::from_utf8(bytes).map_err(|e| format!("row {i}: {e}"))
    }

    /// Checks the shape: `rows + 1` monotone offsets within `bytes`.
    pub fn check(&self, rows: usize, name: &str) -> Result<(), String> {
        if self.offsets.len() != rows + 1 {
            return Err(format!("column {name}: {} offsets for {rows} rows", self.offsets.len()));
        }
        if self.offsets.windows(2).any(|w| w[0] > w[1])
            || self.offsets.last().is_some_and(|&e| e as usize > self.bytes.len())
        {
            return Err(format!("column {name}: offsets not monotone within the bytes"));
        }
        Ok(())
    }
}

/// An owned string column being built row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextColumnBuf {
    /// UTF-8 bytes of every row, back to back.
    pub bytes: Vec<u8>,
    /// Row boundaries; one more than the rows.
    pub offsets: Vec<u32>,
}

impl Default for TextColumnBuf {
    fn default() -> Self {
        TextColumnBuf { bytes: Vec::new(), offsets: vec![0] }
    }
}

impl TextColumnBuf {
    /// An empty column with room for `rows` rows of `bytes` bytes in all.
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        TextColumnBuf { bytes: Vec::with_capacity(bytes), offsets }
    }

    /// Appends a row.
    pub fn push(&mut self, value: &str) {
        self.bytes.extend_from_slice(value.as_bytes());
        let end = u32::try_from(self.bytes.len()).expect("a column holds less than 4 GiB");
        self.offsets.push(end);
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A borrowed view.
    pub fn view(&self) -> TextColumn<'_> {
        TextColumn { bytes: &self.bytes, offsets: &self.offsets }
    }

    /// Row `i`; rows are built from `&str`, so they are UTF-8.
    pub fn get(&self, i: usize) -> &str {
        let bytes = &self.bytes[self.offsets[i] as usize..self.offsets[i + 1] as usize];
        std::str::from_utf8(bytes).expect("rows are pushed as str")
    }
}
