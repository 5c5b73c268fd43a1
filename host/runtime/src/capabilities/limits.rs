//! The per-task WebAssembly resource caps. The memory cap covers all of an instance's
//! linear memories together (a component may define several, and a cap per memory would
//! let it multiply its share); the number of memories and tables and the elements of all
//! tables together are capped too. Growing past a cap fails inside the guest (its
//! allocator then traps); the host notes that the memory cap was hit so the task fails
//! with "memory limit exceeded" rather than a bare trap.

use shoal_model::TaskLimits;
use wasmtime::ResourceLimiter;

pub struct TaskLimiter {
    memory_cap: usize,
    /// Bytes of linear memory across every memory of the store.
    memory_total: usize,
    table_cap: usize,
    table_total: usize,
    memories: usize,
    tables: usize,
    /// Set when the guest asked for more than its cap.
    pub(crate) hit: bool,
}

impl TaskLimiter {
    pub fn new(memory_bytes: u64, limits: &TaskLimits) -> Self {
        Self {
            memory_cap: usize::try_from(memory_bytes).unwrap_or(usize::MAX),
            memory_total: 0,
            table_cap: limits.table_elements,
            table_total: 0,
            memories: limits.memories,
            tables: limits.tables,
            hit: false,
        }
    }

    pub fn cap_mb(&self) -> u64 {
        (self.memory_cap as u64) >> 20
    }
}

impl ResourceLimiter for TaskLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory_total - current.min(self.memory_total) + desired;
        if total > self.memory_cap {
            self.hit = true;
            return Ok(false);
        }
        self.memory_total = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.table_total - current.min(self.table_total) + desired;
        if total > self.table_cap {
            return Ok(false);
        }
        self.table_total = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        // A component instantiates a handful of core modules; keep wasmtime's default.
        10_000
    }

    fn memories(&self) -> usize {
        self.memories
    }

    fn tables(&self) -> usize {
        self.tables
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_cap_covers_all_memories_together() {
        let mut l = TaskLimiter::new(100, &TaskLimits::default());
        assert!(l.memory_growing(0, 60, None).unwrap());
        // A second memory may not take what the first already holds.
        assert!(!l.memory_growing(0, 60, None).unwrap());
        assert!(l.hit);
        assert!(l.memory_growing(0, 40, None).unwrap());
        // Growing the first memory counts only its growth.
        let mut l = TaskLimiter::new(100, &TaskLimits::default());
        assert!(l.memory_growing(0, 50, None).unwrap());
        assert!(l.memory_growing(50, 90, None).unwrap());
        assert!(!l.memory_growing(90, 101, None).unwrap());
    }

    #[test]
    fn table_elements_are_capped_in_total() {
        let limits = TaskLimits {
            table_elements: 10,
            ..Default::default()
        };
        let mut l = TaskLimiter::new(1 << 20, &limits);
        assert!(l.table_growing(0, 6, None).unwrap());
        assert!(!l.table_growing(0, 6, None).unwrap());
        assert_eq!(l.memories(), TaskLimits::default().memories);
    }
}
