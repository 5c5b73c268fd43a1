//! # shoal-scheduler: when runs start
//!
//! Every run the server starts (a user's, a cron fire's, a backfill date's) goes through
//! the [`Launcher`], which applies the definition's [`RunMode`] when runs overlap:
//!
//! - `parallel`: start it;
//! - `serial-wait`: queue it behind the running one; queued runs start one at a time in
//!   the order they came;
//! - `serial-discard`: drop it while another run is unfinished;
//! - `serial-priority`: stop the unfinished runs, then start it (the newest wins).
//!
//! Queued runs live in the store (`queued_runs`), so a restart loses none; a backfill is
//! a queue of its own whose concurrency limit says how many of its dates run at once.
//! The [`CronLoop`] fires stored schedules and hands each fire to the launcher.

mod cron;
mod launcher;
mod mode;

pub use cron::{CronLoop, CronLoopConfig, cron_of, next_fire};
pub use launcher::{Launch, Launcher, QueuedRequest};
pub use mode::RunMode;

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Store(#[from] shoal_store::StoreError),
    #[error(transparent)]
    Master(#[from] shoal_master::MasterError),
    #[error("workflow definition {0} does not exist")]
    NoSuchDefinition(i64),
    #[error("definition {id} has an unknown run mode `{mode}`")]
    BadRunMode { id: i64, mode: String },
    #[error("queued run {id} cannot be read: {message}")]
    BadQueuedRun { id: i64, message: String },
}
