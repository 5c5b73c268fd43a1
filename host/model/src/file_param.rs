//! DolphinScheduler's FILE parameters, carried as parameter values.
//!
//! In DolphinScheduler a task's OUT parameter of type FILE names a file in its work dir;
//! when the task succeeds the file is uploaded and the variable `<task>.<param>` points
//! at it; a downstream task's IN parameter of type FILE whose value is that key gets the
//! file downloaded into its own work dir under the parameter's name. Shoal carries the
//! file's bytes in the `<task>.<param>` OUT parameter itself, as a data URL, so it is
//! stored, bounded (by `task-limits.out-param-bytes`) and shipped between nodes like any
//! other OUT parameter, and a failover loses nothing.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

const PREFIX: &str = "data:application/octet-stream;";

/// The OUT parameter a FILE parameter `param` of task `task` becomes.
pub fn out_key(task: &str, param: &str) -> String {
    format!("{task}.{param}")
}

/// `bytes` of the file `name` as a parameter value.
pub fn encode(name: &str, bytes: &[u8]) -> String {
    let name: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    format!("{PREFIX}name={name};base64,{}", STANDARD.encode(bytes))
}

/// The bytes a FILE value carries, or why it is not one.
pub fn decode(value: &str) -> Result<Vec<u8>, String> {
    let rest = value
        .strip_prefix(PREFIX)
        .ok_or_else(|| "the value is not a file an upstream FILE parameter passed".to_owned())?;
    let (_, data) = rest
        .split_once(";base64,")
        .ok_or_else(|| "the file value is damaged (no base64 data)".to_owned())?;
    STANDARD
        .decode(data)
        .map_err(|e| format!("the file value is damaged: {e}"))
}

/// Whether `name` may be a file name in a work dir: one plain component.
pub fn plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && name.len() <= 255
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_as_values() {
        let v = encode("report.csv", b"a,b\n1,2\n");
        assert!(v.starts_with("data:application/octet-stream;name=report.csv;base64,"));
        assert_eq!(decode(&v).unwrap(), b"a,b\n1,2\n");
        assert!(decode("report.csv").is_err());
        assert_eq!(out_key("produce", "report"), "produce.report");
        assert!(plain_file_name("report"));
        assert!(!plain_file_name("../x") && !plain_file_name("a/b") && !plain_file_name(".."));
    }
}
