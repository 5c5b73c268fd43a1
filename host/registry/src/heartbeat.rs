//! The heartbeat loop: keeps one lease renewed and tells its holder, as a value, the
//! moment the node must stop acting.
//!
//! Architecture invariant: a node considers its lease lost no later than a peer may
//! declare it dead: the local deadline is one lease after the *sending* of the last
//! heartbeat that succeeded (the database stamped it later than that), on the local
//! monotonic clock, and a heartbeat still in flight at the deadline does not count.
//! Architecture invariant: a lost lease stays lost; the loop ends, and only a new
//! registration (a new generation) lets the node act again.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout_at};

use crate::{NodeLease, NodeLoad, Registry, RegistryError};

/// Whether the node may act as its lease's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaseState {
    Held,
    Lost(LeaseLoss),
}

/// Why a lease was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaseLoss {
    /// A heartbeat was refused: the node was declared dead, or a newer registration of
    /// the same node replaced this generation.
    Fenced,
    /// No heartbeat succeeded for a whole lease (the store was unreachable or too slow):
    /// the node cannot prove it is alive, so peers may already have declared it dead.
    Expired,
}

impl std::fmt::Display for LeaseLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LeaseLoss::Fenced => "declared dead or replaced by a newer registration",
            LeaseLoss::Expired => "no heartbeat reached the store within the lease",
        })
    }
}

/// Until when (wall clock, ms since the epoch) a lease is proven to hold: one lease
/// after the sending of its last good heartbeat. Shared with whatever must stop acting
/// by then on its own, without waiting for the heartbeat loop (a master's commands).
pub type LeaseUntil = std::sync::Arc<std::sync::atomic::AtomicI64>;

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn spawn<F>(
    registry: Registry,
    lease: NodeLease,
    load: F,
    until: LeaseUntil,
) -> (JoinHandle<()>, watch::Receiver<LeaseState>)
where
    F: FnMut() -> NodeLoad + Send + 'static,
{
    let (tx, rx) = watch::channel(LeaseState::Held);
    // The registration just before this is the last proof the node is alive.
    let registered = Instant::now();
    let lease_ms = registry.config().lease.as_millis() as i64;
    until.store(wall_ms() + lease_ms, std::sync::atomic::Ordering::SeqCst);
    let task = tokio::spawn(async move {
        let loss = run(&registry, &lease, load, registered, &until).await;
        until.store(0, std::sync::atomic::Ordering::SeqCst);
        tracing::error!(node = %lease.id, generation = lease.generation, %loss, "lease lost");
        tx.send_replace(LeaseState::Lost(loss));
    });
    (task, rx)
}

async fn run<F>(
    registry: &Registry,
    lease: &NodeLease,
    mut load: F,
    mut proven: Instant,
    until: &LeaseUntil,
) -> LeaseLoss
where
    F: FnMut() -> NodeLoad,
{
    let config = registry.config();
    let mut failures = 0u32;
    loop {
        let deadline = proven + config.lease;
        let sent = Instant::now();
        let sent_wall = wall_ms();
        if sent >= deadline {
            return LeaseLoss::Expired;
        }
        match timeout_at(deadline, registry.heartbeat(lease, load())).await {
            Err(_) => return LeaseLoss::Expired,
            Ok(Ok(())) => {
                if failures > 0 {
                    tracing::info!(node = %lease.id, failures, "heartbeat reaches the store again");
                }
                failures = 0;
                proven = sent;
                until.store(
                    sent_wall + config.lease.as_millis() as i64,
                    std::sync::atomic::Ordering::SeqCst,
                );
            }
            Ok(Err(RegistryError::Fenced { .. })) => return LeaseLoss::Fenced,
            Ok(Err(err)) => {
                failures += 1;
                let left = deadline.saturating_duration_since(Instant::now());
                tracing::warn!(
                    node = %lease.id,
                    %err,
                    lease_left_ms = left.as_millis() as u64,
                    "heartbeat failed; retrying"
                );
            }
        }
        // A failed heartbeat is retried sooner, but never in a tight loop.
        let wait = if failures == 0 {
            config.heartbeat
        } else {
            (config.heartbeat / 4).max(Duration::from_millis(10))
        };
        sleep_until((sent + wait).min(proven + config.lease)).await;
    }
}
