//! The state machines of workflow instances and task instances.
//!
//! Each machine is a table: `(state, action) -> next state`. Anything not in the table
//! is an [`IllegalTransition`], which the engine reports instead of applying. Names
//! follow DolphinScheduler's, so its users read the same states.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a {kind} that is {state}")]
pub struct IllegalTransition {
    pub kind: &'static str,
    pub state: String,
    pub action: String,
}

/// A workflow instance's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkflowState {
    /// Created, not yet picked up by the engine.
    Submitted,
    Running,
    /// A pause was asked for; running tasks finish, no new task starts.
    ReadyPause,
    Paused,
    /// A stop was asked for; running tasks are being killed.
    ReadyStop,
    Stopped,
    Succeeded,
    Failed,
}

/// What can happen to a workflow instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkflowAction {
    /// The engine picks the instance up.
    Start,
    /// Operator: pause.
    Pause,
    /// Operator: stop.
    Stop,
    /// No task is running any more (after a pause or stop request).
    Drained,
    /// Operator: resume a paused instance.
    Resume,
    /// Every task reached a final state and none failed.
    AllSucceeded,
    /// The DAG ended with a failure (failure strategy `end`, or `continue` once the other
    /// branches are done).
    TaskFailed,
    /// Operator: rerun a finished instance from scratch.
    Rerun,
    /// Operator: recover a failed or stopped instance (rerun failed tasks and their
    /// dependents, keep the successes).
    Recover,
}

impl std::fmt::Display for WorkflowState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Submitted => "submitted",
            Self::Running => "running",
            Self::ReadyPause => "ready-pause",
            Self::Paused => "paused",
            Self::ReadyStop => "ready-stop",
            Self::Stopped => "stopped",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        })
    }
}

impl std::fmt::Display for WorkflowAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Start => "start",
            Self::Pause => "pause",
            Self::Stop => "stop",
            Self::Drained => "drain",
            Self::Resume => "resume",
            Self::AllSucceeded => "succeed",
            Self::TaskFailed => "fail",
            Self::Rerun => "rerun",
            Self::Recover => "recover",
        })
    }
}

impl WorkflowState {
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Stopped)
    }

    /// The state after `action`, or why it is not allowed.
    pub fn apply(self, action: WorkflowAction) -> Result<Self, IllegalTransition> {
        use WorkflowAction as A;
        use WorkflowState as S;
        let next = match (self, action) {
            (S::Submitted, A::Start) => S::Running,
            (S::Submitted | S::Paused, A::Stop) => S::Stopped,
            (S::Running, A::Pause) => S::ReadyPause,
            (S::Running | S::ReadyPause, A::Stop) => S::ReadyStop,
            (S::ReadyPause, A::Drained) => S::Paused,
            (S::ReadyStop, A::Drained) => S::Stopped,
            (S::Paused, A::Resume) => S::Running,
            (S::Running, A::AllSucceeded) => S::Succeeded,
            (S::Running, A::TaskFailed) => S::Failed,
            // A pause or stop request racing the last task's end: the end wins for a
            // pause (nothing is left to pause), the stop stays a stop.
            (S::ReadyPause, A::AllSucceeded) => S::Succeeded,
            (S::ReadyPause, A::TaskFailed) => S::Failed,
            (S::Succeeded | S::Failed | S::Stopped, A::Rerun) => S::Running,
            (S::Failed | S::Stopped, A::Recover) => S::Running,
            _ => {
                return Err(IllegalTransition {
                    kind: "workflow instance",
                    state: self.to_string(),
                    action: action.to_string(),
                });
            }
        };
        Ok(next)
    }
}

/// A task instance's state, as the master tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskInstanceState {
    Submitted,
    /// Waiting out its `delay_time`.
    Delayed,
    /// Waiting in the master for a worker of its group with a free slot.
    Dispatching,
    /// Handed to the TaskEngine (possibly waiting there for a slot).
    Dispatched,
    Running,
    /// Failed with retries left; waiting out `fail_retry_interval`.
    Retrying,
    Succeeded,
    Failed,
    Killed,
    /// Failed or killed, then marked successful by an operator.
    ForcedSuccess,
    /// Forbidden (`flag: NO`) or on a branch a Condition/Switch did not take.
    Skipped,
    /// Not yet dispatched when its workflow paused.
    Paused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskAction {
    Delay,
    /// No node can take the attempt now: it waits in the master.
    Wait,
    Dispatch,
    Start,
    Succeed,
    /// The attempt failed; `retries_left` decides between Retrying and Failed.
    Fail {
        retries_left: bool,
    },
    /// The retry interval passed: the next attempt is dispatched.
    RetryDue,
    Kill,
    ForceSuccess,
    Skip,
    Pause,
    Resume,
}

impl std::fmt::Display for TaskInstanceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Submitted => "submitted",
            Self::Delayed => "delayed",
            Self::Dispatching => "dispatching",
            Self::Dispatched => "dispatched",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Killed => "killed",
            Self::ForcedSuccess => "forced-success",
            Self::Skipped => "skipped",
            Self::Paused => "paused",
        })
    }
}

impl std::fmt::Display for TaskAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Delay => "delay",
            Self::Wait => "wait",
            Self::Dispatch => "dispatch",
            Self::Start => "start",
            Self::Succeed => "succeed",
            Self::Fail { .. } => "fail",
            Self::RetryDue => "retry",
            Self::Kill => "kill",
            Self::ForceSuccess => "force-success",
            Self::Skip => "skip",
            Self::Pause => "pause",
            Self::Resume => "resume",
        })
    }
}

impl TaskInstanceState {
    /// Final states; downstream tasks may be decided once every upstream is final.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Killed | Self::ForcedSuccess | Self::Skipped
        )
    }

    /// Whether dependents may run after it (DolphinScheduler treats a forbidden task as
    /// passed through).
    pub fn lets_dependents_run(self) -> bool {
        matches!(self, Self::Succeeded | Self::ForcedSuccess | Self::Skipped)
    }

    pub fn apply(self, action: TaskAction) -> Result<Self, IllegalTransition> {
        use TaskAction as A;
        use TaskInstanceState as S;
        let next = match (self, action) {
            (S::Submitted, A::Delay) => S::Delayed,
            (S::Submitted | S::Delayed | S::Dispatching, A::Dispatch) => S::Dispatched,
            // Dispatched and running: an attempt whose node was lost, to be followed
            // again from its handle once a node has room.
            (S::Submitted | S::Delayed | S::Retrying | S::Dispatched | S::Running, A::Wait) => {
                S::Dispatching
            }
            (S::Submitted | S::Delayed | S::Retrying | S::Dispatching, A::Pause) => S::Paused,
            (S::Paused, A::Resume) => S::Submitted,
            (S::Dispatched, A::Start) => S::Running,
            (S::Dispatched | S::Running, A::Succeed) => S::Succeeded,
            (S::Dispatched | S::Running, A::Fail { retries_left: true }) => S::Retrying,
            (
                S::Dispatched | S::Running,
                A::Fail {
                    retries_left: false,
                },
            ) => S::Failed,
            (S::Retrying, A::RetryDue) => S::Dispatched,
            (
                S::Submitted
                | S::Delayed
                | S::Dispatching
                | S::Dispatched
                | S::Running
                | S::Retrying
                | S::Paused,
                A::Kill,
            ) => S::Killed,
            (S::Failed | S::Killed, A::ForceSuccess) => S::ForcedSuccess,
            (S::Submitted | S::Delayed | S::Paused, A::Skip) => S::Skipped,
            _ => {
                return Err(IllegalTransition {
                    kind: "task instance",
                    state: self.to_string(),
                    action: action.to_string(),
                });
            }
        };
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKFLOW_STATES: [WorkflowState; 8] = [
        WorkflowState::Submitted,
        WorkflowState::Running,
        WorkflowState::ReadyPause,
        WorkflowState::Paused,
        WorkflowState::ReadyStop,
        WorkflowState::Stopped,
        WorkflowState::Succeeded,
        WorkflowState::Failed,
    ];
    const WORKFLOW_ACTIONS: [WorkflowAction; 9] = [
        WorkflowAction::Start,
        WorkflowAction::Pause,
        WorkflowAction::Stop,
        WorkflowAction::Drained,
        WorkflowAction::Resume,
        WorkflowAction::AllSucceeded,
        WorkflowAction::TaskFailed,
        WorkflowAction::Rerun,
        WorkflowAction::Recover,
    ];

    /// The whole workflow table, written out once more by hand: every (state, action)
    /// pair is either here or must be refused.
    #[test]
    fn workflow_transitions_are_exactly_the_table() {
        use WorkflowAction as A;
        use WorkflowState as S;
        let allowed = [
            (S::Submitted, A::Start, S::Running),
            (S::Submitted, A::Stop, S::Stopped),
            (S::Paused, A::Stop, S::Stopped),
            (S::Running, A::Pause, S::ReadyPause),
            (S::Running, A::Stop, S::ReadyStop),
            (S::ReadyPause, A::Stop, S::ReadyStop),
            (S::ReadyPause, A::Drained, S::Paused),
            (S::ReadyStop, A::Drained, S::Stopped),
            (S::Paused, A::Resume, S::Running),
            (S::Running, A::AllSucceeded, S::Succeeded),
            (S::Running, A::TaskFailed, S::Failed),
            (S::ReadyPause, A::AllSucceeded, S::Succeeded),
            (S::ReadyPause, A::TaskFailed, S::Failed),
            (S::Succeeded, A::Rerun, S::Running),
            (S::Failed, A::Rerun, S::Running),
            (S::Stopped, A::Rerun, S::Running),
            (S::Failed, A::Recover, S::Running),
            (S::Stopped, A::Recover, S::Running),
        ];
        for state in WORKFLOW_STATES {
            for action in WORKFLOW_ACTIONS {
                let expected = allowed
                    .iter()
                    .find(|(s, a, _)| *s == state && *a == action)
                    .map(|(_, _, n)| *n);
                match (state.apply(action), expected) {
                    (Ok(next), Some(want)) => assert_eq!(next, want, "{state} + {action}"),
                    (Err(e), None) => {
                        assert_eq!(
                            e.to_string(),
                            format!("cannot {action} a workflow instance that is {state}")
                        )
                    }
                    (got, want) => panic!("{state} + {action}: got {got:?}, want {want:?}"),
                }
            }
        }
    }

    #[test]
    fn task_transitions_are_exactly_the_table() {
        use TaskAction as A;
        use TaskInstanceState as S;
        let states = [
            S::Submitted,
            S::Delayed,
            S::Dispatching,
            S::Dispatched,
            S::Running,
            S::Retrying,
            S::Succeeded,
            S::Failed,
            S::Killed,
            S::ForcedSuccess,
            S::Skipped,
            S::Paused,
        ];
        let actions = [
            A::Delay,
            A::Wait,
            A::Dispatch,
            A::Start,
            A::Succeed,
            A::Fail { retries_left: true },
            A::Fail {
                retries_left: false,
            },
            A::RetryDue,
            A::Kill,
            A::ForceSuccess,
            A::Skip,
            A::Pause,
            A::Resume,
        ];
        let allowed = [
            (S::Submitted, A::Delay, S::Delayed),
            (S::Submitted, A::Dispatch, S::Dispatched),
            (S::Delayed, A::Dispatch, S::Dispatched),
            (S::Dispatching, A::Dispatch, S::Dispatched),
            (S::Submitted, A::Wait, S::Dispatching),
            (S::Delayed, A::Wait, S::Dispatching),
            (S::Retrying, A::Wait, S::Dispatching),
            (S::Dispatched, A::Wait, S::Dispatching),
            (S::Running, A::Wait, S::Dispatching),
            (S::Dispatching, A::Pause, S::Paused),
            (S::Dispatching, A::Kill, S::Killed),
            (S::Submitted, A::Pause, S::Paused),
            (S::Delayed, A::Pause, S::Paused),
            (S::Retrying, A::Pause, S::Paused),
            (S::Paused, A::Resume, S::Submitted),
            (S::Dispatched, A::Start, S::Running),
            (S::Dispatched, A::Succeed, S::Succeeded),
            (S::Running, A::Succeed, S::Succeeded),
            (S::Dispatched, A::Fail { retries_left: true }, S::Retrying),
            (S::Running, A::Fail { retries_left: true }, S::Retrying),
            (
                S::Dispatched,
                A::Fail {
                    retries_left: false,
                },
                S::Failed,
            ),
            (
                S::Running,
                A::Fail {
                    retries_left: false,
                },
                S::Failed,
            ),
            (S::Retrying, A::RetryDue, S::Dispatched),
            (S::Submitted, A::Kill, S::Killed),
            (S::Delayed, A::Kill, S::Killed),
            (S::Dispatched, A::Kill, S::Killed),
            (S::Running, A::Kill, S::Killed),
            (S::Retrying, A::Kill, S::Killed),
            (S::Paused, A::Kill, S::Killed),
            (S::Failed, A::ForceSuccess, S::ForcedSuccess),
            (S::Killed, A::ForceSuccess, S::ForcedSuccess),
            (S::Submitted, A::Skip, S::Skipped),
            (S::Delayed, A::Skip, S::Skipped),
            (S::Paused, A::Skip, S::Skipped),
        ];
        for state in states {
            for action in actions {
                let expected = allowed
                    .iter()
                    .find(|(s, a, _)| *s == state && *a == action)
                    .map(|(_, _, n)| *n);
                match (state.apply(action), expected) {
                    (Ok(next), Some(want)) => assert_eq!(next, want, "{state} + {action}"),
                    (Err(e), None) => {
                        assert!(
                            e.to_string()
                                .starts_with(&format!("cannot {action} a task instance"))
                        )
                    }
                    (got, want) => panic!("{state} + {action}: got {got:?}, want {want:?}"),
                }
            }
        }
    }

    #[test]
    fn final_states_and_pass_through() {
        assert!(TaskInstanceState::Skipped.is_finished());
        assert!(TaskInstanceState::Skipped.lets_dependents_run());
        assert!(TaskInstanceState::ForcedSuccess.lets_dependents_run());
        assert!(!TaskInstanceState::Failed.lets_dependents_run());
        assert!(!TaskInstanceState::Retrying.is_finished());
        assert!(WorkflowState::Stopped.is_finished());
        assert!(!WorkflowState::Paused.is_finished());
    }
}
