//! Store writes of an instance's batch: the fields of a task row to change, and the
//! folding of several updates of one row into one before a batch is stored.

use std::collections::HashMap;

use shoal_store::Write;

use crate::state::TaskInstanceState as T;

/// Fields of a task row to change beside its state.
#[derive(Default)]
pub(super) struct RowUpdate {
    pub(super) message: Option<String>,
    pub(super) out_params: Option<serde_json::Value>,
    pub(super) handle: Option<String>,
    pub(super) plugin_version: Option<String>,
    pub(super) log_path: Option<String>,
    pub(super) host: Option<String>,
    pub(super) started_at: Option<i64>,
    pub(super) ended_at: Option<i64>,
}

impl RowUpdate {
    /// The store write that sets row `id` to `state` and these fields.
    pub(super) fn into_write(self, id: i64, state: T) -> Write {
        Write::UpdateTaskInstance {
            id,
            state: state.to_string(),
            host: self.host,
            plugin_version: self.plugin_version,
            handle: self.handle,
            message: self.message,
            out_params: self.out_params,
            log_path: self.log_path,
            started_at: self.started_at,
            ended_at: self.ended_at,
        }
    }
}

/// Fold several updates of one task row in a batch into one (a short task is dispatched,
/// runs and finishes within one batch): fewer statements, the same final row. Insert
/// positions in `inserts` are moved to match.
pub(super) fn coalesce(writes: Vec<Write>, inserts: &mut [(usize, String)]) -> Vec<Write> {
    let mut last = HashMap::new();
    for (i, w) in writes.iter().enumerate() {
        if let Write::UpdateTaskInstance { id, .. } = w {
            last.insert(*id, i);
        }
    }
    if last.len()
        == writes
            .iter()
            .filter(|w| matches!(w, Write::UpdateTaskInstance { .. }))
            .count()
    {
        return writes;
    }
    let mut earlier: HashMap<i64, Write> = HashMap::new();
    let mut moved = HashMap::new();
    let mut out = Vec::with_capacity(writes.len());
    for (i, w) in writes.into_iter().enumerate() {
        match w {
            Write::UpdateTaskInstance { id, .. } if last[&id] != i => {
                let merged = match earlier.remove(&id) {
                    Some(before) => merge(before, w),
                    None => w,
                };
                earlier.insert(id, merged);
            }
            Write::UpdateTaskInstance { id, .. } => {
                out.push(match earlier.remove(&id) {
                    Some(before) => merge(before, w),
                    None => w,
                });
            }
            other => {
                moved.insert(i, out.len());
                out.push(other);
            }
        }
    }
    for (index, _) in inserts.iter_mut() {
        if let Some(&to) = moved.get(index) {
            *index = to;
        }
    }
    out
}

/// `after` applied on top of `before` (both updates of one row).
fn merge(before: Write, after: Write) -> Write {
    match (before, after) {
        (
            Write::UpdateTaskInstance {
                host: h0,
                plugin_version: p0,
                handle: k0,
                message: m0,
                out_params: o0,
                log_path: l0,
                started_at: s0,
                ended_at: e0,
                ..
            },
            Write::UpdateTaskInstance {
                id,
                state,
                host,
                plugin_version,
                handle,
                message,
                out_params,
                log_path,
                started_at,
                ended_at,
            },
        ) => Write::UpdateTaskInstance {
            id,
            state,
            host: host.or(h0),
            plugin_version: plugin_version.or(p0),
            handle: handle.or(k0),
            message: message.or(m0),
            out_params: out_params.or(o0),
            log_path: log_path.or(l0),
            started_at: started_at.or(s0),
            ended_at: ended_at.or(e0),
        },
        (_, after) => after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(id: i64, state: &str, message: Option<&str>, started_at: Option<i64>) -> Write {
        Write::UpdateTaskInstance {
            id,
            state: state.into(),
            host: None,
            plugin_version: None,
            handle: None,
            message: message.map(Into::into),
            out_params: None,
            log_path: None,
            started_at,
            ended_at: None,
        }
    }

    #[test]
    fn updates_of_one_row_fold_into_the_last() {
        let insert = Write::InsertTaskInstance {
            workflow_instance_id: 1,
            task_name: "b".into(),
            task_type: "noop".into(),
            attempt: 1,
            state: "dispatched".into(),
            message: String::new(),
            host: None,
            started_at: None,
            ended_at: None,
            failover: false,
        };
        let writes = vec![
            update(7, "dispatched", None, Some(5)),
            update(8, "running", None, None),
            update(7, "running", Some("first"), None),
            insert.clone(),
            update(7, "succeeded", None, None),
        ];
        let mut inserts = vec![(3, "b".to_string())];
        let out = coalesce(writes, &mut inserts);
        assert_eq!(
            out,
            vec![
                update(8, "running", None, None),
                insert,
                update(7, "succeeded", Some("first"), Some(5)),
            ]
        );
        assert_eq!(inserts, vec![(1, "b".to_string())]);
    }
}
