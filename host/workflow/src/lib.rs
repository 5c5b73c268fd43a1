//! # shoal-workflow: workflow definitions
//!
//! A workflow is a DAG of tasks. Its definition comes from a YAML file in the format of
//! DolphinScheduler's Python SDK (`examples/yaml_define/` there), so its users can bring
//! their files, or from the same structure in JSON:
//!
//! ```yaml
//! workflow:
//!   name: daily-report
//!   param: {dt: "$[yyyyMMdd-1]"}        # global parameters
//!   failure_strategy: continue           # Shoal's own field (default: end)
//! tasks:
//!   - name: extract
//!     task_type: Shell                  # matched to a plugin id, case-insensitively
//!     command: echo extracting ${dt}    # the type's own fields sit at the task's top level
//!   - name: load
//!     task_type: Shell
//!     deps: [extract]
//!     fail_retry_times: 2
//!     command: echo loading
//! ```
//!
//! - [`model`]: the definition types.
//! - [`load`]: parsing, with file references (`$WORKFLOW{"other.yaml"}`, `$FILE{"x.sql"}`,
//!   `$ENV{NAME}`) resolved relative to the file, and every error naming file, line and
//!   field.
//! - `implied`: the edges Switch and Condition tasks imply by naming other tasks, as
//!   pydolphinscheduler adds them (a Switch's branches and a Condition's outcomes run
//!   after it, the tasks a Condition checks before it).
//! - [`depth`]: the nesting limit, checked on the text before the YAML parser runs.
//! - [`validate`]: the checks behind `shoal validate`: duplicate names, unknown
//!   dependencies, cycles (naming the tasks in them), unknown task types, and parameters
//!   the task type's plugin rejects.

pub mod depth;
mod implied;
pub mod load;
pub mod model;
pub mod validate;

pub use load::{LoadedWorkflow, UploadError, load_file, load_str, load_uploaded, render_resolved};
pub use model::{
    FailureStrategy, Flag, LocalParam, ParamDirection, Priority, TaskDefinition, TimeoutStrategy,
    WorkflowDefinition,
};
pub use validate::{TaskTypeCatalog, validate};

use std::path::PathBuf;

/// One problem in a definition, located in its source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {}{message}", file.display(), field.as_deref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line; 0 when the problem has no single place (a cycle spans tasks).
    pub line: usize,
    /// Dotted path of the field, e.g. `tasks[2].deps` or `workflow.name`.
    pub field: Option<String>,
    pub message: String,
}

/// Every problem found in a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod upload_tests;
