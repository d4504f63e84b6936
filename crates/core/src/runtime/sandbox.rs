//! Per-store state: a WASI context that grants nothing, and the memory limiter.

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
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

/// The resource budget of one store: every linear memory of the component together within the
/// memory cap (a cap per memory would let a component with several memories take several caps),
/// and bounded counts of instances, memories, tables and table elements. Growing past it traps.
pub struct StoreBudget {
    memory_cap: usize,
    memory_used: usize,
    /// The last approved growth (current, desired), undone if the growth then fails.
    pending: Option<(usize, usize)>,
}

impl ResourceLimiter for StoreBudget {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let after = self.memory_used.saturating_sub(current).saturating_add(desired);
        if after > self.memory_cap {
            wasmtime::bail!(
                "growing memory to {desired} bytes would take the instance to {after} bytes, past its memory cap of {} bytes",
                self.memory_cap
            );
        }
        self.memory_used = after;
        self.pending = Some((current, desired));
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        if let Some((current, desired)) = self.pending.take() {
            self.memory_used = self.memory_used.saturating_sub(desired).saturating_add(current);
        }
        Ok(())
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            wasmtime::bail!("growing a table to {desired} elements is past the limit of {MAX_TABLE_ELEMENTS}");
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// What a component's store holds: no files, no network, no environment, frozen clocks,
/// deterministic randomness; stderr captured; memory capped.
pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreBudget,
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
        let limits = StoreBudget { memory_cap: limits.memory_bytes, memory_used: 0, pending: None };
        Sandbox { wasi, table: ResourceTable::new(), limits, stderr }
    }

    pub(super) fn limiter(&mut self) -> &mut StoreBudget {
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

    #[test]
    fn the_memory_cap_holds_for_all_memories_of_an_instance_together() {
        let mut b = StoreBudget { memory_cap: 100, memory_used: 0, pending: None };
        assert!(b.memory_growing(0, 60, None).unwrap(), "first memory");
        let err = b.memory_growing(0, 60, None).unwrap_err().to_string();
        assert!(err.contains("growing memory") && err.contains("past its memory cap of 100 bytes"), "{err}");
        assert!(b.memory_growing(0, 40, None).unwrap(), "a second memory within what is left");
        assert!(b.memory_growing(60, 70, None).is_err(), "the first may not grow past the cap");
        assert!(b.memory_growing(40, 30, None).unwrap(), "shrinking accounting is exact");
        b.memory_grow_failed(wasmtime::Error::msg("pool full")).unwrap();
        assert_eq!(b.memory_used, 100, "a failed growth is undone");
        assert!(b.table_growing(0, MAX_TABLE_ELEMENTS + 1, None).is_err());
    }
}
