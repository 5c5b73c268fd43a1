//! The master's RPC endpoint: task updates from workers, acknowledged once stored.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use shoal_protocol::TaskEventSink;
use shoal_protocol::rpc::{MAX_BODY, UpdatesMsg, UpdatesReply, paths};

use crate::transport::{check_request, error_reply};

/// Whether updates from (worker node, node generation) may be taken: false for a
/// generation that was declared dead (its attempts were failed over).
pub type GenerationCheck = Arc<dyn Fn(&str, u64) -> bool + Send + Sync>;

#[derive(Clone)]
struct MasterRpc {
    sink: Arc<dyn TaskEventSink>,
    secret: Arc<str>,
    current: GenerationCheck,
}

/// The routes a master serves to workers.
pub fn router(sink: Arc<dyn TaskEventSink>, secret: &str, current: GenerationCheck) -> Router {
    Router::new()
        .route(paths::UPDATES, post(updates))
        // axum's default (2 MiB) is below what a batch of log pieces may hold.
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(MasterRpc {
            sink,
            secret: secret.into(),
            current,
        })
}

async fn updates(
    State(rpc): State<MasterRpc>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err((status, message)) = check_request(&headers, &rpc.secret) {
        return error_reply(status, message);
    }
    let msg: UpdatesMsg = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return error_reply(StatusCode::BAD_REQUEST, format!("updates: {e}")),
    };
    let mut reply = UpdatesReply::default();
    if !(rpc.current)(&msg.node, msg.node_generation) {
        let why = format!(
            "node {} generation {} was declared dead; its updates are not taken",
            msg.node, msg.node_generation
        );
        reply.refused = msg
            .events
            .iter()
            .map(|e| (e.key, e.seq, why.clone()))
            .collect();
        return Json(reply).into_response();
    }
    // One instance's updates in order (an attempt's end after its start); different
    // instances' side by side, so one slow commit does not hold the others.
    let mut by_instance: BTreeMap<u64, Vec<_>> = BTreeMap::new();
    for event in msg.events {
        by_instance
            .entry(event.key.workflow_instance_id)
            .or_default()
            .push(event);
    }
    let lanes = by_instance.into_values().map(|events| {
        let sink = rpc.sink.clone();
        async move {
            let mut acked = Vec::new();
            let ids: Vec<_> = events.iter().map(|e| (e.key, e.seq)).collect();
            // Taken in order at once when the instance is live here, and stored
            // together (one batch of the instance), not one commit after another.
            for (id, result) in ids.into_iter().zip(sink.deliver_many(events).await) {
                match result {
                    Ok(()) => acked.push(id),
                    // Not acknowledged: the worker sends it (and what follows) again.
                    Err(e) => {
                        tracing::debug!("update {} #{} not taken: {e}", id.0, id.1);
                        break;
                    }
                }
            }
            acked
        }
    });
    for acked in futures_join(lanes).await {
        reply.acked.extend(acked);
    }
    Json(reply).into_response()
}

/// Run the futures side by side and collect their outputs.
async fn futures_join<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for (i, f) in futures.enumerate() {
        set.spawn(async move { (i, f.await) });
    }
    let mut out: Vec<(usize, F::Output)> = Vec::new();
    while let Some(Ok(r)) = set.join_next().await {
        out.push(r);
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}
