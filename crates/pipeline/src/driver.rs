//! The pipeline driver: the one run loop every job runs on. It owns the source, decoding,
//! the dead letters, live upgrades and the rule that an offset is committed only after the
//! output covering it is durable; a job is a [`Stage`] that processes decoded chunks and says
//! what is durable.
//!
//! Per chunk: read → decode ([`Decoder`], in parallel and ahead of processing for files and
//! bounded reads) → a validated upgrade candidate is switched in (between chunks, so a chunk
//! is processed by one version) → [`Stage::process`] → on [`Ack::Commit`], dead letters are
//! synced and then the offsets committed. A topic followed as a group member is read in step
//! with processing, so that nothing of a partition is written after it was revoked.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::admin::{self, AdminSettings};
use sg_metrics::health::HEALTH;
use sg_core::component::{ComponentSource, Role};
use sg_core::runtime::Runtime;
use crate::sink::{DeadLetterFile, DeadLetterTopic, DeadLetters};
use crate::source::{Assignment, Chunk, Input, Next, Source};
use sg_core::swap::{Slots, Upgrades};

/// How long a commit waits for a group coordinator between chunks, and at the end of a run.
const COMMIT_PATIENCE: Duration = Duration::from_secs(5);
const FINAL_COMMIT_PATIENCE: Duration = Duration::from_secs(20);

/// Turns a chunk of messages into what a stage processes (on the decoding threads).
pub trait Decoder: Send + Sync {
    /// The decoded chunk.
    type Output: Send;
    /// Decodes one chunk; messages that cannot be decoded become dead letters in the output.
    fn decode(&self, chunk: Chunk) -> Self::Output;
}

/// What the output now covers, after a chunk or at the end.
#[derive(Debug)]
pub enum Ack {
    /// Nothing new is durable.
    Nothing,
    /// Everything below these offsets (per partition, the next to read) is durable once the
    /// dead letters are: sync them, then commit.
    Commit(BTreeMap<i32, i64>),
    /// Nothing to commit now, but these offsets are what a rebalance may commit.
    Safe(BTreeMap<i32, i64>),
}

/// What a stage sees of the run while it processes a chunk.
pub struct Context<'a, S> {
    /// The parts that can be upgraded (the versions serving).
    pub slots: &'a mut S,
    /// Where dead letters go.
    pub dead: &'a mut DeadLetters,
    /// The engine and limits components run with.
    pub runtime: &'a Runtime,
    /// The partitions read now (watermarks).
    pub assignment: &'a dyn Assignment,
    /// Whether the source has offsets to commit (Kafka), so durability is worth a sync.
    pub commits: bool,
    /// Per partition, the offset after this chunk's last message.
    pub read: BTreeMap<i32, i64>,
    /// The part switched to a new version just before this chunk, and how long it took.
    pub switched: Option<(Role, Duration)>,
    /// Set when the run is to stop (a signal): ends a wait for disk space.
    pub stop: &'a AtomicBool,
}

/// A job: processes decoded chunks and writes its sinks.
pub trait Stage {
    /// Its decoder.
    type Decoder: Decoder;
    /// The parts that can be upgraded while it runs.
    type Slots: Slots;

    /// The decoder (moved to the decoding threads).
    fn decoder(&self) -> Self::Decoder;

    /// What an upgrade candidate is checked on: part of the decoded chunk.
    fn sample(decoded: &<Self::Decoder as Decoder>::Output) -> &<Self::Slots as Slots>::Sample;

    /// Processes one decoded chunk.
    fn process(&mut self, decoded: <Self::Decoder as Decoder>::Output, cx: &mut Context<'_, Self::Slots>) -> Result<Ack>;

    /// Partitions were taken away: drop everything that is not durable yet.
    fn revoked(&mut self) {}

    /// The input ended, or the run stops: write what remains.
    fn finish(&mut self, cx: &mut Context<'_, Self::Slots>) -> Result<Ack>;
}

/// Runs `stage` over `source` until the input ends or `stop` is set; returns the source.
pub fn drive<S: Stage>(
    source: Source,
    stage: &mut S,
    upgrades: &mut Upgrades<S::Slots>,
    runtime: &Runtime,
    dead: &mut DeadLetters,
    stop: &AtomicBool,
) -> Result<Source> {
    let committer = source.committer();
    let mut all_read = BTreeMap::new();
    let apply = |ack: Ack, dead: &mut DeadLetters, patience: Duration| -> Result<()> {
        let Some(committer) = &committer else { return Ok(()) };
        match ack {
            Ack::Nothing => {}
            Ack::Commit(offsets) => {
                dead.sync()?;
                committer.commit(&offsets, patience)?;
            }
            Ack::Safe(offsets) => committer.set_durable(offsets),
        }
        Ok(())
    };
    let commits = committer.is_some();
    let mut step = |decoded: <S::Decoder as Decoder>::Output, read: BTreeMap<i32, i64>, assignment: &dyn Assignment, stage: &mut S, dead: &mut DeadLetters| -> Result<Ack> {
        let started = Instant::now();
        let switched = upgrades.poll(S::sample(&decoded), runtime).map(|role| (role, started.elapsed()));
        all_read.extend(read.iter().map(|(&p, &o)| (p, o)));
        let mut cx = Context { slots: &mut upgrades.slots, dead, runtime, assignment, commits, read, switched, stop };
        stage.process(decoded, &mut cx)
    };
    let decoder = stage.decoder();
    let source = if source.follows() {
        // In step: poll, process, commit; a revocation drops what is not written.
        let mut source = source;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            HEALTH.beat();
            match source.next(stop)? {
                Next::Chunk(chunk) => {
                    let read = chunk.read();
                    let ack = step(decoder.decode(chunk), read, &source, stage, dead)?;
                    apply(ack, dead, COMMIT_PATIENCE)?;
                }
                Next::Revoked => stage.revoked(),
                Next::End => break,
            }
        }
        source
    } else {
        std::thread::scope(|scope| -> Result<Source> {
            // In flight: the chunks read ahead, each decoded on a thread of its own as soon as it
            // is read (reading goes on meanwhile), handed to the stage in order.
            let ahead = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
            let (tx, rx) = sync_channel::<Result<Receiver<(<S::Decoder as Decoder>::Output, BTreeMap<i32, i64>)>>>(ahead);
            let decoder = &decoder;
            // Reads ahead of the stage; hands the source back.
            let reader = scope.spawn(move || {
                let mut source = source;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    match source.next(stop) {
                        Ok(Next::Chunk(chunk)) => {
                            let (done, decoded) = sync_channel(1);
                            if tx.send(Ok(decoded)).is_err() {
                                break;
                            }
                            scope.spawn(move || {
                                let read = chunk.read();
                                let _ = done.send((decoder.decode(chunk), read));
                            });
                        }
                        Ok(Next::End | Next::Revoked) => break,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            break;
                        }
                    }
                }
                source
            });
            let unassigned = Unassigned;
            for item in rx {
                HEALTH.beat();
                let (decoded, read) = item?.recv().expect("a decoding thread answers unless it panicked");
                let ack = step(decoded, read, &unassigned, stage, dead)?;
                apply(ack, dead, COMMIT_PATIENCE)?;
            }
            Ok(reader.join().expect("the reader thread does not panic"))
        })?
    };
    let mut cx = Context {
        slots: &mut upgrades.slots,
        dead,
        runtime,
        assignment: &source,
        commits,
        read: all_read,
        switched: None,
        stop,
    };
    let ack = stage.finish(&mut cx)?;
    apply(ack, dead, FINAL_COMMIT_PATIENCE)?;
    Ok(source)
}

/// The assignment of a source read ahead on another thread: files and bounded reads, which
/// have no group assignment.
struct Unassigned;

impl Assignment for Unassigned {
    fn assigned(&self) -> Result<Vec<i32>> {
        Ok(Vec::new())
    }

    fn is_idle(&self, _: i32) -> bool {
        true
    }
}

/// Where a job's dead letters go: `file` (created afresh, or appended to), and the dead-letter
/// `topic` when the input is a Kafka topic and one is wanted.
pub fn dead_letters(file: &Path, append: bool, input: &Input, source: &str, topic: Option<&str>) -> Result<DeadLetters> {
    let file = match append {
        true => DeadLetterFile::append(file, source)?,
        false => DeadLetterFile::create(file, source)?,
    };
    let topic = match (input, topic) {
        (Input::Kafka(k), Some(t)) => Some(DeadLetterTopic::open(&k.topic, &k.client, t)?),
        _ => None,
    };
    Ok(DeadLetters::new(file, topic))
}

/// The upgrades of a job's `slots`: `files` are watched; a stream (`live`) also reloads them on
/// `SIGHUP` and serves the admin API when asked (its address is returned).
pub fn upgrades<S: Slots>(
    runtime: &Arc<Runtime>,
    slots: S,
    files: Vec<(Role, ComponentSource)>,
    live: bool,
    admin: Option<&AdminSettings>,
) -> Result<(Upgrades<S>, Option<std::net::SocketAddr>)> {
    let upgrades = Upgrades::new(runtime.clone(), slots, files);
    HEALTH.set_loaded(true);
    if live {
        upgrades.reload_on_sighup();
    }
    let address = match admin {
        Some(admin) => Some(admin::serve(admin.clone(), Some(admin::Upgradable { status: upgrades.status(), requests: upgrades.requests() }))?),
        None => None,
    };
    Ok((upgrades, address))
}
