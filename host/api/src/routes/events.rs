//! Live updates: the master's progress feed as server-sent events, filtered to what the
//! caller may read, so a UI follows runs without polling every table.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Deserialize;
use shoal_master::Progress;
use tokio_stream::Stream;
use utoipa::IntoParams;

use crate::ApiState;
use crate::auth::{Caller, Level};
use crate::error::{ApiError, ApiResult};
pub use shoal_api_types::instances::LiveEvent;

#[derive(Debug, Deserialize, IntoParams)]
pub struct EventsQuery {
    /// Only this project's changes (required unless you are an admin).
    pub project: Option<String>,
    /// Only this instance's changes.
    pub instance: Option<i64>,
}

/// How many instances' projects one stream remembers before it forgets them all.
const PROJECT_CACHE: usize = 10_000;

/// Changes of workflow and task states as they happen (`text/event-stream`; each
/// event's name is its `kind`). The events of the instances this server's master runs.
#[utoipa::path(get, path = "/api/v1/events", tag = "instances", params(EventsQuery),
    responses((status = 200, description = "server-sent events, each a LiveEvent as JSON", content_type = "text/event-stream", body = LiveEvent),
              (status = 400, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody)))]
pub async fn events(
    State(state): State<ApiState>,
    caller: Caller,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    match &q.project {
        Some(p) => caller.require(&state, p, Level::Read).await?,
        None if caller.admin => {}
        None => {
            return Err(ApiError::BadRequest(
                "project: required (only admins follow every project)".into(),
            ));
        }
    }
    let mut feed = state.master().subscribe();
    let store = state.store().clone();
    let stream = async_stream(move |tx| async move {
        let mut projects: HashMap<i64, Option<String>> = HashMap::new();
        loop {
            // A client that went away ends this task at once, not at the next change.
            let next = tokio::select! {
                next = feed.recv() => next,
                _ = tx.closed() => return,
            };
            let event = match next {
                Ok(p) => p,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    if tx.send(LiveEvent::Lagged { missed }).await.is_err() {
                        return;
                    }
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let live = match event {
                Progress::Workflow { instance, state } => LiveEvent::Workflow {
                    instance,
                    state: state.to_string(),
                },
                Progress::Task {
                    instance,
                    task,
                    task_instance_id,
                    attempt,
                    state,
                    message,
                } => LiveEvent::Task {
                    instance,
                    task,
                    task_instance_id,
                    attempt,
                    state: state.to_string(),
                    message,
                },
                Progress::Released { .. } | Progress::TimeoutWarning { .. } => continue,
            };
            let instance = match &live {
                LiveEvent::Workflow { instance, .. } | LiveEvent::Task { instance, .. } => {
                    *instance
                }
                LiveEvent::Lagged { .. } => continue,
            };
            if q.instance.is_some_and(|i| i != instance) {
                continue;
            }
            if let Some(want) = &q.project {
                if projects.len() >= PROJECT_CACHE {
                    projects.clear();
                }
                let project = match projects.get(&instance) {
                    Some(p) => p.clone(),
                    None => {
                        let p = project_of(&store, instance).await;
                        projects.insert(instance, p.clone());
                        p
                    }
                };
                if project.as_deref() != Some(want.as_str()) {
                    continue;
                }
            }
            if tx.send(live).await.is_err() {
                return;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

async fn project_of(store: &shoal_store::Store, instance: i64) -> Option<String> {
    let row = store.workflow_instance(instance).await.ok()??;
    store
        .definition_row_by_id(row.definition_id)
        .await
        .ok()?
        .map(|d| d.project)
}

/// A stream fed by a task through a small bounded channel: a slow client holds at most
/// this many events here (and the master's feed tells it when it lagged).
fn async_stream<F, Fut>(body: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<LiveEvent>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<LiveEvent>(256);
    tokio::spawn(body(tx));
    tokio_stream::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), |e| {
        let name = match &e {
            LiveEvent::Workflow { .. } => "workflow",
            LiveEvent::Task { .. } => "task",
            LiveEvent::Lagged { .. } => "lagged",
        };
        Ok(Event::default()
            .event(name)
            .data(serde_json::to_string(&e).unwrap_or_default()))
    })
}
