//! Stable point ids: the same dedup key gives the same id on every host, process and
//! architecture.
//!
//! `id = u64::from_be_bytes(sha256(key as UTF-8)[0..8]) & (2^63 − 1)` — in Python:
//! `int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") & (2**63 - 1)`.
//! The top bit is cleared so the id also fits a signed 64-bit integer (as the reference job's
//! `% 2**63` ids did).

use sha2::{Digest, Sha256};

/// The point id of a dedup key.
pub fn point_id(key: &str) -> u64 {
    let digest = Sha256::digest(key.as_bytes());
    let first: [u8; 8] = digest[..8].try_into().expect("sha256 has 32 bytes");
    u64::from_be_bytes(first) & (u64::MAX >> 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_the_documented_formula() {
        // python3 -c 'import hashlib; print(int.from_bytes(hashlib.sha256(b"abc").digest()[:8], "big") & (2**63-1))'
        assert_eq!(super::point_id("abc"), 0x3a7816bf8f01cfea);
        assert_eq!(super::point_id(""), 0x63b0c44298fc1c14);
    }
}
