//! The waiting queue behind [`Containers`](super::Containers): pools of slots, waiters
//! in service order, and the dispatch round that grants what can be granted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use shoal_model::ExecutionClass;
use tokio::sync::Notify;

use super::{ContainerKind, Usage};

/// Waiters queue by (priority, arrival): iteration order is service order.
pub(super) type QueueKey = (u8, u64);

#[derive(Debug)]
pub(super) struct State {
    pub(super) shared: Pool,
    pub(super) exclusive: Pool,
    pub(super) groups: BTreeMap<String, Pool>,
    pub(super) queue: BTreeMap<QueueKey, Waiter>,
    pub(super) next_arrival: u64,
}

#[derive(Debug)]
pub(super) struct Waiter {
    pub(super) task_instance_id: u64,
    pub(super) task_name: String,
    pub(super) class: ExecutionClass,
    pub(super) container: ContainerKind,
    pub(super) task_group: Option<String>,
    pub(super) holds_group_slot: bool,
    pub(super) notify: Arc<Notify>,
}

#[derive(Debug)]
pub(super) struct Pool {
    pub(super) size: usize,
    pub(super) used: usize,
}

impl Pool {
    pub(super) fn new(size: usize) -> Self {
        Self { size, used: 0 }
    }

    pub(super) fn has_room(&self) -> bool {
        self.used < self.size
    }

    pub(super) fn usage(&self) -> Usage {
        Usage {
            used: self.used,
            size: self.size,
        }
    }
}

impl State {
    pub(super) fn release(&mut self, container: Option<ContainerKind>, task_group: Option<&str>) {
        match container {
            Some(ContainerKind::Shared) => self.shared.used -= 1,
            Some(ContainerKind::Exclusive) => self.exclusive.used -= 1,
            None => {}
        }
        if let Some(group) = task_group.and_then(|name| self.groups.get_mut(name)) {
            group.used -= 1;
        }
        self.dispatch();
    }

    /// Grant every slot that can be granted, in service order. Every request is for one
    /// slot and nothing is freed during the round, so once a waiter finds its group or
    /// container full, so does every waiter after it that wants the same one: no lower
    /// priority overtakes a higher one for the same resource.
    pub(super) fn dispatch(&mut self) {
        let Self {
            shared,
            exclusive,
            groups,
            queue,
            ..
        } = self;
        let mut granted = Vec::new();
        for (key, waiter) in queue.iter_mut() {
            if !waiter.holds_group_slot
                && let Some(name) = &waiter.task_group
            {
                // Groups are never removed, and `acquire` checked this one exists.
                let group = groups.get_mut(name).expect("task group of a waiter");
                if !group.has_room() {
                    continue;
                }
                group.used += 1;
                waiter.holds_group_slot = true;
            }
            let pool = match waiter.container {
                ContainerKind::Shared => &mut *shared,
                ContainerKind::Exclusive => &mut *exclusive,
            };
            if !pool.has_room() {
                continue;
            }
            pool.used += 1;
            granted.push(*key);
        }
        for key in granted {
            if let Some(waiter) = queue.remove(&key) {
                // Stores a permit if the waiter is not polling yet, so no wake-up is lost.
                waiter.notify.notify_one();
            }
        }
    }
}

// The state stays consistent across a panic elsewhere (no user code runs under the lock),
// and a poisoned lock must not turn every later SlotGuard drop into a panic.
pub(super) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}
