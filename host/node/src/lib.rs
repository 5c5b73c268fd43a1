//! # shoal-node: assembling a Shoal process
//!
//! The binary parses its arguments into one of these configurations and calls this
//! crate; everything between (locks, leases, store, registry, TaskEngine, master) is
//! put together here, in the order it must happen, and nothing here exits the process:
//! a lost lease is a value the binary acts on.
//!
//! - [`data_dir`]: the data directory's layout.
//! - [`assemble`]: policy, plugin registry, TaskEngine, store and containers.
//! - [`embedded`]: this process as the single engine of its store (`shoal run`,
//!   `shoal server`).
//! - [`cluster`]: this process as a master or a worker node of a cluster on
//!   PostgreSQL (`shoal master`, `shoal worker`).

pub mod assemble;
pub mod cluster;
pub mod data_dir;
pub mod embedded;

pub use assemble::{
    default_container_config, default_containers, load_policy, load_server_policy, open_registry,
    open_store, open_task_engine, task_engine_for,
};
pub use data_dir::DataDir;
pub use embedded::{Embedded, EmbeddedConfig, EngineLock, engine_holder};
