//! Masks over a line's tokens in one pass: every mask compiled into one regex, tried only where
//! a match can start.

use regex_automata::hybrid::dfa as lazy;
use regex_automata::meta::{Cache, Regex};
use regex_automata::{Anchored, Input};
use regex_syntax::hir::literal::{ExtractKind, Extractor};

use super::Mask;

/// The masks of a miner, ready to run.
pub(super) struct Masker {
    /// Every mask at once, as a lazy DFA searched forward from a known start (the meta engine's
    /// own, without its dispatch per search); pattern `i` is mask `i`, and at one place the first
    /// that matches wins. It gives up next to a Unicode `\b` on non-ASCII text.
    dfa: lazy::DFA,
    dfa_cache: lazy::Cache,
    /// The same masks on the meta engine, which answers where the DFA gives up.
    regex: Regex,
    cache: Cache,
    /// `<NAME>` of each mask.
    names: Vec<String>,
    /// Bytes a match can start with (from the masks' literal prefixes; all when one is unknown).
    starts: [bool; 256],
}

impl Masker {
    /// Compiles `masks`; the error names the mask it refuses.
    pub(super) fn new(masks: &[Mask]) -> Result<Masker, String> {
        let mut starts = [false; 256];
        for m in masks {
            if m.name.is_empty() || !m.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("mask name {:?}: letters, digits and `_` only", m.name));
            }
            let hir = regex_syntax::parse(&m.pattern).map_err(|e| format!("mask {}: {e}", m.name))?;
            if hir.properties().minimum_len().is_none_or(|len| len == 0) {
                return Err(format!("mask {}: matches the empty string (or nothing at all)", m.name));
            }
            let prefixes = Extractor::new().kind(ExtractKind::Prefix).limit_class(1_000).limit_total(10_000).extract(&hir);
            match prefixes.literals() {
                Some(literals) if literals.iter().all(|l| !l.is_empty()) => {
                    for l in literals {
                        starts[l.as_bytes()[0] as usize] = true;
                    }
                }
                // A match may start with any byte: every place is a candidate.
                _ => starts = [true; 256],
            }
        }
        let patterns: Vec<&str> = masks.iter().map(|m| m.pattern.as_str()).collect();
        let regex = Regex::new_many(&patterns).map_err(|e| format!("masks: {e}"))?;
        let cache = regex.create_cache();
        let dfa = lazy::DFA::builder()
            .configure(lazy::DFA::config().unicode_word_boundary(true))
            .build_many(&patterns)
            .map_err(|e| format!("masks: {e}"))?;
        let dfa_cache = dfa.create_cache();
        let names = masks.iter().map(|m| format!("<{}>", m.name)).collect();
        Ok(Masker { dfa, dfa_cache, regex, cache, names, starts })
    }

    /// Whether a match can start with byte `b`.
    pub(super) fn may_start(&self, b: u8) -> bool {
        self.starts[b as usize]
    }

    /// `token` with what the masks match replaced by their `<NAME>`, appended to `out`; `false`
    /// (and `out` as it was) when no mask matches. Left to right, a match is the first mask that
    /// matches at the leftmost place where one does.
    pub(super) fn mask(&mut self, token: &str, out: &mut String) -> bool {
        let bytes = token.as_bytes();
        let (mut masked, mut copied, mut at) = (false, 0, 0);
        while at < bytes.len() {
            if !self.starts[bytes[at] as usize] || !token.is_char_boundary(at) {
                at += 1;
                continue;
            }
            let input = Input::new(token).range(at..).anchored(Anchored::Yes);
            let found = match self.dfa.try_search_fwd(&mut self.dfa_cache, &input) {
                Ok(half) => half.map(|m| (m.pattern(), m.offset())),
                Err(_) => self.regex.search_with(&mut self.cache, &input).map(|m| (m.pattern(), m.end())),
            };
            match found {
                Some((mask, end)) => {
                    out.push_str(&token[copied..at]);
                    out.push_str(&self.names[mask.as_usize()]);
                    masked = true;
                    // Never empty (refused in `new`), so this moves on.
                    (copied, at) = (end, end);
                }
                None => at += 1,
            }
        }
        if !masked {
            return false;
        }
        out.push_str(&token[copied..]);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masker(masks: &[(&str, &str)]) -> Masker {
        Masker::new(&masks.iter().map(|(n, p)| Mask { name: n.to_string(), pattern: p.to_string() }).collect::<Vec<_>>()).unwrap()
    }

    fn mask(m: &mut Masker, token: &str) -> Option<String> {
        let mut out = String::from("kept|");
        m.mask(token, &mut out).then(|| out["kept|".len()..].to_string())
    }

    #[test]
    fn the_first_mask_at_the_leftmost_place_wins() {
        let mut m = masker(&[("BLK", r"blk_-?\d+"), ("IP", r"/?\d{1,3}(\.\d{1,3}){3}(:\d+)?"), ("NUM", r"\b[-+]?\d+\b")]);
        assert_eq!(mask(&mut m, "blk_-123"), Some("<BLK>".into()));
        assert_eq!(mask(&mut m, "/10.0.0.1:50010,"), Some("<IP>,".into()));
        assert_eq!(mask(&mut m, "sshd[42]:"), Some("sshd[<NUM>]:".into()));
        // `\b` cannot hold between `=` and `-`, so the sign stays (as in Python's `re`).
        assert_eq!(mask(&mut m, "a=1,b=-2"), Some("a=<NUM>,b=-<NUM>".into()));
        assert_eq!(mask(&mut m, "block"), None);
        assert_eq!(mask(&mut m, "x1y"), None, "no word boundary around the digit");
        assert_eq!(mask(&mut m, "é١٢"), None, "Arabic-Indic digits after a letter: no boundary");
        assert_eq!(mask(&mut m, "é ١٢"), Some("é <NUM>".into()), "Unicode digits are digits");
    }

    #[test]
    fn masks_whose_start_is_unknown_are_tried_everywhere() {
        let mut m = masker(&[("W", r"\w+ed\b")]);
        assert!(m.starts.iter().all(|&s| s));
        assert_eq!(mask(&mut m, "(closed)"), Some("(<W>)".into()));
        assert_eq!(mask(&mut m, "open"), None);
    }

    #[test]
    fn masks_that_match_nothing_are_refused() {
        let refused = |p: &str| Masker::new(&[Mask { name: "E".into(), pattern: p.into() }]).err().unwrap();
        assert!(refused("x*").contains("empty string"), "{}", refused("x*"));
        assert!(refused("(").contains("mask E"));
    }
}
