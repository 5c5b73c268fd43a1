//! The in-process [`TaskExecutorClient`]: the master and the TaskEngine share a process
//! (`shoal run`, the all-in-one `shoal server`, and a master's own logic tasks).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use shoal_model::{LogLevel, LogStream, TaskLog};
use shoal_protocol::{
    BoxFuture, ClientError, ControlDone, ControlRequest, HandleSink, KeyedEvent, LiveHandle,
    RunningTask, TakeOver, TaskEvent, TaskEventSink, TaskExecutorClient, TaskKey, TaskRequest,
    TaskTypeInfo, TaskUpdate,
};
use tokio_util::sync::CancellationToken;

use crate::executor::TaskEngine;

/// Runs every task on this process's [`TaskEngine`]. Updates reach the sink in the
/// order the executor produced them: `deliver` takes an update when called, and its
/// future only waits for the acknowledgement.
pub struct LocalExecutor {
    engine: TaskEngine,
    host: String,
    sink: OnceLock<Arc<dyn TaskEventSink>>,
    running: Arc<Mutex<HashMap<TaskKey, Attempt>>>,
    /// Ship each attempt's log along its updates ([`Self::shipping_logs`]).
    ship_logs: bool,
}

struct Attempt {
    task_type: String,
    cancel: CancellationToken,
    handle: LiveHandle,
    task: tokio::task::JoinHandle<()>,
}

impl LocalExecutor {
    /// `host` is this node's name, as task rows record it.
    pub fn new(engine: TaskEngine, host: impl Into<String>) -> Self {
        Self {
            engine,
            host: host.into(),
            sink: OnceLock::new(),
            running: Default::default(),
            ship_logs: false,
        }
    }

    /// Ship each attempt's log to the store along with its updates
    /// ([`crate::log_shipping`]): for a node whose disk other nodes cannot read (a
    /// master's own logic tasks in distributed mode).
    pub fn shipping_logs(mut self) -> Self {
        self.ship_logs = true;
        self
    }

    pub fn engine(&self) -> &TaskEngine {
        &self.engine
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// How many attempts execute here now.
    pub fn load(&self) -> usize {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn sink(&self) -> Result<Arc<dyn TaskEventSink>, ClientError> {
        self.sink
            .get()
            .cloned()
            .ok_or_else(|| ClientError::Refused {
                host: self.host.clone(),
                why: "no master is connected to this executor".into(),
            })
    }

    fn refuse_other_host(&self, host: &str) -> Result<(), ClientError> {
        if host.is_empty() || host == self.host {
            Ok(())
        } else {
            Err(ClientError::Unreachable {
                host: host.to_owned(),
                why: format!("only {} is reachable in process", self.host),
            })
        }
    }
}

impl TaskExecutorClient for LocalExecutor {
    fn connect(&self, sink: Arc<dyn TaskEventSink>) {
        let sink: Arc<dyn TaskEventSink> = if self.ship_logs {
            Arc::new(crate::log_shipping::ShipLogs::new(
                sink,
                crate::log_shipping::LogShipper::default(),
            ))
        } else {
            sink
        };
        let _ = self.sink.set(sink);
    }

    fn place(
        &self,
        _task_type: &str,
        _worker_group: Option<&str>,
    ) -> Result<Option<String>, ClientError> {
        // One node: the containers queue what does not fit yet.
        Ok(Some(self.host.clone()))
    }

    fn dispatch(&self, mut request: TaskRequest) -> BoxFuture<'_, Result<(), ClientError>> {
        Box::pin(async move {
            self.refuse_other_host(&request.host)?;
            let sink = self.sink()?;
            let key = request.key();
            let host = self.host.clone();
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            if running.contains_key(&key) {
                // A repeated dispatch of an attempt that runs already changes nothing.
                return Ok(());
            }
            let cancel = CancellationToken::new();
            let handle_seen = LiveHandle::new(request.attach_to.clone());
            let seq = Arc::new(std::sync::atomic::AtomicU32::new(0));
            let event = {
                let (seq, host) = (seq.clone(), host.clone());
                move |update| KeyedEvent {
                    key,
                    seq: seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                    host: host.clone(),
                    update,
                }
            };
            request.live_handle = Some(handle_seen.clone());
            if request.persist_handle.is_none() {
                let (sink, event, seen) = (sink.clone(), event.clone(), handle_seen.clone());
                request.persist_handle = Some(HandleSink::new(move |handle: String| {
                    seen.set(handle.clone());
                    let ack = sink.deliver(event(TaskUpdate::Handle { handle }));
                    async move {
                        // Not acknowledged: the master lost the instance, and whoever
                        // owns it next re-attaches through the handle it finds stored
                        // (or runs the attempt again if it never was).
                        let _ = ack.await;
                    }
                }));
            }
            let engine = self.engine.clone();
            let table = self.running.clone();
            let token = cancel.clone();
            let task_type = request.task_type.clone();
            let task = tokio::spawn(async move {
                let mut dispatched = None;
                // On the heap: the attempt's future (the plugin call's, wasmtime's) is
                // large, and a spawned future is moved several times on its way into
                // the runtime; boxed, only a pointer moves (68k instructions of copying
                // per task before, by callgrind).
                let report = Box::pin(engine.execute(request, token, |e| match e {
                    TaskEvent::Dispatched {
                        version, log_path, ..
                    } => dispatched = Some((version.clone(), log_path.display().to_string())),
                    TaskEvent::Running => {
                        let (plugin_version, log_path) = dispatched.take().unzip();
                        drop(sink.deliver(event(TaskUpdate::Running {
                            plugin_version,
                            log_path,
                        })));
                    }
                    _ => {}
                }))
                .await;
                table.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                drop(sink.deliver(event(TaskUpdate::Ended {
                    report: Box::new(report),
                })));
            });
            running.insert(
                key,
                Attempt {
                    task_type,
                    cancel,
                    handle: handle_seen,
                    task,
                },
            );
            Ok(())
        })
    }

    fn kill<'a>(&'a self, host: &'a str, key: TaskKey) -> BoxFuture<'a, Result<(), ClientError>> {
        Box::pin(async move {
            self.refuse_other_host(host)?;
            if let Some(a) = self
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
            {
                a.cancel.cancel();
            }
            Ok(())
        })
    }

    fn pause<'a>(&'a self, host: &'a str, key: TaskKey) -> BoxFuture<'a, Result<(), ClientError>> {
        Box::pin(async move {
            self.refuse_other_host(host)?;
            let attempt = self
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            if let Some(a) = attempt {
                // Dropping the executor drops its plugin call's store, which kills the
                // processes it started; an external job is only let go (never
                // cancelled here), its handle being stored.
                a.task.abort();
                let _ = a.task.await;
            }
            Ok(())
        })
    }

    fn take_over<'a>(
        &'a self,
        host: &'a str,
        key: TaskKey,
        _owner_generation: u64,
    ) -> BoxFuture<'a, Result<TakeOver, ClientError>> {
        Box::pin(async move {
            self.refuse_other_host(host)?;
            let running = self
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(&key);
            Ok(if running {
                TakeOver::Running
            } else {
                TakeOver::Unknown
            })
        })
    }

    fn running<'a>(
        &'a self,
        host: &'a str,
    ) -> BoxFuture<'a, Result<Vec<RunningTask>, ClientError>> {
        Box::pin(async move {
            self.refuse_other_host(host)?;
            let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            let mut list: Vec<RunningTask> = running
                .iter()
                .map(|(key, a)| RunningTask {
                    key: *key,
                    task_type: a.task_type.clone(),
                    handle: a.handle.get(),
                })
                .collect();
            list.sort_by_key(|t| t.key);
            Ok(list)
        })
    }

    fn control<'a>(
        &'a self,
        host: &'a str,
        request: ControlRequest,
    ) -> BoxFuture<'a, Result<Result<ControlDone, String>, ClientError>> {
        Box::pin(async move {
            self.refuse_other_host(host)?;
            let key = request.task.key();
            let live = self
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .map(|a| (a.handle.clone(), a.cancel.clone()));
            let Some((live, cancel)) = live else {
                return Ok(self.engine.control(&request, TaskLog::discard()).await);
            };
            // The attempt runs here: its polls wait while the action runs, then see
            // the job as the action left it; the outcome goes into its log.
            let _turn = live.turn.lock().await;
            let log = live.log();
            let action = &request.action;
            log.info(
                LogStream::Host,
                &format!("action `{action}` on the job, asked by an operator"),
            );
            let done = self.engine.control(&request, log.clone()).await;
            match &done {
                Ok(d) => log.info(
                    LogStream::Host,
                    &format!("action `{action}`: {}", d.message),
                ),
                Err(why) => log.write(
                    LogStream::Host,
                    LogLevel::Warn,
                    &format!("action `{action}` failed: {why}"),
                ),
            }
            if let Ok(d) = &done {
                if let Some(handle) = &d.new_handle {
                    live.set(handle.clone());
                }
                // The action ended the job: the attempt ends as killed, as a stop by an
                // operator ends it, before a poll could report the job as finished.
                if d.job_ended {
                    cancel.cancel();
                }
            }
            Ok(done)
        })
    }

    fn task_type<'a>(
        &'a self,
        task_type: &'a str,
        version: Option<&'a semver::Version>,
    ) -> BoxFuture<'a, Option<TaskTypeInfo>> {
        Box::pin(async move {
            let plugin = self
                .engine
                .registry()
                .resolve(task_type, version)
                .await
                .ok()?;
            Some(TaskTypeInfo {
                trigger: plugin.manifest.flow.trigger,
            })
        })
    }
}
