//! Script tasks as DolphinScheduler runs them (Shell, Python): the script is written to
//! a file in the task's work dir and run by an interpreter through the host's `process`
//! capability; output goes to the task log, and lines carrying `${setValue(key=value)}`
//! (or `#{setValue(key=value)}`) become OUT parameters.

use crate::{Error, Start, TaskContext, process};

/// Write `script` to `shoal-<task>-<attempt>.<extension>` in the work dir, run
/// `interpreter FILE` with `env`, and turn its `setValue` lines into OUT parameters.
pub fn run(
    ctx: &mut TaskContext,
    interpreter: &str,
    extension: &str,
    script: &str,
    env: &[(String, String)],
) -> Result<Start, Error> {
    let file = format!("shoal-{}-{}.{extension}", ctx.task_instance_id, ctx.attempt);
    std::fs::write(format!("{}/{file}", ctx.work_dir), script)
        .map_err(|e| Error::new(format!("cannot write script into the work dir: {e}")))?;
    let mut command = process::Command::new(interpreter)
        .arg(&file)
        .capture_containing("setValue(");
    for (k, v) in env {
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
