//! Loading components and recognising which contract (WIT package and version) they export.

pub mod contain;
pub mod detector;
pub mod features;
pub mod policy;
mod role;

pub use role::Role;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use wasmtime::component::{Component, Linker};

use crate::artefact::ReadOnce;
use crate::bundled;
use crate::runtime::{CodeLayout, HOST_TARGET, Runtime, Sandbox};

/// Where a component comes from: built into `sg-host`, or a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComponentSource {
    /// A component embedded in the binary, by name (`streamguard`, `spark-compat`, `iforest`).
    Builtin(&'static bundled::Builtin),
    /// A `.wasm` component file.
    File(PathBuf),
    /// A `.wasm` component with code precompiled ahead of time, both as read and verified once
    /// (a bundle's): the artefact for this host's target and code layout is used when wasmtime
    /// accepts it, else the `.wasm` is compiled, with a log line saying why.
    Precompiled {
        /// The component.
        wasm: ReadOnce,
        /// Its precompiled code per target.
        artefacts: Vec<PrecompiledArtefact>,
    },
}

/// Code of a component precompiled for one target and code layout, sealed with the digest of
/// the `.wasm` it was compiled from ([`crate::artefact::seal`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrecompiledArtefact {
    /// Target triple.
    pub target: String,
    /// Code layout it was compiled for.
    pub layout: CodeLayout,
    /// The sealed code.
    pub code: ReadOnce,
}

impl ComponentSource {
    /// Parses a `--component` value: `builtin:NAME` or a path.
    pub fn parse(spec: &str) -> Result<ComponentSource> {
        match spec.strip_prefix("builtin:") {
            Some(name) => bundled::find(name).map(ComponentSource::Builtin).ok_or_else(|| {
                anyhow!("no builtin component {name:?}; builtins: {}", bundled::names().join(", "))
            }),
            None => Ok(ComponentSource::File(PathBuf::from(spec))),
        }
    }

    /// How to name it in messages and lineage.
    pub fn origin(&self) -> String {
        match self {
            ComponentSource::Builtin(b) => format!("builtin:{}", b.name),
            ComponentSource::File(p) => p.display().to_string(),
            ComponentSource::Precompiled { wasm, .. } => wasm.path.display().to_string(),
        }
    }

    fn bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>> {
        match self {
            ComponentSource::Builtin(b) => Ok(b.bytes.into()),
            ComponentSource::File(p) => read_file(p).map(Into::into),
            ComponentSource::Precompiled { wasm, .. } => Ok((&wasm.bytes[..]).into()),
        }
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read component file {}", path.display()))
}

/// A WIT package and version a component exports, e.g. `streamguard:features@1.0.0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contract {
    /// `namespace:name`.
    pub package: String,
    /// Package version.
    pub version: semver::Version,
}

impl std::fmt::Display for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.package, self.version)
    }
}

impl Contract {
    /// Parses an export name such as `streamguard:features/extractor@1.0.0`.
    fn from_export(name: &str) -> Option<Contract> {
        let (path, version) = name.split_once('@')?;
        let (package, _interface) = path.split_once('/')?;
        Some(Contract { package: package.to_string(), version: semver::Version::parse(version).ok()? })
    }
}

/// A compiled component with its identity.
pub struct LoadedComponent {
    /// The compiled component.
    pub component: Component,
    /// Where it came from.
    pub origin: String,
    /// sha256 of its bytes, hex.
    pub digest: String,
    /// sha256 of the precompiled code it was loaded from, when it was (hex).
    pub precompiled: Option<String>,
    /// Every contract it exports.
    pub exports: Vec<Contract>,
}

impl LoadedComponent {
    /// Reads and compiles a component, refusing anything that is not a component.
    pub fn load(runtime: &Runtime, source: &ComponentSource) -> Result<LoadedComponent> {
        let origin = source.origin();
        let bytes = source.bytes()?;
        // A verified file's digest is known; anything else is digested as read.
        let digest = match source {
            ComponentSource::Precompiled { wasm, .. } => wasm.sha256.clone(),
            _ => crate::artefact::sha256_hex(&bytes),
        };
        if is_core_module(&bytes) {
            bail!("{origin} is a core WebAssembly module, not a component (build it for wasm32-wasip2 or wrap it with `wasm-tools component new`)");
        }
        let precompiled = match source {
            ComponentSource::Precompiled { artefacts, .. } => load_precompiled(runtime, artefacts, &digest, &origin)?,
            _ => None,
        };
        let (component, precompiled) = match precompiled {
            Some((component, code_digest)) => (component, Some(code_digest)),
            None => (runtime.compile(&bytes, &digest, &origin)?, None),
        };
        let ty = component.component_type();
        let exports = ty.exports(runtime.engine()).filter_map(|(name, _)| Contract::from_export(name)).collect();
        Ok(LoadedComponent { component, origin, digest, precompiled, exports })
    }

    /// Binds the component to the major of `package` it exports (one of `accepted`): `bind` gets
    /// the major and a linker that adds WASI granting nothing, and returns that major's binding
    /// (a `…Pre`); a component that names the contract but does not match it is refused with
    /// both sides named. The one loading path of every component kind.
    pub fn bind<B>(
        &self,
        runtime: &Runtime,
        package: &str,
        accepted: &[u64],
        bind: impl FnOnce(u64, &Linker<Sandbox>, &Component) -> Result<B>,
    ) -> Result<(Contract, B)> {
        let contract = self.contract(package, accepted)?;
        let mut linker = Linker::new(runtime.engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        let binding = bind(contract.version.major, &linker, &self.component)
            .map_err(|e| anyhow!("{} exports {contract} but does not match it: {e:#}", self.origin))?;
        Ok((contract, binding))
    }

    /// The version of `package` this component exports, refusing anything else with a message
    /// that names what it exports and what this host accepts.
    pub fn contract(&self, package: &str, accepted: &[u64]) -> Result<Contract> {
        let accepted_list = accepted.iter().map(|m| format!("{package}@{m}.x")).collect::<Vec<_>>().join(" or ");
        let found = self.exports.iter().find(|c| c.package == package);
        match found {
            Some(c) if accepted.contains(&c.version.major) => Ok(c.clone()),
            Some(c) => bail!("{} exports {c}, but this host accepts {accepted_list}", self.origin),
            None => {
                let exported = self.exports.iter().map(|c| c.to_string()).collect::<Vec<_>>();
                let exported = if exported.is_empty() { "no versioned interfaces".into() } else { exported.join(", ") };
                bail!("{} does not export {package} (it exports {exported}); this host accepts {accepted_list}", self.origin)
            }
        }
    }
}

/// The artefact for this engine and its digest, if one is there and wasmtime accepts it (logs
/// why not); an error when the artefact was compiled from another `.wasm` than `wasm_digest`.
fn load_precompiled(runtime: &Runtime, artefacts: &[PrecompiledArtefact], wasm_digest: &str, origin: &str) -> Result<Option<(Component, String)>> {
    let layout = runtime.layout();
    let Some(a) = artefacts.iter().find(|a| a.target == HOST_TARGET && a.layout == layout) else {
        tracing::info!("no precompiled code for {HOST_TARGET} ({} layout); compiling {origin}", layout.name());
        return Ok(None);
    };
    let code = crate::artefact::unseal_for(&a.code.bytes, wasm_digest).with_context(|| format!("{} for {origin}; refused", a.code.path.display()))?;
    match runtime.deserialize(code) {
        Ok(component) => Ok(Some((component, a.code.sha256.clone()))),
        Err(e) => {
            tracing::warn!("precompiled {} refused by this engine ({e:#}); compiling {origin}", a.code.path.display());
            Ok(None)
        }
    }
}

/// A core module starts with the wasm magic and version 1; a component has layer 1.
fn is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}

/// What stopped a call into a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Its call deadline passed.
    Deadline,
    /// Its call stack ran out.
    Stack,
    /// It asked for memory past the cap.
    MemoryCap,
    /// Any other trap or error.
    Trap,
}

impl Fault {
    /// The fault of a failed call, when `e` is (or wraps) one.
    pub fn of(e: &anyhow::Error) -> Option<Fault> {
        e.downcast_ref::<CallFailed>().map(|c| c.fault)
    }
}

/// A failed call into a component: what stopped it, and a message naming the component.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CallFailed {
    /// What stopped it.
    pub fault: Fault,
    message: String,
}

/// Error for a failed call: the trap in a few words, plus what the guest printed to stderr
/// (a panic message), without the wasm backtrace.
pub(crate) fn call_error(origin: &str, what: &str, err: wasmtime::Error, stderr: String) -> anyhow::Error {
    let trap = err.downcast_ref::<wasmtime::Trap>().copied();
    let err = anyhow::Error::from(err);
    let root = err.root_cause().to_string();
    let (fault, cause) = match trap {
        Some(wasmtime::Trap::Interrupt) => (Fault::Deadline, "call deadline exceeded (wasm trap: interrupt)".to_string()),
        Some(wasmtime::Trap::StackOverflow) => (Fault::Stack, "call stack exhausted (wasm trap)".to_string()),
        _ if root.contains("growing memory") => (Fault::MemoryCap, format!("memory cap exceeded ({root})")),
        _ => (Fault::Trap, root),
    };
    let printed: Vec<&str> =
        stderr.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("note: run with")).collect();
    let message = match printed.is_empty() {
        true => format!("{origin}: {what} failed: {cause}"),
        false => format!("{origin}: {what} failed: {cause}; guest stderr: {}", printed.join(" ")),
    };
    CallFailed { fault, message }.into()
}
