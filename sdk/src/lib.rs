//! # shoal-sdk: write Shoal task types in Rust
//!
//! A Shoal task type is a WebAssembly component that implements the `shoal:task` WIT
//! contract (see `wit/` in the Shoal repository). This crate hides the bindings: a plugin
//! author writes one type, one [`TaskType`] impl with typed parameters, and one
//! [`export_task!`] line, then builds with `cargo build --release --target wasm32-wasip2`.
//!
//! ```ignore
//! use shoal_sdk::prelude::*;
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Params { who: String }
//!
//! struct Greet;
//!
//! impl TaskType for Greet {
//!     type Params = Params;
//!     const NAME: &'static str = "greet";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!     const DESCRIPTION: &'static str = "Says hello";
//!
//!     fn start(ctx: &mut TaskContext, params: Params) -> Result<Start, Error> {
//!         log::info(format!("hello, {}", params.who));
//!         ctx.set_out_param("greeted", &params.who);
//!         Ok(Start::success("greeted"))
//!     }
//! }
//!
//! export_task!(Greet);
//! ```
//!
//! Capabilities (running processes, outbound HTTP) work only when the plugin's manifest
//! requests them and the operator's policy grants them; otherwise the helpers in
//! [`process`] and [`http`] return a "capability denied" error. [`workflow`] needs no
//! grant: it tells a logic task how its upstream tasks ended and how to pick branches,
//! and, inside a workflow run, starts child workflows and reports other workflows' runs.

pub mod http;
pub mod log;
pub mod process;
pub mod script;
pub mod sql;
pub mod text;
pub mod workflow;

mod adapter;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/v0.1",
        world: "task-plugin",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "$crate::bindings",
    });
}

#[doc(hidden)]
pub use adapter::Adapter;

pub use schemars::{self, JsonSchema};
pub use serde::{self, Deserialize, Serialize};
pub use serde_json;

/// Everything a plugin usually needs, in one `use`.
pub mod prelude {
    pub use crate::{
        Action, ActionDone, Deserialize, Done, Error, ExecutionClass, FieldError, JsonSchema, Poll,
        Serialize, Start, TaskContext, TaskType, declared_out_params, declared_out_values,
        export_task, http, log, previous_handle, process, script, setting, sql, workflow,
    };
}

/// A setting the operator's policy gives this plugin (`[plugins.ID] settings`), e.g.
/// the interpreter a Python task runs; none when the policy sets no such key. Workflow
/// authors cannot set these: they are the operator's choice.
pub fn setting(name: &str) -> Option<String> {
    bindings::shoal::task::context::setting(name)
}

/// The OUT parameters the task declares, as (name, type: `VARCHAR`, `INTEGER`, `LIST`,
/// ...), for a plugin that fills them from a result (a SQL task from its rows).
pub fn declared_out_params() -> Vec<(String, String)> {
    bindings::shoal::task::context::declared_out_params()
}

/// The value the task gives each OUT parameter, as (name, value as written): a default,
/// or where to read it from for a task type that fills OUT parameters from a result.
/// Needs a host of WIT 0.1.2 or later.
pub fn declared_out_values() -> Vec<(String, String)> {
    bindings::shoal::task::context::declared_out_values()
}

/// The handle an earlier attempt of this task in this run left (for example a Flink
/// job's, with its last savepoint), so a restart can resume from it.
pub fn previous_handle() -> Option<String> {
    bindings::shoal::task::context::previous_handle()
}

/// Which container of the TaskEngine runs tasks of this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionClass {
    /// Quick, never blocks: the shared container.
    Short,
    /// Holds a worker slot for its whole run (a script): the exclusive container.
    Blocking,
    /// Submits a job that runs elsewhere and returns a handle to poll.
    ExternalJob,
}

/// One problem with a task's parameters, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A failure that ends the task. Its message becomes the task's failure message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Error {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}
impl From<String> for Error {
    fn from(value: String) -> Self {
        Self(value)
    }
}
impl From<serde_json::Error> for Error {
    fn from(value: serde_json::Error) -> Self {
        Self(value.to_string())
    }
}
impl From<std::io::Error> for Error {
    fn from(value: std::io::Error) -> Self {
        Self(value.to_string())
    }
}
impl From<process::ProcessError> for Error {
    fn from(value: process::ProcessError) -> Self {
        Self(value.to_string())
    }
}
impl From<http::HttpError> for Error {
    fn from(value: http::HttpError) -> Self {
        Self(value.to_string())
    }
}

/// How a finished task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub succeeded: bool,
    pub message: String,
}

/// What [`TaskType::start`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// The task is finished.
    Done(Done),
    /// An external job runs elsewhere; the handle is persisted by the host and passed to
    /// [`TaskType::poll`] and [`TaskType::cancel`], possibly after a host restart.
    Running { handle: String },
}

impl Start {
    pub fn success(message: impl Into<String>) -> Self {
        Self::Done(Done {
            succeeded: true,
            message: message.into(),
        })
    }
    pub fn failure(message: impl Into<String>) -> Self {
        Self::Done(Done {
            succeeded: false,
            message: message.into(),
        })
    }
    pub fn running(handle: impl Into<String>) -> Self {
        Self::Running {
            handle: handle.into(),
        }
    }
}

/// What [`TaskType::poll`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// Still running, with a progress note for the log (may be empty).
    Running(String),
    Done(Done),
}

/// A named action a task type offers on its running jobs (`shoal:task/controls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    /// Lower-case, `-` between words, e.g. `savepoint`.
    pub name: &'static str,
    pub description: &'static str,
}

/// What [`TaskType::act`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionDone {
    /// For the task's log and the caller.
    pub message: String,
    /// A handle that replaces the current one, stored by the host.
    pub new_handle: Option<String>,
    /// The action ended the job: a running task ends as killed, without a cancel.
    pub job_ended: bool,
}

impl ActionDone {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            new_handle: None,
            job_ended: false,
        }
    }
    pub fn ended_job(mut self) -> Self {
        self.job_ended = true;
        self
    }
    pub fn with_handle(mut self, handle: impl Into<String>) -> Self {
        self.new_handle = Some(handle.into());
        self
    }
}

/// The task being run: ids, attempt, work dir, and the OUT parameters it emits.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub workflow_instance_id: u64,
    pub task_instance_id: u64,
    pub task_name: String,
    pub attempt: u32,
    /// The work directory as this component sees it (a WASI preopen). Processes started
    /// with [`process::Command`] run in it by default.
    pub work_dir: String,
    out_params: Vec<(String, String)>,
}

impl TaskContext {
    /// Emit an OUT parameter for downstream tasks. Setting a key twice keeps the last value.
    pub fn set_out_param(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        match self.out_params.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.out_params.push((key, value)),
        }
    }

    pub fn out_params(&self) -> &[(String, String)] {
        &self.out_params
    }

    /// Choose which direct downstream tasks run: sets the OUT parameter
    /// [`workflow::BRANCH_PARAM`] (`shoal.branch`) to a JSON array of their names. The
    /// master skips the task's other direct downstream tasks.
    pub fn set_branch<I>(&mut self, names: I)
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.set_out_param(workflow::BRANCH_PARAM, workflow::branch_value(names));
    }
}

/// A task type. Implement it for a unit struct and export it with [`export_task!`].
pub trait TaskType {
    /// The task's parameters, deserialized from the JSON object the host passes. Field
    /// names in errors come from serde, so `#[serde(rename...)]` shows up in messages.
    type Params: serde::de::DeserializeOwned + JsonSchema;

    /// Task type name, e.g. `shell`.
    const NAME: &'static str;
    /// The plugin's version; usually `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;
    const DESCRIPTION: &'static str;
    const EXECUTION_CLASS: ExecutionClass = ExecutionClass::Short;
    /// Capabilities the plugin uses (`process`, `http`, `work-dir`). Must agree with the
    /// manifest; the host checks this at install time.
    const CAPABILITIES: &'static [&'static str] = &[];

    /// Checks beyond what deserialization already enforces.
    fn validate(_params: &Self::Params) -> Vec<FieldError> {
        Vec::new()
    }

    /// Run the task (short and blocking types), or submit an external job and return
    /// [`Start::Running`] with its handle.
    fn start(ctx: &mut TaskContext, params: Self::Params) -> Result<Start, Error>;

    /// Check on an external job.
    fn poll(_ctx: &mut TaskContext, _params: Self::Params, _handle: &str) -> Result<Poll, Error> {
        Err(Error::new(format!(
            "task type `{}` does not run external jobs, so it has nothing to poll",
            Self::NAME
        )))
    }

    /// Stop an external job.
    fn cancel(_ctx: &mut TaskContext, _params: Self::Params, _handle: &str) -> Result<(), Error> {
        Err(Error::new(format!(
            "task type `{}` does not run external jobs, so it has nothing to cancel",
            Self::NAME
        )))
    }

    /// Named actions on a running job beyond poll and cancel (a savepoint). The host
    /// refuses any other name before calling [`act`](Self::act).
    const ACTIONS: &'static [Action] = &[];

    /// Carry out one of [`ACTIONS`](Self::ACTIONS) on the job behind `handle`; `args` is
    /// the action's options as a JSON object.
    fn act(
        _ctx: &mut TaskContext,
        _params: Self::Params,
        _handle: &str,
        action: &str,
        _args: serde_json::Value,
    ) -> Result<ActionDone, Error> {
        Err(Error::new(format!(
            "task type `{}` has no action `{action}`",
            Self::NAME
        )))
    }
}

/// Export a [`TaskType`] as this component's `shoal:task/plugin` implementation.
#[macro_export]
macro_rules! export_task {
    ($task:ty) => {
        // The generated export macro wants a plain path, not a generic type.
        type __ShoalExportedTask = $crate::Adapter<$task>;
        $crate::bindings::export!(__ShoalExportedTask);
    };
}

/// Parse a parameter object, naming the failing field in the error.
pub fn parse_params<P: serde::de::DeserializeOwned>(json: &str) -> Result<P, FieldError> {
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.inner();
        let mut message = inner.to_string();
        // The position inside the host-made JSON text means nothing to a user.
        let suffix = format!(" at line {} column {}", inner.line(), inner.column());
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        }
        // serde reports a missing field at the parent's path; name the field itself.
        let field = match (path.as_str(), missing_field(&message)) {
            (".", Some(name)) => name.to_owned(),
            (_, Some(name)) => format!("{path}.{name}"),
            (".", None) => "params".to_owned(),
            _ => path,
        };
        FieldError { field, message }
    })
}

fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}
