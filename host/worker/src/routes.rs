//! The worker's RPC endpoints: what masters ask of it.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use shoal_protocol::rpc::{
    ControlReply, DispatchMsg, DispatchReply, KeyMsg, MAX_BODY, RunningReply, TakeOverMsg,
    TakeOverReply, paths,
};
use shoal_protocol::{ControlRequest, TakeOver, TaskExecutorClient};
use shoal_rpc::transport::{check_lease, check_request, error_reply};

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

use crate::Worker;

/// The routes a worker serves to masters.
pub fn router(worker: Worker, generation: std::sync::Arc<std::sync::atomic::AtomicU64>) -> Router {
    Router::new()
        .route(paths::DISPATCH, post(dispatch))
        .route(paths::KILL, post(kill))
        .route(paths::PAUSE, post(pause))
        .route(paths::TAKE_OVER, post(take_over))
        .route(paths::RUNNING, post(running))
        .route(paths::CONTROL, post(control))
        // axum's default (2 MiB) is below what a batch of dispatches may hold.
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Node { worker, generation })
}

#[derive(Clone)]
struct Node {
    worker: Worker,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Check the caller and read the body, or the error answer.
#[allow(clippy::result_large_err)] // an axum answer, built once per refused request
fn open<T: DeserializeOwned>(node: &Node, headers: &HeaderMap, body: &[u8]) -> Result<T, Response> {
    check_request(headers, node.worker.secret()).map_err(|(s, m)| error_reply(s, m))?;
    check_lease(headers, wall_ms()).map_err(|(s, m)| error_reply(s, m))?;
    serde_json::from_slice(body).map_err(|e| error_reply(StatusCode::BAD_REQUEST, e.to_string()))
}

fn done() -> Response {
    Json(serde_json::json!({})).into_response()
}

/// A command from a master whose ownership of the instance ended.
fn stale(key: shoal_protocol::TaskKey) -> Response {
    error_reply(StatusCode::CONFLICT, stale_why(key))
}

fn stale_why(key: shoal_protocol::TaskKey) -> String {
    format!("{key}: a master of a later ownership term took this attempt over")
}

fn refused(e: shoal_protocol::ClientError) -> Response {
    error_reply(StatusCode::CONFLICT, e.to_string())
}

/// A batch of attempts from one master, each checked and taken on its own, in order.
async fn dispatch(
    State(node): State<Node>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let msg: DispatchMsg = match open(&node, &headers, &body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let executor = node.worker.executor();
    let mut reply = DispatchReply::default();
    // The types the batch needs, each made ready once (fetched if this node lacks it).
    let mut prepared = std::collections::HashSet::new();
    for request in msg.requests {
        let refused = if request.host != executor.host() {
            Some(format!(
                "dispatched to {}, but this is {}",
                request.host,
                executor.host()
            ))
        } else if !node.worker.report_to(
            request.key(),
            msg.master.clone(),
            request.owner_generation,
        ) {
            Some(stale_why(request.key()))
        } else {
            if prepared.insert((request.task_type.clone(), request.plugin_version.clone())) {
                node.worker
                    .prepare(&request.task_type, request.plugin_version.as_ref())
                    .await;
            }
            executor
                .dispatch(request)
                .await
                .err()
                .map(|e| e.to_string())
        };
        reply.refused.push(refused);
    }
    Json(reply).into_response()
}

async fn kill(State(node): State<Node>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let msg: KeyMsg = match open(&node, &headers, &body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    match node.worker.executor().kill("", msg.key).await {
        Ok(()) => done(),
        Err(e) => refused(e),
    }
}

async fn pause(State(node): State<Node>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let msg: KeyMsg = match open(&node, &headers, &body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    match node.worker.executor().pause("", msg.key).await {
        Ok(()) => done(),
        Err(e) => refused(e),
    }
}

async fn take_over(
    State(node): State<Node>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let msg: TakeOverMsg = match open(&node, &headers, &body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let answer = if node.worker.holds(msg.key).await {
        if !node
            .worker
            .report_to(msg.key, msg.master, msg.owner_generation)
        {
            return stale(msg.key);
        }
        TakeOver::Running
    } else {
        TakeOver::Unknown
    };
    Json(TakeOverReply { answer }).into_response()
}

async fn running(
    State(node): State<Node>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = open::<serde_json::Value>(&node, &headers, &body) {
        return r;
    }
    match node.worker.executor().running("").await {
        Ok(tasks) => Json(RunningReply {
            generation: node.generation.load(std::sync::atomic::Ordering::SeqCst),
            tasks,
        })
        .into_response(),
        Err(e) => refused(e),
    }
}

/// An action on an attempt's job; the attempt may run here or have ended anywhere.
async fn control(
    State(node): State<Node>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let msg: ControlRequest = match open(&node, &headers, &body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    node.worker
        .prepare(&msg.task.task_type, msg.task.plugin_version.as_ref())
        .await;
    match node.worker.executor().control("", msg).await {
        Ok(outcome) => Json(ControlReply { outcome }).into_response(),
        Err(e) => refused(e),
    }
}
