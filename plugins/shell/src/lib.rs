//! `shell`: runs a script, as DolphinScheduler's Shell task does.
//!
//! The script (`command`, or `rawScript` as DolphinScheduler exports it) arrives with
//! `${...}` references already substituted by the host. It is written to a file in the
//! task's work dir and run by the host's process capability, so the plugin itself never
//! leaves its sandbox ([`shoal_sdk::script`]). Output goes to the task log; lines
//! carrying `${setValue(key=value)}` (or `#{setValue(key=value)}`) become OUT parameters.

use std::collections::BTreeMap;

use shoal_sdk::prelude::*;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The script to run.
    #[serde(alias = "rawScript")]
    pub command: String,
    /// Extra environment variables for the script.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The interpreter that runs the script file.
    #[serde(default = "default_shell")]
    pub shell: String,
}

fn default_shell() -> String {
    "bash".to_owned()
}

pub struct Shell;

impl TaskType for Shell {
    type Params = Params;
    const NAME: &'static str = "shell";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Runs a shell script in the task's work dir";
    const EXECUTION_CLASS: ExecutionClass = ExecutionClass::Blocking;
    const CAPABILITIES: &'static [&'static str] = &["process", "work-dir"];

    fn validate(params: &Params) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if params.command.trim().is_empty() {
            errors.push(FieldError::new("command", "the script is empty"));
        }
        if params.shell.trim().is_empty() {
            errors.push(FieldError::new("shell", "no interpreter given"));
        }
        errors
    }

    fn start(ctx: &mut TaskContext, params: Params) -> Result<Start, Error> {
        let env: Vec<(String, String)> = params.env.into_iter().collect();
        script::run(ctx, &params.shell, "sh", &params.command, &env)
    }
}

export_task!(Shell);
