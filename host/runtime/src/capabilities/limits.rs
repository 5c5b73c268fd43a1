//! The per-task memory cap. Growing linear memory past the grant fails inside the
//! guest (its allocator then traps); the host notes that the cap was hit so the task
//! fails with "memory limit exceeded" rather than a bare trap.

use wasmtime::ResourceLimiter;

pub struct TaskLimiter {
    memory_cap: usize,
    /// Set when the guest asked for more than its cap.
    pub(crate) hit: bool,
}

impl TaskLimiter {
    pub fn new(memory_bytes: u64) -> Self {
        Self {
            memory_cap: usize::try_from(memory_bytes).unwrap_or(usize::MAX),
            hit: false,
        }
    }

    pub fn cap_mb(&self) -> u64 {
        (self.memory_cap as u64) >> 20
    }
}

/// Enough table elements for any real component; bounds what a hostile one can take.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl ResourceLimiter for TaskLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
