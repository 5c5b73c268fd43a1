//! The launcher: one door for every run the server starts, applying run modes and
//! draining the durable queues of serial runs and backfills.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shoal_master::{Master, Operation, Progress, RunRequest, StartTasks};
use shoal_store::{DefinitionRow, QueuedRunRow};
use tokio::sync::{Mutex, broadcast};

use crate::{RunMode, SchedulerError};

/// A run as it waits in the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedRequest {
    pub version: i64,
    #[serde(default)]
    pub startup_params: BTreeMap<String, String>,
    pub schedule_time: Option<i64>,
    #[serde(default)]
    pub start_tasks: StartTasks,
}

impl QueuedRequest {
    pub fn from_run(run: &RunRequest) -> Self {
        Self {
            version: run.version,
            startup_params: run.startup_params.clone(),
            schedule_time: run.schedule_time,
            start_tasks: run.start_tasks.clone(),
        }
    }

    fn into_run(self, definition_id: i64) -> RunRequest {
        RunRequest {
            definition_id,
            version: self.version,
            startup_params: self.startup_params,
            schedule_time: self.schedule_time,
            start_tasks: self.start_tasks,
            parent_task_instance_id: None,
            // A queued run keeps its key on its queue row, which learns its instance.
            idempotency_key: None,
        }
    }
}

/// What became of a launch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Launch {
    Started {
        instance: i64,
    },
    /// Waiting in the queue (serial wait, or a backfill beyond its limit).
    Queued {
        queued: i64,
    },
    /// Dropped: serial discard while another run is unfinished.
    Discarded,
}

/// Starts runs. Cheap to clone.
#[derive(Clone)]
pub struct Launcher {
    master: Master,
    /// One launch or queue pass at a time: the check "is another run unfinished?" and
    /// the start that depends on it must not interleave with another launch's.
    gate: Arc<Mutex<()>>,
}

fn serial_group(definition_id: i64) -> String {
    format!("serial:{definition_id}")
}

impl Launcher {
    pub fn new(master: Master) -> Self {
        Self {
            master,
            gate: Arc::new(Mutex::new(())),
        }
    }

    pub fn master(&self) -> &Master {
        &self.master
    }

    /// Start `run` of `definition` as its run mode says.
    pub async fn launch(
        &self,
        definition: &DefinitionRow,
        run: RunRequest,
    ) -> Result<Launch, SchedulerError> {
        let mode: RunMode =
            definition
                .run_mode
                .parse()
                .map_err(|_| SchedulerError::BadRunMode {
                    id: definition.id,
                    mode: definition.run_mode.clone(),
                })?;
        if mode == RunMode::Parallel {
            // Nothing to check against other runs, so nothing to serialise either.
            let instance = self.master.start(run).await?;
            return Ok(Launch::Started { instance });
        }
        let store = self.master.store();
        let _gate = self.gate.lock().await;
        let busy = store.unfinished_count(definition.id).await? > 0;
        match mode {
            RunMode::Parallel => unreachable!("started above"),
            RunMode::SerialDiscard if busy => return Ok(Launch::Discarded),
            RunMode::SerialDiscard => {}
            RunMode::SerialWait => {
                let group = serial_group(definition.id);
                let waiting = store
                    .queued_runs(&group)
                    .await?
                    .iter()
                    .any(|q| q.state == "waiting");
                if busy || waiting {
                    let request = serde_json::to_string(&QueuedRequest::from_run(&run))
                        .expect("a queued request serialises");
                    let queued = store
                        .enqueue_run(
                            definition.id,
                            &group,
                            1,
                            &request,
                            run.idempotency_key.as_deref(),
                        )
                        .await?;
                    return Ok(Launch::Queued { queued });
                }
            }
            RunMode::SerialPriority => {
                for older in store.unfinished_of(definition.id).await? {
                    tracing::info!(
                        instance = older.id,
                        "serial priority: stopping the older run for a new one"
                    );
                    match self.master.operate(older.id, Operation::Stop).await {
                        Ok(()) => {}
                        // It finished meanwhile: nothing to stop.
                        Err(shoal_master::MasterError::Illegal(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        let instance = self.master.start(run).await?;
        Ok(Launch::Started { instance })
    }

    /// Queue a backfill: one run per business time, at most `max_running` at once, oldest
    /// first. Returns the queue's group name and the queued ids.
    pub async fn backfill(
        &self,
        definition: &DefinitionRow,
        version: i64,
        times: &[i64],
        startup_params: &BTreeMap<String, String>,
        max_running: i64,
    ) -> Result<(String, Vec<i64>), SchedulerError> {
        let group = format!(
            "backfill:{}:{}",
            definition.id,
            shoal_store::now_ms().to_string() + &format!("-{}", rand_suffix())
        );
        let store = self.master.store();
        let mut ids = Vec::with_capacity(times.len());
        for time in times {
            let request = QueuedRequest {
                version,
                startup_params: startup_params.clone(),
                schedule_time: Some(*time),
                start_tasks: StartTasks::All,
            };
            let request = serde_json::to_string(&request).expect("a queued request serialises");
            ids.push(
                store
                    .enqueue_run(definition.id, &group, max_running.max(1), &request, None)
                    .await?,
            );
        }
        self.pump().await?;
        Ok((group, ids))
    }

    /// Start every waiting run whose queue has room. Returns the started instances.
    pub async fn pump(&self) -> Result<Vec<i64>, SchedulerError> {
        let store = self.master.store();
        let _gate = self.gate.lock().await;
        let mut by_group: BTreeMap<String, Vec<QueuedRunRow>> = BTreeMap::new();
        for row in store.waiting_runs().await? {
            by_group.entry(row.run_group.clone()).or_default().push(row);
        }
        let mut started = Vec::new();
        for (group, rows) in by_group {
            // The gate above keeps this process's pumps apart; this keeps other masters'.
            let hold = store.hold_group(&group).await?;
            let running = if group.starts_with("serial:") {
                store.unfinished_count(rows[0].definition_id).await?
            } else {
                store.running_in_group(&group).await?
            };
            let room = (rows[0].max_running - running).max(0) as usize;
            for row in rows.into_iter().take(room) {
                let request: QueuedRequest = serde_json::from_str(&row.request).map_err(|e| {
                    SchedulerError::BadQueuedRun {
                        id: row.id,
                        message: e.to_string(),
                    }
                })?;
                // Claim before starting: a crash in between loses this run rather than
                // running it twice.
                if !store.claim_run(row.id, "started").await? {
                    continue;
                }
                let instance = self
                    .master
                    .start(request.into_run(row.definition_id))
                    .await?;
                store.set_queued_instance(row.id, instance).await?;
                started.push(instance);
            }
            hold.release().await?;
        }
        Ok(started)
    }

    /// Keep the queues moving: pump whenever an instance settles, and every `every` in
    /// case a change was missed. Runs until the handle is aborted.
    pub fn drive(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let launcher = self.clone();
        let mut progress = self.master.subscribe();
        tokio::spawn(async move {
            loop {
                if let Err(e) = launcher.pump().await {
                    tracing::warn!("starting queued runs failed: {e}");
                }
                let deadline = tokio::time::sleep(every);
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        _ = &mut deadline => break,
                        msg = progress.recv() => match msg {
                            Ok(Progress::Released { .. }) => {
                                // One pump serves every run that settled meanwhile: at
                                // a thousand runs a second, a read each would not.
                                while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) =
                                    progress.try_recv()
                                {}
                                break;
                            }
                            Ok(_) => {}
                            Err(broadcast::error::RecvError::Lagged(_)) => break,
                            Err(broadcast::error::RecvError::Closed) => return,
                        },
                    }
                }
            }
        })
    }
}

/// A few random-ish hex digits so two backfills queued in the same millisecond differ.
fn rand_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(shoal_store::now_ms() as u64);
    format!("{:06x}", h.finish() & 0xff_ffff)
}
