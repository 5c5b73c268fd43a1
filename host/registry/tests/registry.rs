//! The registry's lease protocol on real databases: a fresh SQLite file and a fresh
//! PostgreSQL database per test (see `shoal_store::testing`; without a server the
//! PostgreSQL half is skipped loudly, and fails under `CI=true`).

use std::sync::Arc;
use std::time::Duration;

use shoal_registry::{
    LeaseLoss, LeaseState, NodeInfo, NodeLease, NodeLoad, NodeRole, NodeState, Registry,
    RegistryConfig, RegistryError,
};
use shoal_store::Store;
use shoal_store::testing::on_both;
use tokio::sync::Barrier;

/// Long enough that nothing in a test outlives it by accident.
fn patient(store: &Store) -> Registry {
    Registry::new(store.clone(), RegistryConfig::default())
}

/// A lease of 150 ms: short enough to outwait, long enough that a node that just
/// heartbeat is within it even on a loaded machine.
fn hasty(store: &Store) -> Registry {
    Registry::new(
        store.clone(),
        RegistryConfig {
            heartbeat: Duration::from_millis(50),
            lease: Duration::from_millis(150),
        },
    )
}

fn worker(id: &str) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        role: NodeRole::Worker,
        address: format!("http://{id}:7070"),
        groups: vec!["default".into(), "gpu".into()],
        slots: 8,
        shared_slots: 6,
        exclusive_slots: 2,
    }
}

fn master(id: &str) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        role: NodeRole::Master,
        address: format!("http://{id}:7071"),
        groups: vec![],
        slots: 0,
        shared_slots: 0,
        exclusive_slots: 0,
    }
}

/// Past a hasty registry's lease.
async fn go_silent() {
    tokio::time::sleep(Duration::from_millis(250)).await;
}

#[tokio::test]
async fn registrations_count_generations() {
    on_both(|store, _| async move {
        let registry = patient(&store);
        let first = registry.register(worker("w1")).await.unwrap();
        assert_eq!(
            first,
            NodeLease {
                id: "w1".into(),
                generation: 1
            }
        );
        registry
            .heartbeat(
                &first,
                NodeLoad {
                    slots_used: 3,
                    cpu_load: 0.5,
                    memory_used: 0.25,
                },
            )
            .await
            .unwrap();
        let second = registry.register(worker("w1")).await.unwrap();
        assert_eq!(second.generation, 2);
        assert_eq!(registry.register(master("m1")).await.unwrap().generation, 1);

        let row = registry.node("w1").await.unwrap().unwrap();
        assert_eq!(row.generation, 2);
        assert_eq!(row.state, NodeState::Alive);
        assert_eq!(row.role, NodeRole::Worker);
        assert_eq!(row.address, "http://w1:7070");
        assert_eq!(row.groups, vec!["default".to_string(), "gpu".to_string()]);
        assert_eq!(
            (row.slots, row.shared_slots, row.exclusive_slots),
            (8, 6, 2)
        );
        assert_eq!(
            (row.slots_used, row.cpu_load, row.memory_used),
            (0, 0.0, 0.0),
            "a new generation starts with no load"
        );
        assert!(!row.failover_pending);
        assert!((0..5_000).contains(&row.heartbeat_age_ms()), "{row:?}");
        let ids: Vec<String> = registry
            .nodes()
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.id)
            .collect();
        assert_eq!(ids, ["m1", "w1"]);

        let mut bad = master("m2");
        bad.groups = vec!["default".into()];
        assert!(matches!(
            registry.register(bad).await,
            Err(RegistryError::Invalid(_))
        ));
        let mut bad = worker("");
        bad.id = " ".into();
        assert!(matches!(
            registry.register(bad).await,
            Err(RegistryError::Invalid(_))
        ));
        let slow = Registry::new(
            store.clone(),
            RegistryConfig {
                heartbeat: Duration::from_secs(6),
                lease: Duration::from_secs(10),
            },
        );
        assert!(matches!(
            slow.register(worker("w2")).await,
            Err(RegistryError::Invalid(_))
        ));
        assert!(registry.node("m2").await.unwrap().is_none());
        assert!(registry.node("w2").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn a_stale_lease_is_fenced() {
    on_both(|store, _| async move {
        let registry = patient(&store);
        let old = registry.register(worker("w1")).await.unwrap();
        let new = registry.register(worker("w1")).await.unwrap();
        let err = registry
            .heartbeat(&old, NodeLoad::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, RegistryError::Fenced { id, generation } if id == "w1" && *generation == 1),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("register again as a new generation"),
            "{err}"
        );
        let load = NodeLoad {
            slots_used: 5,
            cpu_load: 1.75,
            memory_used: 0.5,
        };
        registry.heartbeat(&new, load).await.unwrap();
        let row = registry.node("w1").await.unwrap().unwrap();
        assert_eq!(
            (row.slots_used, row.cpu_load, row.memory_used),
            (5, 1.75, 0.5)
        );
        // A dead generation is fenced too, and a node never registered.
        go_silent().await;
        assert!(hasty(&store).declare_dead(&row).await.unwrap());
        assert!(matches!(
            registry.heartbeat(&new, load).await,
            Err(RegistryError::Fenced { .. })
        ));
        let nobody = NodeLease {
            id: "w9".into(),
            generation: 1,
        };
        assert!(matches!(
            registry.heartbeat(&nobody, load).await,
            Err(RegistryError::Fenced { .. })
        ));
    })
    .await;
}

/// Several masters (each with its own connection pool, as separate processes would
/// have) race to declare the same silent node dead, 20 times over: each time exactly
/// one wins, and the row moves on by exactly one generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_concurrent_declaration_wins() {
    on_both(|store, url| async move {
        const CONTENDERS: usize = 4;
        let mut registries = vec![hasty(&store)];
        let mut extra_stores = Vec::new();
        for _ in 1..CONTENDERS {
            let other = Store::open(&url).await.unwrap();
            registries.push(hasty(&other));
            extra_stores.push(other);
        }
        for round in 1..=20 {
            let lease = registries[0].register(worker("w1")).await.unwrap();
            assert_eq!(lease.generation, 2 * round - 1);
            go_silent().await;
            let row = Arc::new(registries[0].node("w1").await.unwrap().unwrap());
            let barrier = Arc::new(Barrier::new(CONTENDERS));
            let racers: Vec<_> = registries
                .iter()
                .map(|registry| {
                    let (registry, row, barrier) = (registry.clone(), row.clone(), barrier.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        registry.declare_dead(&row).await.unwrap()
                    })
                })
                .collect();
            let mut wins = 0;
            for racer in racers {
                wins += usize::from(racer.await.unwrap());
            }
            assert_eq!(wins, 1, "round {round}");
            let after = registries[0].node("w1").await.unwrap().unwrap();
            assert_eq!(after.state, NodeState::Dead);
            assert_eq!(after.generation, lease.generation + 1);
            assert!(after.failover_pending);
            assert_eq!(after.failover_gen, lease.generation + 1);
        }
        for other in extra_stores {
            other.close().await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_node_within_its_lease_cannot_be_declared_dead() {
    on_both(|store, _| async move {
        let registry = patient(&store);
        registry.register(worker("w1")).await.unwrap();
        let row = registry.node("w1").await.unwrap().unwrap();
        assert!(!registry.declare_dead(&row).await.unwrap());
        let after = registry.node("w1").await.unwrap().unwrap();
        assert_eq!((after.state, after.generation), (NodeState::Alive, 1));
        assert!(!after.failover_pending);

        // Silent when read, but it heartbeat since: the compare-and-set sees the fresh
        // heartbeat, not the stale row.
        let hasty = hasty(&store);
        let lease = NodeLease {
            id: "w1".into(),
            generation: 1,
        };
        go_silent().await;
        let stale = registry.node("w1").await.unwrap().unwrap();
        registry
            .heartbeat(&lease, NodeLoad::default())
            .await
            .unwrap();
        assert!(!hasty.declare_dead(&stale).await.unwrap());
        // Silent, but registered again since the row was read: a new generation, and
        // the declaration was about the old one.
        go_silent().await;
        let stale = registry.node("w1").await.unwrap().unwrap();
        registry.register(worker("w1")).await.unwrap();
        go_silent().await;
        assert!(!hasty.declare_dead(&stale).await.unwrap());
        let current = registry.node("w1").await.unwrap().unwrap();
        assert_eq!((current.state, current.generation), (NodeState::Alive, 2));
        assert!(hasty.declare_dead(&current).await.unwrap());
        // Dead stays dead: nobody declares it again.
        let dead = registry.node("w1").await.unwrap().unwrap();
        go_silent().await;
        assert!(!hasty.declare_dead(&dead).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn live_lists_alive_nodes_within_the_lease() {
    on_both(|store, _| async move {
        let registry = patient(&store);
        let hasty = hasty(&store);
        let w1 = registry.register(worker("w1")).await.unwrap();
        registry.register(worker("w2")).await.unwrap();
        registry.register(worker("w3")).await.unwrap();
        registry.register(master("m1")).await.unwrap();
        go_silent().await;
        registry.heartbeat(&w1, NodeLoad::default()).await.unwrap();
        let w3 = registry.node("w3").await.unwrap().unwrap();
        assert!(hasty.declare_dead(&w3).await.unwrap());

        let ids = |rows: Vec<shoal_registry::NodeRow>| -> Vec<String> {
            rows.into_iter().map(|r| r.id).collect()
        };
        assert_eq!(
            ids(registry.live(NodeRole::Worker).await.unwrap()),
            ["w1", "w2"]
        );
        assert_eq!(ids(registry.live(NodeRole::Master).await.unwrap()), ["m1"]);
        // w2 and m1 are past the hasty lease; w1 heartbeat just now.
        assert_eq!(ids(hasty.live(NodeRole::Worker).await.unwrap()), ["w1"]);
        assert!(hasty.live(NodeRole::Master).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn registering_after_death_keeps_the_failover_pending() {
    on_both(|store, _| async move {
        let registry = patient(&store);
        let hasty = hasty(&store);
        registry.register(worker("w1")).await.unwrap();
        go_silent().await;
        let row = registry.node("w1").await.unwrap().unwrap();
        assert!(hasty.declare_dead(&row).await.unwrap());
        let back = registry.register(worker("w1")).await.unwrap();
        assert_eq!(back.generation, 3);
        let row = registry.node("w1").await.unwrap().unwrap();
        assert_eq!(row.state, NodeState::Alive);
        assert!(row.failover_pending, "its death's failover still happens");
        assert_eq!(row.failover_gen, 2);
        // Registering once more before the failover ran does not lose it either.
        registry.register(worker("w1")).await.unwrap();
        let pending = registry.pending_failovers(NodeRole::Worker).await.unwrap();
        assert_eq!(
            pending
                .iter()
                .map(|r| (r.id.as_str(), r.failover_gen))
                .collect::<Vec<_>>(),
            [("w1", 2)]
        );
        assert!(
            registry
                .pending_failovers(NodeRole::Master)
                .await
                .unwrap()
                .is_empty()
        );
        // A node that never died has nothing pending.
        registry.register(worker("w2")).await.unwrap();
        registry.register(worker("w2")).await.unwrap();
        assert!(!registry.node("w2").await.unwrap().unwrap().failover_pending);
    })
    .await;
}

#[tokio::test]
async fn failover_done_is_a_compare_and_set_on_the_dead_generation() {
    on_both(|store, _| async move {
        let registry = patient(&store);
        let hasty = hasty(&store);
        registry.register(master("m1")).await.unwrap();
        assert!(
            !registry.failover_done("m1", 1).await.unwrap(),
            "nothing pending"
        );
        go_silent().await;
        let row = registry.node("m1").await.unwrap().unwrap();
        assert!(hasty.declare_dead(&row).await.unwrap());
        assert!(
            !registry.failover_done("m1", 1).await.unwrap(),
            "not that generation"
        );
        assert!(registry.failover_done("m1", 2).await.unwrap());
        assert!(!registry.failover_done("m1", 2).await.unwrap(), "done once");
        assert!(
            registry
                .pending_failovers(NodeRole::Master)
                .await
                .unwrap()
                .is_empty()
        );

        // Dies, comes back, dies again before the first failover was done: the newer
        // failover replaces the older, whose runner can no longer close it.
        registry.register(master("m1")).await.unwrap(); // generation 3
        go_silent().await;
        let row = registry.node("m1").await.unwrap().unwrap();
        assert!(hasty.declare_dead(&row).await.unwrap()); // 4, pending for 4
        registry.register(master("m1")).await.unwrap(); // 5
        go_silent().await;
        let row = registry.node("m1").await.unwrap().unwrap();
        assert!(hasty.declare_dead(&row).await.unwrap()); // 6, pending for 6
        assert!(!registry.failover_done("m1", 4).await.unwrap());
        let row = registry.node("m1").await.unwrap().unwrap();
        assert!(row.failover_pending);
        assert_eq!(row.failover_gen, 6);
        assert!(registry.failover_done("m1", 6).await.unwrap());
        assert!(!registry.node("m1").await.unwrap().unwrap().failover_pending);
    })
    .await;
}

fn quick(store: &Store) -> Registry {
    Registry::new(
        store.clone(),
        RegistryConfig {
            heartbeat: Duration::from_millis(50),
            lease: Duration::from_millis(600),
        },
    )
}

/// The heartbeat loop keeps a node alive past many leases and reports its load; when
/// a newer registration replaces its generation, it reports the loss and ends.
#[tokio::test]
async fn the_heartbeat_loop_keeps_the_lease_and_reports_fencing() {
    on_both(|store, _| async move {
        let registry = quick(&store);
        let lease = registry.register(worker("w1")).await.unwrap();
        let (task, mut state) = registry.spawn_heartbeat(lease.clone(), || NodeLoad {
            slots_used: 2,
            cpu_load: 0.25,
            memory_used: 0.125,
        });
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(*state.borrow(), LeaseState::Held);
        let row = registry.node("w1").await.unwrap().unwrap();
        assert_eq!((row.state, row.generation), (NodeState::Alive, 1));
        assert!(row.heartbeat_age_ms() < 600, "{row:?}");
        assert_eq!(
            (row.slots_used, row.cpu_load, row.memory_used),
            (2, 0.25, 0.125)
        );
        assert!(!registry.declare_dead(&row).await.unwrap());

        registry.register(worker("w1")).await.unwrap();
        tokio::time::timeout(
            Duration::from_secs(2),
            state.wait_for(|s| *s != LeaseState::Held),
        )
        .await
        .expect("the loss is reported within a few heartbeats")
        .unwrap();
        assert_eq!(*state.borrow(), LeaseState::Lost(LeaseLoss::Fenced));
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("the loop ends with its lease")
            .unwrap();
    })
    .await;
}

/// A store that stops answering: heartbeats fail and are retried, and one lease after
/// the last good heartbeat the node reports its lease lost (not earlier).
#[tokio::test]
async fn an_unreachable_store_loses_the_lease_after_one_lease() {
    on_both(|store, url| async move {
        let own = Store::open(&url).await.unwrap();
        let registry = quick(&own);
        let lease = registry.register(worker("w1")).await.unwrap();
        let (task, mut state) = registry.spawn_heartbeat(lease, NodeLoad::default);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let last_good = patient(&store).node("w1").await.unwrap().unwrap();
        let cut = tokio::time::Instant::now();
        own.close().await;
        tokio::time::timeout(
            Duration::from_secs(3),
            state.wait_for(|s| *s != LeaseState::Held),
        )
        .await
        .expect("the loss is reported")
        .unwrap();
        let after = cut.elapsed();
        assert_eq!(*state.borrow(), LeaseState::Lost(LeaseLoss::Expired));
        // The last good heartbeat was at most one interval (50 ms) before the cut.
        assert!(
            after >= Duration::from_millis(500) && after <= Duration::from_millis(1_200),
            "lost {after:?} after the store went away (lease 600 ms)"
        );
        task.await.unwrap();
        // Nobody declared it dead yet: the row is as the last heartbeat left it.
        let row = patient(&store).node("w1").await.unwrap().unwrap();
        assert_eq!((row.state, row.generation), (NodeState::Alive, 1));
        assert!(row.heartbeat_at >= last_good.heartbeat_at);
    })
    .await;
}
