//! The `sg-host` command line.

use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use sg_iforest::{Contamination, MaxSamples, Params};

use crate::component::ComponentSource;
use crate::component::features::FeatureComponent;
use crate::detector::{self, DetectorChoice, ModelSource};
use crate::synthetic::{GenSettings, generate};
use crate::pipeline::anomaly::{self, AnomalyJob};
use crate::runtime::{Limits, Runtime};
use crate::{events, table_io};

/// StreamGuard Edge: security-analytics pipelines with sandboxed, hot-swappable WASM components.
#[derive(Parser, Debug)]
#[command(name = "sg-host", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the anomaly pipeline: events → features component → Isolation Forest → Parquet + report.
    Run(RunArgs),
    /// Generate synthetic security events (JSON lines) like the reference generator.
    GenEvents(GenArgs),
    /// Score any feature table (CSV or Parquet) with the Isolation Forest.
    Detect(DetectArgs),
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
    /// JSON-lines events (plain or gzip), `-` for stdin.
    #[arg(long)]
    input: PathBuf,
    /// Output directory (replaced atomically).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    detector: DetectorArgs,
    /// Deadline for one call into a component (e.g. `10s`, `500ms`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    call_timeout: Duration,
    /// Memory cap of a component instance (e.g. `512MiB`).
    #[arg(long, default_value = "512MiB", value_parser = parse_size)]
    memory_limit: usize,
    /// Input bytes per batch pushed to the component.
    #[arg(long, default_value = "4MiB", value_parser = parse_size)]
    batch_bytes: usize,
    /// Messages larger than this are dead-lettered.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    max_message_bytes: usize,
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
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

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.find(|c: char| c.is_ascii_alphabetic()).map_or((s, "s"), |i| s.split_at(i));
    let v: f64 = num.trim().parse().map_err(|_| format!("not a duration: {s}"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" | "min" => v * 60.0,
        _ => return Err(format!("unknown unit in {s} (ms, s, min)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn parse_size(s: &str) -> Result<usize, String> {
    let (num, unit) = s.find(|c: char| c.is_ascii_alphabetic()).map_or((s, ""), |i| s.split_at(i));
    let v: f64 = num.trim().parse().map_err(|_| format!("not a size: {s}"))?;
    let mult = match unit {
        "" | "B" => 1.0,
        "KiB" | "K" => 1024.0,
        "MiB" | "M" => 1024.0 * 1024.0,
        "GiB" | "G" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("unknown unit in {s} (B, KiB, MiB, GiB)")),
    };
    Ok((v * mult) as usize)
}

fn run(args: RunArgs) -> Result<()> {
    let job = AnomalyJob {
        component: ComponentSource::parse(&args.component)?,
        input: args.input,
        out: args.out,
        detector: DetectorChoice::parse(&args.detector.detector)?,
        model: args.detector.model_source()?,
        save_model: args.detector.save_model.clone(),
        limits: Limits { call_deadline: args.call_timeout, memory_bytes: args.memory_limit, ..Limits::default() },
        batch_bytes: args.batch_bytes,
        max_message_bytes: args.max_message_bytes,
        quiet: args.quiet,
    };
    let s = anomaly::run(&job)?;
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
    eprintln!(
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
    eprintln!(
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
    gen_events(GenArgs {
        events,
        out: input.clone(),
        users: 14,
        compromised: 2,
        seed: 42,
        truth: None,
    })?;
    let out = dir.join("out");
    run(RunArgs {
        component: "builtin:streamguard".into(),
        input,
        out: out.clone(),
        detector: DetectorArgs {
            detector: "native".into(),
            model: None,
            save_model: None,
            contamination: "0.1".into(),
            n_estimators: 100,
            max_samples: "auto".into(),
            max_features: 1.0,
            random_state: 42,
        },
        call_timeout: Duration::from_secs(10),
        memory_limit: 512 << 20,
        batch_bytes: 4 << 20,
        max_message_bytes: events::DEFAULT_MAX_MESSAGE_BYTES,
        quiet: false,
    })?;
    let report = std::fs::read_to_string(out.join(anomaly::REPORT_FILE))?;
    println!("{report}");
    Ok(())
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::GenEvents(args) => gen_events(args),
        Command::Detect(args) => detect(args),
        Command::Describe { component } => describe(&component),
        Command::Demo { events, dir } => demo(events, dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sg-host: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert!(parse_size("3 parsecs").is_err());
    }
}
