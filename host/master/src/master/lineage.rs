//! A child run's place among its ancestors: a sub-workflow that would start itself
//! (directly or through a cycle) or nest deeper than the limit is refused before its
//! instance exists.

use shoal_store::Store;

use super::MasterError;

/// How deep sub-workflows may nest by default: a root run's children are at depth 1.
pub const DEFAULT_MAX_SUB_WORKFLOW_DEPTH: usize = 16;

/// Refuse to start a run of definition `definition_id` (named `name`) as the child of
/// task instance `parent`, when one of its ancestor runs is of the same definition or
/// when it would sit deeper than `max_depth`.
///
/// Walks the parent chain through the store (task instance -> its workflow instance ->
/// that instance's own parent task instance), at most `max_depth` steps, so a chain
/// that somehow loops in the store cannot keep it walking.
pub(super) async fn check(
    store: &Store,
    definition_id: i64,
    name: &str,
    parent: Option<i64>,
    max_depth: usize,
) -> Result<(), MasterError> {
    // (definition id, name) of each ancestor run, nearest first.
    let mut ancestors: Vec<(i64, String)> = Vec::new();
    let mut next = parent;
    while let Some(task_instance_id) = next {
        if ancestors.len() >= max_depth {
            break;
        }
        let task = store
            .task_instance(task_instance_id)
            .await?
            .ok_or_else(|| MasterError::NoSuchParent {
                task_instance_id,
                why: "there is no such task instance".to_owned(),
            })?;
        let run = store
            .workflow_instance(task.workflow_instance_id)
            .await?
            .ok_or_else(|| MasterError::NoSuchParent {
                task_instance_id,
                why: format!(
                    "its workflow instance {} does not exist",
                    task.workflow_instance_id
                ),
            })?;
        ancestors.push((run.definition_id, run.name));
        next = run.parent_task_instance_id;
    }
    // Outermost first, as the runs nest.
    ancestors.reverse();
    if let Some(first) = ancestors.iter().position(|(id, _)| *id == definition_id) {
        let mut path: Vec<&str> = ancestors[first..].iter().map(|(_, n)| n.as_str()).collect();
        path.push(name);
        return Err(MasterError::SubWorkflowCycle(path.join(" -> ")));
    }
    // Walked `max_depth` ancestors and there are more: the child would be deeper still.
    if next.is_some() {
        return Err(MasterError::NestedTooDeep { limit: max_depth });
    }
    Ok(())
}
