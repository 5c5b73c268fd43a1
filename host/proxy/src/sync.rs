//! Definitions applied at the proxy are copied to every cluster their route can pick;
//! a cluster holding another version (or none, or another online state) is found on
//! each sync pass and repaired from the proxy's copy.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use shoal_api_types::clusters::ClusterHealth;
use shoal_api_types::definitions::{DefinitionDetail, Saved};

use crate::Proxy;
use crate::clusters::Cluster;
use crate::outbox::seg;
use crate::routing::{Needs, candidates};
use crate::upstream::{Body, CallError};

/// The system user the sync pass writes the audit log as.
const SYNC_USER: &str = "proxy-sync";

impl Proxy {
    /// The clusters a definition's route can pick (eligible and reachable), in no
    /// particular order: the ones that must hold a copy.
    pub fn reach(&self, project: &str, workflow: &str, needs: &Needs) -> Vec<Arc<Cluster>> {
        let route = self.route(project, workflow);
        let mut all =
            candidates(self.clusters(), route.as_ref(), needs, "", None, &[]).unwrap_or_default();
        // A weighted or least-loaded route can pick any of them; a pinned one with a
        // failover list only those. `candidates` already says exactly that.
        all.sort_by(|a, b| a.name().cmp(b.name()));
        all
    }

    /// Copy the proxy's current version of a definition (and its online state) to
    /// `cluster`. False when the proxy holds no such definition.
    pub async fn copy_definition(
        &self,
        cluster: &Cluster,
        project: &str,
        workflow: &str,
    ) -> Result<bool, CallError> {
        self.copy_as(cluster, project, workflow, SYNC_USER)
            .await
            .map(|s| s.is_some())
    }

    /// [`Proxy::copy_definition`] on behalf of `user` (for the audit log).
    pub async fn copy_as(
        &self,
        cluster: &Cluster,
        project: &str,
        workflow: &str,
        user: &str,
    ) -> Result<Option<Saved>, CallError> {
        let store = self.store().store();
        let internal = |e: shoal_store::StoreError| CallError::Answer {
            cluster: cluster.name().to_owned(),
            status: 500,
            code: "internal".into(),
            message: e.to_string(),
        };
        let Some(row) = store
            .definition_row(project, workflow)
            .await
            .map_err(internal)?
        else {
            return Ok(None);
        };
        let Some(def) = store
            .definition_by_id(row.id, row.current_version)
            .await
            .map_err(internal)?
        else {
            return Ok(None);
        };
        self.ensure_project(cluster, project, user).await?;
        let path = format!("/projects/{}/definitions", seg(project));
        let content_type = if def.source.trim_start().starts_with('{') {
            "application/json"
        } else {
            "application/yaml"
        };
        let result = self
            .call::<Saved>(
                cluster,
                Method::POST,
                &path,
                Body::Text(def.source.clone(), content_type.into()),
            )
            .await;
        let (status, result_text) = match &result {
            Ok((s, saved)) => (i64::from(s.as_u16()), format!("version {}", saved.version)),
            Err(e) => (i64::from(e.status()), e.to_string()),
        };
        self.audit(
            user,
            &format!("POST {path} ({workflow})"),
            Some(cluster.name()),
            status,
            &result_text,
        )
        .await;
        let (_, saved) = result?;
        let release = if row.released { "online" } else { "offline" };
        let path = format!(
            "/projects/{}/definitions/{}/{release}",
            seg(project),
            seg(workflow)
        );
        self.send_audited(user, cluster, Method::POST, &path, Body::None, "ok")
            .await?;
        Ok(Some(saved))
    }

    /// Make sure `project` exists on `cluster`, with the proxy's tenancy for it.
    async fn ensure_project(
        &self,
        cluster: &Cluster,
        project: &str,
        user: &str,
    ) -> Result<(), CallError> {
        let path = format!("/projects/{}", seg(project));
        match self.send(cluster, Method::GET, &path, Body::None).await {
            Ok(_) => return Ok(()),
            Err(CallError::Answer { status: 404, .. }) => {}
            Err(e) => return Err(e),
        }
        let own = self.store().store().project(project).await.ok().flatten();
        let description = own
            .as_ref()
            .map(|p| p.description.clone())
            .unwrap_or_default();
        let r = self
            .send_audited(
                user,
                cluster,
                Method::POST,
                "/projects",
                Body::Json(serde_json::json!({"name": project, "description": description})),
                project,
            )
            .await;
        match r {
            Ok(_) | Err(CallError::Answer { status: 409, .. }) => {}
            Err(e) => return Err(e),
        }
        if own.as_ref().is_some_and(|p| p.allow_process != 0) {
            self.send_audited(
                user,
                cluster,
                Method::PATCH,
                &format!("{path}/tenancy"),
                Body::Json(serde_json::json!({"allow_process": true})),
                "allow_process",
            )
            .await?;
        }
        Ok(())
    }

    /// One pass: every definition the proxy holds, on every cluster that must hold it.
    /// Returns how many copies were repaired.
    pub async fn sync_once(&self) -> usize {
        let store = self.store().store();
        let mut repaired = 0;
        let Ok(projects) = store.projects().await else {
            return 0;
        };
        for p in projects {
            let Ok(defs) = store.definitions(&p.name).await else {
                continue;
            };
            for d in defs {
                let Ok(Some((spec, pins))) = self.own_definition(&p.name, &d.name).await else {
                    continue;
                };
                let needs = Needs::of_spec(&spec, pins);
                for c in self.reach(&p.name, &d.name, &needs) {
                    if c.health() == ClusterHealth::Unreachable {
                        continue;
                    }
                    let path = format!("/projects/{}/definitions/{}", seg(&p.name), seg(&d.name));
                    let drift = match self
                        .call::<DefinitionDetail>(&c, Method::GET, &path, Body::None)
                        .await
                    {
                        Ok((_, theirs)) => {
                            theirs.spec != spec || theirs.definition.online != d.released
                        }
                        Err(CallError::Answer { status: 404, .. }) => true,
                        Err(_) => false,
                    };
                    if drift {
                        tracing::info!(cluster = c.name(), project = %p.name, workflow = %d.name, "repairing a drifted definition");
                        if self.copy_definition(&c, &p.name, &d.name).await.is_ok() {
                            repaired += 1;
                        }
                    }
                }
            }
        }
        repaired
    }
}

/// The sync loop: a pass every five health intervals.
pub async fn run(proxy: Proxy) {
    let every = proxy.config().health_interval() * 5;
    loop {
        tokio::time::sleep(every.max(Duration::from_secs(1))).await;
        proxy.sync_once().await;
    }
}
