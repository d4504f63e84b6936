//! Bundle signatures: an Ed25519 signature over `manifest.json` in minisign's format
//! (`manifest.json.minisig`), so `minisign -Vm manifest.json -p key.pub` checks a bundle too,
//! and keys made with `minisign -G` sign and verify here. The manifest holds the digest of every
//! file, and every file is checked against it, so the signature covers the whole bundle.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use minisign::{KeyPair, PublicKey, SecretKey, SecretKeyBox, SignatureBox};

use crate::artefact::read_capped;

/// The signature file beside the manifest.
pub const SIGNATURE: &str = "manifest.json.minisig";

/// The environment variable that holds the password of an encrypted secret key.
pub const KEY_PASSWORD_ENV: &str = "SG_BUNDLE_KEY_PASSWORD";

/// Largest key or signature file read.
const MAX_KEY_FILE: u64 = 64 << 10;

/// A key's id as minisign prints it (16 hex digits).
fn key_id(keynum: &[u8]) -> String {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&keynum[..8]);
    format!("{:016X}", u64::from_le_bytes(bytes))
}

/// A secret key that signs bundles.
pub struct SigningKey {
    secret: SecretKey,
    id: String,
}

impl SigningKey {
    /// Reads a minisign secret key file; an encrypted one is opened with the password in
    /// [`KEY_PASSWORD_ENV`].
    pub fn read(path: &Path) -> Result<SigningKey> {
        let text = String::from_utf8(read_capped(path, MAX_KEY_FILE).with_context(|| format!("reading secret key {}", path.display()))?)
            .with_context(|| format!("{} is not a minisign secret key", path.display()))?;
        let boxed = SecretKeyBox::from_string(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let secret = match std::env::var(KEY_PASSWORD_ENV) {
            Ok(password) => boxed.into_secret_key(Some(password)),
            Err(_) => boxed.into_unencrypted_secret_key(),
        }
        .map_err(|e| anyhow!("opening secret key {} ({e}; an encrypted key takes its password from {KEY_PASSWORD_ENV})", path.display()))?;
        let id = key_id(secret.keynum());
        Ok(SigningKey { secret, id })
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The signature of `manifest`, as the text of a `.minisig` file.
    pub fn sign(&self, manifest: &[u8]) -> Result<String> {
        let trusted = format!("sg-host bundle manifest, sha256 {}", crate::artefact::sha256_hex(manifest));
        let signature = minisign::sign(None, &self.secret, Cursor::new(manifest), Some(&trusted), Some("signature from sg-host bundle create"))
            .map_err(|e| anyhow!("signing the manifest: {e}"))?;
        Ok(signature.into_string())
    }
}

/// Makes a key pair: `PREFIX.key` (secret, owner-only; encrypted with the password in
/// [`KEY_PASSWORD_ENV`] when it is set) and `PREFIX.pub`. Returns the key id and both paths.
pub fn keygen(prefix: &Path) -> Result<(String, PathBuf, PathBuf)> {
    let (secret_path, public_path) = (prefix.with_extension("key"), prefix.with_extension("pub"));
    for p in [&secret_path, &public_path] {
        if p.exists() {
            bail!("{} exists; not overwriting a key", p.display());
        }
    }
    let password = std::env::var(KEY_PASSWORD_ENV).ok();
    let pair = match &password {
        Some(p) => KeyPair::generate_encrypted_keypair(Some(p.clone())),
        None => KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(|e| anyhow!("generating a key pair: {e}"))?;
    let id = key_id(pair.pk.keynum());
    let secret_box = pair.sk.to_box(Some(&format!("sg-host bundle signing key {id}"))).map_err(|e| anyhow!("{e}"))?;
    let public_box = pair.pk.to_box().map_err(|e| anyhow!("{e}"))?;
    write_new(&secret_path, secret_box.into_string().as_bytes(), 0o600)?;
    write_new(&public_path, public_box.into_string().as_bytes(), 0o644)?;
    if password.is_none() {
        tracing::warn!(key = %secret_path.display(), "the secret key is not password-protected ({KEY_PASSWORD_ENV} was not set): keep it offline");
    }
    Ok((id, secret_path, public_path))
}

/// Creates `path` (refusing an existing file) with `mode`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Who signed a bundle, as far as this host trusts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signer {
    /// A trusted key, by id.
    Trusted(String),
    /// Nobody this host trusts; accepted because `--allow-unsigned` was given (the reason).
    Unsigned(String),
}

/// Which bundles this host runs: those signed by one of its keys, and, with `--allow-unsigned`,
/// any other (logged at warn).
#[derive(Clone)]
pub struct Trust {
    keys: Vec<(String, PublicKey)>,
    allow_unsigned: bool,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Trust").field("keys", &ids).field("allow_unsigned", &self.allow_unsigned).finish()
    }
}

impl Trust {
    /// Trusts the keys in `sources` — each a minisign public key file, a file of such keys (one
    /// base64 key per line; `#` and `untrusted comment:` lines skipped) or a base64 key — and,
    /// with `allow_unsigned`, runs bundles none of them signed. Refuses to trust nothing.
    pub fn new(sources: &[String], allow_unsigned: bool) -> Result<Trust> {
        let mut keys = Vec::new();
        for source in sources {
            let path = Path::new(source);
            let text = if path.is_file() {
                String::from_utf8(read_capped(path, MAX_KEY_FILE).with_context(|| format!("reading trusted keys {source}"))?)
                    .with_context(|| format!("{source} is not a key file"))?
            } else {
                source.clone()
            };
            let before = keys.len();
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') || line.starts_with("untrusted comment:") {
                    continue;
                }
                let key = PublicKey::from_base64(line).map_err(|e| anyhow!("--trust {source}: {e}"))?;
                keys.push((key_id(key.keynum()), key));
            }
            if keys.len() == before {
                bail!("--trust {source}: no public key in it");
            }
        }
        if keys.is_empty() && !allow_unsigned {
            bail!("a bundle runs only when a trusted key signed it: give --trust PUBKEY_FILE (or --allow-unsigned)");
        }
        Ok(Trust { keys, allow_unsigned })
    }

    /// Checks `manifest`'s signature (`signature`: the `.minisig` text, if the bundle has one):
    /// who signed it, or why it is refused. A signature by a trusted key that does not verify
    /// is refused even with `--allow-unsigned`: the manifest changed after it was signed.
    pub fn check(&self, bundle: &Path, manifest: &[u8], signature: Option<&[u8]>) -> Result<Signer> {
        let untrusted = |reason: String| -> Result<Signer> {
            if self.allow_unsigned {
                tracing::warn!(bundle = %bundle.display(), "{reason}; running it because --allow-unsigned was given");
                Ok(Signer::Unsigned(reason))
            } else {
                bail!("bundle {}: {reason}; refused (sign it with `sg-host bundle create --sign KEY`, trust the key with --trust, or give --allow-unsigned)", bundle.display())
            }
        };
        let Some(signature) = signature else { return untrusted(format!("is not signed (no {SIGNATURE})")) };
        let text = std::str::from_utf8(signature).map_err(|_| anyhow!("bundle {}: {SIGNATURE} is not a minisign signature", bundle.display()))?;
        let signature = SignatureBox::from_string(text).map_err(|e| anyhow!("bundle {}: {SIGNATURE}: {e}", bundle.display()))?;
        let id = key_id(signature.keynum());
        let Some((_, key)) = self.keys.iter().find(|(k, _)| *k == id) else {
            let trusted: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
            return untrusted(format!("is signed by key {id}, which is not trusted (trusted: {})", if trusted.is_empty() { "none".into() } else { trusted.join(", ") }));
        };
        minisign::verify(key, &signature, Cursor::new(manifest), true, false, false).map_err(|e| {
            anyhow!("bundle {}: the signature by trusted key {id} does not verify ({e}): the manifest changed after it was signed; nothing was loaded", bundle.display())
        })?;
        Ok(Signer::Trusted(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> (SigningKey, PathBuf) {
        let (_, secret, public) = keygen(&dir.join(name)).unwrap();
        (SigningKey::read(&secret).unwrap(), public)
    }

    #[test]
    fn a_signature_verifies_only_for_its_manifest_and_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = pair(dir.path(), "a");
        let (_, other) = pair(dir.path(), "b");
        let signature = key.sign(b"manifest").unwrap();
        let trust = Trust::new(&[public.display().to_string()], false).unwrap();
        assert_eq!(trust.check(dir.path(), b"manifest", Some(signature.as_bytes())).unwrap(), Signer::Trusted(key.id().into()));
        let changed = trust.check(dir.path(), b"manifesT", Some(signature.as_bytes())).unwrap_err();
        assert!(format!("{changed:#}").contains("does not verify"), "{changed:#}");
        let unsigned = trust.check(dir.path(), b"manifest", None).unwrap_err();
        assert!(format!("{unsigned:#}").contains("is not signed"), "{unsigned:#}");
        let elsewhere = Trust::new(&[other.display().to_string()], false).unwrap();
        let e = elsewhere.check(dir.path(), b"manifest", Some(signature.as_bytes())).unwrap_err();
        assert!(format!("{e:#}").contains(&format!("signed by key {}, which is not trusted", key.id())), "{e:#}");
        let lenient = Trust::new(&[other.display().to_string()], true).unwrap();
        assert!(matches!(lenient.check(dir.path(), b"manifest", Some(signature.as_bytes())).unwrap(), Signer::Unsigned(_)));
        assert!(lenient.check(dir.path(), b"manifesT", None).is_ok());
        assert!(Trust::new(&[], false).is_err(), "trusting nothing is refused at start");
        assert!(keygen(&dir.path().join("a")).is_err(), "an existing key is not overwritten");
    }
}
