//! Global schedules: kept at the proxy, each fire time sent once to the cluster the
//! route picks at that moment.
//!
//! A fire goes into the outbox under a key made of the schedule and its fire time
//! before the schedule's next fire is moved on by compare-and-set: a crash between the
//! two finds the same key again (nothing twice), and two proxies on one store cannot
//! both move the same fire.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use shoal_api::ApiError;
use shoal_api_types::schedules::{ScheduleBody, ScheduleView};
use shoal_schedule::CronSchedule;

use crate::Proxy;
use crate::outbox::Envelope;
use crate::store::ScheduleRow;

/// The user fires are written to the outbox and audit log as.
const SCHEDULER_USER: &str = "proxy-scheduler";

/// How many upcoming fire times a schedule view lists.
const UPCOMING: usize = 5;

fn cron_of(row: &ScheduleRow) -> Result<CronSchedule, String> {
    CronSchedule::new(&row.cron, &row.timezone).map_err(|e| e.to_string())
}

fn next_after(cron: &CronSchedule, ms: i64) -> Option<i64> {
    shoal_scheduler::next_fire(cron, ms)
}

/// The API's view of a global schedule.
pub fn view(row: &ScheduleRow) -> ScheduleView {
    let mut upcoming = Vec::new();
    if let (Ok(cron), Some(first)) = (cron_of(row), row.next_fire_at) {
        let mut at = Some(first);
        while let Some(t) = at {
            if upcoming.len() == UPCOMING {
                break;
            }
            if let Some(dt) = DateTime::<Utc>::from_timestamp_millis(t) {
                upcoming.push(dt.with_timezone(&cron.zone()).to_rfc3339());
            }
            at = next_after(&cron, t);
        }
    }
    ScheduleView {
        definition_id: 0,
        workflow: row.workflow.clone(),
        cron: row.cron.clone(),
        timezone: row.timezone.clone(),
        start_at: None,
        end_at: None,
        missed: "skip".into(),
        online: row.online,
        params: serde_json::from_str(&row.params).unwrap_or_default(),
        last_fire_at: row.last_fire_at,
        next_fire_at: row.next_fire_at,
        upcoming,
        description: shoal_schedule::describe(&row.cron),
        cluster: None,
    }
}

impl Proxy {
    /// Create or replace the global schedule of `project`/`workflow`.
    pub async fn put_schedule(
        &self,
        project: &str,
        workflow: &str,
        body: &ScheduleBody,
    ) -> Result<ScheduleView, ApiError> {
        if body.start.is_some() || body.end.is_some() {
            return Err(ApiError::BadRequest(
                "start, end: a global schedule has no window; set one on a cluster's own schedule instead".into(),
            ));
        }
        if let Some(m) = &body.missed
            && m != "skip"
        {
            return Err(ApiError::BadRequest(format!(
                "missed: `{m}`: a global schedule skips the fires it missed (only `skip`)"
            )));
        }
        let zone = body.timezone.clone().unwrap_or_else(|| "UTC".into());
        let cron = CronSchedule::new(&body.cron, &zone)
            .map_err(|e| ApiError::BadRequest(format!("cron: {e}")))?;
        let online = body.online.unwrap_or(true);
        let row = ScheduleRow {
            project: project.to_owned(),
            workflow: workflow.to_owned(),
            cron: cron.expression().to_owned(),
            timezone: zone,
            params: serde_json::to_string(&body.params).unwrap_or_else(|_| "{}".into()),
            online,
            next_fire_at: online
                .then(|| next_after(&cron, shoal_store::now_ms()))
                .flatten(),
            last_fire_at: None,
        };
        self.store().put_schedule(&row).await?;
        Ok(view(&row))
    }

    /// Put a global schedule online (fires resume from now) or offline.
    pub async fn switch_schedule(
        &self,
        project: &str,
        workflow: &str,
        online: bool,
    ) -> Result<ScheduleView, ApiError> {
        let mut row = self
            .store()
            .schedule(project, workflow)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("workflow `{workflow}` has no schedule")))?;
        let cron = cron_of(&row).map_err(ApiError::Internal)?;
        row.online = online;
        row.next_fire_at = online
            .then(|| next_after(&cron, shoal_store::now_ms()))
            .flatten();
        self.store().put_schedule(&row).await?;
        Ok(view(&row))
    }

    /// Fire every global schedule that is due; returns the fires sent to the outbox.
    pub async fn fire_due(&self) -> Result<usize, shoal_store::StoreError> {
        let now = shoal_store::now_ms();
        let mut fired = 0;
        for row in self.store().schedules(None).await? {
            let Some(due) = row.next_fire_at.filter(|t| row.online && *t <= now) else {
                continue;
            };
            let cron = match cron_of(&row) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(project = %row.project, workflow = %row.workflow, %e, "a stored schedule does not parse");
                    continue;
                }
            };
            let key = format!("fire-{}-{}-{due}", row.project, row.workflow);
            let params: BTreeMap<String, String> =
                serde_json::from_str(&row.params).unwrap_or_default();
            let envelope = Envelope {
                cluster: None,
                run: serde_json::json!({"params": params, "schedule_time": due}),
            };
            let body = serde_json::to_string(&envelope).expect("an envelope serialises");
            self.store()
                .insert_run(&key, &row.project, &row.workflow, &body, SCHEDULER_USER)
                .await?;
            // Fires missed while the proxy was down are skipped: the next one is the
            // first after now, not after the missed one.
            let next = next_after(&cron, due.max(now));
            if self
                .store()
                .advance_schedule(&row.project, &row.workflow, due, next)
                .await?
            {
                fired += 1;
                tracing::info!(project = %row.project, workflow = %row.workflow, fire = due, run = %key, "global schedule fired");
            }
        }
        if fired > 0 {
            self.inner.outbox_wake.notify_one();
        }
        Ok(fired)
    }
}

/// The schedule loop.
pub async fn run(proxy: Proxy) {
    loop {
        if let Err(e) = proxy.fire_due().await {
            tracing::error!(%e, "firing global schedules");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
