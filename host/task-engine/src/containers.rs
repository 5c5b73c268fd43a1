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

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use shoal_model::ExecutionClass;
use tokio::sync::Notify;

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

/// Waiters queue by (priority, arrival): iteration order is service order.
type QueueKey = (u8, u64);

#[derive(Debug)]
struct State {
    shared: Pool,
    exclusive: Pool,
    groups: BTreeMap<String, Pool>,
    queue: BTreeMap<QueueKey, Waiter>,
    next_arrival: u64,
}

#[derive(Debug)]
struct Waiter {
    task_instance_id: u64,
    task_name: String,
    class: ExecutionClass,
    container: ContainerKind,
    task_group: Option<String>,
    holds_group_slot: bool,
    notify: Arc<Notify>,
}

#[derive(Debug)]
struct Pool {
    size: usize,
    used: usize,
}

impl Pool {
    fn new(size: usize) -> Self {
        Self { size, used: 0 }
    }

    fn has_room(&self) -> bool {
        self.used < self.size
    }

    fn usage(&self) -> Usage {
        Usage {
            used: self.used,
            size: self.size,
        }
    }
}

impl State {
    fn release(&mut self, container: Option<ContainerKind>, task_group: Option<&str>) {
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
    fn dispatch(&mut self) {
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
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    use super::*;

    fn request(id: u64, class: ExecutionClass, priority: u8, group: Option<&str>) -> SlotRequest {
        SlotRequest {
            task_instance_id: id,
            task_name: format!("task-{id}"),
            class,
            priority,
            task_group: group.map(str::to_owned),
        }
    }

    fn short(id: u64) -> SlotRequest {
        request(id, ExecutionClass::Short, priority::MEDIUM, None)
    }

    fn blocking(id: u64) -> SlotRequest {
        request(id, ExecutionClass::Blocking, priority::MEDIUM, None)
    }

    fn containers(shared_slots: usize, exclusive_slots: usize) -> Arc<Containers> {
        Containers::new(ContainerConfig {
            shared_slots,
            exclusive_slots,
        })
    }

    /// The guard if the acquire is granted without waiting. A waiting acquire is dropped,
    /// which withdraws it.
    fn granted_now(
        containers: &Containers,
        request: SlotRequest,
    ) -> Option<Result<SlotGuard, ContainerError>> {
        let future = pin!(containers.acquire(request));
        match future.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => Some(result),
            Poll::Pending => None,
        }
    }

    fn grant_now(containers: &Containers, request: SlotRequest) -> SlotGuard {
        let id = request.task_instance_id;
        granted_now(containers, request)
            .unwrap_or_else(|| panic!("task {id} should be granted at once"))
            .expect("acquire")
    }

    fn waiting_ids(occupancy: &Occupancy) -> Vec<u64> {
        occupancy
            .waiting
            .iter()
            .map(|w| w.task_instance_id)
            .collect()
    }

    /// Let spawned tasks run until `done` holds (single-threaded test runtime).
    async fn settle(containers: &Containers, done: impl Fn(&Occupancy) -> bool) {
        for _ in 0..1000 {
            if done(&containers.snapshot()) {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("never settled: {:#?}", containers.snapshot());
    }

    /// Spawn an acquire that records its grant in `log`, then holds its slot until
    /// `release` fires.
    fn spawn_waiter(
        containers: &Arc<Containers>,
        request: SlotRequest,
        log: &Arc<Mutex<Vec<u64>>>,
        release: &Arc<Notify>,
    ) -> tokio::task::JoinHandle<()> {
        let (containers, log, release) = (containers.clone(), log.clone(), release.clone());
        tokio::spawn(async move {
            let released = release.notified();
            let guard = containers.acquire(request).await.expect("acquire");
            log.lock().unwrap().push(guard.task_instance_id());
            released.await;
        })
    }

    /// Join with a generous limit, so that a bug fails the test instead of hanging it.
    async fn join(handle: tokio::task::JoinHandle<()>) {
        tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("waiter never finished")
            .expect("waiter panicked");
    }

    #[tokio::test]
    async fn shared_and_exclusive_limits_are_independent() {
        let c = containers(2, 1);
        let _s1 = grant_now(&c, short(1));
        let _s2 = grant_now(
            &c,
            request(2, ExecutionClass::ExternalJob, priority::MEDIUM, None),
        );
        assert!(granted_now(&c, short(3)).is_none(), "shared is full");

        let b1 = grant_now(&c, blocking(4));
        assert_eq!(b1.container(), ContainerKind::Exclusive);
        assert!(granted_now(&c, blocking(5)).is_none(), "exclusive is full");

        let occupancy = c.snapshot();
        assert_eq!(occupancy.shared, Usage { used: 2, size: 2 });
        assert_eq!(occupancy.exclusive, Usage { used: 1, size: 1 });
        assert!(occupancy.waiting.is_empty());

        drop(b1);
        let _b2 = grant_now(&c, blocking(5));
        assert!(
            granted_now(&c, short(3)).is_none(),
            "a free exclusive slot does not make room in the shared container"
        );
    }

    #[tokio::test]
    async fn waiters_are_served_by_priority_then_arrival() {
        let c = containers(1, 1);
        let holder = grant_now(&c, short(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(Notify::new());
        let arrivals = [
            (1, priority::MEDIUM),
            (2, priority::HIGHEST),
            (3, priority::MEDIUM),
            (4, priority::LOWEST),
            (5, priority::HIGHEST),
            (6, priority::HIGH),
            (7, 200), // served as LOWEST, after 4
        ];
        let mut handles = Vec::new();
        for (n, &(id, prio)) in arrivals.iter().enumerate() {
            let req = request(id, ExecutionClass::Short, prio, None);
            handles.push(spawn_waiter(&c, req, &log, &release));
            settle(&c, |o| o.waiting.len() == n + 1).await;
        }
        assert_eq!(waiting_ids(&c.snapshot()), [2, 5, 6, 1, 3, 4, 7]);

        drop(holder);
        // Each waiter holds the only slot until released, so grants come one at a time.
        for n in 1..=arrivals.len() {
            settle(&c, |_| log.lock().unwrap().len() == n).await;
            release.notify_one();
        }
        for handle in handles {
            join(handle).await;
        }
        assert_eq!(*log.lock().unwrap(), [2, 5, 6, 1, 3, 4, 7]);
        assert_eq!(c.snapshot().shared.used, 0);
    }

    #[tokio::test]
    async fn a_task_group_limits_across_containers() {
        let c = containers(4, 4);
        c.set_task_group("etl", 2);
        let etl = |id, class| request(id, class, priority::MEDIUM, Some("etl"));

        let first = grant_now(&c, etl(1, ExecutionClass::Short));
        let _second = grant_now(&c, etl(2, ExecutionClass::Blocking));
        assert_eq!(first.task_group(), Some("etl"));
        assert!(granted_now(&c, etl(3, ExecutionClass::Blocking)).is_none());
        assert!(granted_now(&c, etl(4, ExecutionClass::ExternalJob)).is_none());
        let _outside = grant_now(&c, blocking(5));

        let occupancy = c.snapshot();
        assert_eq!(
            occupancy.task_groups,
            [GroupUsage {
                name: "etl".into(),
                used: 2,
                size: 2
            }]
        );
        assert_eq!(occupancy.shared.used, 1);
        assert_eq!(occupancy.exclusive.used, 2);

        drop(first);
        let _third = grant_now(&c, etl(3, ExecutionClass::Blocking));
    }

    #[tokio::test]
    async fn a_task_waiting_for_its_group_does_not_hold_up_its_container() {
        let c = containers(1, 1);
        c.set_task_group("etl", 1);
        let etl_holder = grant_now(&c, request(1, ExecutionClass::Blocking, 0, Some("etl")));
        let log = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(Notify::new());

        let high = request(2, ExecutionClass::Short, priority::HIGHEST, Some("etl"));
        let high = spawn_waiter(&c, high, &log, &release);
        settle(&c, |o| o.waiting.len() == 1).await;
        // Lower priority, same container, no group: the container is free, so it runs.
        let low = grant_now(
            &c,
            request(3, ExecutionClass::Short, priority::LOWEST, None),
        );

        // Now the group frees up but the container is taken: the waiter takes its group
        // slot and waits for the container.
        drop(etl_holder);
        let waiting = &c.snapshot().waiting;
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].waiting_for, WaitingFor::Container);
        assert_eq!(c.snapshot().task_groups[0].used, 1);

        drop(low);
        settle(&c, |_| !log.lock().unwrap().is_empty()).await;
        release.notify_one();
        join(high).await;
        assert_eq!(*log.lock().unwrap(), [2]);
    }

    #[tokio::test]
    async fn an_unknown_task_group_is_an_error_naming_the_known_ones() {
        let c = containers(1, 1);
        c.set_task_group("etl", 1);
        c.set_task_group("reports", 1);
        let err = c
            .acquire(request(1, ExecutionClass::Short, 0, Some("ml")))
            .await
            .unwrap_err();
        let ContainerError::UnknownTaskGroup { name, known } = &err;
        assert_eq!(name, "ml");
        assert_eq!(known, &["etl", "reports"]);
        assert_eq!(
            err.to_string(),
            "unknown task group `ml` (known task groups: etl, reports)"
        );
        let occupancy = c.snapshot();
        assert!(occupancy.waiting.is_empty());
        assert_eq!(occupancy.shared.used, 0);

        let none = containers(1, 1)
            .acquire(request(1, ExecutionClass::Short, 0, Some("ml")))
            .await
            .unwrap_err();
        assert_eq!(
            none.to_string(),
            "unknown task group `ml` (no task groups are defined)"
        );
    }

    #[tokio::test]
    async fn dropping_a_pending_acquire_leaks_nothing() {
        let c = containers(1, 1);
        c.set_task_group("etl", 1);
        let holder = grant_now(&c, short(1));

        // One waits for its group slot's container (holding the group slot), one for the
        // container alone; both are aborted while waiting.
        let log = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(Notify::new());
        let in_group = spawn_waiter(
            &c,
            request(2, ExecutionClass::Short, 0, Some("etl")),
            &log,
            &release,
        );
        let plain = spawn_waiter(&c, short(3), &log, &release);
        settle(&c, |o| o.waiting.len() == 2 && o.task_groups[0].used == 1).await;
        in_group.abort();
        plain.abort();
        assert!(in_group.await.unwrap_err().is_cancelled());
        assert!(plain.await.unwrap_err().is_cancelled());

        let occupancy = c.snapshot();
        assert!(occupancy.waiting.is_empty());
        assert_eq!(occupancy.task_groups[0].used, 0);
        assert_eq!(occupancy.shared.used, 1);

        drop(holder);
        let occupancy = c.snapshot();
        assert_eq!(occupancy.shared.used, 0);
        let _later = grant_now(&c, request(4, ExecutionClass::Short, 4, Some("etl")));
        assert!(log.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_acquire_dropped_just_after_its_grant_returns_the_slots() {
        let c = containers(1, 1);
        c.set_task_group("etl", 1);
        let holder = grant_now(&c, short(1));
        {
            let mut pending = pin!(c.acquire(request(2, ExecutionClass::Short, 0, Some("etl"))));
            let mut cx = Context::from_waker(Waker::noop());
            assert!(pending.as_mut().poll(&mut cx).is_pending());
            // The grant happens here, inside the holder's drop; the future never sees it.
            drop(holder);
            let occupancy = c.snapshot();
            assert!(occupancy.waiting.is_empty());
            assert_eq!(occupancy.shared.used, 1);
            assert_eq!(occupancy.task_groups[0].used, 1);
        }
        let occupancy = c.snapshot();
        assert_eq!(occupancy.shared.used, 0);
        assert_eq!(occupancy.task_groups[0].used, 0);
        let _later = grant_now(&c, request(3, ExecutionClass::Short, 0, Some("etl")));
    }

    #[tokio::test]
    async fn withdrawing_a_waiter_serves_those_it_held_up() {
        let c = containers(1, 1);
        c.set_task_group("etl", 1);
        let _holder = grant_now(&c, short(1));
        let log = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(Notify::new());
        // Takes the group slot, then waits for the shared container.
        let first = request(2, ExecutionClass::Short, priority::HIGHEST, Some("etl"));
        let first = spawn_waiter(&c, first, &log, &release);
        settle(&c, |o| o.waiting.len() == 1 && o.task_groups[0].used == 1).await;
        // The exclusive container is free, but the group is not.
        let second = request(3, ExecutionClass::Blocking, priority::LOWEST, Some("etl"));
        let second = spawn_waiter(&c, second, &log, &release);
        settle(&c, |o| o.waiting.len() == 2).await;
        assert_eq!(c.snapshot().waiting[1].waiting_for, WaitingFor::TaskGroup);

        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());
        settle(&c, |_| !log.lock().unwrap().is_empty()).await;
        assert_eq!(*log.lock().unwrap(), [3]);
        release.notify_one();
        join(second).await;
        let occupancy = c.snapshot();
        assert_eq!(occupancy.task_groups[0].used, 0);
        assert_eq!(occupancy.exclusive.used, 0);
    }

    #[tokio::test]
    async fn growing_a_group_wakes_its_waiters_and_shrinking_it_stops_grants() {
        let c = containers(8, 8);
        c.set_task_group("etl", 1);
        let etl = |id| request(id, ExecutionClass::Short, priority::MEDIUM, Some("etl"));
        let holder = grant_now(&c, etl(1));
        let log = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(Notify::new());
        let a = spawn_waiter(&c, etl(2), &log, &release);
        let b = spawn_waiter(&c, etl(3), &log, &release);
        settle(&c, |o| o.waiting.len() == 2).await;

        c.set_task_group("etl", 3);
        settle(&c, |_| log.lock().unwrap().len() == 2).await;
        let occupancy = c.snapshot();
        assert!(occupancy.waiting.is_empty());
        assert_eq!(occupancy.task_groups[0].used, 3);

        // Shrunk below use: the three keep running, a fourth waits until use is below 1.
        c.set_task_group("etl", 1);
        let d = spawn_waiter(&c, etl(4), &log, &release);
        settle(&c, |o| o.waiting.len() == 1).await;
        release.notify_one();
        release.notify_one();
        join(a).await;
        join(b).await;
        assert_eq!(c.snapshot().task_groups[0].used, 1);
        assert_eq!(waiting_ids(&c.snapshot()), [4]);

        drop(holder);
        settle(&c, |_| log.lock().unwrap().len() == 3).await;
        release.notify_one();
        join(d).await;
        assert_eq!(c.snapshot().task_groups[0].used, 0);
    }

    #[tokio::test]
    async fn the_snapshot_lists_waiting_tasks_in_service_order() {
        let c = containers(1, 1);
        c.set_task_group("etl", 1);
        let short_holder = grant_now(&c, short(1));
        let blocking_holder = grant_now(&c, blocking(2));
        let log = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(Notify::new());
        let arrivals = [
            request(3, ExecutionClass::Blocking, priority::LOW, None),
            request(4, ExecutionClass::Short, priority::LOW, Some("etl")),
            request(5, ExecutionClass::ExternalJob, priority::HIGHEST, None),
            request(6, ExecutionClass::Short, priority::HIGH, Some("etl")),
            request(7, ExecutionClass::Blocking, priority::LOW, None),
        ];
        let mut handles = Vec::new();
        for (n, req) in arrivals.into_iter().enumerate() {
            handles.push(spawn_waiter(&c, req, &log, &release));
            settle(&c, |o| o.waiting.len() == n + 1).await;
        }

        let occupancy = c.snapshot();
        assert_eq!(waiting_ids(&occupancy), [5, 6, 3, 4, 7]);
        let summary: Vec<_> = occupancy
            .waiting
            .iter()
            .map(|w| (w.container, w.priority, w.waiting_for))
            .collect();
        use ContainerKind::{Exclusive, Shared};
        use WaitingFor::{Container, TaskGroup};
        assert_eq!(
            summary,
            [
                (Shared, priority::HIGHEST, Container),
                (Shared, priority::HIGH, TaskGroup),
                (Exclusive, priority::LOW, Container),
                // Came while the group was free: it holds the group slot that 6 wants.
                (Shared, priority::LOW, Container),
                (Exclusive, priority::LOW, Container),
            ]
        );

        // Served in that order, except that 6 cannot pass 4, which holds its group slot.
        drop(short_holder);
        for n in 1..=3 {
            settle(&c, |_| log.lock().unwrap().len() == n).await;
            release.notify_one();
        }
        drop(blocking_holder);
        for n in 4..=5 {
            settle(&c, |_| log.lock().unwrap().len() == n).await;
            release.notify_one();
        }
        for handle in handles {
            join(handle).await;
        }
        assert_eq!(*log.lock().unwrap(), [5, 4, 6, 3, 7]);
        let occupancy = c.snapshot();
        assert_eq!((occupancy.shared.used, occupancy.exclusive.used), (0, 0));
        assert_eq!(occupancy.task_groups[0].used, 0);
    }

    #[tokio::test]
    async fn a_released_container_slot_serves_others_while_the_group_slot_stays() {
        let c = containers(1, 1);
        c.set_task_group("etl", 1);
        let mut job = grant_now(
            &c,
            request(
                1,
                ExecutionClass::ExternalJob,
                priority::MEDIUM,
                Some("etl"),
            ),
        );
        assert!(
            granted_now(&c, short(2)).is_none(),
            "the job holds the slot"
        );

        job.release_container();
        assert!(!job.holds_container());
        let occupancy = c.snapshot();
        assert_eq!(occupancy.shared.used, 0);
        assert_eq!(
            occupancy.task_groups[0].used, 1,
            "the group slot stays held"
        );
        let other = grant_now(&c, short(2));
        assert!(
            granted_now(&c, request(3, ExecutionClass::Short, 0, Some("etl"))).is_none(),
            "the group is still full"
        );

        // The job queues for its container again and gets it once the other task goes.
        {
            let mut back = pin!(job.reacquire_container());
            let mut cx = Context::from_waker(Waker::noop());
            assert!(back.as_mut().poll(&mut cx).is_pending());
            assert_eq!(c.snapshot().waiting[0].waiting_for, WaitingFor::Container);
            drop(other);
            assert!(back.as_mut().poll(&mut cx).is_ready());
        }
        assert!(job.holds_container());
        assert_eq!(c.snapshot().shared.used, 1);
        assert_eq!(c.snapshot().task_groups[0].used, 1);

        // Released once more, then dropped: both counts return to 0.
        job.release_container();
        job.release_container();
        drop(job);
        let occupancy = c.snapshot();
        assert_eq!(
            (occupancy.shared.used, occupancy.task_groups[0].used),
            (0, 0)
        );
    }

    #[tokio::test]
    async fn a_withdrawn_reacquire_keeps_the_group_slot_and_leaks_no_container_slot() {
        let c = containers(1, 1);
        c.set_task_group("etl", 1);
        let mut job = grant_now(
            &c,
            request(
                1,
                ExecutionClass::ExternalJob,
                priority::MEDIUM,
                Some("etl"),
            ),
        );
        job.release_container();
        let holder = grant_now(&c, short(2));
        {
            // Withdrawn while waiting.
            let mut back = pin!(job.reacquire_container());
            assert!(
                back.as_mut()
                    .poll(&mut Context::from_waker(Waker::noop()))
                    .is_pending()
            );
        }
        let occupancy = c.snapshot();
        assert!(occupancy.waiting.is_empty());
        assert_eq!(occupancy.task_groups[0].used, 1);
        {
            // Granted inside the holder's drop, but the future is gone before it sees it.
            let mut back = pin!(job.reacquire_container());
            assert!(
                back.as_mut()
                    .poll(&mut Context::from_waker(Waker::noop()))
                    .is_pending()
            );
            drop(holder);
            assert_eq!(c.snapshot().shared.used, 1);
        }
        assert!(!job.holds_container());
        let occupancy = c.snapshot();
        assert_eq!(
            (occupancy.shared.used, occupancy.task_groups[0].used),
            (0, 1)
        );
        drop(job);
        assert_eq!(c.snapshot().task_groups[0].used, 0);
    }

    #[test]
    #[should_panic(expected = "the exclusive container needs at least 1 slot")]
    fn an_empty_container_is_refused() {
        containers(1, 0);
    }
}
