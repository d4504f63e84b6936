//! Artefacts read once: a file's bytes read through a size bound with their digest, so what
//! was checked is what is used (no check-then-reopen), and precompiled component code sealed
//! with the digest of the `.wasm` it was compiled from.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// sha256 of `bytes`, hex — the digest manifests, lineage and the admin API state.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The file at `path`, refused when larger than `max` bytes (read through a bound, so a file
/// that grows while read cannot get past it).
pub fn read_capped(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    read_capped_from(std::fs::File::open(path)?, max)
}

/// What `reader` holds, refused when larger than `max` bytes (read through the bound).
pub fn read_capped_from(reader: impl Read, max: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::other(format!("larger than the limit of {max} bytes")));
    }
    Ok(bytes)
}

/// A file's bytes as read once, with their digest: what a bundle verified and what is then
/// loaded, the same bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadOnce {
    /// Where the bytes were read from (for messages and lineage).
    pub path: PathBuf,
    /// The bytes.
    pub bytes: Arc<[u8]>,
    /// Their sha256, hex.
    pub sha256: String,
}

impl ReadOnce {
    /// Reads `path` (at most `max` bytes) and digests it.
    pub fn read(path: &Path, max: u64) -> Result<ReadOnce> {
        let bytes = read_capped(path, max).with_context(|| format!("reading {}", path.display()))?;
        Ok(ReadOnce { path: path.to_path_buf(), sha256: sha256_hex(&bytes), bytes: bytes.into() })
    }
}

/// What starts sealed precompiled code: a format tag, then the raw sha256 of the `.wasm`.
const SEAL: &[u8; 8] = b"sgcwasm1";
const SEAL_LEN: usize = SEAL.len() + 32;

/// Precompiled code with the digest of the `.wasm` it was compiled from in front, so a
/// `.cwasm` names its source and cannot be passed off as another component's code.
pub fn seal(wasm: &[u8], code: &[u8]) -> Vec<u8> {
    let mut sealed = Vec::with_capacity(SEAL_LEN + code.len());
    sealed.extend_from_slice(SEAL);
    sealed.extend_from_slice(&Sha256::digest(wasm));
    sealed.extend_from_slice(code);
    sealed
}

/// The `.wasm` digest (hex) sealed code names, and the code.
fn unseal(sealed: &[u8]) -> Result<(String, &[u8])> {
    if sealed.len() < SEAL_LEN || &sealed[..SEAL.len()] != SEAL {
        bail!("not sg-host precompiled code (no {:?} seal naming the .wasm it was compiled from)", std::str::from_utf8(SEAL).unwrap());
    }
    Ok((hex::encode(&sealed[SEAL.len()..SEAL_LEN]), &sealed[SEAL_LEN..]))
}

/// The code of sealed precompiled code, refused unless its seal names the `.wasm` whose sha256
/// (hex) is `wasm_sha256`: the one check of where precompiled code came from.
pub fn unseal_for<'a>(sealed: &'a [u8], wasm_sha256: &str) -> Result<&'a [u8]> {
    let (source, code) = unseal(sealed)?;
    if source != wasm_sha256 {
        bail!("it was compiled from a .wasm with sha256 {source}, not from the .wasm with sha256 {wasm_sha256}");
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_code_names_its_wasm_and_anything_else_is_refused() {
        let sealed = seal(b"the wasm", b"code");
        let (digest, code) = unseal(&sealed).unwrap();
        assert_eq!((digest, code), (sha256_hex(b"the wasm"), &b"code"[..]));
        assert_eq!(unseal_for(&sealed, &sha256_hex(b"the wasm")).unwrap(), b"code");
        let other = unseal_for(&sealed, &sha256_hex(b"another wasm")).unwrap_err();
        assert!(format!("{other:#}").contains("was compiled from a .wasm with sha256"), "{other:#}");
        assert!(unseal(b"code").is_err());
        assert!(unseal(&sealed[..SEAL_LEN - 1]).is_err());
    }

    #[test]
    fn a_file_over_the_bound_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [7u8; 100]).unwrap();
        assert_eq!(ReadOnce::read(&path, 100).unwrap().bytes.len(), 100);
        assert!(format!("{:#}", ReadOnce::read(&path, 99).unwrap_err()).contains("limit of 99"));
    }
}
