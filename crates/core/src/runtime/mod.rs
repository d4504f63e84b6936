//! Everything that touches `wasmtime::Config`: the engine, its allocator, the epoch ticker and
//! the per-store sandbox. The rest of the host sees [`Runtime`], [`Limits`] and [`Sandbox`].

mod code_cache;
mod sandbox;

pub use code_cache::{CodeCache, Compiled};
pub use sandbox::Sandbox;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

/// The target triple this host was built for (and its engine compiles for).
pub const HOST_TARGET: &str = env!("SG_HOST_TARGET");

/// Bytes of a pooled linear memory kept mapped (zeroed, not released) when its instance ends:
/// the next instance in the slot does not page-fault them in again.
const KEEP_RESIDENT: usize = 16 << 20;

/// How often the epoch advances; deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Resource limits applied to every component call and instance.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Wall-clock budget of one call into a component.
    pub call_deadline: Duration,
    /// Linear memory one instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// Component instances alive at once (pooling allocator slots).
    pub max_instances: u32,
    /// Events kept (as bytes of columns) to replay into a fresh instance after a fault, over
    /// every open window and version together.
    pub journal_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { call_deadline: Duration::from_secs(10), memory_bytes: 512 << 20, max_instances: 64, journal_bytes: 256 << 20 }
    }
}

impl Limits {
    /// The deadline as a number of epoch ticks (at least one).
    pub fn deadline_ticks(&self) -> u64 {
        (self.call_deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
    }
}

/// Which instance allocator the engine ended up with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocator {
    /// Pooling slots with 4 GiB reservations: fast instantiation, no bounds checks.
    Pooling,
    /// Pooling slots reserving only the memory cap (small address spaces): bounds-checked.
    PoolingSmall,
    /// On-demand allocation: the pooling reservation did not fit this address space.
    OnDemand,
}

/// How compiled code addresses linear memory. A precompiled component loads only into an engine
/// of the same layout (and wasmtime version and target).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeLayout {
    /// 4 GiB reservations: no bounds checks (the pooling and on-demand engines).
    Wide,
    /// Reservations of the memory cap, bounds-checked (small address spaces).
    Narrow,
}

impl CodeLayout {
    /// Name used on the command line and in bundle manifests.
    pub fn name(self) -> &'static str {
        match self {
            CodeLayout::Wide => "wide",
            CodeLayout::Narrow => "narrow",
        }
    }

    /// The layout called `name`.
    pub fn parse(name: &str) -> Option<CodeLayout> {
        [CodeLayout::Wide, CodeLayout::Narrow].into_iter().find(|l| l.name() == name)
    }
}

/// Compiles a component ahead of time for `target` (a target triple, e.g.
/// `aarch64-unknown-linux-gnu`) with the settings of a [`Runtime`] of that `layout` and
/// `limits`; the result loads with [`Runtime::deserialize`].
pub fn precompile(bytes: &[u8], target: &str, layout: CodeLayout, limits: &Limits) -> Result<Vec<u8>> {
    let mut config = base_config();
    config.target(target).map_err(anyhow::Error::from).with_context(|| format!("target {target}"))?;
    if layout == CodeLayout::Narrow {
        config.memory_reservation(limits.memory_bytes as u64);
    }
    let engine = Engine::new(&config).map_err(anyhow::Error::from).context("creating a cross-compiling engine")?;
    engine.precompile_component(bytes).map_err(anyhow::Error::from)
}

/// Loads precompiled component code into `engine`, refusing bytes that are not a precompiled
/// component; wasmtime refuses code compiled by an engine of another version, target or settings.
///
/// # Safety
/// The bytes are run as machine code: only pass bytes whose digest was verified or that this
/// host wrote.
unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> Result<wasmtime::component::Component> {
    if Engine::detect_precompiled(bytes) != Some(wasmtime::Precompiled::Component) {
        anyhow::bail!("not a precompiled component");
    }
    // SAFETY: the caller's, above.
    unsafe { wasmtime::component::Component::deserialize(engine, bytes) }.map_err(anyhow::Error::from)
}

/// The bytes of events every containment journal of a runtime holds together (all open
/// windows, all versions), bounded by [`Limits::journal_bytes`].
#[derive(Debug)]
pub struct JournalBudget {
    limit: usize,
    used: AtomicUsize,
}

impl JournalBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> JournalBudget {
        JournalBudget { limit, used: AtomicUsize::new(0) }
    }

    /// Takes `bytes` from the budget; false (and nothing taken) when they do not fit.
    pub fn grow(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| used.checked_add(bytes).filter(|&n| n <= self.limit))
            .is_ok()
    }

    /// Gives `bytes` back.
    pub fn shrink(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Bytes taken now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// A configured engine plus the thread that advances its epoch.
pub struct Runtime {
    engine: Engine,
    limits: Limits,
    journal: Arc<JournalBudget>,
    allocator: Allocator,
    contained: bool,
    code_cache: Option<CodeCache>,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    uncontained_config(config)
}

/// The settings every engine shares, without the deadline's epoch checks. With
/// `SG_WASM_PERFMAP` set, compiled guest code is named in `/tmp/perf-PID.map` for `perf`.
fn uncontained_config(mut config: Config) -> Config {
    if std::env::var_os("SG_WASM_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    shared_config(config)
}

fn shared_config(mut config: Config) -> Config {
    // Synchronous calls only: the concurrent component model costs ~3× per call.
    config.concurrency_support(false);
    config.wasm_component_model(true);
    config
}

impl Runtime {
    /// Builds the engine. Preferred: the pooling allocator with wasmtime's default 4 GiB
    /// reservation per memory, which lets compiled code skip bounds checks. Where that much
    /// address space is not available (ARM boards with a 39-bit VA), a pool of reservations sized
    /// to the memory cap (explicit bounds checks), then on-demand allocation; the fallback is
    /// logged once.
    pub fn new(limits: Limits) -> Result<Runtime> {
        let pool = |small_reservation: bool| {
            let mut pooling = PoolingAllocationConfig::new();
            pooling
                .total_component_instances(limits.max_instances)
                .total_core_instances(limits.max_instances * 4)
                .total_memories(limits.max_instances)
                .total_tables(limits.max_instances * 4)
                .max_memory_size(limits.memory_bytes)
                .linear_memory_keep_resident(KEEP_RESIDENT);
            let mut config = base_config();
            if small_reservation {
                config.memory_reservation(limits.memory_bytes as u64);
            }
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
            config
        };
        let (engine, allocator) = match Engine::new(&pool(false)) {
            Ok(engine) => (engine, Allocator::Pooling),
            Err(big) => match Engine::new(&pool(true)) {
                Ok(engine) => {
                    tracing::warn!("pooling with 4 GiB reservations unavailable ({big}); using reservations of the memory cap");
                    (engine, Allocator::PoolingSmall)
                }
                Err(small) => {
                    tracing::warn!("pooling allocator unavailable ({small}); using on-demand allocation");
                    return Runtime::on_demand(limits);
                }
            },
        };
        Runtime::with_engine(engine, limits, allocator)
    }

    /// A runtime that allocates instances on demand (no pool): what the pooling allocator is
    /// measured against, and a choice for hosts that run one instance at a time.
    pub fn on_demand(limits: Limits) -> Result<Runtime> {
        let engine = Engine::new(&base_config()).map_err(anyhow::Error::from).context("creating the wasmtime engine")?;
        Runtime::with_engine(engine, limits, Allocator::OnDemand)
    }

    /// A runtime with no call deadline (no epoch checks compiled in) and no memory cap, on
    /// demand: only for measuring what containment costs (`cargo bench --bench runtime`).
    /// Pipelines never run on it.
    pub fn uncontained(limits: Limits) -> Result<Runtime> {
        let engine = Engine::new(&uncontained_config(Config::new()))
            .map_err(anyhow::Error::from)
            .context("creating the wasmtime engine")?;
        let mut runtime = Runtime::with_engine(engine, limits, Allocator::OnDemand)?;
        runtime.contained = false;
        Ok(runtime)
    }

    fn with_engine(engine: Engine, limits: Limits, allocator: Allocator) -> Result<Runtime> {
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::Builder::new()
                .name("sg-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .context("starting the epoch ticker")?
        };
        let journal = Arc::new(JournalBudget::new(limits.journal_bytes));
        let code_cache = CodeCache::from_env();
        Ok(Runtime { engine, limits, journal, allocator, contained: true, code_cache, stop, ticker: Some(ticker) })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The limits every store gets.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The one journal budget of every aggregation this runtime runs.
    pub fn journal_budget(&self) -> Arc<JournalBudget> {
        self.journal.clone()
    }

    /// The instance allocator in use.
    pub fn allocator(&self) -> Allocator {
        self.allocator
    }

    /// The code layout of this engine (what a precompiled component must be built for).
    pub fn layout(&self) -> CodeLayout {
        match self.allocator {
            Allocator::Pooling | Allocator::OnDemand => CodeLayout::Wide,
            Allocator::PoolingSmall => CodeLayout::Narrow,
        }
    }

    /// The component whose `.wasm` is `wasm` (sha256 `wasm_sha256`), compiled for this engine or
    /// loaded from the code cache `SG_CODE_CACHE` chose ([`CodeCache::from_env`]); `origin` names
    /// it in messages.
    pub fn compile(&self, wasm: &[u8], wasm_sha256: &str, origin: &str) -> Result<wasmtime::component::Component> {
        match &self.code_cache {
            Some(cache) => Ok(cache.component(&self.engine, wasm, wasm_sha256, origin)?.0),
            None => code_cache::compile(&self.engine, wasm, origin),
        }
    }

    /// Loads a precompiled component, or says why it does not fit this engine (another
    /// wasmtime version, target or setting). Only call on bytes whose digest was verified
    /// (a bundle manifest) or that this host wrote: the bytes are trusted machine code.
    pub fn deserialize(&self, bytes: &[u8]) -> Result<wasmtime::component::Component> {
        // SAFETY: the caller vouches for the bytes (see above).
        unsafe { deserialize(&self.engine, bytes) }
    }

    /// A fresh store with no capabilities, the memory cap, and the call deadline armed.
    pub fn store(&self) -> Store<Sandbox> {
        let mut store = Store::new(&self.engine, Sandbox::new(&self.limits));
        // What one call may hand the host (lists, strings) is bounded by the memory cap rather
        // than wasmtime's 128 MiB: a feature table of ~600K users is larger than that, and a
        // guest cannot answer more than its memory holds without repeating itself.
        store.set_hostcall_fuel(self.limits.memory_bytes);
        if self.contained {
            store.limiter(|s| s.limiter());
            store.epoch_deadline_trap();
            store.set_epoch_deadline(self.limits.deadline_ticks());
        }
        store
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::JournalBudget;

    #[test]
    fn the_journal_budget_is_shared_and_never_overdrawn() {
        let b = JournalBudget::new(100);
        assert!(b.grow(60));
        assert!(!b.grow(41), "a second window's batch past the shared limit does not fit");
        assert_eq!(b.used(), 60, "a refused grow takes nothing");
        assert!(b.grow(40));
        b.shrink(60);
        assert!(b.grow(60));
        assert_eq!(b.used(), 100);
    }
}
