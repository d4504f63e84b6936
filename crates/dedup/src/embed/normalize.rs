//! The reference embedding service's text normalization, applied before tokenizing.

use std::sync::LazyLock;

use regex::Regex;

static RULES: LazyLock<[(Regex, &'static str); 4]> = LazyLock::new(|| {
    let re = |p: &str| Regex::new(p).expect("valid pattern");
    [
        (re(r"\b\d{13,}\b"), "<TS>"),
        (re(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), "<IP>"),
        (re(r"0x[0-9a-fA-F]+"), "<HEX>"),
        (re(r"\d+"), "<NUM>"),
    ]
});

/// `\b\d{13,}\b`→`<TS>`, IPv4→`<IP>`, `0x…`→`<HEX>`, digits→`<NUM>`, then lowercase — in the
/// reference service's order.
pub fn for_embedding(text: &str) -> String {
    let mut out = text.to_string();
    for (re, with) in RULES.iter() {
        if let std::borrow::Cow::Owned(s) = re.replace_all(&out, *with) {
            out = s;
        }
    }
    out.to_lowercase()
}

#[cfg(test)]
mod tests {
    #[test]
    fn follows_the_reference_order() {
        assert_eq!(
            super::for_embedding("At 1695810645123 from 10.0.0.1 code 0xFF and 42 Items"),
            "at <ts> from <ip> code <hex> and <num> items"
        );
    }
}
