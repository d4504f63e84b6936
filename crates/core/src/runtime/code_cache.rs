//! Compiled component code kept on disk between runs: a component is compiled once per engine
//! (wasmtime version, target and settings) and later starts load its code in well under a
//! millisecond instead of compiling it again (~70 ms for a features component).
//!
//! What is loaded from here runs as machine code, so the cache trusts only itself: a file is
//! loaded only from a directory owned by this user that nobody else may write, only when the file
//! too is this user's and writable by nobody else, and only when its seal names the `.wasm`
//! being loaded ([`crate::artefact::seal`]). Anything else is skipped with a warning and the
//! component is compiled, as it is when the cache cannot be written. The cache never fails a run.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::artefact::{read_capped_from, seal, unseal_for};

/// Files kept: past this, the least recently written are deleted when a new one is added.
const KEEP_FILES: usize = 64;

/// Largest file taken for compiled code (a features component compiles to ~2 MiB).
const MAX_CODE_BYTES: u64 = 256 << 20;

/// Where compiled code is kept between runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeCache {
    dir: PathBuf,
}

/// Where a component's code came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compiled {
    /// Loaded from the cache.
    Cached,
    /// Compiled now (and written to the cache, if there is one that can be written).
    Now,
}

impl CodeCache {
    /// The cache in `dir` (created, private to this user, when first written).
    pub fn at(dir: impl Into<PathBuf>) -> CodeCache {
        CodeCache { dir: dir.into() }
    }

    /// The cache `SG_CODE_CACHE` names, none when it is `off`; by default
    /// `$XDG_CACHE_HOME/sg-host/code`, else `~/.cache/sg-host/code`, else none.
    pub fn from_env() -> Option<CodeCache> {
        match std::env::var_os("SG_CODE_CACHE") {
            Some(v) if v == "off" => None,
            Some(v) if !v.is_empty() => Some(CodeCache::at(v)),
            _ => {
                let base = std::env::var_os("XDG_CACHE_HOME")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| Path::new(&h).join(".cache")))?;
                Some(CodeCache::at(base.join("sg-host").join("code")))
            }
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The component whose `.wasm` is `wasm` (sha256 `wasm_sha256`), from the cache when it is
    /// there and usable, else compiled (and cached); `origin` names it in messages.
    pub fn component(&self, engine: &Engine, wasm: &[u8], wasm_sha256: &str, origin: &str) -> Result<(Component, Compiled)> {
        let path = self.path(engine, wasm_sha256);
        match self.load(engine, &path, wasm_sha256) {
            Ok(Some(component)) => {
                tracing::debug!("loaded {origin}'s compiled code from {}", path.display());
                return Ok((component, Compiled::Cached));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("compiled code for {origin} in {} not used ({e:#}); compiling it", path.display()),
        }
        let start = Instant::now();
        let component = compile(engine, wasm, origin)?;
        match self.store(&path, wasm, &component) {
            Ok(()) => tracing::info!("compiled {origin} in {} ms; code cached in {}", start.elapsed().as_millis(), path.display()),
            Err(e) => tracing::warn!("compiled {origin}, but could not cache its code in {} ({e:#})", self.dir.display()),
        }
        Ok((component, Compiled::Now))
    }

    /// The file for this engine and `.wasm`: the engine's compatibility hash is in the name, so
    /// another wasmtime version or setting never even opens it.
    fn path(&self, engine: &Engine, wasm_sha256: &str) -> PathBuf {
        let mut h = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        self.dir.join(format!("{wasm_sha256}-{:016x}.cwasm", h.finish()))
    }

    fn load(&self, engine: &Engine, path: &Path, wasm_sha256: &str) -> Result<Option<Component>> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).context("opening it"),
        };
        private(&std::fs::metadata(&self.dir).context("the directory")?, "the directory")?;
        private(&file.metadata()?, "the file")?;
        // Read from the file just checked, not from the path again.
        let sealed = read_capped_from(file, MAX_CODE_BYTES)?;
        let code = unseal_for(&sealed, wasm_sha256)?;
        // SAFETY: the file is this user's, in this user's private directory, written by
        // `store` below (sealed with the digest of this very `.wasm`).
        Ok(Some(unsafe { super::deserialize(engine, code) }?))
    }

    fn store(&self, path: &Path, wasm: &[u8], component: &Component) -> Result<()> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)?;
        private(&std::fs::metadata(&self.dir)?, "the directory")?;
        let code = component.serialize().map_err(anyhow::Error::from)?;
        // Written whole under a temporary name, then renamed: a reader sees no file or all of it.
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(&seal(wasm, &code))?;
        tmp.persist(path)?;
        self.prune();
        Ok(())
    }

    /// Deletes all but the [`KEEP_FILES`] most recently written code files.
    fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        if files.len() > KEEP_FILES {
            files.sort();
            for (_, path) in &files[..files.len() - KEEP_FILES] {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Compiles `wasm` into a component.
pub(super) fn compile(engine: &Engine, wasm: &[u8], origin: &str) -> Result<Component> {
    Component::new(engine, wasm).map_err(anyhow::Error::from).with_context(|| format!("{origin} is not a valid WebAssembly component"))
}

/// Refuses what this user does not own or others may write.
fn private(meta: &std::fs::Metadata, what: &str) -> Result<()> {
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        bail!("{what} belongs to uid {}, not to this user (uid {me})", meta.uid());
    }
    if meta.mode() & 0o022 != 0 {
        bail!("{what} may be written by others (mode {:o})", meta.mode() & 0o777);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    /// The smallest component (the preamble of a layer-1 binary, no sections), and its digest.
    fn wasm() -> (Vec<u8>, String) {
        let wasm = b"\0asm\x0d\0\x01\0".to_vec();
        let sha = crate::artefact::sha256_hex(&wasm);
        (wasm, sha)
    }

    #[test]
    fn code_is_compiled_once_then_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CodeCache::at(dir.path().join("code"));
        let (engine, (wasm, sha)) = (engine(), wasm());
        assert_eq!(cache.component(&engine, &wasm, &sha, "t").unwrap().1, Compiled::Now);
        let mode = std::fs::metadata(cache.dir()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700, "the directory is private");
        assert_eq!(cache.component(&engine, &wasm, &sha, "t").unwrap().1, Compiled::Cached);
    }

    #[test]
    fn code_others_could_write_or_sealed_for_another_wasm_is_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CodeCache::at(dir.path().join("code"));
        let (engine, (wasm, sha)) = (engine(), wasm());
        cache.component(&engine, &wasm, &sha, "t").unwrap();
        let path = cache.path(&engine, &sha);

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = cache.load(&engine, &path, &sha).unwrap_err();
        assert!(format!("{e:#}").contains("may be written by others"), "{e:#}");
        assert_eq!(cache.component(&engine, &wasm, &sha, "t").unwrap().1, Compiled::Now, "rewritten privately");
        assert_eq!(cache.component(&engine, &wasm, &sha, "t").unwrap().1, Compiled::Cached);

        std::fs::set_permissions(cache.dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(format!("{:#}", cache.load(&engine, &path, &sha).unwrap_err()).contains("the directory may be written by others"));
        std::fs::set_permissions(cache.dir(), std::fs::Permissions::from_mode(0o700)).unwrap();

        // Another component's code under this component's name: its seal names the other .wasm.
        let code = unseal_for(&std::fs::read(&path).unwrap(), &sha).unwrap().to_vec();
        std::fs::write(&path, seal(b"another wasm", &code)).unwrap();
        let e = cache.load(&engine, &path, &sha).unwrap_err();
        assert!(format!("{e:#}").contains("compiled from a .wasm with sha256"), "{e:#}");
        assert_eq!(cache.component(&engine, &wasm, &sha, "t").unwrap().1, Compiled::Now);
    }

    #[test]
    fn the_oldest_files_go_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CodeCache::at(dir.path());
        for i in 0..KEEP_FILES + 3 {
            std::fs::write(dir.path().join(format!("{i:03}.cwasm")), b"x").unwrap();
            let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + i as u64);
            std::fs::File::options().write(true).open(dir.path().join(format!("{i:03}.cwasm"))).unwrap().set_modified(t).unwrap();
        }
        cache.prune();
        let mut left: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left.len(), KEEP_FILES);
        assert_eq!(left[0], "003.cwasm", "the three oldest are gone");
    }
}
