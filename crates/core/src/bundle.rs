//! Deployment bundles: one directory with the components, their code precompiled per target,
//! and a model, listed in `manifest.json` with the sha256 of every file. A bundle is verified
//! whole before anything from it is used; the host then takes the artefact made for its own
//! target and code layout, or compiles the `.wasm` when none fits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::component::{ComponentSource, PrecompiledArtefact, Role};
use crate::runtime::{CodeLayout, Limits, precompile};

/// Manifest file name inside a bundle.
pub const MANIFEST: &str = "manifest.json";
/// Manifest format version.
const FORMAT: u32 = 1;

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

/// A verified bundle.
#[derive(Debug)]
pub struct Bundle {
    dir: PathBuf,
    manifest: Manifest,
}

/// sha256 of `bytes`, hex — the digest manifests and the admin API state.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(sha256_hex(&bytes))
}

/// Copies `from` into `dir` as `name`; returns its entry.
fn add_file(dir: &Path, from: &Path, name: &str) -> Result<FileEntry> {
    std::fs::copy(from, dir.join(name)).with_context(|| format!("copying {} into the bundle", from.display()))?;
    Ok(FileEntry { path: name.to_string(), sha256: sha256_file(&dir.join(name))? })
}

/// The wasmtime version this host links (the one its artefacts need).
pub fn wasmtime_version() -> &'static str {
    env!("SG_WASMTIME_VERSION")
}

impl Bundle {
    /// Writes a bundle into `dir` (created): each component with its code precompiled for
    /// every `(target, layout)`, and the model.
    pub fn create(
        dir: &Path,
        components: &[(Role, PathBuf)],
        model: Option<&Path>,
        targets: &[(String, CodeLayout)],
        limits: &Limits,
    ) -> Result<Manifest> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut manifest = Manifest { format: FORMAT, components: BTreeMap::new(), model: None };
        for (role, wasm) in components {
            if !role.is_component() {
                bail!("a bundle's {} is given as the model, not as a component", role.name());
            }
            let stem = role.name();
            let wasm_entry = add_file(dir, wasm, &format!("{stem}.wasm"))?;
            let bytes = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
            let mut precompiled = Vec::new();
            for (target, layout) in targets {
                let code = precompile(&bytes, target, *layout, limits)
                    .with_context(|| format!("precompiling {} for {target}", wasm.display()))?;
                let name = format!("{stem}.{target}.{}.cwasm", layout.name());
                std::fs::write(dir.join(&name), &code).with_context(|| format!("writing {name}"))?;
                let file = FileEntry { path: name, sha256: sha256_hex(&code) };
                precompiled.push(Artefact {
                    target: target.clone(),
                    layout: layout.name().into(),
                    wasmtime: wasmtime_version().into(),
                    file,
                });
            }
            manifest.components.insert(*role, ComponentEntry { wasm: wasm_entry, precompiled });
        }
        if let Some(m) = model {
            manifest.model = Some(add_file(dir, m, "model.json")?);
        }
        std::fs::write(dir.join(MANIFEST), serde_json::to_vec_pretty(&manifest)?)?;
        Ok(manifest)
    }

    /// Opens a bundle and verifies the digest of every file it lists, before anything is used.
    pub fn open(dir: &Path) -> Result<Bundle> {
        let path = dir.join(MANIFEST);
        let manifest: Manifest = serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("{} is not a bundle (no {MANIFEST})", dir.display()))?,
        )
        .with_context(|| format!("{}", path.display()))?;
        if manifest.format != FORMAT {
            bail!("{}: bundle format {} (this host reads {FORMAT})", path.display(), manifest.format);
        }
        let files = manifest
            .components
            .values()
            .flat_map(|c| std::iter::once(&c.wasm).chain(c.precompiled.iter().map(|a| &a.file)))
            .chain(manifest.model.iter());
        for f in files {
            if f.path.contains("..") || Path::new(&f.path).is_absolute() {
                bail!("{}: file {:?} is outside the bundle", path.display(), f.path);
            }
            let found = sha256_file(&dir.join(&f.path))?;
            if found != f.sha256 {
                bail!(
                    "bundle {}: {} has sha256 {found}, the manifest says {}; nothing was loaded",
                    dir.display(),
                    f.path,
                    f.sha256
                );
            }
        }
        Ok(Bundle { dir: dir.to_path_buf(), manifest })
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
                Some(PrecompiledArtefact { target: a.target.clone(), layout, path: self.dir.join(&a.file.path) })
            })
            .collect();
        Some(ComponentSource::Precompiled { wasm: self.dir.join(&entry.wasm.path), artefacts })
    }

    /// The saved model, if the bundle has one.
    pub fn model(&self) -> Option<PathBuf> {
        self.manifest.model.as_ref().map(|m| self.dir.join(&m.path))
    }
}
