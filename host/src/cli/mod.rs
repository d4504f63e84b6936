//! The `sg-host` command line.

mod args;
mod config;
mod dedup;
mod deploy;
mod logging;
mod produce;
mod serve;
mod store;
mod systemd;

use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use sg_iforest::{Contamination, MaxSamples, Params};

use args::{AdminArgs, AlertArgs, BundleArgs, DeadLetterArgs, KafkaClientArgs, SandboxArgs, parse_duration, parse_size};
use sg_core::component::{ComponentSource, Role};
use sg_core::component::features::FeatureComponent;
use sg_core::detector::{self, AlertRule, DetectorChoice, ModelSource};
use sg_anomaly::bounded::{self, AnomalyJob};
use sg_anomaly::stream::{self, StreamJob};
use sg_anomaly::windows::EventTime;
use sg_pipeline::sink::{Layout, Replace};
use sg_core::runtime::{Limits, Runtime};
use sg_pipeline::source::Input;
use sg_kafka::{KafkaOptions, KafkaTopic, StartAt};
use crate::synthetic::{GenSettings, generate};
use crate::table_io;
use sg_model::time::parse_time;

/// StreamGuard Edge: security-analytics pipelines with sandboxed, hot-swappable WASM components.
#[derive(Parser, Debug)]
#[command(name = "sg-host", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Settings file (TOML; keys are the long flags, `[run]`/`[dedup]`… tables per command,
    /// `[kafka]` for librdkafka properties). Default: `$SG_CONFIG`, else the first of
    /// `./sg-host.toml`, `~/.config/sg-host/config.toml`, `/etc/sg-host/config.toml`.
    /// Precedence: flag > `SG_<FLAG>` environment variable > file > default.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log filter, `RUST_LOG` syntax (`warn,sg_kafka=debug,librdkafka=info`); default
    /// `$SG_LOG`, else `$RUST_LOG`, else `info`.
    #[arg(long, global = true, value_name = "FILTER")]
    log: Option<String>,
    /// Log lines as text or as JSON objects.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: logging::LogFormat,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the anomaly pipeline: events → features component → Isolation Forest → Parquet + report.
    Run(Box<RunArgs>),
    /// Generate synthetic security events (JSON lines) like the reference generator.
    GenEvents(GenArgs),
    /// Score any feature table (CSV or Parquet) with the Isolation Forest.
    Detect(DetectArgs),
    /// Deduplicate log lines into Qdrant: each distinct key embedded once, with a stable id.
    Dedup(Box<dedup::DedupArgs>),
    /// Precompile a component for a target (wasmtime cross-compilation).
    Compile(deploy::CompileArgs),
    /// Make or verify a deployment bundle (components, precompiled code, model, digests).
    #[command(subcommand)]
    Bundle(deploy::BundleCommand),
    /// Load JSON lines into a Kafka topic (creating it if asked).
    Produce(produce::ProduceArgs),
    /// Serve a query API over output directories: runs, anomalies, users, training data.
    Serve(serve::ServeArgs),
    /// The dedup store by hand: count, show, search, delete, export points.
    Store(store::StoreArgs),
    /// The effective configuration (flags, environment, config file), secrets masked.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a features component's self-description (name, version, contract, schema).
    Describe {
        /// Component: a `.wasm` path or `builtin:streamguard` / `builtin:spark-compat`.
        #[arg(long, default_value = "builtin:streamguard")]
        component: String,
    },
    /// Generate events and run the pipeline on them with the built-in corrected component.
    Demo {
        /// Events to generate.
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// Working directory for the events and the output.
        #[arg(long, default_value = "sg-demo")]
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print the settings COMMAND would run with and where each came from, e.g.
    /// `sg-host config show run --source kafka://… --out o`.
    Show {
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<std::ffi::OsString>,
    },
}

#[derive(Args, Debug, Clone)]
struct DetectorArgs {
    /// Where the Isolation Forest runs: `native`, `builtin:iforest`, or a detector `.wasm`.
    #[arg(long, default_value = "native")]
    detector: String,
    /// Score with this saved model instead of training.
    #[arg(long, conflicts_with = "save_model")]
    model: Option<PathBuf>,
    /// Save the trained model here.
    #[arg(long)]
    save_model: Option<PathBuf>,
    /// `auto` or the expected share of anomalies in (0, 0.5].
    #[arg(long, default_value = "0.1")]
    contamination: String,
    /// Number of trees.
    #[arg(long, default_value_t = 100)]
    n_estimators: usize,
    /// `auto` (= min(256, n)), a count, or a fraction in (0, 1].
    #[arg(long, default_value = "auto")]
    max_samples: String,
    /// Fraction of features per tree, in (0, 1].
    #[arg(long, default_value_t = 1.0)]
    max_features: f64,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    random_state: u64,
    /// A row alerts when its anomaly score exceeds the one this share of the model's training
    /// rows exceed (the expected false-alarm share on data like the baseline).
    #[arg(long, default_value_t = 0.005, value_parser = share)]
    alert_rate: f64,
    /// A row alerts when its anomaly score (`−score_samples`, in (0, 1]) exceeds this.
    #[arg(long)]
    alert_threshold: Option<f64>,
    /// Features named in each row's explanation, largest contribution first (0: no explanations).
    #[arg(long, default_value_t = sg_core::detector::EXPLAINED)]
    explain: usize,
}

/// A share in [0, 1].
fn share(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&v) { Ok(v) } else { Err(format!("{v} is not in [0, 1]")) }
}

impl DetectorArgs {
    fn params(&self) -> Result<Params> {
        let contamination = match self.contamination.as_str() {
            "auto" => Contamination::Auto,
            v => Contamination::Fraction(v.parse().with_context(|| format!("--contamination {v}"))?),
        };
        let max_samples = match self.max_samples.as_str() {
            "auto" => MaxSamples::Auto,
            v if v.contains('.') => MaxSamples::Fraction(v.parse().with_context(|| format!("--max-samples {v}"))?),
            v => MaxSamples::Count(v.parse().with_context(|| format!("--max-samples {v}"))?),
        };
        Ok(Params {
            n_estimators: self.n_estimators,
            max_samples,
            max_features: self.max_features,
            contamination,
            random_state: self.random_state,
        })
    }

    fn alert_rule(&self) -> AlertRule {
        match self.alert_threshold {
            Some(t) => AlertRule::Threshold(t),
            None => AlertRule::Rate(self.alert_rate),
        }
    }

    fn model_source(&self) -> Result<ModelSource> {
        Ok(match &self.model {
            Some(path) => ModelSource::Load(path.clone()),
            None => ModelSource::Train(self.params()?),
        })
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Features component: a `.wasm` path, or `builtin:streamguard` / `builtin:spark-compat`.
    #[arg(long, default_value = "builtin:streamguard")]
    component: String,
    #[command(flatten)]
    bundle: BundleArgs,
    /// JSON-lines events (plain or gzip), `-` for stdin.
    #[arg(long, required_unless_present = "source", conflicts_with = "source")]
    input: Option<PathBuf>,
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Output directory (replaced atomically; only an earlier output or an empty directory,
    /// unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Replace --out even when it is not an sg-host output.
    #[arg(long)]
    force: bool,
    /// Write the report where the reference job did (`OUT/anomaly_report.json`) instead of
    /// `OUT/_anomaly_report.json`, for scripts that read that path; Spark, pandas and pyarrow
    /// then no longer open OUT as a dataset without being given the Parquet files.
    #[arg(long)]
    reference_paths: bool,
    #[command(flatten)]
    detector: DetectorArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// Events kept (bytes of columns) to replay into a new instance after a component fault,
    /// over all open windows together; past it a fault fails the run instead of being recovered.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    journal_limit: usize,
    /// Input bytes per batch pushed to the component.
    #[arg(long, default_value = "4MiB", value_parser = parse_size)]
    batch_bytes: usize,
    /// Messages larger than this are dead-lettered.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    max_message_bytes: usize,
    #[command(flatten)]
    dead_letters: DeadLetterArgs,
    #[command(flatten)]
    alerts: AlertArgs,
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    admin: AdminArgs,
    /// Write the run's metrics (Prometheus text, as `/metrics` serves them) to this file at the
    /// end — also when the run fails.
    #[arg(long)]
    metrics_out: Option<PathBuf>,
    /// Benchmarks only: aggregate with the builtin component's feature code compiled into the
    /// host, outside the sandbox (what `scripts/bench-e2e.sh` measures the sandbox against).
    #[arg(long, hide = true, conflicts_with_all = ["follow"])]
    native_features: bool,
}

#[derive(Args, Debug, Default)]
struct KafkaArgs {
    /// Read a Kafka topic: `kafka://HOST:PORT[,HOST:PORT…]/TOPIC`.
    #[arg(long)]
    source: Option<String>,
    /// Consumer group (offsets are committed to it once the output is written).
    #[arg(long, default_value = "sg-host")]
    group: String,
    #[command(flatten)]
    client: KafkaClientArgs,
    /// Where to start in each partition: `earliest`, `latest` or `committed`.
    #[arg(long, default_value = "earliest", conflicts_with = "from_time", requires = "source")]
    start: String,
    /// Start at the first record at or after this time (epoch ms or `YYYY-MM-DDTHH:MM:SSZ`).
    #[arg(long, requires = "source")]
    from_time: Option<String>,
    /// Stop before the first record at or after this time.
    #[arg(long, requires = "source", conflicts_with = "follow")]
    to_time: Option<String>,
    /// Read at most this many records, shared over the partitions from their start offsets.
    #[arg(long, conflicts_with = "follow", requires = "source")]
    max_events: Option<u64>,
    /// Keep following the topic as a consumer-group member; write each event-time window as it
    /// closes (`OUT/window=START/`); commit only behind written windows; stop on Ctrl-C/SIGTERM.
    #[arg(long, requires = "source")]
    follow: bool,
    /// Tumbling event-time window length (with --follow), e.g. `1h`, `10min`.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    window: Duration,
    /// A window stays open until the newest event time is this far past its end.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    lateness: Duration,
    /// Events stamped further than this past the wall clock are dead-lettered (`future`): a
    /// forged timestamp cannot close every window early.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    max_future_skew: Duration,
    /// A partition that delivers no record for this long stops holding the watermark back
    /// (Flink's `withIdleness`), until it delivers again; `0s` never.
    #[arg(long, default_value = "5min", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Write each window's ledger (`window=…/_ledger.parquet`: partition and offset of every
    /// event it aggregates), for audits and exactly-once checks.
    #[arg(long, requires = "follow")]
    ledger: bool,
    /// Most event-time windows open at once (each holds one of the pool's 64 component
    /// instances; 16 stay for upgrades and bisection); past it the oldest is written early and
    /// its later events are late.
    #[arg(long, default_value_t = 48)]
    max_open_windows: usize,
    /// A micro-batch ends after this many records…
    #[arg(long, default_value_t = 8192)]
    batch_events: usize,
    /// …or after this long.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    batch_wait: Duration,
    /// With --follow: ready (`/readyz`) only while the output's filesystem has this much free;
    /// below it at start, a warning. A write that meets a full disk waits and retries.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    min_free_space: usize,
    /// With --follow: delete window directories whose window ended this long before the newest
    /// written one's end (e.g. `30d`); without it every window is kept.
    #[arg(long, requires = "follow", value_parser = parse_duration)]
    retain: Option<Duration>,
}

impl KafkaArgs {
    fn input(&self) -> Result<Option<Input>> {
        let Some(url) = &self.source else {
            let kafka_only = [
                ("--max-events", self.max_events.is_some()),
                ("--from-time", self.from_time.is_some()),
                ("--to-time", self.to_time.is_some()),
                ("--follow", self.follow),
            ];
            if let Some((flag, _)) = kafka_only.iter().find(|(_, given)| *given) {
                anyhow::bail!("{flag} applies to --source kafka://…, not to --input");
            }
            return Ok(None);
        };
        let client = self.client.settings()?;
        let start = match (&self.from_time, self.start.as_str()) {
            (Some(t), _) => StartAt::Time(parse_time(t)?),
            (None, "earliest") => StartAt::Earliest,
            (None, "latest") => StartAt::Latest,
            (None, "committed") => StartAt::Committed,
            (None, other) => anyhow::bail!("--start {other}: expected earliest, latest or committed"),
        };
        Ok(Some(Input::Kafka(KafkaOptions {
            topic: KafkaTopic::parse(url)?,
            group: self.group.clone(),
            client,
            start,
            to_time: self.to_time.as_deref().map(parse_time).transpose()?,
            max_events: self.max_events,
            chunk_messages: 8192,
            follow: None,
        })))
    }
}

#[derive(Args, Debug)]
struct GenArgs {
    /// Number of events.
    events: u64,
    /// Output file (JSON lines).
    #[arg(long)]
    out: PathBuf,
    /// Number of users.
    #[arg(long, default_value_t = 14)]
    users: usize,
    /// Users that behave anomalously (written to the ground-truth file).
    #[arg(long, default_value_t = 0)]
    compromised: usize,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Ground-truth file (default: `<out>.truth.json`).
    #[arg(long)]
    truth: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct DetectArgs {
    /// Feature table: `.csv` (with header) or `.parquet`.
    #[arg(long)]
    input: PathBuf,
    /// Columns to leave out (e.g. a label), comma-separated.
    #[arg(long, value_delimiter = ',')]
    ignore: Vec<String>,
    /// Scores: `.csv` or `.parquet` with `score_samples, anomaly_score, is_anomaly` per row.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    detector: DetectorArgs,
}

fn run(args: RunArgs) -> Result<()> {
    args.admin.start_probes()?;
    let input = match (&args.input, args.kafka.input()?) {
        (_, Some(kafka)) => kafka,
        (Some(path), None) => Input::File(path.clone()),
        (None, None) => anyhow::bail!("give --input FILE or --source kafka://HOST:PORT/TOPIC"),
    };
    let dead_letter_topic = args.dead_letters.topic(&input);
    let limits = Limits { journal_bytes: args.journal_limit, ..args.sandbox.limits() };
    if args.kafka.follow {
        let Input::Kafka(kafka) = input else { unreachable!("--follow requires --source") };
        return follow(args, kafka, dead_letter_topic, limits);
    }
    // A bounded run: a stop signal removes its staging directory and ends it, committing nothing.
    sg_core::signals::exit_on_stop();
    let (component, detector, model) = components(&args)?;
    let job = AnomalyJob {
        component,
        input,
        dead_letter_topic,
        layout: args.layout(),
        out: args.out,
        replace: if args.force { Replace::Anything } else { Replace::OnlyOutput },
        detector,
        model,
        save_model: args.detector.save_model.clone(),
        alert: args.detector.alert_rule(),
        explain: args.detector.explain,
        alerts: args.alerts.targets()?,
        alert_options: args.alerts.options(&args.kafka.client)?,
        limits,
        batch_bytes: args.batch_bytes,
        max_message_bytes: args.max_message_bytes,
        quiet: args.quiet,
        native_features: args.native_features,
    };
    let ran = bounded::run(&job);
    if let Some(path) = &args.metrics_out {
        std::fs::write(path, sg_metrics::METRICS.render()).with_context(|| format!("writing {}", path.display()))?;
    }
    let s = ran?;
    println!(
        "{} events ({} dead-lettered) → {} users, {} anomalous → {} in {:.2}s ({:.0} events/s)",
        s.events,
        s.dead_lettered,
        s.users,
        s.anomalies,
        s.out.display(),
        s.seconds,
        s.events as f64 / s.seconds.max(1e-9)
    );
    Ok(())
}

impl RunArgs {
    /// Where the report goes beside the partitions.
    fn layout(&self) -> Layout {
        if self.reference_paths { Layout::Reference } else { Layout::Dataset }
    }
}

/// The features component, detector and model of a run: from the bundle where it has them.
fn components(args: &RunArgs) -> Result<(ComponentSource, DetectorChoice, ModelSource)> {
    let mut features = ComponentSource::parse(&args.component)?;
    let mut detector = DetectorChoice::parse(&args.detector.detector)?;
    let mut model = args.detector.model_source()?;
    if let Some(bundle) = args.bundle.open()? {
        features = bundle.require(Role::Features)?;
        if let Some(d) = bundle.component(Role::Detector) {
            detector = DetectorChoice::Component(d);
        }
        if let Some(m) = bundle.model() {
            model = ModelSource::Verified(m);
        }
    }
    Ok((features, detector, model))
}

fn follow(args: RunArgs, kafka: KafkaOptions, dead_letter_topic: Option<String>, limits: Limits) -> Result<()> {
    let (component, detector, model) = components(&args)?;
    let admin = args.admin.settings(args.out.join("_components"))?;
    let job = StreamJob {
        component,
        kafka,
        layout: args.layout(),
        out: args.out,
        detector,
        model,
        alert: args.detector.alert_rule(),
        explain: args.detector.explain,
        alerts: args.alerts.targets()?,
        alert_options: args.alerts.options(&args.kafka.client)?,
        limits,
        window_ms: args.kafka.window.as_millis() as i64,
        time: EventTime {
            lateness_ms: args.kafka.lateness.as_millis() as i64,
            max_future_skew_ms: args.kafka.max_future_skew.as_millis() as i64,
            idle_timeout_ms: Some(args.kafka.idle_timeout.as_millis() as i64).filter(|&ms| ms > 0),
        },
        ledger: args.kafka.ledger,
        max_open_windows: args.kafka.max_open_windows,
        batch_events: args.kafka.batch_events,
        batch_wait: args.kafka.batch_wait,
        max_message_bytes: args.max_message_bytes,
        dead_letter_topic,
        quiet: args.quiet,
        admin,
        min_free_space: args.kafka.min_free_space as u64,
        retain: args.kafka.retain,
    };
    if job.window_ms <= 0 {
        anyhow::bail!("--window must be positive");
    }
    let stop = sg_core::signals::stop_flag();
    let s = stream::run(&job, &stop)?;
    println!("{} windows written, {} events, {} dead-lettered, {} upgrades", s.windows, s.events, s.dead_lettered, s.swaps);
    Ok(())
}

fn gen_events(args: GenArgs) -> Result<()> {
    let settings = GenSettings {
        events: args.events,
        users: args.users,
        compromised: args.compromised,
        seed: args.seed,
        ..GenSettings::default()
    };
    let file = std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let truth = generate(&settings, &mut BufWriter::with_capacity(1 << 20, file))?;
    let truth_path = args.truth.unwrap_or_else(|| PathBuf::from(format!("{}.truth.json", args.out.display())));
    std::fs::write(&truth_path, serde_json::to_vec_pretty(&truth)?)?;
    tracing::info!(
        "wrote {} events to {} (compromised: [{}], ground truth in {})",
        truth.events,
        args.out.display(),
        truth.compromised.join(", "),
        truth_path.display()
    );
    Ok(())
}

fn detect(args: DetectArgs) -> Result<()> {
    let table = table_io::read_numeric(&args.input, &args.ignore)?;
    let runtime = Runtime::new(Limits::default())?;
    let choice = DetectorChoice::parse(&args.detector.detector)?;
    let source = args.detector.model_source()?;
    let d = detector::detect(&runtime, &choice, &source, &table.values, &table.names)?;
    if let Some(path) = &args.detector.save_model {
        detector::save_model(path, &d.model_bytes)?;
    }
    table_io::write_scores(&args.out, &d.score_samples, d.offset)?;
    let flagged = d.score_samples.iter().filter(|&&s| s - d.offset < 0.0).count();
    tracing::info!(
        "scored {} rows × {} features; {flagged} flagged → {} (fit {:.4} s, score {:.4} s)",
        table.rows,
        table.names.len(),
        args.out.display(),
        d.fit_seconds,
        d.score_seconds
    );
    Ok(())
}

fn describe(component: &str) -> Result<()> {
    let runtime = Runtime::new(Limits::default())?;
    let c = FeatureComponent::load(&runtime, &ComponentSource::parse(component)?)?;
    let out = serde_json::json!({
        "origin": c.origin(),
        "contract": c.contract().to_string(),
        "sha256": c.digest(),
        "descriptor": c.descriptor(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn demo(events: u64, dir: PathBuf) -> Result<()> {
    std::fs::create_dir_all(&dir)?;
    let input = dir.join("events.jsonl");
    let out = dir.join("out");
    // The demo is `gen-events` and `run` with their own defaults, as a user would type them.
    let (input_arg, out_arg) = (input.display().to_string(), out.display().to_string());
    let events = events.to_string();
    let gen_line = ["sg-host", "gen-events", &events, "--out", &input_arg, "--compromised", "2"];
    let run_line = ["sg-host", "run", "--input", &input_arg, "--out", &out_arg];
    for line in [&gen_line[..], &run_line[..]] {
        match Cli::try_parse_from(line)?.command {
            Command::GenEvents(args) => gen_events(args)?,
            Command::Run(args) => run(*args)?,
            _ => unreachable!("the demo runs gen-events and run"),
        }
    }
    let report = std::fs::read_to_string(out.join(Layout::default().report_file()))?;
    println!("{report}");
    Ok(())
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let root = Cli::command();
    let env = |k: &str| std::env::var(k).ok();
    let layered = match config::layer(&root, std::env::args_os().collect(), &env) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sg-host: error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let cli = match root.clone().try_get_matches_from(&layered.argv).and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Err(e) = logging::init(cli.log_format, cli.log.as_deref()) {
        eprintln!("sg-host: error: {e:#}");
        return ExitCode::FAILURE;
    }
    for warning in &layered.warnings {
        tracing::warn!("{warning}");
    }
    let result = match cli.command {
        Command::Config(ConfigCommand::Show { command }) => show_config(&root, command, &env),
        Command::Run(args) => run(*args),
        Command::GenEvents(args) => gen_events(args),
        Command::Detect(args) => detect(args),
        Command::Dedup(args) => dedup::dedup(*args),
        Command::Produce(args) => produce::produce(args),
        Command::Serve(args) => serve::serve(args),
        Command::Store(args) => store::store(args),
        Command::Compile(args) => deploy::compile(args),
        Command::Bundle(c) => deploy::bundle(c),
        Command::Describe { component } => describe(&component),
        Command::Demo { events, dir } => demo(events, dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `sg-host config show COMMAND …`: the settings COMMAND would run with.
fn show_config(root: &clap::Command, command: Vec<std::ffi::OsString>, env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
    let argv: Vec<std::ffi::OsString> = std::iter::once("sg-host".into()).chain(command).collect();
    let layered = config::layer(root, argv, env)?;
    print!("{}", config::show(root, &layered)?);
    Ok(())
}
