//! Host-side caps on what one task may make the host hold: log lines and bytes, captured
//! process output, OUT parameters, guest log entries and WebAssembly resources.
//!
//! ```toml
//! [task-limits]
//! log-line-bytes = 16384          # a longer line is cut, with a marker
//! log-bytes = 67108864            # per task; then the log says it was truncated
//! capture-bytes = 4194304         # process output handed back to the plugin
//! out-params = 256                # OUT parameters per task ...
//! out-param-bytes = 1048576       # ... and their names and values together
//! guest-log-entries = 100000      # plugin log calls per task
//! memories = 4                    # WebAssembly memories per instance (their total size
//! tables = 16                     #   is the grant's memory cap), tables, and
//! table-elements = 1048576        #   elements in all tables together
//! ```
//!
//! Every cap exists because a task's output passes through the host: without one, a
//! script printing an endless line or a plugin returning megabytes of parameters would
//! take the host's memory or disk, and with them every other task.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct TaskLimits {
    pub log_line_bytes: usize,
    pub log_bytes: u64,
    pub capture_bytes: usize,
    pub out_params: usize,
    pub out_param_bytes: usize,
    pub guest_log_entries: u64,
    pub memories: usize,
    pub tables: usize,
    pub table_elements: usize,
}

impl Default for TaskLimits {
    fn default() -> Self {
        Self {
            log_line_bytes: 16 * 1024,
            log_bytes: 64 * 1024 * 1024,
            capture_bytes: 4 * 1024 * 1024,
            out_params: 256,
            out_param_bytes: 1024 * 1024,
            guest_log_entries: 100_000,
            memories: 4,
            tables: 16,
            table_elements: 1 << 20,
        }
    }
}

impl TaskLimits {
    /// Why a task's OUT parameters are over the caps, if they are.
    pub fn check_out_params(&self, params: &[(String, String)]) -> Result<(), String> {
        if params.len() > self.out_params {
            return Err(format!(
                "the task returned {} OUT parameters; at most {} are allowed (task-limits.out-params)",
                params.len(),
                self.out_params
            ));
        }
        let bytes: usize = params.iter().map(|(k, v)| k.len() + v.len()).sum();
        if bytes > self.out_param_bytes {
            return Err(format!(
                "the task's OUT parameters hold {bytes} bytes; at most {} are allowed (task-limits.out-param-bytes)",
                self.out_param_bytes
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_params_over_either_cap_are_refused() {
        let l = TaskLimits {
            out_params: 2,
            out_param_bytes: 10,
            ..Default::default()
        };
        assert!(l.check_out_params(&[("a".into(), "1".into())]).is_ok());
        let many = vec![("a".to_owned(), String::new()); 3];
        assert!(
            l.check_out_params(&many)
                .unwrap_err()
                .contains("3 OUT parameters")
        );
        let big = [("a".to_owned(), "x".repeat(20))];
        assert!(l.check_out_params(&big).unwrap_err().contains("21 bytes"));
    }
}
