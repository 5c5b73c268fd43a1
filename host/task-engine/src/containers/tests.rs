//! The containers' service order, task groups and cancellation, on a paused clock.

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
