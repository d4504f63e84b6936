//! A dead letter: a message that could not be processed, kept with the step that refused it,
//! the reason and its position. Where dead letters are written is the pipeline's `sink`.

use sha2::{Digest, Sha256};

use crate::Position;

/// Bytes of a message kept in its dead letter when the whole is too large to keep.
pub const KEPT_PREFIX_BYTES: usize = 64 << 10;

/// What stands for the rest of a message too large to keep whole: its size and digest (the
/// dead letter's `raw` is then its first bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// The whole message's size.
    pub bytes: u64,
    /// The whole message's SHA-256, hex.
    pub sha256: String,
}

impl Cut {
    /// The cut of `message`.
    pub fn of(message: &[u8]) -> Cut {
        Cut { bytes: message.len() as u64, sha256: hex::encode(Sha256::digest(message)) }
    }
}

/// Which step refused a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefusedBy {
    /// Not a valid event (JSON, required fields, types, size).
    Decode,
    /// Refused by a component, named `name@version`.
    Component(String),
    /// Arrived for an event-time window that was already written.
    Late,
    /// Stamped further past the wall clock than the stream's future skew allows.
    Future,
}

/// One refused message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Where it was in the input.
    pub position: Position,
    /// Which step refused it.
    pub stage: RefusedBy,
    /// Why.
    pub reason: String,
    /// The original bytes — only the first [`KEPT_PREFIX_BYTES`] when `cut` is set.
    pub raw: Vec<u8>,
    /// Set when `raw` is a prefix: the whole message's size and digest.
    pub cut: Option<Cut>,
}

impl DeadLetter {
    /// A dead letter for `raw` found at `position`.
    pub fn new(position: Position, stage: RefusedBy, reason: impl Into<String>, raw: &[u8]) -> Self {
        DeadLetter { position, stage, reason: reason.into(), raw: raw.to_vec(), cut: None }
    }

    /// A dead letter for `raw`, keeping only its first [`KEPT_PREFIX_BYTES`] (with its size and
    /// digest) when it is longer.
    pub fn bounded(position: Position, stage: RefusedBy, reason: impl Into<String>, raw: &[u8]) -> Self {
        if raw.len() <= KEPT_PREFIX_BYTES {
            return DeadLetter::new(position, stage, reason, raw);
        }
        DeadLetter::cut(position, stage, reason, &raw[..KEPT_PREFIX_BYTES], Cut::of(raw))
    }

    /// A dead letter for a message of which only `prefix` is at hand, and its `cut`.
    pub fn cut(position: Position, stage: RefusedBy, reason: impl Into<String>, prefix: &[u8], cut: Cut) -> Self {
        let prefix = utf8_prefix(&prefix[..prefix.len().min(KEPT_PREFIX_BYTES)]);
        DeadLetter { position, stage, reason: reason.into(), raw: prefix.to_vec(), cut: Some(cut) }
    }

    /// This dead letter with at most `max` bytes of its message (the rest cut), for a sink that
    /// takes no more.
    pub fn at_most(&self, max: usize) -> std::borrow::Cow<'_, DeadLetter> {
        if self.raw.len() <= max {
            return std::borrow::Cow::Borrowed(self);
        }
        let cut = self.cut.clone().unwrap_or_else(|| Cut::of(&self.raw));
        let keep = utf8_prefix(&self.raw[..max.min(KEPT_PREFIX_BYTES)]);
        std::borrow::Cow::Owned(DeadLetter { raw: keep.to_vec(), cut: Some(cut), ..self.clone() })
    }
}

impl RefusedBy {
    /// The step's name in dead-letter records and headers: `decode`, `component:NAME@VERSION`, `late`, `future`.
    pub fn name(&self) -> String {
        match self {
            RefusedBy::Decode => "decode".to_string(),
            RefusedBy::Component(c) => format!("component:{c}"),
            RefusedBy::Late => "late".to_string(),
            RefusedBy::Future => "future".to_string(),
        }
    }
}

/// `prefix` without a UTF-8 character cut in two at its end (a text message stays text).
fn utf8_prefix(prefix: &[u8]) -> &[u8] {
    match std::str::from_utf8(prefix) {
        Err(e) if e.error_len().is_none() => &prefix[..e.valid_up_to()],
        _ => prefix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_message_is_kept_as_a_prefix_with_its_size_and_digest() {
        let message = "é".repeat(KEPT_PREFIX_BYTES); // two bytes each
        let letter = DeadLetter::bounded(Position::Line(3), RefusedBy::Decode, "too large", message.as_bytes());
        assert_eq!(letter.raw.len(), KEPT_PREFIX_BYTES);
        assert!(std::str::from_utf8(&letter.raw).is_ok());
        assert_eq!(letter.cut, Some(Cut::of(message.as_bytes())));
        assert_eq!(letter.cut.as_ref().unwrap().bytes, 2 * KEPT_PREFIX_BYTES as u64);
        let odd = format!("a{message}");
        let letter = DeadLetter::bounded(Position::Line(3), RefusedBy::Decode, "too large", odd.as_bytes());
        assert_eq!(letter.raw.len(), KEPT_PREFIX_BYTES - 1, "no character cut in two");
        let small = DeadLetter::bounded(Position::Line(1), RefusedBy::Decode, "bad", b"{}");
        assert_eq!((small.raw.as_slice(), &small.cut), (&b"{}"[..], &None));
        let sent = small.at_most(1);
        assert_eq!((sent.raw.as_slice(), sent.cut.as_ref().map(|c| c.bytes)), (&b"{"[..], Some(2)));
    }
}
