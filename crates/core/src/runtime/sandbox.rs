//! Per-store state: a WASI context that grants nothing, and the memory limiter.

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
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

/// The store's limits: wasmtime's [`StoreLimits`] (each memory, table and count) plus one
/// cap over all of the instance's memories together, so eight memories cannot take eight caps.
pub(super) struct InstanceLimits {
    each: StoreLimits,
    memory_cap: usize,
    memory_used: usize,
}

impl InstanceLimits {
    fn new(memory_cap: usize) -> InstanceLimits {
        let each = StoreLimitsBuilder::new()
            .memory_size(memory_cap)
            .instances(MAX_CORE_INSTANCES)
            .memories(MAX_MEMORIES)
            .tables(MAX_TABLES)
            .table_elements(MAX_TABLE_ELEMENTS)
            .trap_on_grow_failure(true)
            .build();
        InstanceLimits { each, memory_cap, memory_used: 0 }
    }
}

impl ResourceLimiter for InstanceLimits {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let added = desired.saturating_sub(current);
        let total = self.memory_used.saturating_add(added);
        if total > self.memory_cap {
            // Worded as wasmtime's own refusal, which the containment layer names "memory cap".
            wasmtime::bail!("forcing trap when growing memory: {total} bytes over all memories, past the cap of {}", self.memory_cap);
        }
        let allowed = self.each.memory_growing(current, desired, maximum)?;
        if allowed {
            // Counted when allowed: a growth that then fails traps (trap_on_grow_failure), and
            // the store is not used again.
            self.memory_used = total;
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.each.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.each.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.each.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.each.instances()
    }

    fn tables(&self) -> usize {
        self.each.tables()
    }

    fn memories(&self) -> usize {
        self.each.memories()
    }
}

/// What a component's store holds: no files, no network, no environment, frozen clocks,
/// deterministic randomness; stderr captured; memory capped over all of its memories.
pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: InstanceLimits,
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
        Sandbox { wasi, table: ResourceTable::new(), limits: InstanceLimits::new(limits.memory_bytes), stderr }
    }

    pub(super) fn limiter(&mut self) -> &mut InstanceLimits {
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

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn the_memory_cap_holds_over_all_memories_together() {
        let mut limits = InstanceLimits::new(64 * MIB);
        // Two memories of 40 MiB: each is under the cap, together they are not.
        assert!(limits.memory_growing(0, 40 * MIB, None).unwrap());
        let second = limits.memory_growing(0, 40 * MIB, None).unwrap_err().to_string();
        assert!(second.contains("growing memory") && second.contains("over all memories"), "{second}");
        // What is left stays usable, by either memory.
        assert!(limits.memory_growing(40 * MIB, 50 * MIB, None).unwrap());
        assert!(limits.memory_growing(0, 14 * MIB, None).unwrap());
        assert!(limits.memory_growing(0, 1, None).is_err());
        // One memory past the cap is refused as before.
        assert!(InstanceLimits::new(64 * MIB).memory_growing(0, 65 * MIB, None).is_err());
    }
}
