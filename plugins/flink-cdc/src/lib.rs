//! `flink-cdc`: a Flink CDC 3.x pipeline on a Flink session cluster.
//!
//! Fields: `pipeline_yaml` (or `pipeline`): the pipeline definition (`source`, `sink`,
//! `route`, `transform`, `pipeline`), checked for shape with errors naming its line;
//! passwords in it are written `${secret.NAME}`, which the host substitutes and masks in
//! every log, message and OUT parameter. `flink_cluster` (default: the operator's
//! default), `parallelism`, `savepoint_path` to start from, `allow_non_restored_state`,
//! and `restore_last_savepoint` (start from the savepoint an earlier attempt left, e.g.
//! after `shoal task stop ID --savepoint` and `shoal recover`).
//!
//! Submission is Flink CDC's own contract, through the REST API rather than
//! `flink-cdc.sh`: the operator's dist jar is uploaded once (by digest) and run with
//! entry class `org.apache.flink.cdc.cli.CliExecutor` and the pipeline text as its first
//! argument, under a job id chosen here and stored as the task's handle before the job
//! is submitted (by the first poll). The task runs as long as the pipeline does;
//! stopping or killing it cancels the job.

use flink_rest::{Cluster, JobHandle, RunSpec};
use shoal_sdk::prelude::*;
use shoal_sdk::serde_json::Value;

mod shape;

pub const ENTRY_CLASS: &str = "org.apache.flink.cdc.cli.CliExecutor";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(alias = "pipeline", alias = "pipelineYaml", alias = "rawScript")]
    pub pipeline_yaml: String,
    #[serde(default, alias = "flinkCluster", alias = "cluster")]
    pub flink_cluster: Option<String>,
    #[serde(default, deserialize_with = "shoal_sdk::text::optional_number")]
    #[schemars(with = "Option<shoal_sdk::text::Scalar>")]
    pub parallelism: Option<u64>,
    #[serde(default, alias = "savepointPath")]
    pub savepoint_path: Option<String>,
    #[serde(default, alias = "allowNonRestoredState")]
    pub allow_non_restored_state: bool,
    #[serde(default, alias = "restoreLastSavepoint")]
    pub restore_last_savepoint: bool,
}

pub struct FlinkCdc;

impl TaskType for FlinkCdc {
    type Params = Params;
    const NAME: &'static str = "flink-cdc";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Runs a Flink CDC 3.x pipeline (YAML) on a Flink session cluster through its REST API";
    const EXECUTION_CLASS: ExecutionClass = ExecutionClass::ExternalJob;
    const CAPABILITIES: &'static [&'static str] = &["http"];
    const ACTIONS: &'static [Action] = flink_rest::ACTIONS;

    fn validate(p: &Params) -> Vec<FieldError> {
        let mut errors: Vec<FieldError> = shape::check(&p.pipeline_yaml)
            .into_iter()
            .map(|e| FieldError::new("pipeline_yaml", e))
            .collect();
        if p.parallelism == Some(0) {
            errors.push(FieldError::new("parallelism", "must be at least 1"));
        }
        errors
    }

    fn start(_ctx: &mut TaskContext, p: Params) -> Result<Start, Error> {
        let cluster = Cluster::pick(p.flink_cluster.as_deref())?;
        let jar = setting("flink.cdc-dist-jar").ok_or_else(|| {
            Error::new(
                "the operator set no `[flink] cdc-dist-jar` (the flink-cdc-dist jar of a Flink CDC 3.x release), so no pipeline can be submitted",
            )
        })?;
        let jar_id = flink_rest::upload_jar(&cluster, &jar)?;
        let last = p
            .restore_last_savepoint
            .then(|| JobHandle::last_savepoint(previous_handle().as_deref()))
            .flatten();
        if p.restore_last_savepoint && last.is_none() {
            log::info("no earlier attempt of this task left a savepoint; starting without one");
        }
        let from = last.or_else(|| p.savepoint_path.clone().filter(|s| !s.trim().is_empty()));
        let handle = JobHandle::to_submit(&cluster.name, &jar_id, "PIPELINE", from);
        log::info(format!(
            "pipeline `{}`: job {} goes to cluster `{}` once its handle is stored",
            shape::pipeline_name(&p.pipeline_yaml)
                .as_deref()
                .unwrap_or("(unnamed)"),
            handle.job,
            cluster.name
        ));
        Ok(Start::running(handle.text()))
    }

    fn poll(ctx: &mut TaskContext, p: Params, handle: &str) -> Result<Poll, Error> {
        let h = JobHandle::parse(handle)?;
        let cluster = Cluster::of(&h)?;
        let spec = || {
            Ok(RunSpec {
                entry_class: ENTRY_CLASS.into(),
                args: vec![p.pipeline_yaml.clone()],
                parallelism: p
                    .parallelism
                    .or_else(|| shape::pipeline_parallelism(&p.pipeline_yaml)),
                allow_non_restored_state: p.allow_non_restored_state,
                ..RunSpec::default()
            })
        };
        let poll = flink_rest::follow(&cluster, &h, spec)?;
        if let Poll::Done(_) = &poll {
            ctx.set_out_param("job_id", h.job.clone());
            if let Some(s) = &h.savepoint {
                ctx.set_out_param("savepoint", s.clone());
            }
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

export_task!(FlinkCdc);
