//! [`Containers`]: where task executors run, and who waits for a place.
//!
//! Like DolphinScheduler's TaskEngine, each task executor runs in one of two containers,
//! chosen by its plugin's [`ExecutionClass`]:
//!
//! - the **shared** container, a small pool for many short or non-blocking tasks
//!   ([`ExecutionClass::Short`] logic tasks and [`ExecutionClass::ExternalJob`] polling);
//!   its size is how many of them may execute at once;
//! - the **exclusive** container, one slot per [`ExecutionClass::Blocking`] task (a long
//!   shell script, say); its size is the number of slots.
//!
//! **Task groups** are named pools whose slots are shared by every workflow. A task that
//! names a group needs a slot of its group *and* a container slot.
//!
//! When there is no room, tasks wait. Waiters are served by [`priority`] (a `u8` rank,
//! [`priority::HIGHEST`] = 0 … [`priority::LOWEST`] = 4), first come first served among
//! equal priorities, and strictly so per resource: a waiter never takes a container or
//! group slot that an earlier waiter for that same container or group still waits for.
//! A waiter held up by its task group does not hold up its container, so a full group
//! does not stall unrelated tasks.
//!
//! A [`SlotGuard`] is the right to run; dropping it returns its slots and serves the next
//! waiters.
//!
//! An external job (SubWorkflow, Dependent, a Flink job) mostly waits for work done
//! elsewhere, and what it waits for may itself need the shared container (a child run's
//! tasks). So it holds its shared slot only while its plugin runs (`start`, each `poll`):
//! between polls it gives the container slot back ([`SlotGuard::release_container`]) and
//! queues for one again before the next poll ([`SlotGuard::reacquire_container`]). Its
//! task-group slot stays held for the task's whole life: like DolphinScheduler's task
//! groups, a group limits how many of its tasks are *running*, and a waiting external
//! job is running.
//!
//! The queue itself (pools, waiters, the dispatch round) is in `queue`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use shoal_model::ExecutionClass;
use tokio::sync::Notify;

use queue::{Pool, QueueKey, State, Waiter, lock};

mod queue;
#[cfg(test)]
mod tests;

/// Task priorities, as DolphinScheduler ranks them: a lower rank is served first.
/// Ranks above [`LOWEST`](priority::LOWEST) are served as `LOWEST`.
pub use shoal_protocol::priority;

/// Container sizes. Both must be at least 1: an empty container would make every task
/// of its classes wait forever, so [`Containers::new`] refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerConfig {
    /// How many short and external-job tasks may execute at once.
    pub shared_slots: usize,
    /// How many blocking tasks may execute at once.
    pub exclusive_slots: usize,
}

/// Which container a task executor runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContainerKind {
    Shared,
    Exclusive,
}

impl ContainerKind {
    pub fn for_class(class: ExecutionClass) -> Self {
        match class {
            ExecutionClass::Short | ExecutionClass::ExternalJob => Self::Shared,
            ExecutionClass::Blocking => Self::Exclusive,
        }
    }
}

impl std::fmt::Display for ContainerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Shared => "shared",
            Self::Exclusive => "exclusive",
        })
    }
}

/// A task instance asking for a place to run.
#[derive(Debug, Clone)]
pub struct SlotRequest {
    pub task_instance_id: u64,
    pub task_name: String,
    /// Picks the container (see [`ContainerKind::for_class`]).
    pub class: ExecutionClass,
    /// See [`priority`].
    pub priority: u8,
    /// A task group the task must also hold a slot of.
    pub task_group: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("unknown task group `{name}` ({})", known_groups(.known))]
    UnknownTaskGroup { name: String, known: Vec<String> },
}

fn known_groups(known: &[String]) -> String {
    if known.is_empty() {
        "no task groups are defined".to_owned()
    } else {
        format!("known task groups: {}", known.join(", "))
    }
}

/// What is running and what waits, for `shoal status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Occupancy {
    pub shared: Usage,
    pub exclusive: Usage,
    /// By name.
    pub task_groups: Vec<GroupUsage>,
    /// In the order they are served: by priority, then by arrival. Each is granted as
    /// soon as its group and container have room that no waiter before it wants.
    pub waiting: Vec<WaitingTask>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub used: usize,
    pub size: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupUsage {
    pub name: String,
    /// Can exceed `size` after the group was shrunk; no slot is granted until it is below.
    pub used: usize,
    pub size: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaitingTask {
    pub task_instance_id: u64,
    pub task_name: String,
    pub class: ExecutionClass,
    pub container: ContainerKind,
    pub priority: u8,
    pub task_group: Option<String>,
    pub waiting_for: WaitingFor,
}

/// The slot a waiting task still lacks. A task in a group takes its group slot first, so
/// `Container` for a task in a group means it already holds its group slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitingFor {
    TaskGroup,
    Container,
}

/// The TaskEngine's containers and task groups. Shared behind an [`Arc`].
#[derive(Debug)]
pub struct Containers {
    // Its own Arc so that a SlotGuard can outlive the `&self` it was acquired through and
    // be moved into the executor's task.
    state: Arc<Mutex<State>>,
}

impl Containers {
    /// # Panics
    /// If a container size is 0 (see [`ContainerConfig`]).
    pub fn new(config: ContainerConfig) -> Arc<Self> {
        assert!(
            config.shared_slots > 0,
            "the shared container needs at least 1 slot (shared_slots = 0)"
        );
        assert!(
            config.exclusive_slots > 0,
            "the exclusive container needs at least 1 slot (exclusive_slots = 0)"
        );
        Arc::new(Self {
            state: Arc::new(Mutex::new(State {
                shared: Pool::new(config.shared_slots),
                exclusive: Pool::new(config.exclusive_slots),
                groups: BTreeMap::new(),
                queue: BTreeMap::new(),
                next_arrival: 0,
            })),
        })
    }

    /// Define a task group or resize it. Growing it serves waiters at once; shrinking it
    /// below its use revokes nothing, it only grants no more slots until use falls below
    /// the new size. A size of 0 pauses the group.
    pub fn set_task_group(&self, name: &str, slots: usize) {
        let mut state = lock(&self.state);
        state
            .groups
            .entry(name.to_owned())
            .and_modify(|pool| pool.size = slots)
            .or_insert_with(|| Pool::new(slots));
        state.dispatch();
    }

    /// Wait for a slot: of the task's group if it names one, then of its container.
    ///
    /// The group comes first so that a task never sits on a container slot, which every
    /// task of its class needs, while it waits for a group slot only its group needs.
    ///
    /// Cancel-safe: dropping the future before it resolves removes the waiter and returns
    /// any slot it was given meanwhile.
    pub async fn acquire(&self, request: SlotRequest) -> Result<SlotGuard, ContainerError> {
        let container = ContainerKind::for_class(request.class);
        if let Some(name) = &request.task_group {
            let state = lock(&self.state);
            if !state.groups.contains_key(name) {
                return Err(ContainerError::UnknownTaskGroup {
                    name: name.clone(),
                    known: state.groups.keys().cloned().collect(),
                });
            }
        }
        let waiter = Waiter {
            task_instance_id: request.task_instance_id,
            task_name: request.task_name.clone(),
            class: request.class,
            container,
            task_group: request.task_group.clone(),
            holds_group_slot: false,
            notify: Arc::new(Notify::new()),
        };
        queue_and_wait(&self.state, request.priority, waiter, true).await;
        Ok(SlotGuard {
            state: self.state.clone(),
            task_instance_id: request.task_instance_id,
            task_name: request.task_name,
            class: request.class,
            priority: request.priority,
            container,
            holds_container: true,
            task_group: request.task_group,
        })
    }

    pub fn snapshot(&self) -> Occupancy {
        let state = lock(&self.state);
        Occupancy {
            shared: state.shared.usage(),
            exclusive: state.exclusive.usage(),
            task_groups: state
                .groups
                .iter()
                .map(|(name, pool)| GroupUsage {
                    name: name.clone(),
                    used: pool.used,
                    size: pool.size,
                })
                .collect(),
            waiting: state
                .queue
                .iter()
                .map(|(&(priority, _), w)| WaitingTask {
                    task_instance_id: w.task_instance_id,
                    task_name: w.task_name.clone(),
                    class: w.class,
                    container: w.container,
                    priority,
                    task_group: w.task_group.clone(),
                    waiting_for: if w.task_group.is_some() && !w.holds_group_slot {
                        WaitingFor::TaskGroup
                    } else {
                        WaitingFor::Container
                    },
                })
                .collect(),
        }
    }
}

/// The right to run one task executor: a container slot, and a group slot if the task
/// is in a group. Dropping it returns both and serves the next waiters.
#[derive(Debug)]
pub struct SlotGuard {
    state: Arc<Mutex<State>>,
    task_instance_id: u64,
    task_name: String,
    class: ExecutionClass,
    priority: u8,
    container: ContainerKind,
    /// False while an external job waits between polls.
    holds_container: bool,
    task_group: Option<String>,
}

impl SlotGuard {
    pub fn task_instance_id(&self) -> u64 {
        self.task_instance_id
    }

    pub fn container(&self) -> ContainerKind {
        self.container
    }

    pub fn task_group(&self) -> Option<&str> {
        self.task_group.as_deref()
    }

    /// Whether the guard holds its container slot right now (see
    /// [`release_container`](Self::release_container)).
    pub fn holds_container(&self) -> bool {
        self.holds_container
    }

    /// Give the container slot back and keep the task-group slot: the task waits for
    /// something outside its plugin (an external job between polls). Serves the next
    /// waiters at once. Does nothing when the slot is already given back.
    pub fn release_container(&mut self) {
        if std::mem::take(&mut self.holds_container) {
            lock(&self.state).release(Some(self.container), None);
        }
    }

    /// Queue for a container slot again, at the task's priority and behind the waiters
    /// already queued for that container. The task-group slot is still held, so only
    /// the container is waited for.
    ///
    /// Cancel-safe: dropping the future withdraws the request (or returns the slot it
    /// was given meanwhile); the guard then still lacks its container slot.
    pub async fn reacquire_container(&mut self) {
        if self.holds_container {
            return;
        }
        let waiter = Waiter {
            task_instance_id: self.task_instance_id,
            task_name: self.task_name.clone(),
            class: self.class,
            container: self.container,
            task_group: self.task_group.clone(),
            holds_group_slot: true,
            notify: Arc::new(Notify::new()),
        };
        queue_and_wait(&self.state, self.priority, waiter, false).await;
        self.holds_container = true;
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let container = self.holds_container.then_some(self.container);
        lock(&self.state).release(container, self.task_group.as_deref());
    }
}

/// Queue `waiter` and wait until it is granted. `owns_group_slot`: the group slot the
/// waiter takes is its own to return if it is withdrawn (false when a [`SlotGuard`]
/// already holds it and only asks for its container again).
async fn queue_and_wait(state: &Mutex<State>, priority: u8, waiter: Waiter, owns_group_slot: bool) {
    let notify = waiter.notify.clone();
    let container = waiter.container;
    let task_group = waiter.task_group.clone();
    let key = {
        let mut state = lock(state);
        let key = (priority.min(priority::LOWEST), state.next_arrival);
        state.next_arrival += 1;
        state.queue.insert(key, waiter);
        // Served right away if nothing before it wants the same slots.
        state.dispatch();
        key
    };
    let mut pending = Pending {
        state,
        key,
        container,
        task_group: task_group.filter(|_| owns_group_slot),
        resolved: false,
    };
    // Leaving the queue means being granted: only `dispatch` and `Pending::drop`
    // remove a waiter, and the latter only once this future is gone.
    while lock(state).queue.contains_key(&key) {
        notify.notified().await;
    }
    pending.resolved = true;
}

/// Undoes a [`queue_and_wait`] whose future is dropped before it resolved.
struct Pending<'a> {
    state: &'a Mutex<State>,
    key: QueueKey,
    container: ContainerKind,
    /// The group whose slot this wait took and must return; none when a guard holds it.
    task_group: Option<String>,
    resolved: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.resolved {
            return;
        }
        let mut state = lock(self.state);
        match state.queue.remove(&self.key) {
            Some(waiter) => {
                if waiter.holds_group_slot
                    && let Some(name) = &self.task_group
                    && let Some(group) = state.groups.get_mut(name)
                {
                    group.used -= 1;
                }
                // Whatever it was first in line for may now go to the next waiter.
                state.dispatch();
            }
            // Granted, but the future went away before it could hand the slots over.
            None => state.release(Some(self.container), self.task_group.as_deref()),
        }
    }
}
