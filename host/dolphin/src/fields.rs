//! Reading DolphinScheduler's JSON objects field by field. Each [`Obj`] remembers the
//! fields that were read, so that every field left over at the end becomes a warning
//! ("accepted, not supported: ...") instead of vanishing, unless it is bookkeeping that
//! only DolphinScheduler's UI and database use ([`SILENT_FIELDS`]).

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::error::Problem;

/// Fields DolphinScheduler writes that say nothing about what a workflow does, so that
/// dropping them loses nothing: database ids, versions and timestamps, owners, the
/// project a definition was exported from (the import chooses its own), the DAG
/// editor's node positions, values computed from other fields and serialized beside
/// them (`taskParamList`, `globalParamMap`, ...), and the state the master writes into
/// a definition's copy while it runs a task (`varPool`, `dependResult`, ...). Any other
/// field that is set and not mapped is reported as a warning.
pub(crate) const SILENT_FIELDS: &[&str] = &[
    // Identity and bookkeeping of the database rows.
    "id",
    "version",
    "createTime",
    "updateTime",
    "operator",
    "operateTime",
    "userId",
    "userName",
    "modifyBy",
    "projectCode",
    "projectName",
    "processDefinitionVersion",
    "workflowDefinitionVersion",
    "preTaskVersion",
    "postTaskVersion",
    "processDefinitionName",
    "workflowDefinitionName",
    "definitionDescription",
    "environmentName",
    // The DAG editor's layout.
    "locations",
    // Values DolphinScheduler derives from other fields and serializes beside them.
    "taskParamList",
    "taskParamMap",
    "globalParamList",
    "globalParamMap",
    "scheduleReleaseState",
    // The create API's `otherParamsJson`, which DolphinScheduler itself never reads.
    "otherParamsJson",
    // State of a running task instance, copied into definitions by some versions.
    "varPool",
    "conditionSuccess",
    "nextBranch",
    "dependResult",
    "state",
    "resultConditionLocation",
];

/// Where a field is: the workflow and, inside a task, the task.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub workflow: String,
    pub task: Option<String>,
}

impl Ctx {
    pub fn workflow(name: &str) -> Self {
        Ctx {
            workflow: name.to_owned(),
            task: None,
        }
    }

    pub fn task(&self, name: &str) -> Self {
        Ctx {
            workflow: self.workflow.clone(),
            task: Some(name.to_owned()),
        }
    }

    /// `workflow `w`, task `t`` for messages.
    pub fn at(&self) -> String {
        match &self.task {
            Some(t) => format!("workflow `{}`, task `{t}`", self.workflow),
            None => format!("workflow `{}`", self.workflow),
        }
    }

    pub fn invalid(&self, field: &str, message: impl Into<String>) -> Problem {
        Problem::Invalid {
            workflow: self.workflow.clone(),
            task: self.task.clone(),
            field: field.to_owned(),
            message: message.into(),
        }
    }

    pub fn missing(&self, field: &str) -> Problem {
        Problem::Missing {
            workflow: self.workflow.clone(),
            task: self.task.clone(),
            field: field.to_owned(),
        }
    }

    pub fn unsupported(&self, what: impl Into<String>) -> Problem {
        Problem::Unsupported {
            workflow: self.workflow.clone(),
            task: self.task.clone().unwrap_or_default(),
            what: what.into(),
        }
    }
}

/// Problems and warnings gathered while converting.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub problems: Vec<Problem>,
    pub warnings: Vec<String>,
}

impl Report {
    /// "accepted, not supported: ..." for a field Shoal reads but cannot act on.
    pub fn not_supported(&mut self, ctx: &Ctx, what: impl AsRef<str>) {
        self.warnings.push(format!(
            "{}: accepted, not supported: {}",
            ctx.at(),
            what.as_ref()
        ));
    }

    pub fn warn(&mut self, ctx: &Ctx, what: impl AsRef<str>) {
        self.warnings
            .push(format!("{}: {}", ctx.at(), what.as_ref()));
    }
}

/// A value left unset: null, empty text, or a list or object holding only unset values
/// (DolphinScheduler 3.0 writes `"dependence": {}` and `"conditionResult":
/// {"successNode": [""], "failedNode": [""]}` into every task's parameters).
pub(crate) fn is_unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(items) => items.iter().all(is_unset),
        Value::Object(map) => map.values().all(is_unset),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// A value for a message: JSON, cut short.
pub(crate) fn show(v: &Value) -> String {
    const MAX: usize = 60;
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// One JSON object being read.
pub(crate) struct Obj<'a> {
    map: &'a Map<String, Value>,
    /// Path of this object in messages: `taskParams.`, `dependence.dependTaskList[0].`.
    prefix: String,
    pub ctx: Ctx,
    read: HashSet<&'a str>,
}

impl<'a> Obj<'a> {
    pub fn new(map: &'a Map<String, Value>, ctx: Ctx, prefix: impl Into<String>) -> Self {
        Obj {
            map,
            prefix: prefix.into(),
            ctx,
            read: HashSet::new(),
        }
    }

    /// The path of `key` in messages.
    pub fn field(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The value of `key`, marked read; `None` when absent or null.
    pub fn raw(&mut self, key: &str) -> Option<&'a Value> {
        let (k, v) = self.map.get_key_value(key)?;
        self.read.insert(k.as_str());
        (!v.is_null()).then_some(v)
    }

    /// Text; a number or boolean is taken as its text (the UI sends some numbers
    /// quoted and some not).
    pub fn text(&mut self, r: &mut Report, key: &str) -> Option<String> {
        match self.raw(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                r.problems.push(self.ctx.invalid(
                    &self.field(key),
                    format!("must be text, not {}", show(other)),
                ));
                None
            }
        }
    }

    /// Text, trimmed; empty text is unset.
    pub fn word(&mut self, r: &mut Report, key: &str) -> Option<String> {
        self.text(r, key)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    }

    /// A whole number, written as a number or as text; empty text is unset.
    pub fn int(&mut self, r: &mut Report, key: &str) -> Option<i64> {
        let v = self.raw(key)?;
        let parsed = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) if s.trim().is_empty() => return None,
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        if parsed.is_none() {
            r.problems.push(self.ctx.invalid(
                &self.field(key),
                format!("`{}` is not a whole number", show(v)),
            ));
        }
        parsed
    }

    /// A whole number that must not be negative.
    pub fn count(&mut self, r: &mut Report, key: &str) -> Option<u32> {
        let n = self.int(r, key)?;
        match u32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                r.problems.push(
                    self.ctx
                        .invalid(&self.field(key), format!("`{n}` is not a whole number ≥ 0")),
                );
                None
            }
        }
    }

    /// A boolean, as JSON or as text.
    pub fn bool(&mut self, r: &mut Report, key: &str) -> Option<bool> {
        let v = self.raw(key)?;
        match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s.trim().is_empty() => None,
            Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
            Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
            _ => {
                r.problems.push(self.ctx.invalid(
                    &self.field(key),
                    format!("`{}` is not true or false", show(v)),
                ));
                None
            }
        }
    }

    /// One of a DolphinScheduler enum's names (any case), or its ordinal, which some
    /// versions write instead: `names` are in declaration order.
    pub fn choice(
        &mut self,
        r: &mut Report,
        key: &str,
        names: &[&'static str],
    ) -> Option<&'static str> {
        let v = self.raw(key)?;
        let found = match v {
            Value::String(s) if s.trim().is_empty() => return None,
            Value::String(s) => names
                .iter()
                .find(|n| n.eq_ignore_ascii_case(s.trim()))
                .copied(),
            Value::Number(n) => n
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| names.get(i))
                .copied(),
            _ => None,
        };
        if found.is_none() {
            r.problems.push(self.ctx.invalid(
                &self.field(key),
                format!("`{}` is not one of {}", show(v), names.join(", ")),
            ));
        }
        found
    }

    /// A list; a single value counts as a list of one.
    pub fn list(&mut self, r: &mut Report, key: &str) -> Vec<&'a Value> {
        match self.raw(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => items.iter().collect(),
            Some(Value::Object(_)) => {
                r.problems.push(
                    self.ctx
                        .invalid(&self.field(key), "must be a list, not an object"),
                );
                Vec::new()
            }
            Some(one) => vec![one],
        }
    }

    /// A nested object, to be read and finished by the caller.
    pub fn object(&mut self, r: &mut Report, key: &str) -> Option<Obj<'a>> {
        let prefix = self.field(key);
        match self.raw(key)? {
            Value::Object(map) => Some(Obj::new(map, self.ctx.clone(), format!("{prefix}."))),
            other => {
                r.problems.push(
                    self.ctx
                        .invalid(&prefix, format!("must be an object, not {}", show(other))),
                );
                None
            }
        }
    }

    /// A field Shoal has no counterpart for: read, and a warning when it is set to
    /// anything but DolphinScheduler's default (`is_default`).
    pub fn unsupported(
        &mut self,
        r: &mut Report,
        key: &str,
        is_default: impl Fn(&Value) -> bool,
        why: &str,
    ) {
        if let Some(v) = self.raw(key)
            && !is_unset(v)
            && !is_default(v)
        {
            let field = self.field(key);
            r.not_supported(&self.ctx, format!("`{field}` = {} ({why})", show(v)));
        }
    }

    /// Every field that was not read and is set becomes a warning, unless it is one of
    /// [`SILENT_FIELDS`].
    pub fn finish(self, r: &mut Report) {
        let mut left: Vec<(&String, &Value)> = self
            .map
            .iter()
            .filter(|(k, v)| {
                !self.read.contains(k.as_str())
                    && !SILENT_FIELDS.contains(&k.as_str())
                    && !is_unset(v)
            })
            .collect();
        left.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in left {
            r.not_supported(
                &self.ctx,
                format!(
                    "`{}` = {} (a field this importer does not know)",
                    self.field(k),
                    show(v)
                ),
            );
        }
    }
}

/// A value that is a number, or text holding one: DolphinScheduler's codes, written
/// either way depending on the version and on whether the UI or the server wrote them.
pub(crate) fn code_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unset_values_are_recognised_deeply() {
        assert!(is_unset(&json!({"successNode": [""], "failedNode": [""]})));
        assert!(is_unset(&json!({"dependence": {}, "x": null})));
        assert!(!is_unset(&json!({"a": [0]})));
        assert!(!is_unset(&json!(false)));
    }

    #[test]
    fn unread_fields_are_warned_about_except_silent_and_unset_ones() {
        let map = json!({"a": 1, "b": "x", "locations": "[...]", "c": "", "d": {"e": 2}})
            .as_object()
            .cloned()
            .unwrap();
        let mut r = Report::default();
        let mut obj = Obj::new(&map, Ctx::workflow("w"), "processDefinition.");
        assert_eq!(obj.int(&mut r, "a"), Some(1));
        obj.finish(&mut r);
        assert!(r.problems.is_empty());
        assert_eq!(
            r.warnings,
            [
                "workflow `w`: accepted, not supported: `processDefinition.b` = x (a field this importer does not know)",
                "workflow `w`: accepted, not supported: `processDefinition.d` = {\"e\":2} (a field this importer does not know)",
            ]
        );
    }

    #[test]
    fn numbers_and_enums_read_either_way() {
        let map = json!({"n": "12", "m": 3, "p": "high", "q": 4, "bad": "x", "wrong": "SOMETIMES"})
            .as_object()
            .cloned()
            .unwrap();
        let mut r = Report::default();
        let mut obj = Obj::new(&map, Ctx::workflow("w").task("t"), "");
        assert_eq!(obj.int(&mut r, "n"), Some(12));
        assert_eq!(obj.int(&mut r, "m"), Some(3));
        let names = ["HIGHEST", "HIGH", "MEDIUM", "LOW", "LOWEST"];
        assert_eq!(obj.choice(&mut r, "p", &names), Some("HIGH"));
        assert_eq!(obj.choice(&mut r, "q", &names), Some("LOWEST"));
        assert_eq!(obj.int(&mut r, "bad"), None);
        assert_eq!(obj.choice(&mut r, "wrong", &names), None);
        let messages: Vec<String> = r.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "workflow `w`, task `t`: `bad`: `x` is not a whole number",
                "workflow `w`, task `t`: `wrong`: `SOMETIMES` is not one of HIGHEST, HIGH, MEDIUM, LOW, LOWEST",
            ]
        );
    }
}
