//! The cron loop: fires stored schedules on time, at most once per fire.
//!
//! Each schedule row keeps its `next_fire_at`. A fire is taken by moving that column to
//! the following fire with a compare-and-set, so a fire is launched once even if two
//! loops look at the same row. A fire found later than `misfire_threshold` was missed
//! (the server was down) and the schedule's policy decides: skip it, or run once for the
//! latest missed fire.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use shoal_master::RunRequest;
use shoal_schedule::{CronSchedule, MissedFires, ScheduleError};
use shoal_store::{ScheduleRow, now_ms};
use tokio::sync::Notify;

use crate::{Launch, Launcher, SchedulerError};

#[derive(Debug, Clone)]
pub struct CronLoopConfig {
    /// A fire found later than this counts as missed (Quartz's misfire threshold).
    pub misfire_threshold: Duration,
    /// Longest sleep between looks at the schedules table.
    pub max_sleep: Duration,
}

impl Default for CronLoopConfig {
    fn default() -> Self {
        Self {
            misfire_threshold: Duration::from_secs(60),
            max_sleep: Duration::from_secs(1),
        }
    }
}

fn utc(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The parsed schedule of a row, with its window.
pub fn cron_of(row: &ScheduleRow) -> Result<CronSchedule, ScheduleError> {
    CronSchedule::new(&row.cron, &row.timezone)?.between(row.start_at.map(utc), row.end_at.map(utc))
}

/// The first fire of `cron` strictly after `after_ms`, in ms.
pub fn next_fire(cron: &CronSchedule, after_ms: i64) -> Option<i64> {
    cron.next_after(utc(after_ms)).map(|t| t.timestamp_millis())
}

/// Fires schedules. Cheap to clone.
#[derive(Clone)]
pub struct CronLoop {
    launcher: Launcher,
    config: CronLoopConfig,
    wake: Arc<Notify>,
}

impl CronLoop {
    pub fn new(launcher: Launcher, config: CronLoopConfig) -> Self {
        Self {
            launcher,
            config,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Look again now: a schedule was created or changed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Fire everything due at `now_ms`. Returns what each fire launched.
    pub async fn fire_due(&self, now: i64) -> Result<Vec<(i64, Launch)>, SchedulerError> {
        let store = self.launcher.master().store();
        let mut launched = Vec::new();
        for row in store.schedules().await? {
            let Some(due) = row.next_fire_at.filter(|t| row.online && *t <= now) else {
                continue;
            };
            let cron = match cron_of(&row) {
                Ok(c) => c,
                Err(e) => {
                    // The API validates schedules, so only a hand-edited row gets here;
                    // take it offline rather than fail every tick.
                    tracing::error!(schedule = row.id, "schedule cannot be parsed: {e}");
                    store
                        .set_schedule_online(row.definition_id, false, None)
                        .await?;
                    continue;
                }
            };
            let late = now - due > self.config.misfire_threshold.as_millis() as i64;
            let fire_time = if late {
                let policy = if row.missed == "run-once" {
                    MissedFires::RunOnce
                } else {
                    MissedFires::Skip
                };
                let last = row.last_fire_at.unwrap_or(due - 1);
                cron.missed(utc(last.min(due - 1)), utc(now), policy)
                    .map(|t| t.timestamp_millis())
            } else {
                Some(due)
            };
            let next = next_fire(&cron, now.max(due));
            if !store.advance_schedule(row.id, due, now, next).await? {
                continue;
            }
            let Some(fire_time) = fire_time else {
                tracing::info!(schedule = row.id, "skipping fires missed while down");
                continue;
            };
            let Some(definition) = store.definition_row_by_id(row.definition_id).await? else {
                continue;
            };
            if !definition.released {
                tracing::warn!(
                    definition = definition.id,
                    "schedule fired for an offline definition; not run"
                );
                continue;
            }
            let params: BTreeMap<String, String> =
                serde_json::from_str(&row.params).unwrap_or_default();
            let mut run = RunRequest::new(definition.id, definition.current_version);
            run.schedule_time = Some(fire_time);
            run.startup_params = params;
            match self.launcher.launch(&definition, run).await {
                Ok(launch) => launched.push((row.id, launch)),
                Err(e) => tracing::error!(schedule = row.id, "scheduled run failed to start: {e}"),
            }
        }
        Ok(launched)
    }

    /// How long until the earliest online fire, capped by `max_sleep`.
    async fn sleep_for(&self) -> Duration {
        let earliest = match self.launcher.master().store().schedules().await {
            Ok(rows) => rows
                .iter()
                .filter(|r| r.online)
                .filter_map(|r| r.next_fire_at)
                .min(),
            Err(_) => None,
        };
        // The clock is read after the query, so its time is not slept on top.
        let now = now_ms();
        let cap = self.config.max_sleep;
        match earliest {
            Some(t) if t <= now => Duration::ZERO,
            Some(t) => Duration::from_millis((t - now) as u64).min(cap),
            None => cap,
        }
    }

    /// Fire schedules until the handle is aborted.
    pub fn run(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = this.fire_due(now_ms()).await {
                    tracing::warn!("firing schedules failed: {e}");
                }
                let pause = this.sleep_for().await;
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = this.wake.notified() => {}
                }
            }
        })
    }
}
