//! Why an export could not be converted: [`ImportError`] for the file as a whole, and
//! [`Problem`] for each thing wrong inside it (all of them are collected and reported
//! together, so one round of fixes is enough).

use std::fmt;

/// Why [`convert`](crate::convert) refused an export.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("the export is {size} bytes; an import takes at most {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("not valid JSON: {message} (line {line}, column {column})")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "not a DolphinScheduler export: {0} (expected an export file, a list of \
         {{processDefinition | workflowDefinition, taskDefinitionList, ...}} objects, or a \
         create-definition API body with taskDefinitionJson and taskRelationJson)"
    )]
    NotAnExport(String),
    #[error("the export holds {count} {what}; an import takes at most {limit}")]
    TooMany {
        what: &'static str,
        count: usize,
        limit: usize,
    },
    #[error("{}", Listed(.0))]
    Invalid(Vec<Problem>),
}

impl ImportError {
    /// The problems inside the export, when that is why it was refused.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ImportError::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

/// One thing wrong inside an export. `workflow` is the workflow's name, or `#N` (its
/// place in the file, from 1) when it has none.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("{}: missing `{field}`", at(.workflow, .task))]
    Missing {
        workflow: String,
        task: Option<String>,
        field: String,
    },
    #[error("{}: `{field}`: {message}", at(.workflow, .task))]
    Invalid {
        workflow: String,
        task: Option<String>,
        field: String,
        message: String,
    },
    /// A code that names no workflow or task in the file (sub-workflows and dependencies
    /// are imported together, so every one they name must be in the same export).
    #[error(
        "{}: `{field}` refers to {kind} code {code}, which is not in this export",
        at(.workflow, .task)
    )]
    UnknownReference {
        workflow: String,
        /// None for a relation, which belongs to no task.
        task: Option<String>,
        field: String,
        kind: &'static str,
        code: i64,
    },
    /// A task Shoal cannot run as written: a task type it has no plugin for, or a
    /// feature of a known type it lacks. With [`Options::partial`](crate::Options) such a
    /// task is imported as a skipped placeholder instead.
    #[error("{}: {what}", at(.workflow, &Some(.task.clone())))]
    Unsupported {
        workflow: String,
        task: String,
        what: String,
    },
    #[error("two workflows are named `{name}`")]
    DuplicateWorkflow { name: String },
    #[error("two workflows have the code {code} (`{first}` and `{second}`)")]
    DuplicateWorkflowCode {
        code: i64,
        first: String,
        second: String,
    },
    #[error("workflow `{workflow}`: two tasks are named `{name}`")]
    DuplicateTask { workflow: String, name: String },
    #[error("workflow `{workflow}`: two tasks have the code {code} (`{first}` and `{second}`)")]
    DuplicateTaskCode {
        workflow: String,
        code: i64,
        first: String,
        second: String,
    },
    #[error("sub-workflows start each other in a cycle: {}", .workflows.join(" -> "))]
    SubWorkflowCycle { workflows: Vec<String> },
}

fn at(workflow: &str, task: &Option<String>) -> String {
    match task {
        Some(t) => format!("workflow `{workflow}`, task `{t}`"),
        None => format!("workflow `{workflow}`"),
    }
}

/// The problems one per line, with a hint when `partial` would have let the rest in.
struct Listed<'p>(&'p [Problem]);

impl fmt::Display for Listed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "the DolphinScheduler export cannot be imported ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for p in self.0 {
            write!(f, "\n  - {p}")?;
        }
        let unsupported = self
            .0
            .iter()
            .filter(|p| matches!(p, Problem::Unsupported { .. }))
            .count();
        if unsupported > 0 {
            write!(
                f,
                "\n{unsupported} task{} cannot run on Shoal as written; import with `partial` to bring in the rest, with {} kept as skipped (flag NO) placeholders",
                if unsupported == 1 { "" } else { "s" },
                if unsupported == 1 { "it" } else { "them" }
            )?;
        }
        Ok(())
    }
}
