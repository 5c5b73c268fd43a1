//! The scheduler below the HTTP API: fires missed while the server was down (skip or run
//! once), fires taken exactly once, and queued runs that survive a restart of the
//! launcher. Real master, real store (SQLite and PostgreSQL), real noop/shell tasks.

use shoal_master::RunRequest;
use shoal_master::state::WorkflowState as W;
use shoal_scheduler::{CronLoop, CronLoopConfig, Launch, Launcher};
use shoal_store::{NewSchedule, Store};
use shoal_tests::flow::Flow;

macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_and_postgres() {
                shoal_store::testing::on_both(|store, _url| super::$name(store)).await
            }
        }
    )*};
}

on_both_databases!(
    missed_fires_are_skipped_or_run_once,
    a_fire_is_taken_once,
    queued_runs_survive_a_new_launcher,
    two_launchers_pumping_at_once_keep_a_serial_queue_serial,
);

const NOOP: &str = "workflow:\n  name: ticker\ntasks:\n  - name: a\n    task_type: noop\n";

async fn online(flow: &Flow, yaml: &str) -> shoal_store::DefinitionRow {
    let (id, _) = flow.publish(yaml).await;
    flow.store().set_released(id, true).await.unwrap();
    flow.store()
        .definition_row_by_id(id)
        .await
        .unwrap()
        .unwrap()
}

fn schedule(definition_id: i64, missed: &str, next_fire_at: i64) -> NewSchedule {
    NewSchedule {
        definition_id,
        // Every minute, on the minute.
        cron: "0 * * * * ?".into(),
        timezone: "UTC".into(),
        start_at: None,
        end_at: None,
        missed: missed.into(),
        online: true,
        params: r#"{"who":"cron"}"#.into(),
        next_fire_at: Some(next_fire_at),
    }
}

const MINUTE: i64 = 60_000;

async fn missed_fires_are_skipped_or_run_once(store: Store) {
    let flow = Flow::new(store);
    let launcher = Launcher::new(flow.master.clone());
    let cron = CronLoop::new(launcher, CronLoopConfig::default());
    let now = shoal_store::now_ms();
    let minute = now - now % MINUTE;
    // The server was down for ten minutes: the fire it was waiting for is long past.
    let due = minute - 10 * MINUTE;

    let skip = online(&flow, NOOP).await;
    flow.store()
        .put_schedule(&schedule(skip.id, "skip", due))
        .await
        .unwrap();
    let launched = cron.fire_due(now).await.unwrap();
    assert!(launched.is_empty(), "skip must not run: {launched:?}");
    let row = flow.store().schedule_of(skip.id).await.unwrap().unwrap();
    assert!(
        row.next_fire_at.unwrap() > now,
        "the schedule moves on to the next fire from now"
    );
    assert_eq!(row.next_fire_at.unwrap() % MINUTE, 0);

    let once = online(&flow, &NOOP.replace("ticker", "ticker-once")).await;
    flow.store()
        .put_schedule(&schedule(once.id, "run-once", due))
        .await
        .unwrap();
    let launched = cron.fire_due(now).await.unwrap();
    assert_eq!(
        launched.len(),
        1,
        "run-once runs exactly once: {launched:?}"
    );
    let Launch::Started { instance } = launched[0].1 else {
        panic!("expected a started run, got {:?}", launched[0].1);
    };
    assert_eq!(flow.wait(instance).await, W::Succeeded);
    let row = flow
        .store()
        .workflow_instance(instance)
        .await
        .unwrap()
        .unwrap();
    // For the latest missed fire, with the schedule's params.
    assert_eq!(row.schedule_time, minute);
    assert_eq!(row.startup_params["who"], "cron");
    // Nothing more is due until the next minute.
    assert!(cron.fire_due(now).await.unwrap().is_empty());
}

async fn a_fire_is_taken_once(store: Store) {
    let flow = Flow::new(store);
    let d = online(&flow, NOOP).await;
    let now = shoal_store::now_ms();
    let due = now - now % MINUTE;
    flow.store()
        .put_schedule(&schedule(d.id, "skip", due))
        .await
        .unwrap();
    // Two loops (two servers sharing a database, or a retry) look at the same fire.
    let a = CronLoop::new(
        Launcher::new(flow.master.clone()),
        CronLoopConfig::default(),
    );
    let b = CronLoop::new(
        Launcher::new(flow.master.clone()),
        CronLoopConfig::default(),
    );
    let (ra, rb) = tokio::join!(a.fire_due(now), b.fire_due(now));
    let total = ra.unwrap().len() + rb.unwrap().len();
    assert_eq!(total, 1, "one fire, one run");
    let rows = flow
        .store()
        .find_instances(
            &shoal_store::InstanceFilter {
                definition_id: Some(d.id),
                ..Default::default()
            },
            10,
            0,
        )
        .await
        .unwrap()
        .rows;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].schedule_time, due);
}

/// An online workflow of one one-second task, in run mode `serial-wait`.
async fn serial_slow(flow: &Flow) -> shoal_store::DefinitionRow {
    let slow = "workflow:\n  name: slow\ntasks:\n  - name: nap\n    task_type: Shell\n    command: sleep 1\n";
    let d = online(flow, slow).await;
    flow.store()
        .set_run_mode(d.id, "serial-wait")
        .await
        .unwrap();
    flow.store()
        .definition_row_by_id(d.id)
        .await
        .unwrap()
        .unwrap()
}

async fn queued_runs_survive_a_new_launcher(store: Store) {
    let flow = Flow::new(store);
    let d = serial_slow(&flow).await;

    let first = Launcher::new(flow.master.clone());
    let Launch::Started { instance: running } = first
        .launch(&d, RunRequest::new(d.id, d.current_version))
        .await
        .unwrap()
    else {
        panic!("the first run starts");
    };
    let Launch::Queued { .. } = first
        .launch(&d, RunRequest::new(d.id, d.current_version))
        .await
        .unwrap()
    else {
        panic!("the second waits");
    };
    // Nothing starts while the first runs, however often the queue is pumped.
    assert!(first.pump().await.unwrap().is_empty());
    assert_eq!(flow.wait(running).await, W::Succeeded);

    // A launcher that knows nothing of the first one (a restarted server) finds the
    // queued run in the store and starts it.
    drop(first);
    let second = Launcher::new(flow.master.clone());
    let started = second.pump().await.unwrap();
    assert_eq!(started.len(), 1, "the queued run starts once");
    assert!(second.pump().await.unwrap().is_empty(), "and only once");
    assert_eq!(flow.wait(started[0]).await, W::Succeeded);
    let queue = flow
        .store()
        .queued_runs(&format!("serial:{}", d.id))
        .await
        .unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].state, "started");
    assert_eq!(queue[0].instance_id, Some(started[0]));
}

/// Two launchers that know nothing of each other (two masters on one database) pump a
/// serial queue at the same moment: one run starts, not one per launcher.
async fn two_launchers_pumping_at_once_keep_a_serial_queue_serial(store: Store) {
    let flow = Flow::new(store);
    let d = serial_slow(&flow).await;
    let a = Launcher::new(flow.master.clone());
    let b = Launcher::new(flow.master.clone());
    let Launch::Started { instance: first } = a
        .launch(&d, RunRequest::new(d.id, d.current_version))
        .await
        .unwrap()
    else {
        panic!("the first run starts");
    };
    for _ in 0..3 {
        let Launch::Queued { .. } = a
            .launch(&d, RunRequest::new(d.id, d.current_version))
            .await
            .unwrap()
        else {
            panic!("the others wait");
        };
    }
    assert_eq!(flow.wait(first).await, W::Succeeded);
    let (ra, rb) = tokio::join!(a.pump(), b.pump());
    let started: Vec<i64> = ra.unwrap().into_iter().chain(rb.unwrap()).collect();
    assert_eq!(
        started.len(),
        1,
        "a serial queue starts one run at a time: {started:?}"
    );
    assert_eq!(
        flow.store().unfinished_count(d.id).await.unwrap(),
        1,
        "one run of the serial workflow at a time"
    );
    assert_eq!(flow.wait(started[0]).await, W::Succeeded);
}
