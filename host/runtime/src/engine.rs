//! The process-wide wasmtime engine.
//!
//! One engine serves every plugin: compiled code, the instance pool and the epoch
//! counter are shared. A background thread advances the epoch every tick; each task's
//! store yields to the async executor at every tick, which is what lets a deadline or a
//! cancellation stop a plugin that never returns (a `loop {}` included).
//!
//! The pooling allocator has a fixed number of instance slots, and wasmtime refuses an
//! instantiation when they are all in use. Its size comes from the task containers'
//! capacity ([`EngineConfig::for_tasks`]), and every call takes a permit of
//! [`PluginEngine::instance_permit`] first, so a call that finds the pool full waits for
//! a slot instead of failing its task. A few slots are kept for `describe` (a plugin's
//! first load) and `cancel`: a SubWorkflow's `start` holds its slot while the child run
//! loads its plugins, so letting task calls take every slot could deadlock the loads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::RuntimeError;

/// Tuning for the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How many plugin instances may be alive at once with the pooling allocator.
    pub pooling_slots: u32,
    /// Of those, how many only `describe` and `cancel` calls may use (task calls get the
    /// rest, at least one).
    pub reserved_slots: u32,
    /// Upper bound of any plugin's linear memory; the per-plugin grant is lower.
    pub max_memory_bytes: u64,
    /// Epoch tick: the granularity of deadlines and cancellation for guest code.
    pub epoch_tick: Duration,
    /// Try the pooling allocator (falls back to on-demand when it cannot reserve).
    pub pooling: bool,
}

/// Pool slots beyond the containers' capacity, kept for calls outside any container slot:
/// `describe` when a plugin loads, `cancel` of a killed or timed-out external job.
pub const POOL_HEADROOM: u32 = 16;

impl EngineConfig {
    /// An engine for a host that runs at most `concurrent_tasks` tasks at once (the sum of
    /// its containers' slots): one pool slot per task plus [`POOL_HEADROOM`].
    pub fn for_tasks(concurrent_tasks: usize) -> Self {
        let tasks = u32::try_from(concurrent_tasks).unwrap_or(u32::MAX);
        Self {
            pooling_slots: tasks.saturating_add(POOL_HEADROOM),
            reserved_slots: POOL_HEADROOM,
            ..Self::default()
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            pooling_slots: 256,
            reserved_slots: POOL_HEADROOM,
            max_memory_bytes: 4 << 30,
            epoch_tick: Duration::from_millis(10),
            pooling: true,
        }
    }
}

/// The shared engine plus its epoch ticker.
#[derive(Clone)]
pub struct PluginEngine {
    engine: Engine,
    pooling: bool,
    /// One permit per pool slot; none with on-demand allocation, which has no limit.
    slots: Option<PoolSlots>,
    _ticker: Arc<EpochTicker>,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine")
            .field("pooling", &self.pooling)
            .field("free_slots", &self.free_slots())
            .finish()
    }
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config
}

impl PluginEngine {
    pub fn new(cfg: &EngineConfig) -> Result<Self, RuntimeError> {
        let (engine, pooling) = match cfg.pooling.then(|| Self::pooled(cfg)) {
            Some(Ok(engine)) => (engine, true),
            Some(Err(err)) => {
                // Small VMs and sandboxes often cap virtual memory; on-demand allocation
                // is slower to instantiate but works everywhere.
                tracing::warn!("pooling allocator unavailable, using on-demand: {err}");
                (Self::on_demand()?, false)
            }
            None => (Self::on_demand()?, false),
        };
        let ticker = EpochTicker::start(engine.clone(), cfg.epoch_tick);
        let slots = pooling.then(|| PoolSlots::new(cfg));
        Ok(Self {
            engine,
            pooling,
            slots,
            _ticker: Arc::new(ticker),
        })
    }

    fn pooled(cfg: &EngineConfig) -> Result<Engine, wasmtime::Error> {
        let slots = cfg.pooling_slots.max(1);
        let mut pool = PoolingAllocationConfig::new();
        // A Rust component holds a few core instances (main module plus shims) and
        // usually one memory; leave headroom for components built by other toolchains.
        pool.total_component_instances(slots)
            .total_core_instances(slots * 8)
            .total_memories(slots * 2)
            .total_tables(slots * 8)
            .total_stacks(slots)
            .max_core_instances_per_component(32)
            .max_memories_per_component(4)
            .max_tables_per_component(16)
            .max_memory_size(cfg.max_memory_bytes as usize)
            // Every task returns its slot; resetting the first pages with memset instead
            // of madvise, and decommitting the rest in batches, keeps that off the
            // per-task path (it was a fifth of a fan-out's CPU). The cost is a little
            // resident memory per slot that was used.
            .linear_memory_keep_resident(256 << 10)
            // With PAGEMAP_SCAN (Linux 6.7+) only the pages a task dirtied are reset,
            // wherever they are in its memory; without it the first 256 KiB are reset
            // whole on every return, touched or not (an eighth of a worker's CPU on a
            // noop fan-out). Auto falls back where the kernel lacks it.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .table_keep_resident(64 << 10)
            .async_stack_keep_resident(64 << 10)
            .decommit_batch_size(32);
        let mut config = base_config();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        Engine::new(&config)
    }

    fn on_demand() -> Result<Engine, RuntimeError> {
        Engine::new(&base_config()).map_err(|e| RuntimeError::Engine(e.to_string()))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether instances come from the pooling allocator.
    pub fn is_pooling(&self) -> bool {
        self.pooling
    }

    /// Wait for a free pool slot, in arrival order: one of the reserved slots for a
    /// `describe` or `cancel` call (`reserved`), else one of the others. Hold the permit
    /// until the call's `Store` is dropped. None (at once) without the pooling allocator.
    pub async fn instance_permit(&self, reserved: bool) -> Option<OwnedSemaphorePermit> {
        let slots = self.slots.as_ref()?;
        let pool = match &slots.reserved {
            Some(pool) if reserved => pool,
            _ => &slots.tasks,
        };
        // The semaphores are never closed.
        pool.clone().acquire_owned().await.ok()
    }

    /// Pool slots free right now, reserved ones included (None without the pooling
    /// allocator).
    pub fn free_slots(&self) -> Option<usize> {
        let slots = self.slots.as_ref()?;
        Some(
            slots.tasks.available_permits()
                + slots.reserved.as_ref().map_or(0, |r| r.available_permits()),
        )
    }

    /// Identifies compiled code this engine can load; part of the compile-cache key.
    pub fn compatibility_key(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("{:016x}", h.finish())
    }
}

/// The pool's slots as permits: those of task calls and the reserved ones.
#[derive(Clone)]
struct PoolSlots {
    tasks: Arc<Semaphore>,
    /// None when the pool is too small to keep any back.
    reserved: Option<Arc<Semaphore>>,
}

impl PoolSlots {
    fn new(cfg: &EngineConfig) -> Self {
        let total = cfg.pooling_slots.max(1);
        let tasks = total.saturating_sub(cfg.reserved_slots).max(1);
        let reserved = total - tasks;
        Self {
            tasks: Arc::new(Semaphore::new(tasks as usize)),
            reserved: (reserved > 0).then(|| Arc::new(Semaphore::new(reserved as usize))),
        }
    }
}

struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine, tick: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("shoal-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
