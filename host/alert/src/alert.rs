use std::fmt;

use chrono::{DateTime, SecondsFormat};
use serde::{Deserialize, Serialize};

/// What happened. Channels subscribe per kind (see [`crate::AlertChannel::wants`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    WorkflowFailed,
    WorkflowSucceeded,
    TaskTimeout,
    TaskFailed,
}

impl AlertKind {
    pub const ALL: [AlertKind; 4] = [
        AlertKind::WorkflowFailed,
        AlertKind::WorkflowSucceeded,
        AlertKind::TaskTimeout,
        AlertKind::TaskFailed,
    ];

    /// What a channel that lists no events receives: every kind that needs a person.
    /// Success is left out because a channel paged on every successful run soon stops
    /// being read; a channel that wants it lists it.
    pub const DEFAULT_EVENTS: [AlertKind; 3] = [
        AlertKind::WorkflowFailed,
        AlertKind::TaskTimeout,
        AlertKind::TaskFailed,
    ];

    /// The configuration spelling, the same as the serde one.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::WorkflowFailed => "workflow-failed",
            AlertKind::WorkflowSucceeded => "workflow-succeeded",
            AlertKind::TaskTimeout => "task-timeout",
            AlertKind::TaskFailed => "task-failed",
        }
    }

    fn is_about_a_task(self) -> bool {
        matches!(self, AlertKind::TaskTimeout | AlertKind::TaskFailed)
    }

    fn outcome(self) -> &'static str {
        match self {
            AlertKind::WorkflowFailed | AlertKind::TaskFailed => "failed",
            AlertKind::WorkflowSucceeded => "succeeded",
            AlertKind::TaskTimeout => "timed out",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event worth telling someone about. This is also the webhook payload, so its field
/// names are part of the contract with whoever receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Alert {
    pub kind: AlertKind,
    pub project: String,
    pub workflow: String,
    pub instance_id: i64,
    /// The task concerned: always set for task kinds, and for a failed workflow the task
    /// that failed it when the engine knows.
    #[serde(default)]
    pub task: Option<String>,
    pub message: String,
    /// Milliseconds since the Unix epoch, UTC.
    pub at_ms: i64,
}

impl Alert {
    /// One line that says what happened, for a mail subject or a chat headline.
    pub fn title(&self) -> String {
        let subject = match (&self.task, self.kind.is_about_a_task()) {
            (Some(task), true) => format!("task `{task}` of workflow `{}`", self.workflow),
            (None, true) => format!("a task of workflow `{}`", self.workflow),
            (_, false) => format!("workflow `{}`", self.workflow),
        };
        format!(
            "[shoal] {subject} instance {} {}",
            self.instance_id,
            self.kind.outcome()
        )
    }

    /// The details a person needs to find the run, followed by the engine's message.
    pub fn text(&self) -> String {
        let mut text = format!(
            "project:  {}\nworkflow: {}\ninstance: {}\n",
            self.project, self.workflow, self.instance_id
        );
        if let Some(task) = &self.task {
            text.push_str(&format!("task:     {task}\n"));
        }
        text.push_str(&format!(
            "event:    {}\nat:       {}\n",
            self.kind,
            format_time(self.at_ms)
        ));
        let message = self.message.trim();
        if !message.is_empty() {
            text.push('\n');
            text.push_str(message);
            text.push('\n');
        }
        text
    }
}

fn format_time(at_ms: i64) -> String {
    match DateTime::from_timestamp_millis(at_ms) {
        Some(at) => at.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => format!("{at_ms} ms after the Unix epoch"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(kind: AlertKind, task: Option<&str>) -> Alert {
        Alert {
            kind,
            project: "etl".into(),
            workflow: "daily".into(),
            instance_id: 12,
            task: task.map(String::from),
            message: "exit code 3".into(),
            at_ms: 1_714_557_600_123,
        }
    }

    #[test]
    fn titles_say_what_happened_to_what() {
        assert_eq!(
            alert(AlertKind::WorkflowFailed, None).title(),
            "[shoal] workflow `daily` instance 12 failed"
        );
        assert_eq!(
            alert(AlertKind::WorkflowSucceeded, None).title(),
            "[shoal] workflow `daily` instance 12 succeeded"
        );
        assert_eq!(
            alert(AlertKind::TaskTimeout, Some("extract")).title(),
            "[shoal] task `extract` of workflow `daily` instance 12 timed out"
        );
        assert_eq!(
            alert(AlertKind::TaskFailed, None).title(),
            "[shoal] a task of workflow `daily` instance 12 failed"
        );
    }

    #[test]
    fn text_carries_the_details_and_the_message() {
        let text = alert(AlertKind::TaskFailed, Some("extract")).text();
        for needle in [
            "project:  etl",
            "workflow: daily",
            "instance: 12",
            "task:     extract",
            "event:    task-failed",
            "at:       2024-05-01T10:00:00.123Z",
            "exit code 3",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from {text:?}");
        }
        assert!(
            !alert(AlertKind::WorkflowFailed, None)
                .text()
                .contains("task:")
        );
    }

    #[test]
    fn kinds_use_kebab_case_and_the_payload_round_trips() {
        for kind in AlertKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::String(kind.as_str().into())
            );
        }
        let original = alert(AlertKind::TaskTimeout, Some("extract"));
        let json = serde_json::to_value(&original).unwrap();
        assert_eq!(json["instance-id"], 12);
        assert_eq!(json["at-ms"], 1_714_557_600_123_i64);
        assert_eq!(json["kind"], "task-timeout");
        assert_eq!(serde_json::from_value::<Alert>(json).unwrap(), original);
    }
}
