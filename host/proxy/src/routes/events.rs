//! Live updates through the proxy: each reachable cluster's `GET /api/v1/events` for
//! the project, merged into one server-sent event stream with proxy ids.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt as _};
use reqwest::Method;
use serde::Deserialize;
use shoal_api::ApiError;
use shoal_api::auth::{Caller, Level};
use shoal_api_types::clusters::ClusterHealth;
use shoal_api_types::instances::LiveEvent;

use super::ApiResult;
use crate::Proxy;
use crate::clusters::qualify;
use crate::outbox::seg;
use crate::upstream::Body;

#[derive(Debug, Deserialize)]
pub(super) struct EventsQuery {
    project: String,
}

/// The most one event may hold before the stream from its cluster is given up.
const MAX_EVENT: usize = 64 * 1024;

pub(super) async fn events(
    State(p): State<Proxy>,
    caller: Caller,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    caller
        .require_in(p.store().store(), &q.project, Level::Read)
        .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<LiveEvent>(256);
    let path = format!("/events?project={}", seg(&q.project));
    let mut followed = 0;
    for c in p.clusters().all() {
        if c.health() == ClusterHealth::Unreachable {
            continue;
        }
        let resp = p
            .send_with(c, Method::GET, &path, Body::None, |r| {
                r.timeout(Duration::from_secs(7 * 24 * 3600))
            })
            .await;
        let Ok(resp) = resp else { continue };
        followed += 1;
        let (tx, number) = (tx.clone(), c.number);
        tokio::spawn(async move {
            let mut body = resp.bytes_stream();
            let mut buf = String::new();
            loop {
                let chunk = tokio::select! {
                    chunk = body.next() => chunk,
                    _ = tx.closed() => return,
                };
                let Some(Ok(chunk)) = chunk else { return };
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let block: String = buf.drain(..end + 2).collect();
                    let data: String = block
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .map(str::trim_start)
                        .collect();
                    let Ok(event) = serde_json::from_str::<LiveEvent>(&data) else {
                        continue;
                    };
                    if tx.send(qualified(number, event)).await.is_err() {
                        return;
                    }
                }
                if buf.len() > MAX_EVENT {
                    return;
                }
            }
        });
    }
    if followed == 0 {
        return Err(ApiError::Unavailable(
            "no cluster can be followed now".into(),
        ));
    }
    let stream = tokio_stream_of(rx).map(|e| {
        let name = match &e {
            LiveEvent::Workflow { .. } => "workflow",
            LiveEvent::Task { .. } => "task",
            LiveEvent::Lagged { .. } => "lagged",
        };
        Ok(Event::default()
            .event(name)
            .data(serde_json::to_string(&e).unwrap_or_default()))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn qualified(number: i64, e: LiveEvent) -> LiveEvent {
    match e {
        LiveEvent::Workflow { instance, state } => LiveEvent::Workflow {
            instance: qualify(number, instance),
            state,
        },
        LiveEvent::Task {
            instance,
            task,
            task_instance_id,
            attempt,
            state,
            message,
        } => LiveEvent::Task {
            instance: qualify(number, instance),
            task,
            task_instance_id: qualify(number, task_instance_id),
            attempt,
            state,
            message,
        },
        lagged => lagged,
    }
}

fn tokio_stream_of(rx: tokio::sync::mpsc::Receiver<LiveEvent>) -> impl Stream<Item = LiveEvent> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) })
}
