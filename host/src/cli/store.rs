//! `sg-host store`: the dedup store by hand — count, list, search, delete and export points
//! (what the reference job's `view_qdrant.py`, `manage_qdrant.py` and `analyze_embeddings.py`
//! did), and the store options `serve` shares.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use sg_core::component::ComponentSource;
use sg_dedup::index::{LogIndex, SharedStore};
use sg_dedup::store::{DEFAULT_COLLECTION, PayloadFilter};
use sg_dedup::learned::StateFile;
use sg_dedup::StoreChoice;

use super::args::ModelArgs;

use sg_core::runtime::Limits;

/// Which store, and the policy and model that key and embed queries against it (given before
/// or after a `store` subcommand; the policy runs in the default sandbox).
#[derive(Args, Debug, Clone)]
pub(super) struct LogStoreArgs {
    /// Embedded store directory (as `dedup --store`).
    #[arg(long, global = true, conflicts_with = "qdrant")]
    pub(super) store: Option<PathBuf>,
    /// A Qdrant server instead (gRPC, e.g. `http://127.0.0.1:6334`).
    #[arg(long, global = true)]
    qdrant: Option<String>,
    /// Collection name.
    #[arg(long, global = true, default_value = DEFAULT_COLLECTION, value_parser = super::dedup::parse_collection)]
    collection: String,
    /// The policy that wrote the store (queries are keyed and embedded as it does).
    #[arg(long, global = true, default_value = "builtin:template")]
    policy: String,
    #[command(flatten)]
    model: ModelArgs,
}

impl LogStoreArgs {
    /// The store, if one is named (`default`: the directory used when none is).
    fn choice(&self, default: Option<&str>) -> Option<StoreChoice> {
        match (&self.qdrant, &self.store, default) {
            (Some(url), _, _) => Some(StoreChoice::Server(url.clone())),
            (None, Some(dir), _) => Some(StoreChoice::Embedded(dir.clone())),
            (None, None, Some(dir)) => Some(StoreChoice::Embedded(dir.into())),
            (None, None, None) => None,
        }
    }

    fn open(&self) -> Result<SharedStore> {
        self.choice(Some("sg-store")).expect("a default").open(&self.collection)
    }

    /// The index `serve` answers log queries from, when a store is named.
    pub(super) fn index(&self) -> Result<Option<Arc<LogIndex>>> {
        let Some(choice) = self.choice(None) else { return Ok(None) };
        Ok(Some(Arc::new(self.index_over(choice.open(&self.collection)?)?)))
    }

    fn index_over(&self, store: SharedStore) -> Result<LogIndex> {
        LogIndex::open(store, &ComponentSource::parse(&self.policy)?, &self.model.in_process(), Limits::default())
    }
}

/// `sg-host store …`.
#[derive(Args, Debug)]
pub(super) struct StoreArgs {
    #[command(subcommand)]
    command: StoreCommand,
    #[command(flatten)]
    store: LogStoreArgs,
}

/// Payload conditions, `FIELD=VALUE` (repeatable; all must hold), e.g. `--filter label=1`.
#[derive(Args, Debug, Clone, Default)]
struct FilterArgs {
    /// A payload condition `FIELD=VALUE` (repeatable; all must hold), e.g. `label=1`.
    #[arg(long = "filter", value_name = "FIELD=VALUE")]
    conditions: Vec<String>,
}

impl FilterArgs {
    fn filter(&self) -> Result<PayloadFilter> {
        PayloadFilter::parse(&self.conditions)
    }
}

#[derive(Subcommand, Debug)]
enum StoreCommand {
    /// Points stored (meeting the filters).
    Count(FilterArgs),
    /// Points as JSON lines, `{"id", "payload"}`, in id order.
    Show {
        #[command(flatten)]
        filter: FilterArgs,
        /// Most points printed.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// The stored lines nearest to a text (keyed and embedded as dedup does), as JSON lines.
    Search {
        /// The log line.
        text: String,
        /// Neighbours.
        #[arg(short, default_value_t = 10)]
        k: usize,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Deletes the points meeting the filters (`--all` for every point).
    Delete {
        #[command(flatten)]
        filter: FilterArgs,
        /// Delete every point (without filters).
        #[arg(long)]
        all: bool,
    },
    /// The templates a learning policy (`builtin:drain`) learned, most lines first, as JSON
    /// lines `{"key", "template", "lines", "stored", "id"}` (`stored`: its point is in the store).
    Templates {
        /// The policy's state file (default: the one `dedup` keeps beside this store).
        #[arg(long, value_name = "FILE")]
        policy_state: Option<PathBuf>,
    },
    /// Writes the points (id, payload fields, optionally the vector) as JSON lines or Parquet.
    Export {
        #[command(flatten)]
        filter: FilterArgs,
        /// The file to write (`.parquet` writes Parquet, anything else JSON lines; `-` stdout).
        #[arg(long)]
        out: PathBuf,
        /// Include each point's vector.
        #[arg(long)]
        vectors: bool,
    },
}

/// Points per store page.
const PAGE: usize = 1000;

/// Every point meeting `filter`, page by page, as `{"id", …payload, "vector"?}` objects.
fn each_point(store: &SharedStore, filter: &PayloadFilter, vectors: bool, limit: usize, mut f: impl FnMut(Value) -> Result<()>) -> Result<u64> {
    let mut from = None;
    let mut n = 0u64;
    loop {
        let mut s = store.lock().expect("not poisoned");
        let (page, next) = s.scroll(filter, from, PAGE.min(limit - n as usize))?;
        let mut vecs = if vectors { s.vectors(&page.iter().map(|p| p.id).collect::<Vec<_>>())? } else { Default::default() };
        drop(s);
        for p in page {
            let mut row = serde_json::Map::new();
            row.insert("id".into(), json!(p.id));
            row.extend(p.payload);
            if let Some(v) = vecs.remove(&p.id) {
                row.insert("vector".into(), json!(v));
            }
            f(Value::Object(row))?;
            n += 1;
        }
        match next {
            Some(id) if (n as usize) < limit => from = Some(id),
            _ => return Ok(n),
        }
    }
}

/// Runs `sg-host store …`.
pub(super) fn store(args: StoreArgs) -> Result<()> {
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    match args.command {
        StoreCommand::Count(f) => {
            let n = args.store.open()?.lock().expect("not poisoned").count(&f.filter()?)?;
            writeln!(out, "{n}")?;
        }
        StoreCommand::Show { filter, limit } => {
            let store = args.store.open()?;
            each_point(&store, &filter.filter()?, false, limit, |row| {
                let id = row["id"].clone();
                let mut payload = row;
                payload.as_object_mut().expect("an object").remove("id");
                writeln!(out, "{}", json!({"id": id, "payload": payload}))?;
                Ok(())
            })?;
        }
        StoreCommand::Search { text, k, filter } => {
            let index = args.store.index_over(args.store.open()?)?;
            for hit in index.search(&text, k, &filter.filter()?)? {
                writeln!(out, "{}", serde_json::to_string(&hit)?)?;
            }
        }
        StoreCommand::Delete { filter, all } => {
            let filter = filter.filter()?;
            if filter.is_empty() && !all {
                bail!("give --filter FIELD=VALUE, or --all to delete every point");
            }
            let n = args.store.open()?.lock().expect("not poisoned").delete(&filter)?;
            writeln!(out, "{n} points deleted")?;
        }
        StoreCommand::Templates { policy_state } => {
            let store = args.store.choice(Some("sg-store")).expect("a default");
            let file = policy_state.map_or_else(|| StateFile::beside(&store, &args.store.collection), StateFile::at);
            let mut templates = file.templates()?;
            templates.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.key.cmp(&b.key)));
            let ids: Vec<u64> = templates.iter().map(|t| sg_dedup::point_id(&t.key)).collect();
            let stored = store.open(&args.store.collection)?.lock().expect("not poisoned").existing(&ids)?;
            for (t, id) in templates.iter().zip(ids) {
                let row = json!({"key": t.key, "template": t.template, "lines": t.size, "stored": stored.contains(&id), "id": id});
                writeln!(out, "{row}")?;
            }
        }
        StoreCommand::Export { filter, out: path, vectors } => {
            let store = args.store.open()?;
            let filter = filter.filter()?;
            let n = if path.extension().is_some_and(|e| e == "parquet") {
                export_parquet(&store, &filter, vectors, &path)?
            } else if path.as_os_str() == "-" {
                each_point(&store, &filter, vectors, usize::MAX, |row| Ok(writeln!(out, "{row}")?))?
            } else {
                let mut file = std::io::BufWriter::new(std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?);
                let n = each_point(&store, &filter, vectors, usize::MAX, |row| Ok(writeln!(file, "{row}")?))?;
                file.flush()?;
                n
            };
            tracing::info!("{n} points exported to {}", path.display());
        }
    }
    out.flush()?;
    Ok(())
}

/// Writes the points as one Parquet file, the columns inferred from the payloads.
fn export_parquet(store: &SharedStore, filter: &PayloadFilter, vectors: bool, path: &std::path::Path) -> Result<u64> {
    let mut lines = Vec::new();
    let n = each_point(store, filter, vectors, usize::MAX, |row| {
        serde_json::to_writer(&mut lines, &row)?;
        lines.push(b'\n');
        Ok(())
    })?;
    let (schema, _) = arrow::json::reader::infer_json_schema(std::io::Cursor::new(&lines), None).context("inferring the columns")?;
    let schema = Arc::new(schema);
    let reader = arrow::json::ReaderBuilder::new(schema.clone()).build(std::io::Cursor::new(&lines))?;
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None)?;
    for batch in reader {
        writer.write(&batch?)?;
    }
    writer.close()?;
    Ok(n)
}
