//! `sg-host dedup`: arguments and the summary line.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use sg_dedup::learned::StateFile;
use clap::Args;
use sg_dedup_core::InputFormat;

use super::args::{AdminArgs, BundleArgs, DeadLetterArgs, KafkaClientArgs, ModelArgs, SandboxArgs, parse_duration, parse_size};
use sg_core::component::{ComponentSource, Role};
use sg_dedup::{DedupJob, EmbedderChoice, StoreChoice};
use sg_dedup::embed::HttpSettings;
use sg_pipeline::source::Input;
use sg_kafka::{KafkaOptions, KafkaTopic, StartAt};
use sg_dedup::store::DEFAULT_COLLECTION;

#[derive(Args, Debug, Clone)]
pub(super) struct DedupArgs {
    /// Dedup policy component: a `.wasm` path, or `builtin:template` / `builtin:exact` /
    /// `builtin:drain` (log templates mined online, carried across runs).
    #[arg(long, default_value = "builtin:template")]
    policy: String,
    /// Parameters of a learning policy (`streamguard:dedup@2`, e.g. `builtin:drain`) that
    /// starts afresh: a JSON file (for drain: `depth`, `similarity`, `max_children`, `masks`).
    #[arg(long, value_name = "FILE")]
    policy_config: Option<PathBuf>,
    /// Where a learning policy's state is kept between runs (default: beside the embedded
    /// store, `STORE/COLLECTION.policy-state`; with --qdrant, `./COLLECTION.policy-state`).
    #[arg(long, value_name = "FILE")]
    policy_state: Option<PathBuf>,
    #[command(flatten)]
    bundle: BundleArgs,
    /// Print what the policy decides for every record (position, keep, key, point id) as JSON
    /// lines, without embedding or storing anything.
    #[arg(long)]
    dry_run: bool,
    /// JSON-lines log messages (`text` or `message`; plain or gzip), `-` for stdin.
    #[arg(long, group = "in")]
    input: Option<PathBuf>,
    /// A raw HDFS log file (loghub format); the policy filters and extracts levels.
    #[arg(long, group = "in")]
    raw_hdfs: Option<PathBuf>,
    /// A Kafka topic of JSON log messages: `kafka://HOST:PORT[,…]/TOPIC` (read to its end).
    #[arg(long, group = "in")]
    source: Option<String>,
    /// Consumer group (offsets committed after each batch's points are stored).
    #[arg(long, default_value = "sg-dedup")]
    group: String,
    #[command(flatten)]
    client: KafkaClientArgs,
    /// Where to start in each partition: `earliest` or `committed`. (With `--follow` a group
    /// always resumes from its committed offsets; partitions without one start at the earliest.)
    #[arg(long, default_value = "committed")]
    start: String,
    /// Embedded store directory (one Qdrant shard per collection inside).
    #[arg(long, default_value = "sg-store", conflicts_with = "qdrant")]
    store: PathBuf,
    /// A Qdrant server instead of the embedded store (gRPC, e.g. `http://127.0.0.1:6334`).
    #[arg(long)]
    qdrant: Option<String>,
    /// Collection name (letters, digits, `_`, `-`; at most 64).
    #[arg(long, default_value = DEFAULT_COLLECTION, value_parser = parse_collection)]
    collection: String,
    #[command(flatten)]
    model: ModelArgs,
    /// A remote embedding service (`POST {"texts":[…]}` → `{"embeddings":[…]}`) instead.
    #[arg(long)]
    embedder: Option<String>,
    /// Texts per request to the embedding service.
    #[arg(long, default_value_t = 64)]
    embed_batch: usize,
    /// Requests in flight to the embedding service.
    #[arg(long, default_value_t = 2)]
    embed_concurrency: usize,
    /// Timeout of one request to the embedding service.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    embed_timeout: Duration,
    /// Attempts per request (exponential backoff between them) before the run stops.
    #[arg(long, default_value_t = 10)]
    embed_attempts: u32,
    /// The vector size the embedding service must return (0: whatever its first answer has).
    #[arg(long, default_value_t = 384)]
    embed_dim: usize,
    /// Dead-letter file (appended to).
    #[arg(long, default_value = "sg-dedup-dead-letters.jsonl")]
    dead_letters: PathBuf,
    #[command(flatten)]
    dead_letter: DeadLetterArgs,
    /// Input bytes per batch (files).
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    batch_bytes: usize,
    /// Records per batch (Kafka).
    #[arg(long, default_value_t = 4096)]
    batch_records: usize,
    /// Messages larger than this are dead-lettered.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    max_message_bytes: usize,
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// Print nothing but errors and the summary.
    #[arg(long, short)]
    quiet: bool,
    /// With `--source`: keep reading past the end of the topic as a member of `--group` (a
    /// stream; processes in one group share the partitions; stop with Ctrl-C or SIGTERM, which
    /// finishes the batch in hand and commits). The policy can then be upgraded live: by a
    /// change of its file, SIGHUP, or the admin API.
    #[arg(long, requires = "source")]
    follow: bool,
    /// With `--follow`: a batch is processed once full or after this long.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    batch_wait: Duration,
    #[command(flatten)]
    admin: AdminArgs,
    /// With `--follow`: serve the store's search and scoring API (`sg-host serve`'s
    /// `/api/logs/…`) from this process, on this address — the one process that has the
    /// embedded store open.
    #[arg(long, requires = "follow")]
    serve: Option<std::net::SocketAddr>,
    /// Where uploaded candidates are kept.
    #[arg(long, default_value = "sg-components")]
    admin_uploads: PathBuf,
}

impl DedupArgs {
    fn job(&self) -> Result<DedupJob> {
        let (input, format) = match (&self.input, &self.raw_hdfs, &self.source) {
            (Some(p), None, None) => (Input::File(p.clone()), InputFormat::Json),
            (None, Some(p), None) => (Input::File(p.clone()), InputFormat::RawHdfs),
            (None, None, Some(url)) => {
                let start = match self.start.as_str() {
                    "earliest" => StartAt::Earliest,
                    "committed" => StartAt::Committed,
                    other => anyhow::bail!("--start {other}: expected earliest or committed"),
                };
                let kafka = KafkaOptions {
                    topic: KafkaTopic::parse(url)?,
                    group: self.group.clone(),
                    client: self.client.settings()?,
                    start,
                    to_time: None,
                    max_events: None,
                    chunk_messages: self.batch_records,
                    follow: self.follow.then_some(self.batch_wait),
                };
                (Input::Kafka(kafka), InputFormat::Json)
            }
            _ => anyhow::bail!("give one of --input FILE, --raw-hdfs FILE or --source kafka://HOST:PORT/TOPIC"),
        };
        let dead_letter_topic = self.dead_letter.topic(&input);
        let embedder = match &self.embedder {
            Some(url) => EmbedderChoice::Http(HttpSettings {
                batch: self.embed_batch,
                concurrency: self.embed_concurrency,
                timeout: self.embed_timeout,
                attempts: self.embed_attempts.max(1),
                dimension: (self.embed_dim > 0).then_some(self.embed_dim),
                ..HttpSettings::new(url)
            }),
            None => self.model.in_process(),
        };
        let policy = match self.bundle.open()? {
            Some(bundle) => bundle.require(Role::Policy)?,
            None => ComponentSource::parse(&self.policy)?,
        };
        let policy_config = match &self.policy_config {
            Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?),
            None => None,
        };
        let store = match &self.qdrant {
            Some(url) => StoreChoice::Server(url.clone()),
            None => StoreChoice::Embedded(self.store.clone()),
        };
        let policy_state = match &self.policy_state {
            Some(path) => StateFile::at(path.clone()),
            None => StateFile::beside(&store, &self.collection),
        };
        Ok(DedupJob {
            policy,
            policy_config,
            policy_state,
            input,
            format,
            store,
            collection: self.collection.clone(),
            embedder,
            dead_letters: self.dead_letters.clone(),
            dead_letter_topic,
            limits: self.sandbox.limits(),
            batch_bytes: self.batch_bytes,
            max_message_bytes: self.max_message_bytes,
            quiet: self.quiet,
            admin: self.admin.settings(self.admin_uploads.clone())?,
        })
    }
}

/// Runs `sg-host dedup` and prints the final summary.
pub(super) fn dedup(args: DedupArgs) -> Result<()> {
    args.admin.start_probes()?;
    if args.dry_run {
        let stdout = std::io::stdout();
        sg_dedup::plan(&args.job()?, &mut std::io::BufWriter::new(stdout.lock()))?;
        return Ok(());
    }
    let stop = match args.follow {
        true => sg_core::signals::stop_flag(),
        false => Default::default(),
    };
    let job = args.job()?;
    let s = match args.serve {
        None => sg_dedup::run(&job, &stop)?,
        Some(listen) => {
            let store = job.store.open(&job.collection)?;
            let index = std::sync::Arc::new(sg_dedup::index::LogIndex::open(store.clone(), &job.policy, &job.embedder, job.limits)?);
            let settings = sg_serve::ServeSettings { data: Vec::new(), listen };
            let server_stop = stop.clone();
            let server = std::thread::Builder::new().name("serve".into()).spawn(move || {
                sg_serve::serve(&settings, Some(index), server_stop, |address| tracing::info!("dedup: store API on http://{address}"))
            })?;
            let summary = sg_dedup::run_on(&job, store, &stop);
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            server.join().map_err(|_| anyhow::anyhow!("the store API thread panicked"))??;
            summary?
        }
    };
    let t = s.totals;
    println!(
        "{} records in {} batches with {}: {} duplicates skipped, {} new, {} embedded, {} inserted, {} filtered, {} dead-lettered; {} points stored; {:.2}s ({:.0} records/s)",
        t.records,
        s.batches,
        s.policy,
        t.duplicates,
        t.new,
        t.embedded,
        t.inserted,
        t.filtered,
        t.dead_lettered,
        s.points,
        s.seconds,
        t.records as f64 / s.seconds.max(1e-9)
    );
    Ok(())
}

/// A collection name `sg_dedup::store::check_collection` accepts.
pub(super) fn parse_collection(s: &str) -> Result<String, String> {
    sg_dedup::store::check_collection(s).map(|()| s.to_string())
}
