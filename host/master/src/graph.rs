//! The execution graph of one workflow instance: which tasks are selected for this run,
//! and, from their states, which are ready, running, finished or can never run.
//!
//! The graph holds no state of its own beyond each task's [`TaskInstanceState`]; the
//! engine feeds it every transition and asks it what to dispatch next.

use std::collections::HashMap;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Bfs, Reversed};

use crate::state::TaskInstanceState;

/// Which part of the DAG a run covers (DolphinScheduler's "start from node").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunScope {
    /// Every task.
    All,
    /// Only the named tasks.
    Only(Vec<String>),
    /// The named tasks and everything downstream of them.
    WithDownstream(Vec<String>),
    /// The named tasks and everything they depend on.
    WithUpstream(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("unknown task `{0}`")]
    UnknownTask(String),
    #[error("task `{task}` depends on unknown task `{dep}`")]
    UnknownDependency { task: String, dep: String },
    #[error("dependency cycle between tasks {0}")]
    Cycle(String),
}

/// Where a task stands in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStatus {
    /// Not part of this run.
    NotSelected,
    /// Waiting for upstream tasks.
    Waiting,
    /// Every upstream let it through; it may be dispatched.
    Ready,
    /// Has a live state (dispatched, running, retrying, ...).
    Active(TaskInstanceState),
    Finished(TaskInstanceState),
    /// An upstream failed or was killed: it will never run in this run.
    Blocked,
}

pub struct ExecutionGraph {
    graph: DiGraph<String, ()>,
    index: HashMap<String, NodeIndex>,
    selected: Vec<bool>,
    /// Nodes that run once every upstream is done, whatever the result (Airflow's
    /// `all_done`, DolphinScheduler's Condition). A failure feeding such a node is
    /// handled by it and does not fail the run.
    all_done: Vec<bool>,
    states: Vec<Option<TaskInstanceState>>,
    /// Topological order, so each status is derived from already-derived upstreams.
    order: Vec<NodeIndex>,
    /// Each node's place in `order`.
    position: Vec<usize>,
}

impl ExecutionGraph {
    /// Build from `(task name, dependencies)` in definition order.
    pub fn new(tasks: &[(String, Vec<String>)], scope: &RunScope) -> Result<Self, GraphError> {
        let mut graph = DiGraph::new();
        let mut index = HashMap::new();
        for (name, _) in tasks {
            index.insert(name.clone(), graph.add_node(name.clone()));
        }
        for (name, deps) in tasks {
            for dep in deps {
                let from = *index
                    .get(dep)
                    .ok_or_else(|| GraphError::UnknownDependency {
                        task: name.clone(),
                        dep: dep.clone(),
                    })?;
                graph.add_edge(from, index[name], ());
            }
        }
        let order = petgraph::algo::toposort(&graph, None).map_err(|cycle| {
            GraphError::Cycle(format!("including `{}`", graph[cycle.node_id()]))
        })?;
        let n = graph.node_count();
        let mut selected = vec![false; n];
        let lookup = |names: &[String]| -> Result<Vec<NodeIndex>, GraphError> {
            names
                .iter()
                .map(|t| {
                    index
                        .get(t)
                        .copied()
                        .ok_or_else(|| GraphError::UnknownTask(t.clone()))
                })
                .collect()
        };
        match scope {
            RunScope::All => selected.iter_mut().for_each(|s| *s = true),
            RunScope::Only(names) => {
                for i in lookup(names)? {
                    selected[i.index()] = true;
                }
            }
            RunScope::WithDownstream(names) => {
                for i in lookup(names)? {
                    let mut bfs = Bfs::new(&graph, i);
                    while let Some(nx) = bfs.next(&graph) {
                        selected[nx.index()] = true;
                    }
                }
            }
            RunScope::WithUpstream(names) => {
                let reversed = Reversed(&graph);
                for i in lookup(names)? {
                    let mut bfs = Bfs::new(reversed, i);
                    while let Some(nx) = bfs.next(reversed) {
                        selected[nx.index()] = true;
                    }
                }
            }
        }
        let mut position = vec![0; n];
        for (at, node) in order.iter().enumerate() {
            position[node.index()] = at;
        }
        Ok(Self {
            graph,
            index,
            position,
            selected,
            all_done: vec![false; n],
            states: vec![None; n],
            order,
        })
    }

    /// Record a task's state (after the transition was stored).
    pub fn set_state(&mut self, task: &str, state: TaskInstanceState) -> Result<(), GraphError> {
        let i = self.node(task)?;
        self.states[i.index()] = Some(state);
        Ok(())
    }

    /// Forget a task's state, so it becomes ready again once its upstream allows (a
    /// recover or a rerun).
    pub fn clear_state(&mut self, task: &str) -> Result<(), GraphError> {
        let i = self.node(task)?;
        self.states[i.index()] = None;
        Ok(())
    }

    /// Let `task` run once every upstream task is done, whatever the result.
    pub fn set_all_done(&mut self, task: &str) -> Result<(), GraphError> {
        let i = self.node(task)?;
        self.all_done[i.index()] = true;
        Ok(())
    }

    pub fn is_all_done(&self, task: &str) -> bool {
        self.node(task).is_ok_and(|i| self.all_done[i.index()])
    }

    fn node(&self, task: &str) -> Result<NodeIndex, GraphError> {
        self.index
            .get(task)
            .copied()
            .ok_or_else(|| GraphError::UnknownTask(task.to_owned()))
    }

    fn names(&self, nodes: impl Iterator<Item = NodeIndex>) -> Vec<String> {
        nodes.map(|i| self.graph[i].clone()).collect()
    }

    /// Direct upstream tasks, in definition order.
    pub fn upstream(&self, task: &str) -> Vec<String> {
        let Ok(i) = self.node(task) else {
            return Vec::new();
        };
        let mut up: Vec<NodeIndex> = self
            .graph
            .neighbors_directed(i, Direction::Incoming)
            .collect();
        up.sort();
        self.names(up.into_iter())
    }

    /// Direct downstream tasks, in definition order.
    pub fn downstream(&self, task: &str) -> Vec<String> {
        let Ok(i) = self.node(task) else {
            return Vec::new();
        };
        let mut down: Vec<NodeIndex> = self
            .graph
            .neighbors_directed(i, Direction::Outgoing)
            .collect();
        down.sort();
        self.names(down.into_iter())
    }

    /// Every task `task` depends on, directly or not, in topological order (so a later
    /// one's values override an earlier one's when parameters are merged).
    pub fn ancestors(&self, task: &str) -> Vec<&str> {
        use petgraph::visit::{VisitMap, Visitable};
        let Ok(i) = self.node(task) else {
            return Vec::new();
        };
        let mut stack: Vec<NodeIndex> = self
            .graph
            .neighbors_directed(i, Direction::Incoming)
            .collect();
        if stack.is_empty() {
            // A fan-out's tasks: no set to allocate for them.
            return Vec::new();
        }
        // This runs for every task dispatched. A bit per node of the graph (a 10,000-task
        // graph's is 1.25 KiB) costs less than hashing each ancestor into a set.
        let mut seen = self.graph.visit_map();
        let mut found = Vec::new();
        while let Some(n) = stack.pop() {
            if seen.visit(n) {
                found.push(n);
                stack.extend(self.graph.neighbors_directed(n, Direction::Incoming));
            }
        }
        found.sort_unstable_by_key(|n| self.position[n.index()]);
        found.into_iter().map(|n| self.graph[n].as_str()).collect()
    }

    pub fn is_selected(&self, task: &str) -> bool {
        self.node(task).is_ok_and(|i| self.selected[i.index()])
    }

    /// Every task name, in definition order.
    pub fn tasks(&self) -> Vec<String> {
        self.names(self.graph.node_indices())
    }

    pub fn status(&self, task: &str) -> Option<NodeStatus> {
        let i = self.index.get(task)?;
        Some(self.statuses()[i.index()])
    }

    /// Every node's status, derived in one pass in topological order (linear in the
    /// size of the graph, however many paths lead to a task).
    fn statuses(&self) -> Vec<NodeStatus> {
        let mut status = vec![NodeStatus::NotSelected; self.graph.node_count()];
        for &i in &self.order {
            status[i.index()] = if !self.selected[i.index()] {
                NodeStatus::NotSelected
            } else if let Some(state) = self.states[i.index()] {
                if state.is_finished() {
                    NodeStatus::Finished(state)
                } else {
                    NodeStatus::Active(state)
                }
            } else if self.all_done[i.index()] {
                let pending = self
                    .graph
                    .neighbors_directed(i, Direction::Incoming)
                    .any(|up| {
                        matches!(
                            status[up.index()],
                            NodeStatus::Waiting | NodeStatus::Ready | NodeStatus::Active(_)
                        )
                    });
                if pending {
                    NodeStatus::Waiting
                } else {
                    NodeStatus::Ready
                }
            } else {
                let mut derived = NodeStatus::Ready;
                for up in self.graph.neighbors_directed(i, Direction::Incoming) {
                    // Tasks outside this run count as done (DolphinScheduler's
                    // start-from-node).
                    match status[up.index()] {
                        NodeStatus::NotSelected => {}
                        NodeStatus::Finished(s) if s.lets_dependents_run() => {}
                        NodeStatus::Finished(_) | NodeStatus::Blocked => {
                            derived = NodeStatus::Blocked;
                            break;
                        }
                        _ => derived = NodeStatus::Waiting,
                    }
                }
                derived
            };
        }
        status
    }

    fn names_where(&self, keep: impl Fn(NodeStatus) -> bool) -> Vec<String> {
        let status = self.statuses();
        self.graph
            .node_indices()
            .filter(|i| keep(status[i.index()]))
            .map(|i| self.graph[i].clone())
            .collect()
    }

    /// Tasks that may be dispatched now, in definition order.
    pub fn ready(&self) -> Vec<String> {
        self.names_where(|s| s == NodeStatus::Ready)
    }

    /// Tasks that became ready because `finished` just finished: only their direct
    /// downstream tasks can have changed, so this costs what they touch, not the size of
    /// the graph. None when an `all_done` task is among them (its readiness depends on
    /// derived statuses further up): ask [`Self::ready`] then.
    pub fn ready_after(&self, finished: &[String]) -> Option<Vec<String>> {
        let mut seen = std::collections::HashSet::new();
        let mut ready = Vec::new();
        for f in finished {
            let Ok(i) = self.node(f) else { continue };
            for d in self.graph.neighbors_directed(i, Direction::Outgoing) {
                if !self.selected[d.index()] || self.states[d.index()].is_some() || !seen.insert(d)
                {
                    continue;
                }
                if self.all_done[d.index()] {
                    return None;
                }
                let ok = self
                    .graph
                    .neighbors_directed(d, Direction::Incoming)
                    .all(|u| {
                        !self.selected[u.index()]
                            || self.states[u.index()].is_some_and(|s| s.lets_dependents_run())
                    });
                if ok {
                    ready.push(d);
                }
            }
        }
        ready.sort();
        Some(self.names(ready.into_iter()))
    }

    /// Tasks that can never run because something upstream failed.
    pub fn blocked(&self) -> Vec<String> {
        self.names_where(|s| s == NodeStatus::Blocked)
    }

    pub fn active(&self) -> Vec<String> {
        self.names_where(|s| matches!(s, NodeStatus::Active(_)))
    }

    /// Nothing is ready, waiting or active: the run is over.
    pub fn is_complete(&self) -> bool {
        self.names_where(|s| {
            matches!(
                s,
                NodeStatus::Ready | NodeStatus::Waiting | NodeStatus::Active(_)
            )
        })
        .is_empty()
    }

    /// Whether some selected task failed or was killed (or can never run for that
    /// reason), not counting failures an `all_done` task downstream handles.
    pub fn has_failure(&self) -> bool {
        let status = self.statuses();
        self.graph.node_indices().any(|i| {
            let failed = matches!(
                status[i.index()],
                NodeStatus::Blocked
                    | NodeStatus::Finished(TaskInstanceState::Failed | TaskInstanceState::Killed)
            );
            failed
                && !self
                    .graph
                    .neighbors_directed(i, Direction::Outgoing)
                    .any(|d| self.selected[d.index()] && self.all_done[d.index()])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskInstanceState as S;

    /// a → b → d, a → c → d, e independent.
    fn diamond(scope: RunScope) -> ExecutionGraph {
        let t = |n: &str, d: &[&str]| (n.to_owned(), d.iter().map(|s| (*s).to_owned()).collect());
        ExecutionGraph::new(
            &[
                t("a", &[]),
                t("b", &["a"]),
                t("c", &["a"]),
                t("d", &["b", "c"]),
                t("e", &[]),
            ],
            &scope,
        )
        .unwrap()
    }

    #[test]
    fn tasks_become_ready_when_all_upstreams_let_them_through() {
        let mut g = diamond(RunScope::All);
        assert_eq!(g.ready(), ["a", "e"]);
        g.set_state("a", S::Running).unwrap();
        assert_eq!(g.ready(), ["e"]);
        assert_eq!(g.active(), ["a"]);
        g.set_state("a", S::Succeeded).unwrap();
        assert_eq!(g.ready(), ["b", "c", "e"]);
        g.set_state("b", S::Skipped).unwrap();
        g.set_state("c", S::ForcedSuccess).unwrap();
        g.set_state("e", S::Succeeded).unwrap();
        assert_eq!(g.ready(), ["d"]);
        assert!(!g.is_complete());
        g.set_state("d", S::Succeeded).unwrap();
        assert!(g.is_complete());
        assert!(!g.has_failure());
    }

    #[test]
    fn a_failure_blocks_everything_downstream_but_not_other_branches() {
        let mut g = diamond(RunScope::All);
        g.set_state("a", S::Succeeded).unwrap();
        g.set_state("b", S::Failed).unwrap();
        assert_eq!(g.blocked(), ["d"]);
        assert_eq!(g.ready(), ["c", "e"]);
        g.set_state("c", S::Succeeded).unwrap();
        g.set_state("e", S::Succeeded).unwrap();
        assert!(g.is_complete());
        assert!(g.has_failure());
        // Retrying is not final: nothing is blocked yet.
        let mut g = diamond(RunScope::All);
        g.set_state("a", S::Retrying).unwrap();
        assert!(g.blocked().is_empty());
        assert!(!g.is_complete());
    }

    #[test]
    fn scopes_select_sub_graphs() {
        let g = diamond(RunScope::Only(vec!["d".into()]));
        assert_eq!(g.ready(), ["d"]);
        assert_eq!(g.status("a"), Some(NodeStatus::NotSelected));
        let g = diamond(RunScope::WithDownstream(vec!["b".into()]));
        assert_eq!(g.ready(), ["b"]);
        assert_eq!(g.status("d"), Some(NodeStatus::Waiting));
        assert_eq!(g.status("c"), Some(NodeStatus::NotSelected));
        let g = diamond(RunScope::WithUpstream(vec!["b".into()]));
        assert_eq!(g.ready(), ["a"]);
        assert_eq!(g.status("d"), Some(NodeStatus::NotSelected));
        assert!(matches!(
            ExecutionGraph::new(&[], &RunScope::Only(vec!["x".into()])),
            Err(GraphError::UnknownTask(t)) if t == "x"
        ));
    }

    #[test]
    fn bad_graphs_are_refused() {
        let t = |n: &str, d: &[&str]| {
            (
                n.to_owned(),
                d.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>(),
            )
        };
        let err = ExecutionGraph::new(&[t("a", &["b"]), t("b", &["a"])], &RunScope::All)
            .err()
            .unwrap();
        assert!(matches!(err, GraphError::Cycle(_)), "{err}");
        let err = ExecutionGraph::new(&[t("a", &["zz"])], &RunScope::All)
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "task `a` depends on unknown task `zz`");
    }

    #[test]
    fn ready_after_looks_only_downstream_and_agrees_with_a_full_scan() {
        let mut g = diamond(RunScope::All);
        assert_eq!(g.ready(), ["a", "e"]);
        g.set_state("a", TaskInstanceState::Succeeded).unwrap();
        assert_eq!(g.ready_after(&["a".into()]).unwrap(), ["b", "c"]);
        g.set_state("b", TaskInstanceState::Succeeded).unwrap();
        assert!(
            g.ready_after(&["b".into()]).unwrap().is_empty(),
            "d still waits for c"
        );
        g.set_state("c", TaskInstanceState::Skipped).unwrap();
        assert_eq!(g.ready_after(&["c".into()]).unwrap(), ["d"]);
        let full: Vec<String> = g.ready().into_iter().filter(|t| t == "d").collect();
        assert_eq!(full, ["d"]);
        // A failed upstream makes nothing ready.
        let mut g = diamond(RunScope::All);
        g.set_state("a", TaskInstanceState::Failed).unwrap();
        assert!(g.ready_after(&["a".into()]).unwrap().is_empty());
    }

    #[test]
    fn all_done_tasks_run_after_failures_and_absorb_them() {
        let mut g = diamond(RunScope::All);
        g.set_all_done("d").unwrap();
        g.set_state("a", TaskInstanceState::Succeeded).unwrap();
        g.set_state("b", TaskInstanceState::Failed).unwrap();
        assert_eq!(
            g.status("d"),
            Some(NodeStatus::Waiting),
            "c has not finished"
        );
        assert_eq!(
            g.ready_after(&["b".into()]),
            None,
            "all-done readiness needs a full scan"
        );
        g.set_state("c", TaskInstanceState::Succeeded).unwrap();
        assert!(g.ready().contains(&"d".to_string()));
        g.set_state("d", TaskInstanceState::Succeeded).unwrap();
        g.set_state("e", TaskInstanceState::Succeeded).unwrap();
        assert!(g.is_complete());
        assert!(!g.has_failure(), "d handled b's failure");
    }

    #[test]
    fn ancestors_come_in_topological_order() {
        let g = diamond(RunScope::All);
        // Upstream before downstream; b and c are independent, either order is fine.
        let ancestors = g.ancestors("d");
        assert_eq!(ancestors[0], "a");
        assert_eq!(ancestors.len(), 3);
        assert!(ancestors.contains(&"b") && ancestors.contains(&"c"));
        assert!(g.ancestors("a").is_empty());
        assert_eq!(g.upstream("d"), ["b", "c"]);
        assert_eq!(g.downstream("a"), ["b", "c"]);
        let mut g = diamond(RunScope::All);
        g.set_state("a", TaskInstanceState::Failed).unwrap();
        g.clear_state("a").unwrap();
        assert_eq!(g.ready(), ["a", "e"], "a cleared task is ready again");
    }
}
