//! `shell`: runs a script, as DolphinScheduler's Shell task does.
//!
//! The script (`command`, or `rawScript` as DolphinScheduler exports it) arrives with
//! `${...}` references already substituted by the host. It is written to a file in the
//! task's work dir and run by the host's process capability, so the plugin itself never
//! leaves its sandbox. Output goes to the task log; lines carrying
//! `${setValue(key=value)}` (or `#{setValue(key=value)}`) become OUT parameters.

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
        let file = format!("shoal-{}-{}.sh", ctx.task_instance_id, ctx.attempt);
        std::fs::write(format!("{}/{file}", ctx.work_dir), &params.command)
            .map_err(|e| Error::new(format!("cannot write script into the work dir: {e}")))?;
        let mut command = process::Command::new(&params.shell)
            .arg(&file)
            .capture_containing("setValue(");
        for (k, v) in &params.env {
            command = command.env(k, v);
        }
        let status = command.status()?;
        for line in &status.captured {
            for (k, v) in set_values(line) {
                ctx.set_out_param(k, v);
            }
        }
        Ok(match (status.code, status.signal) {
            (Some(0), _) => Start::success("exit code 0"),
            (Some(code), _) => Start::failure(format!("script exited with code {code}")),
            (None, Some(signal)) => Start::failure(format!("script killed by signal {signal}")),
            (None, None) => Start::failure("script ended without an exit code"),
        })
    }
}

/// Every `${setValue(key=value)}` / `#{setValue(key=value)}` in a line.
pub fn set_values(line: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("setValue(") {
        let opener = &rest[..at];
        rest = &rest[at + "setValue(".len()..];
        if !(opener.ends_with("${") || opener.ends_with("#{")) {
            continue;
        }
        let Some(end) = rest.find(")}") else { break };
        let body = &rest[..end];
        rest = &rest[end + 2..];
        if let Some((k, v)) = body.split_once('=') {
            let key = k.trim();
            if !key.is_empty() {
                found.push((key.to_owned(), v.to_owned()));
            }
        }
    }
    found
}

export_task!(Shell);

#[cfg(test)]
mod tests {
    use super::set_values;

    #[test]
    fn parses_set_value_forms() {
        assert_eq!(
            set_values("${setValue(a=1)}"),
            vec![("a".into(), "1".into())]
        );
        assert_eq!(
            set_values("x #{setValue(b = two=2)} y ${setValue(c=)}"),
            vec![("b".into(), " two=2".into()), ("c".into(), "".into())]
        );
        assert!(set_values("setValue(a=1)").is_empty());
        assert!(set_values("${setValue(=1)}").is_empty());
    }
}
