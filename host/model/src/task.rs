//! Task states, execution classes and outcomes.

use serde::{Deserialize, Serialize};

/// Which TaskEngine container runs a task type (see the WIT `execution-class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutionClass {
    Short,
    Blocking,
    ExternalJob,
}

impl std::fmt::Display for ExecutionClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Short => "short",
            Self::Blocking => "blocking",
            Self::ExternalJob => "external-job",
        })
    }
}

/// Where a task instance is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskState {
    /// Accepted, waiting for a container slot.
    Submitted,
    /// Handed to a container.
    Dispatched,
    /// The plugin is executing (or its external job is).
    Running,
    Succeeded,
    Failed,
    /// Stopped by an operator or by its deadline.
    Killed,
}

impl TaskState {
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Killed)
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Submitted => "submitted",
            Self::Dispatched => "dispatched",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Killed => "killed",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskStatus {
    Succeeded,
    Failed,
}

/// How a plugin says a task ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOutcome {
    pub status: TaskStatus,
    pub message: String,
    pub out_params: Vec<(String, String)>,
}

impl TaskOutcome {
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            status: TaskStatus::Failed,
            message: message.into(),
            out_params: Vec::new(),
        }
    }
}

/// Whether a task type as written in a definition (`SubWorkflow`, `SHELL`) names a plugin
/// id (`sub-workflow`, `shell`): case, `-` and `_` do not matter, so DolphinScheduler's
/// spellings find Shoal's plugins.
pub fn task_type_matches(written: &str, plugin_id: &str) -> bool {
    // Compared char by char without building normalised copies: this runs for every
    // task a workflow dispatches.
    fn strip(s: &str) -> impl Iterator<Item = char> + '_ {
        s.chars()
            .filter(|c| *c != '-' && *c != '_')
            .map(|c| c.to_ascii_lowercase())
    }
    strip(written).eq(strip(plugin_id))
}
