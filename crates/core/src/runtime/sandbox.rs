//! Per-store state: a WASI context that grants nothing, and the memory limiter.

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::Limits;

/// Bytes of guest stderr kept (panic messages end up in trap reasons).
const STDERR_CAPTURE: usize = 16 << 10;

/// A clock frozen at zero: components get no time source.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Core instances, linear memories and tables a component may create, and elements per table:
/// far above what a compiled component needs, low enough that none is a resource to exhaust.
const MAX_CORE_INSTANCES: usize = 4;
const MAX_MEMORIES: usize = 8;
const MAX_TABLES: usize = 32;
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// What a component's store holds: no files, no network, no environment, frozen clocks,
/// deterministic randomness; stderr captured; memory capped.
pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    stderr: MemoryOutputPipe,
}

impl Sandbox {
    pub(super) fn new(limits: &Limits) -> Sandbox {
        use rand::SeedableRng;
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .secure_random(rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(0))
            .insecure_random(rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(1))
            .insecure_random_seed(0)
            .build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .instances(MAX_CORE_INSTANCES)
            .memories(MAX_MEMORIES)
            .tables(MAX_TABLES)
            .table_elements(MAX_TABLE_ELEMENTS)
            .trap_on_grow_failure(true)
            .build();
        Sandbox { wasi, table: ResourceTable::new(), limits, stderr }
    }

    pub(super) fn limiter(&mut self) -> &mut StoreLimits {
        &mut self.limits
    }

    /// What the guest wrote to stderr (e.g. a panic message), lossily decoded.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).trim().to_string()
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
