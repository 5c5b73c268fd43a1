//! `flink`: DolphinScheduler's FLINK task on a session cluster, through Flink's REST API.
//!
//! Fields as DolphinScheduler and pydolphinscheduler write them (camelCase accepted):
//! `main_class`, `main_package` (or `main_jar`, `mainJar: {resourceName}`: a jar inside
//! the operator's Flink resource directory), `main_args`, `parallelism`, `app_name`
//! (Flink's `pipeline.name`), `program_type` (JAVA or SCALA), plus `flink_cluster` (one
//! of the operator's clusters; default: the operator's default), `savepoint_path` to
//! start from, `allow_non_restored_state`, `restore_last_savepoint` (start from the
//! savepoint an earlier attempt of this task left) and `run_mode`:
//!
//! - `BATCH` (default): the task ends when the job ends; FAILED with the job's root
//!   exception in the log.
//! - `STREAM`: the task succeeds once the job is RUNNING; the job stays listed (`shoal
//!   task jobs`) and controllable through the task (savepoint, stop).
//!
//! DolphinScheduler's fields for YARN and application deployments (`deploy_mode`,
//! `flink_version`, memories, `slot`, `task_manager`, `yarn_queue`, `others`) are read
//! and logged as not applying to a session cluster.

use flink_rest::{Cluster, JarRef, JobHandle, RunSpec};
use shoal_sdk::prelude::*;
use shoal_sdk::serde_json::Value;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(alias = "mainClass")]
    pub main_class: String,
    #[serde(alias = "mainPackage", alias = "main_jar", alias = "mainJar")]
    pub main_package: JarRef,
    #[serde(default, alias = "mainArgs")]
    pub main_args: String,
    #[serde(default, deserialize_with = "shoal_sdk::text::optional_number")]
    #[schemars(with = "Option<shoal_sdk::text::Scalar>")]
    pub parallelism: Option<u64>,
    #[serde(default, alias = "appName")]
    pub app_name: String,
    #[serde(default = "scala", alias = "programType")]
    pub program_type: String,
    #[serde(default, alias = "flinkCluster", alias = "cluster")]
    pub flink_cluster: Option<String>,
    #[serde(default, alias = "savepointPath")]
    pub savepoint_path: Option<String>,
    #[serde(default, alias = "allowNonRestoredState")]
    pub allow_non_restored_state: bool,
    #[serde(default, alias = "restoreLastSavepoint")]
    pub restore_last_savepoint: bool,
    #[serde(
        default = "batch",
        alias = "runMode",
        alias = "task_execute_type",
        alias = "taskExecuteType"
    )]
    pub run_mode: String,
    // DolphinScheduler's fields that size a YARN or application deployment; a session
    // cluster's jobs get the cluster's own. Read, and reported as not used.
    #[serde(default, alias = "deployMode")]
    deploy_mode: Option<Value>,
    #[serde(default, alias = "flinkVersion")]
    flink_version: Option<Value>,
    #[serde(default, alias = "jobManagerMemory")]
    job_manager_memory: Option<Value>,
    #[serde(default, alias = "taskManagerMemory")]
    task_manager_memory: Option<Value>,
    #[serde(default)]
    slot: Option<Value>,
    #[serde(default, alias = "taskManager")]
    task_manager: Option<Value>,
    #[serde(default, alias = "yarnQueue", alias = "queue")]
    yarn_queue: Option<Value>,
    #[serde(default)]
    others: Option<Value>,
}

impl Params {
    /// The deployment fields given, which a session cluster does not use.
    fn unused_deployment_fields(&self) -> Vec<&'static str> {
        [
            ("deploy_mode", &self.deploy_mode),
            ("flink_version", &self.flink_version),
            ("job_manager_memory", &self.job_manager_memory),
            ("task_manager_memory", &self.task_manager_memory),
            ("slot", &self.slot),
            ("task_manager", &self.task_manager),
            ("yarn_queue", &self.yarn_queue),
            ("others", &self.others),
        ]
        .into_iter()
        .filter(|(_, v)| v.as_ref().is_some_and(|v| !v.is_null() && v != ""))
        .map(|(k, _)| k)
        .collect()
    }
}

fn scala() -> String {
    "SCALA".into()
}
fn batch() -> String {
    "BATCH".into()
}

pub struct Flink;

impl TaskType for Flink {
    type Params = Params;
    const NAME: &'static str = "flink";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Runs a Flink jar on a session cluster through its REST API (DolphinScheduler's FLINK task)";
    const EXECUTION_CLASS: ExecutionClass = ExecutionClass::ExternalJob;
    const CAPABILITIES: &'static [&'static str] = &["http"];
    const ACTIONS: &'static [Action] = flink_rest::ACTIONS;

    fn validate(p: &Params) -> Vec<FieldError> {
        let mut errors = Vec::new();
        // A definition is checked before substitution: references are checked at run.
        let later = |v: &str| v.contains("${") || v.contains("$[");
        match p.program_type.to_ascii_uppercase().as_str() {
            "JAVA" | "SCALA" => {}
            t if later(t) => {}
            other => errors.push(FieldError::new(
                "program_type",
                format!(
                    "`{other}` is not supported: a session cluster runs JAVA or SCALA jars through the REST API (PYTHON and SQL programs need the Flink client)"
                ),
            )),
        }
        if p.main_class.trim().is_empty() {
            errors.push(FieldError::new("main_class", "must name the entry class"));
        }
        if let Err(e) = p.main_package.check().or_else(|e| {
            if later(p.main_package.path()) {
                Ok(())
            } else {
                Err(e)
            }
        }) {
            errors.push(FieldError::new("main_package", e));
        }
        if let Err(e) = flink_rest::split_args(&p.main_args) {
            errors.push(FieldError::new("main_args", e));
        }
        if !later(&p.run_mode)
            && !matches!(p.run_mode.to_ascii_uppercase().as_str(), "BATCH" | "STREAM")
        {
            errors.push(FieldError::new(
                "run_mode",
                format!("`{}` is not BATCH or STREAM", p.run_mode),
            ));
        }
        if p.parallelism == Some(0) {
            errors.push(FieldError::new("parallelism", "must be at least 1"));
        }
        errors
    }

    fn start(_ctx: &mut TaskContext, p: Params) -> Result<Start, Error> {
        let ignored = p.unused_deployment_fields();
        if !ignored.is_empty() {
            log::warn(format!(
                "not used on a session cluster (they size YARN or application deployments): {}",
                ignored.join(", ")
            ));
        }
        let cluster = Cluster::pick(p.flink_cluster.as_deref())?;
        let resources = setting("flink.resources").ok_or_else(|| {
            Error::new("the operator set no `[flink] resource-dir`, so no jar can be submitted")
        })?;
        let jar_path = format!(
            "{resources}/{}",
            p.main_package.path().trim_start_matches('/')
        );
        let jar_id = flink_rest::upload_jar(&cluster, &jar_path)?;
        let handle = JobHandle::to_submit(
            &cluster.name,
            &jar_id,
            &p.run_mode.to_ascii_uppercase(),
            start_savepoint(&p),
        );
        log::info(format!(
            "job {} of {} goes to cluster `{}` once its handle is stored",
            handle.job, p.main_class, cluster.name
        ));
        Ok(Start::running(handle.text()))
    }

    fn poll(ctx: &mut TaskContext, p: Params, handle: &str) -> Result<Poll, Error> {
        let h = JobHandle::parse(handle)?;
        let cluster = Cluster::of(&h)?;
        let poll = flink_rest::follow(&cluster, &h, || run_spec(&p))?;
        if let Poll::Done(_) = &poll {
            ctx.set_out_param("job_id", h.job.clone());
        }
        Ok(poll)
    }

    fn cancel(_ctx: &mut TaskContext, _p: Params, handle: &str) -> Result<(), Error> {
        flink_rest::cancel(handle)
    }

    fn act(
        _ctx: &mut TaskContext,
        _p: Params,
        handle: &str,
        action: &str,
        args: Value,
    ) -> Result<ActionDone, Error> {
        flink_rest::act(handle, action, &args)
    }
}

/// The submission the parameters describe (job id and savepoint come from the handle).
fn run_spec(p: &Params) -> Result<RunSpec, Error> {
    Ok(RunSpec {
        entry_class: p.main_class.clone(),
        args: flink_rest::split_args(&p.main_args).map_err(Error::new)?,
        parallelism: p.parallelism,
        allow_non_restored_state: p.allow_non_restored_state,
        job_name: (!p.app_name.is_empty()).then(|| p.app_name.clone()),
        ..RunSpec::default()
    })
}

/// Where the job starts from: `savepoint_path`, or with `restore_last_savepoint` the
/// savepoint an earlier attempt of this task left (which wins when there is one).
fn start_savepoint(p: &Params) -> Option<String> {
    let last = p
        .restore_last_savepoint
        .then(|| JobHandle::last_savepoint(previous_handle().as_deref()))
        .flatten();
    if p.restore_last_savepoint && last.is_none() {
        log::info("no earlier attempt of this task left a savepoint; starting without one");
    }
    last.or_else(|| p.savepoint_path.clone().filter(|s| !s.trim().is_empty()))
}

export_task!(Flink);

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_sdk::serde_json::{from_value, json};

    #[test]
    fn dolphinscheduler_fields_are_read() {
        let p: Params = from_value(json!({
            "mainClass": "a.B", "mainJar": {"resourceName": "jobs/x.jar"},
            "mainArgs": "--mode endless", "parallelism": "2", "programType": "java",
            "deployMode": "cluster", "flinkVersion": ">=1.10", "slot": 1,
            "runMode": "stream",
        }))
        .unwrap();
        assert!(Flink::validate(&p).is_empty());
        assert_eq!(p.main_package.path(), "jobs/x.jar");
        assert_eq!(p.parallelism, Some(2));
        assert_eq!(
            p.unused_deployment_fields(),
            ["deploy_mode", "flink_version", "slot"]
        );
    }

    #[test]
    fn what_a_session_cluster_cannot_run_is_refused_by_field() {
        let p: Params = from_value(json!({
            "main_class": "", "main_package": "../etc/passwd", "program_type": "PYTHON",
            "run_mode": "forever", "main_args": "'open",
        }))
        .unwrap();
        let fields: Vec<String> = Flink::validate(&p).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "program_type",
                "main_class",
                "main_package",
                "main_args",
                "run_mode"
            ]
        );
    }
}
