//! Deployment bundles: one directory with the components, their code precompiled per target,
//! and a model, listed in `manifest.json` with the sha256 of every file, the manifest signed
//! with Ed25519 in minisign's format ([`signature`]). A bundle is verified whole before
//! anything from it is used — signature, then every file's digest, then that each precompiled
//! artefact was compiled from its component's `.wasm` — and the bytes verified are the bytes
//! used: every file is read once. The host then takes the artefact made for its own target and
//! code layout, or compiles the `.wasm` when none fits.

pub mod signature;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub use crate::artefact::sha256_hex;
use crate::artefact::{ReadOnce, seal, unseal_for};
use crate::component::{ComponentSource, PrecompiledArtefact, Role};
use crate::runtime::{CodeLayout, Limits, precompile};
pub use signature::{Signer, SigningKey, Trust};

/// Manifest file name inside a bundle.
pub const MANIFEST: &str = "manifest.json";
/// Manifest format version (2: artefacts name the `.wasm` they were compiled from).
const FORMAT: u32 = 2;
/// Largest manifest read.
const MAX_MANIFEST: u64 = 1 << 20;
/// Largest file of a bundle read.
const MAX_FILE: u64 = 256 << 20;

/// A file of the bundle and its digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the bundle directory.
    pub path: String,
    /// sha256, hex.
    pub sha256: String,
}

/// Code precompiled for one target and layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artefact {
    /// Target triple.
    pub target: String,
    /// `wide` or `narrow` (see [`CodeLayout`]).
    pub layout: String,
    /// The wasmtime version that compiled it.
    pub wasmtime: String,
    /// sha256 of the `.wasm` it was compiled from (also sealed into the code itself).
    pub wasm_sha256: String,
    /// The file.
    pub file: FileEntry,
}

/// One component of the bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentEntry {
    /// The portable `.wasm`.
    pub wasm: FileEntry,
    /// Precompiled code per target.
    pub precompiled: Vec<Artefact>,
}

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version.
    pub format: u32,
    /// Components by role.
    pub components: BTreeMap<Role, ComponentEntry>,
    /// A saved detector model.
    pub model: Option<FileEntry>,
}

/// A verified bundle: its manifest, who signed it, and every file's bytes as verified.
#[derive(Debug)]
pub struct Bundle {
    dir: PathBuf,
    manifest: Manifest,
    signer: Signer,
    files: BTreeMap<String, ReadOnce>,
}

/// Copies `from` into `dir` as `name`; returns its entry and bytes.
fn add_file(dir: &Path, from: &Path, name: &str) -> Result<(FileEntry, Vec<u8>)> {
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    std::fs::write(dir.join(name), &bytes).with_context(|| format!("writing {name} into the bundle"))?;
    Ok((FileEntry { path: name.to_string(), sha256: sha256_hex(&bytes) }, bytes))
}

/// The wasmtime version this host links (the one its artefacts need).
pub fn wasmtime_version() -> &'static str {
    env!("SG_WASMTIME_VERSION")
}

impl Bundle {
    /// Writes a bundle into `dir` (created): each component with its code precompiled for
    /// every `(target, layout)` and sealed with the `.wasm`'s digest, the model, the manifest,
    /// and with `sign` the manifest's signature (written last: a bundle being replaced has no
    /// valid signature until it is whole).
    pub fn create(
        dir: &Path,
        components: &[(Role, PathBuf)],
        model: Option<&Path>,
        targets: &[(String, CodeLayout)],
        limits: &Limits,
        sign: Option<&SigningKey>,
    ) -> Result<Manifest> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut manifest = Manifest { format: FORMAT, components: BTreeMap::new(), model: None };
        for (role, wasm) in components {
            if !role.is_component() {
                bail!("a bundle's {} is given as the model, not as a component", role.name());
            }
            let stem = role.name();
            let (wasm_entry, bytes) = add_file(dir, wasm, &format!("{stem}.wasm"))?;
            let mut precompiled = Vec::new();
            for (target, layout) in targets {
                let code = precompile(&bytes, target, *layout, limits)
                    .with_context(|| format!("precompiling {} for {target}", wasm.display()))?;
                let code = seal(&bytes, &code);
                let name = format!("{stem}.{target}.{}.cwasm", layout.name());
                std::fs::write(dir.join(&name), &code).with_context(|| format!("writing {name}"))?;
                let file = FileEntry { path: name, sha256: sha256_hex(&code) };
                precompiled.push(Artefact {
                    target: target.clone(),
                    layout: layout.name().into(),
                    wasmtime: wasmtime_version().into(),
                    wasm_sha256: wasm_entry.sha256.clone(),
                    file,
                });
            }
            manifest.components.insert(*role, ComponentEntry { wasm: wasm_entry, precompiled });
        }
        if let Some(m) = model {
            manifest.model = Some(add_file(dir, m, "model.json")?.0);
        }
        let text = serde_json::to_vec_pretty(&manifest)?;
        let _ = std::fs::remove_file(dir.join(signature::SIGNATURE));
        std::fs::write(dir.join(MANIFEST), &text)?;
        if let Some(key) = sign {
            std::fs::write(dir.join(signature::SIGNATURE), key.sign(&text)?)?;
        }
        Ok(manifest)
    }

    /// Opens a bundle as `trust` allows and verifies it whole before anything is used: the
    /// manifest's signature, every file's digest, and that every precompiled artefact was
    /// compiled from its component's `.wasm`. The files are read once; what was verified is
    /// what [`Bundle::component`] and [`Bundle::model`] hand out.
    pub fn open(dir: &Path, trust: &Trust) -> Result<Bundle> {
        let path = dir.join(MANIFEST);
        let text = crate::artefact::read_capped(&path, MAX_MANIFEST)
            .with_context(|| format!("{} is not a bundle (no readable {MANIFEST})", dir.display()))?;
        let signature = match crate::artefact::read_capped(&dir.join(signature::SIGNATURE), 64 << 10) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.join(signature::SIGNATURE).display())),
        };
        let signer = trust.check(dir, &text, signature.as_deref())?;
        let manifest: Manifest = serde_json::from_slice(&text).with_context(|| format!("{}", path.display()))?;
        if manifest.format != FORMAT {
            bail!("{}: bundle format {} (this host reads {FORMAT}; make it again with `sg-host bundle create`)", path.display(), manifest.format);
        }
        let mut files = BTreeMap::new();
        let entries = manifest
            .components
            .values()
            .flat_map(|c| std::iter::once(&c.wasm).chain(c.precompiled.iter().map(|a| &a.file)))
            .chain(manifest.model.iter());
        for f in entries {
            let mut parts = Path::new(&f.path).components();
            if !matches!((parts.next(), parts.next()), (Some(std::path::Component::Normal(_)), None)) {
                bail!("{}: file {:?} is not a file of the bundle directory", path.display(), f.path);
            }
            let file = ReadOnce::read(&dir.join(&f.path), MAX_FILE)?;
            if file.sha256 != f.sha256 {
                bail!("bundle {}: {} has sha256 {}, the manifest says {}; nothing was loaded", dir.display(), f.path, file.sha256, f.sha256);
            }
            files.insert(f.path.clone(), file);
        }
        for (role, c) in &manifest.components {
            for a in &c.precompiled {
                let what = || format!("bundle {}: {} for its {} component {}; nothing was loaded", dir.display(), a.file.path, role.name(), c.wasm.path);
                if a.wasm_sha256 != c.wasm.sha256 {
                    bail!("{}: the manifest names a .wasm with sha256 {}, the component is {}", what(), a.wasm_sha256, c.wasm.sha256);
                }
                unseal_for(&files[&a.file.path].bytes, &c.wasm.sha256).with_context(what)?;
            }
        }
        Ok(Bundle { dir: dir.to_path_buf(), manifest, signer, files })
    }

    /// Who signed it.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The component for `role`, with its precompiled artefacts; an error naming the bundle
    /// when it has none.
    pub fn require(&self, role: Role) -> Result<ComponentSource> {
        self.component(role).ok_or_else(|| anyhow::anyhow!("bundle {} has no {} component", self.dir.display(), role.name()))
    }

    /// The component for `role`, if the bundle has one.
    pub fn component(&self, role: Role) -> Option<ComponentSource> {
        let entry = self.manifest.components.get(&role)?;
        let artefacts = entry
            .precompiled
            .iter()
            .filter_map(|a| {
                let layout = CodeLayout::parse(&a.layout)?;
                Some(PrecompiledArtefact { target: a.target.clone(), layout, code: self.files[&a.file.path].clone() })
            })
            .collect();
        Some(ComponentSource::Precompiled { wasm: self.files[&entry.wasm.path].clone(), artefacts })
    }

    /// The saved model, as verified, if the bundle has one.
    pub fn model(&self) -> Option<ReadOnce> {
        self.manifest.model.as_ref().map(|m| self.files[&m.path].clone())
    }
}
