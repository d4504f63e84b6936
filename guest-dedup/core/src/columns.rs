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

    /// [`check`](Self::check), and every row UTF-8: the rows' bytes are UTF-8 as a whole and no
    /// offset cuts a character (one pass over the bytes, not one per row). The rows, checked.
    pub fn check_text(&self, rows: usize, name: &str) -> Result<Rows<'a>, String> {
        self.check(rows, name)?;
        let (first, last) = (self.offsets[0] as usize, self.offsets[rows] as usize);
        let text = std::str::from_utf8(&self.bytes[first..last]).map_err(|e| {
            let at = (first + e.valid_up_to()) as u32;
            let row = self.offsets.partition_point(|&o| o <= at).saturating_sub(1);
            format!("column {name}: row {row}: {e}")
        })?;
        match self.offsets.iter().position(|&o| !text.is_char_boundary(o as usize - first)) {
            Some(i) => Err(format!("column {name}: row {}: its bounds cut a UTF-8 character", i.min(rows.saturating_sub(1)))),
            None => Ok(Rows { text, first, offsets: self.offsets }),
        }
    }
}

/// A column whose rows were checked ([`TextColumn::check_text`]).
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    text: &'a str,
    first: usize,
    offsets: &'a [u32],
}

impl<'a> Rows<'a> {
    /// Row `i`.
    pub fn get(&self, i: usize) -> &'a str {
        &self.text[self.offsets[i] as usize - self.first..self.offsets[i + 1] as usize - self.first]
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

    /// Appends a row holding `items` as a JSON array of strings.
    pub fn push_json_strings<'s>(&mut self, items: impl Iterator<Item = &'s str>) {
        self.bytes.push(b'[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.bytes.push(b',');
            }
            serde_json::to_writer(&mut self.bytes, item).expect("a string serializes");
        }
        self.bytes.push(b']');
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_cut_inside_a_character_is_refused_though_the_buffer_is_utf8() {
        let bytes = "aé b".as_bytes();
        let ok = TextColumn { bytes, offsets: &[0, 3, 5] };
        assert_eq!(ok.check_text(2, "key").map(|r| [r.get(0), r.get(1)]), Ok(["aé", " b"]));
        let cut = TextColumn { bytes, offsets: &[0, 2, 5] };
        assert_eq!(cut.check_text(2, "key").unwrap_err(), "column key: row 1: its bounds cut a UTF-8 character");
        let broken = TextColumn { bytes: b"ok\xff", offsets: &[0, 2, 3] };
        assert!(broken.check_text(2, "key").unwrap_err().starts_with("column key: row 1: invalid utf-8"));
        // Bytes outside every row are not looked at, as before.
        assert_eq!(TextColumn { bytes: b"\xffab", offsets: &[1, 3] }.check_text(1, "key").map(|r| r.get(0)), Ok("ab"));
    }
}
