//! What a run request names beyond its definition: which tasks it covers.

use serde::{Deserialize, Serialize};

/// Which tasks a run covers, as stored with the instance and sent in a run request:
/// `{"mode": "only" | "with-downstream" | "with-upstream", "tasks": [..]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", content = "tasks", rename_all = "kebab-case")]
pub enum StartTasks {
    #[default]
    All,
    Only(Vec<String>),
    WithDownstream(Vec<String>),
    WithUpstream(Vec<String>),
}
