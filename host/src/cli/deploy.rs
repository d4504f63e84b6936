//! `sg-host compile` and `sg-host bundle`: components precompiled for other targets, and
//! deployment bundles with a signed manifest of digests.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand};

use super::parse_size;
use sg_core::bundle::{Bundle, Signer, SigningKey, Trust};
use sg_core::component::Role;
use sg_core::runtime::{CodeLayout, HOST_TARGET, Limits, precompile};

/// Code layouts on the command line.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(super) enum LayoutArg {
    /// 4 GiB reservations, no bounds checks (the default engine).
    Wide,
    /// Reservations of the memory cap (small address spaces, e.g. 39-bit ARM boards).
    Narrow,
}

impl From<LayoutArg> for CodeLayout {
    fn from(l: LayoutArg) -> CodeLayout {
        match l {
            LayoutArg::Wide => CodeLayout::Wide,
            LayoutArg::Narrow => CodeLayout::Narrow,
        }
    }
}

#[derive(Args, Debug)]
pub(super) struct CompileArgs {
    /// The component (`.wasm`).
    component: PathBuf,
    /// Target triple, e.g. `aarch64-unknown-linux-gnu` (default: this host's).
    #[arg(long, default_value = HOST_TARGET)]
    target: String,
    /// Code layout of the engine that will load it.
    #[arg(long, value_enum, default_value = "wide")]
    layout: LayoutArg,
    /// Memory cap of the engine that will load it (matters for `--layout narrow`).
    #[arg(long, default_value = "512MiB", value_parser = parse_size)]
    memory_limit: usize,
    /// Output file (`.cwasm`).
    #[arg(short, long)]
    out: PathBuf,
}

/// `sg-host compile`.
pub(super) fn compile(args: CompileArgs) -> Result<()> {
    let bytes = std::fs::read(&args.component).with_context(|| format!("reading {}", args.component.display()))?;
    let limits = Limits { memory_bytes: args.memory_limit, ..Limits::default() };
    let code = sg_core::artefact::seal(&bytes, &precompile(&bytes, &args.target, args.layout.into(), &limits)?);
    std::fs::write(&args.out, &code).with_context(|| format!("writing {}", args.out.display()))?;
    println!("{} → {} ({}, {} layout, {} bytes)", args.component.display(), args.out.display(), args.target, CodeLayout::from(args.layout).name(), code.len());
    Ok(())
}

#[derive(Subcommand, Debug)]
pub(super) enum BundleCommand {
    /// Make a signing key pair, `PREFIX.key` (owner-only; encrypted with the password in
    /// `SG_BUNDLE_KEY_PASSWORD` when set) and `PREFIX.pub` (what hosts trust). minisign's format.
    Keygen {
        /// Path prefix of the two files.
        #[arg(long)]
        out: PathBuf,
    },
    /// Make a bundle: components, their code for each target, a model, the manifest, and with
    /// --sign its signature.
    Create(CreateArgs),
    /// Verify a bundle's signature and every digest, and list it.
    Verify {
        /// The bundle directory.
        dir: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
    },
}

/// Whose signature a bundle needs.
#[derive(Args, Debug)]
pub(super) struct TrustArgs {
    /// A trusted public key: a minisign `.pub` file, a file of keys or a base64 key (repeatable).
    #[arg(long, value_name = "PUBKEY|KEYS_FILE")]
    trust: Vec<String>,
    /// Accept a bundle no trusted key signed (logged at warn).
    #[arg(long)]
    allow_unsigned: bool,
}

#[derive(Args, Debug)]
pub(super) struct CreateArgs {
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// A component, `ROLE=FILE.wasm` with ROLE `features`, `detector` or `policy` (repeatable).
    #[arg(long, value_name = "ROLE=FILE")]
    component: Vec<String>,
    /// The secret key that signs the manifest (`sg-host bundle keygen`, or `minisign -G`).
    #[arg(long, value_name = "KEY")]
    sign: Option<PathBuf>,
    /// A saved detector model (`--save-model` output).
    #[arg(long)]
    model: Option<PathBuf>,
    /// A target to precompile for, `TRIPLE[:wide|narrow]` (repeatable; default: this host's, wide).
    #[arg(long)]
    target: Vec<String>,
    /// Memory cap of the engines that will load it (matters for the narrow layout).
    #[arg(long, default_value = "512MiB", value_parser = parse_size)]
    memory_limit: usize,
}

/// `sg-host bundle`.
pub(super) fn bundle(command: BundleCommand) -> Result<()> {
    match command {
        BundleCommand::Create(a) => {
            let components = a
                .component
                .iter()
                .map(|spec| {
                    let (role, file) = spec.split_once('=').ok_or_else(|| anyhow!("--component {spec}: expected ROLE=FILE"))?;
                    let role = <Role as clap::ValueEnum>::from_str(role, true).map_err(|e| anyhow!("--component {spec}: {e}"))?;
                    Ok((role, PathBuf::from(file)))
                })
                .collect::<Result<Vec<_>>>()?;
            let targets = if a.target.is_empty() { vec![HOST_TARGET.to_string()] } else { a.target.clone() };
            let targets = targets
                .iter()
                .map(|t| match t.split_once(':') {
                    Some((triple, layout)) => CodeLayout::parse(layout)
                        .map(|l| (triple.to_string(), l))
                        .ok_or_else(|| anyhow!("--target {t}: layout must be wide or narrow")),
                    None => Ok((t.clone(), CodeLayout::Wide)),
                })
                .collect::<Result<Vec<_>>>()?;
            let limits = Limits { memory_bytes: a.memory_limit, ..Limits::default() };
            let key = a.sign.as_deref().map(SigningKey::read).transpose()?;
            let manifest = Bundle::create(&a.out, &components, a.model.as_deref(), &targets, &limits, key.as_ref())?;
            match &key {
                Some(k) => tracing::info!("{} signed by key {}", a.out.display(), k.id()),
                None => tracing::warn!("{} is not signed: hosts run it only with --allow-unsigned (give --sign KEY)", a.out.display()),
            }
            println!("{}", serde_json::to_string_pretty(&manifest)?);
        }
        BundleCommand::Keygen { out } => {
            let (id, secret, public) = sg_core::bundle::signature::keygen(&out)?;
            println!("key {id}: secret {} (keep it private), public {} (give it to hosts as --trust)", secret.display(), public.display());
        }
        BundleCommand::Verify { dir, trust } => {
            let bundle = Bundle::open(&dir, &Trust::new(&trust.trust, trust.allow_unsigned)?)?;
            if let Signer::Trusted(key) = bundle.signer() {
                tracing::info!("{}: signed by trusted key {key}; every digest verified", dir.display());
            }
            println!("{}", serde_json::to_string_pretty(bundle.manifest())?);
        }
    }
    Ok(())
}
