//! Line normalization: the reference log processor's regexes, and the template policy's
//! additions for the volatile parts it missed.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// An ordered list of (pattern, replacement) rewrites.
struct Rewrites(Vec<(Regex, &'static str)>);

impl Rewrites {
    fn new(rules: &[(&str, &'static str)]) -> Self {
        Rewrites(rules.iter().map(|(p, r)| (Regex::new(p).expect("valid pattern"), *r)).collect())
    }

    fn apply<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for (re, with) in &self.0 {
            if let Cow::Owned(s) = re.replace_all(&out, *with) {
                out = Cow::Owned(s);
            }
        }
        out
    }
}

/// The reference processor's rewrites, in its order.
static REFERENCE: LazyLock<Rewrites> = LazyLock::new(|| {
    Rewrites::new(&[
        (r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}", "TIMESTAMP"),
        (r"\b(?:\d{1,3}\.){3}\d{1,3}\b", "IP_ADDR"),
        // `:\d{4,5}` before a space, comma or `]` (the processor used a lookahead).
        (r":\d{4,5}([\s,\]])", ":PORT$1"),
        (r"blk_\d+_\d+", "BLOCK_ID"),
        (r"DFSClient_[A-Z_-]+\d+", "CLIENT_ID"),
        (r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "UUID"),
        (r"\bip-\d{1,3}-\d{1,3}-\d{1,3}-\d{1,3}(?:\.[a-z0-9-]+)*\.internal\b", "HOSTNAME"),
        (r"bytes: \d+", "bytes: NUM"),
        (r"duration\(ns\): \d+", "duration(ns): NUM"),
        (r"offset: \d+", "offset: NUM"),
        (r"volume: [^,]*", "volume: VOLUME"),
    ])
});

/// The template policy's rewrites after the reference ones.
static TEMPLATE: LazyLock<Rewrites> = LazyLock::new(|| {
    Rewrites::new(&[
        // loghub timestamps: `yyMMdd HHmmss pid`.
        (r"\b\d{6} \d{6} \d+\b", "TIMESTAMP"),
        // Block ids without a generation stamp, negative ones included.
        (r"blk_-?\d+", "BLOCK_ID"),
        // A port at the end of the line (the reference rule wants a character after it).
        (r":\d{4,5}$", ":PORT"),
        // Every remaining number: sizes, thread and responder ids, offsets, task and
        // directory numbers. In HDFS lines a number is a value, never part of the message kind.
        (r"\d+", "NUM"),
    ])
});

static SPACES: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\s+").expect("valid pattern"));

fn collapse_spaces(text: &str) -> String {
    SPACES.replace_all(text, " ").trim().to_string()
}

/// The reference log processor's normalization (its regexes in order, then whitespace
/// collapsed) — the `text` its messages carry.
pub fn reference(line: &str) -> String {
    collapse_spaces(&REFERENCE.apply(line))
}

/// The template of a line: the reference normalization, then loghub timestamps, block ids,
/// trailing ports and every remaining number replaced, so lines that differ only in those share
/// one key.
pub fn template(line: &str) -> String {
    let reference = REFERENCE.apply(line);
    collapse_spaces(&TEMPLATE.apply(&reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_keeps_its_known_gaps() {
        let line = "Receiving block blk_-8512413998345829498 src: /10.251.31.85:43549 dest: /10.251.31.85:50010";
        assert_eq!(
            reference(line),
            "Receiving block blk_-8512413998345829498 src: /IP_ADDR:PORT dest: /IP_ADDR:50010"
        );
        assert_eq!(reference("a  blk_12_34\tb"), "a BLOCK_ID b");
        assert_eq!(reference("2008-11-09 20:36:15,123 x"), "TIMESTAMP x");
    }

    #[test]
    fn template_groups_volatile_parts() {
        let a = "Receiving block blk_-8512413998345829498 src: /10.251.31.85:43549 dest: /10.251.31.85:50010";
        let b = "Receiving block blk_3813114133944383323 src: /10.250.17.177:44762 dest: /10.250.17.177:50010";
        assert_eq!(template(a), template(b));
        assert_eq!(template(a), "Receiving block BLOCK_ID src: /IP_ADDR:PORT dest: /IP_ADDR:PORT");
        assert_eq!(
            template("081109 203615 148 PacketResponder 1 for block blk_38865049064139660 terminating"),
            "TIMESTAMP PacketResponder NUM for block BLOCK_ID terminating"
        );
        assert_ne!(template(a), template("Received block blk_1 of size 67108864 from /10.0.0.1"));
    }
}
