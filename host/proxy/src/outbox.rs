//! Runs, exactly once: a run the proxy accepts is in its outbox before it answers, and
//! is forwarded with its key as `Idempotency-Key` until a cluster acknowledges it.
//!
//! The cluster a run is sent to is stored before it is sent, and a run sticks to that
//! cluster while the cluster is reachable: an answer lost on the way back is retried
//! there, where the key finds the run already started. Only when that cluster is lost
//! does the run move on to the next eligible one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use shoal_api::ApiError;
use shoal_api::auth::Caller;
use shoal_api_types::clusters::ClusterHealth;
use shoal_api_types::definitions::{DefinitionDetail, LaunchView};

use crate::Proxy;
use crate::clusters::{Cluster, qualify};
use crate::routing::{Needs, candidates};
use crate::store::RunRow;
use crate::upstream::{Body, CallError};

/// What the outbox keeps of a run request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// The cluster the caller named, if any (`?cluster=` on the run request).
    #[serde(default)]
    pub cluster: Option<String>,
    /// The run body, forwarded as it came.
    pub run: serde_json::Value,
}

/// What became of one forward.
#[derive(Debug)]
pub enum Forward {
    /// A cluster acknowledged it.
    Placed(LaunchView),
    /// Not yet; the outbox tries again.
    Pending(String),
    /// A cluster refused it for good (the run is marked failed).
    Refused(CallError),
}

/// How long a definition's needs are reused before they are asked again.
const NEEDS_TTL: Duration = Duration::from_secs(5);

/// Definitions' needs by (project, workflow), with when they were read.
pub(crate) type NeedsCache = Mutex<HashMap<(String, String), (Instant, Needs)>>;

/// A fresh run key: 128 random bits.
pub fn new_key() -> String {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).expect("the OS random source works");
    format!("run-{}", hex::encode(b))
}

impl Proxy {
    /// Accept a run: into the outbox, then one forward attempt before answering. With
    /// `client_key` (the caller's own `Idempotency-Key`) a retried request finds the
    /// run it made before.
    pub async fn accept_run(
        &self,
        caller: &Caller,
        project: &str,
        workflow: &str,
        envelope: Envelope,
        client_key: Option<&str>,
    ) -> Result<(StatusCode, LaunchView), ApiError> {
        let key = match client_key {
            // Keys are the caller's: one user's key cannot find another's run.
            Some(k) => format!("user-{}-{k}", caller.user_id),
            None => new_key(),
        };
        let body =
            serde_json::to_string(&envelope).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let fresh = self
            .store()
            .insert_run(&key, project, workflow, &body, &caller.name)
            .await?;
        let row = self
            .store()
            .run(&key)
            .await?
            .ok_or_else(|| ApiError::Internal(format!("run {key} vanished from the outbox")))?;
        if !fresh && (row.project != project || row.workflow != workflow) {
            return Err(ApiError::Conflict(format!(
                "Idempotency-Key was used for a run of {}/{}",
                row.project, row.workflow
            )));
        }
        let outcome = match row.state.as_str() {
            "placed" => Forward::Placed(self.placed_view(&row)),
            "failed" => {
                return Err(ApiError::Conflict(format!(
                    "this run was refused: {}",
                    row.last_error
                )));
            }
            _ => self.forward_once(&row).await,
        };
        let accepted = |_why: String| {
            (
                StatusCode::ACCEPTED,
                LaunchView {
                    outcome: "accepted".into(),
                    instance: None,
                    queued: None,
                    cluster: row.cluster.clone(),
                    run: Some(key.clone()),
                },
            )
        };
        match outcome {
            Forward::Placed(view) if fresh => Ok((StatusCode::CREATED, view)),
            Forward::Placed(view) => Ok((StatusCode::OK, view)),
            Forward::Pending(why) => {
                tracing::info!(run = %key, %why, "run accepted, not forwarded yet");
                self.inner.outbox_wake.notify_one();
                Ok(accepted(why))
            }
            Forward::Refused(e) => Err(e.into()),
        }
    }

    /// The answer for a placed run, with proxy ids.
    pub fn placed_view(&self, row: &RunRow) -> LaunchView {
        let number = row
            .cluster
            .as_deref()
            .and_then(|c| self.clusters().get(c))
            .map(|c| c.number);
        LaunchView {
            outcome: row.outcome.clone().unwrap_or_else(|| "started".into()),
            instance: row
                .remote_instance
                .zip(number)
                .map(|(id, n)| qualify(n, id)),
            queued: row.remote_queued,
            cluster: row.cluster.clone(),
            run: Some(row.key.clone()),
        }
    }

    /// Forward `row` unless another task is forwarding it right now.
    async fn forward_once(&self, row: &RunRow) -> Forward {
        {
            let mut busy = self.inner.in_flight.lock().expect("in-flight lock");
            if !busy.insert(row.key.clone()) {
                return Forward::Pending("being forwarded".into());
            }
        }
        let out = self.forward(row).await;
        self.inner
            .in_flight
            .lock()
            .expect("in-flight lock")
            .remove(&row.key);
        out
    }

    async fn forward(&self, row: &RunRow) -> Forward {
        let store = self.store();
        let envelope: Envelope = match serde_json::from_str(&row.body) {
            Ok(e) => e,
            Err(e) => {
                let why = format!("the stored run body is unreadable: {e}");
                let _ = store.run_failed(&row.key, &why).await;
                return Forward::Pending(why);
            }
        };
        let pending = |why: String| async move {
            let _ = store.run_attempt_failed(&row.key, &why).await;
            Forward::Pending(why)
        };
        let target = match self.target(row, &envelope).await {
            Ok(t) => t,
            Err(why) => return pending(why).await,
        };
        if row.cluster.as_deref() != Some(target.name())
            && let Err(e) = store.aim_run(&row.key, target.name()).await
        {
            return pending(format!("cannot record the run's cluster: {e}")).await;
        }
        let path = format!(
            "/projects/{}/definitions/{}/runs",
            seg(&row.project),
            seg(&row.workflow)
        );
        let action = format!("POST {path}");
        let answer = self
            .send_with(
                &target,
                Method::POST,
                &path,
                Body::Json(envelope.run.clone()),
                |r| {
                    r.header(shoal_api_types::IDEMPOTENCY_KEY, &row.key)
                        .timeout(self.config().forward_timeout())
                },
            )
            .await;
        let answer = match answer {
            Ok(resp) => {
                let status = resp.status();
                crate::upstream::read_bounded(resp, 1 << 20)
                    .await
                    .and_then(|b| {
                        serde_json::from_slice::<LaunchView>(&b).map_err(|e| e.to_string())
                    })
                    .map(|v| (status, v))
                    .map_err(|e| CallError::Unreachable {
                        cluster: target.name().to_owned(),
                        reason: format!("answer cut off: {e}"),
                    })
            }
            Err(e) => Err(e),
        };
        match answer {
            Ok((status, launch)) => {
                let result = match (launch.instance, launch.queued) {
                    (Some(i), _) => {
                        format!("{} instance {}", launch.outcome, qualify(target.number, i))
                    }
                    (None, Some(q)) => format!("queued as {q}"),
                    _ => launch.outcome.clone(),
                };
                let _ = store
                    .run_placed(
                        &row.key,
                        target.name(),
                        &launch.outcome,
                        launch.instance,
                        launch.queued,
                    )
                    .await;
                self.audit(
                    &row.user,
                    &action,
                    Some(target.name()),
                    i64::from(status.as_u16()),
                    &result,
                )
                .await;
                Forward::Placed(LaunchView {
                    outcome: launch.outcome,
                    instance: launch.instance.map(|i| qualify(target.number, i)),
                    queued: launch.queued,
                    cluster: Some(target.name().to_owned()),
                    run: Some(row.key.clone()),
                })
            }
            Err(e) => {
                self.audit(
                    &row.user,
                    &action,
                    Some(target.name()),
                    i64::from(e.status()),
                    &e.to_string(),
                )
                .await;
                let permanent = matches!(&e, CallError::Answer { status, .. }
                    if (400..500).contains(status) && ![404, 408, 429].contains(status));
                if matches!(&e, CallError::Answer { status: 404, .. }) {
                    // Not copied there yet (or deleted): copy it if the proxy holds it,
                    // and try again; a definition only clusters know stays refused.
                    if self
                        .copy_definition(&target, &row.project, &row.workflow)
                        .await
                        .unwrap_or(false)
                    {
                        return pending(format!(
                            "copied {} to {} first",
                            row.workflow,
                            target.name()
                        ))
                        .await;
                    }
                    let _ = store.run_failed(&row.key, &e.to_string()).await;
                    return Forward::Refused(e);
                }
                if permanent {
                    let _ = store.run_failed(&row.key, &e.to_string()).await;
                    return Forward::Refused(e);
                }
                pending(e.to_string()).await
            }
        }
    }

    /// The cluster to send `row` to now.
    async fn target(&self, row: &RunRow, envelope: &Envelope) -> Result<Arc<Cluster>, String> {
        if let Some(name) = &row.cluster
            && let Some(c) = self.clusters().get(name)
        {
            if c.health() != ClusterHealth::Unreachable {
                return Ok(c.clone());
            }
            if envelope.cluster.is_some() {
                return Err(format!(
                    "cluster {name} is unreachable; the run waits for it"
                ));
            }
        }
        let needs = self.needs(&row.project, &row.workflow).await?;
        let route = self.route(&row.project, &row.workflow);
        let exclude: Vec<String> = row.cluster.iter().cloned().collect();
        let list = candidates(
            self.clusters(),
            route.as_ref(),
            &needs,
            &row.key,
            envelope.cluster.as_deref(),
            &exclude,
        )?;
        Ok(list[0].clone())
    }

    /// What a definition needs of a cluster: from the proxy's own copy when it holds
    /// one, else from a cluster that has it.
    pub async fn needs(&self, project: &str, workflow: &str) -> Result<Needs, String> {
        let key = (project.to_owned(), workflow.to_owned());
        if let Some((at, n)) = self.inner.needs.lock().expect("needs cache").get(&key)
            && at.elapsed() < NEEDS_TTL
        {
            return Ok(n.clone());
        }
        let needs = match self.own_definition(project, workflow).await {
            Ok(Some((spec, pins))) => Needs::of_spec(&spec, pins),
            Ok(None) => self.needs_from_clusters(project, workflow).await?,
            Err(e) => return Err(format!("the proxy's store: {e}")),
        };
        self.inner
            .needs
            .lock()
            .expect("needs cache")
            .insert(key, (Instant::now(), needs.clone()));
        Ok(needs)
    }

    async fn needs_from_clusters(&self, project: &str, workflow: &str) -> Result<Needs, String> {
        let path = format!("/projects/{}/definitions/{}", seg(project), seg(workflow));
        let mut why = Vec::new();
        for c in self.clusters().all() {
            if c.health() == ClusterHealth::Unreachable {
                continue;
            }
            match self
                .call::<DefinitionDetail>(c, Method::GET, &path, Body::None)
                .await
            {
                Ok((_, d)) => return Ok(Needs::of_spec(&d.spec, d.pins)),
                Err(e) => why.push(e.to_string()),
            }
        }
        Err(if why.is_empty() {
            "no reachable cluster to ask for the definition".into()
        } else {
            format!("no cluster knows {project}/{workflow}: {}", why.join("; "))
        })
    }

    /// The proxy's current copy of a definition: spec and plugin pins.
    pub async fn own_definition(
        &self,
        project: &str,
        workflow: &str,
    ) -> Result<Option<(serde_json::Value, BTreeMap<String, String>)>, shoal_store::StoreError>
    {
        let store = self.store().store();
        let Some(d) = store.definition_row(project, workflow).await? else {
            return Ok(None);
        };
        let Some(spec) = store.definition_by_id(d.id, d.current_version).await? else {
            return Ok(None);
        };
        let pins = store.plugin_pins(d.id).await?.into_iter().collect();
        Ok(Some((spec.spec, pins)))
    }

    pub(crate) async fn audit(
        &self,
        user: &str,
        action: &str,
        cluster: Option<&str>,
        status: i64,
        result: &str,
    ) {
        if let Err(e) = self
            .store()
            .audit(user, action, cluster, status, result)
            .await
        {
            tracing::error!(%e, action, "cannot write the audit log");
        }
    }
}

/// The forwarder: every pending run, again and again, until each is placed or refused.
pub async fn run(proxy: Proxy) {
    loop {
        tokio::select! {
            _ = proxy.inner.outbox_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let pending = match proxy.store().pending_runs(200).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(%e, "reading the outbox");
                continue;
            }
        };
        // A run accepted just now is being forwarded by the request that accepted it;
        // the loop takes it only if that first attempt never happened (a crash).
        let grace = proxy.config().forward_timeout().as_millis() as i64 + 1000;
        let now = shoal_store::now_ms();
        for row in pending {
            if row.attempts == 0 && row.created_at > now - grace {
                continue;
            }
            match proxy.forward_once(&row).await {
                Forward::Placed(v) => {
                    tracing::info!(run = %row.key, cluster = ?v.cluster, instance = ?v.instance, "run forwarded");
                }
                Forward::Pending(why) => tracing::debug!(run = %row.key, %why, "run still pending"),
                Forward::Refused(e) => tracing::warn!(run = %row.key, %e, "run refused"),
            }
        }
    }
}

pub use shoal_api_types::seg;
