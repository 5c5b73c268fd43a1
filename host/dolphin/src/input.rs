//! Reading an export file: the size and count limits, JSON with line and column, which
//! of DolphinScheduler's forms it is, and the JSON that DolphinScheduler nests inside
//! strings (`globalParams`, `taskParams`, the API body's `taskDefinitionJson`), parsed
//! in place so that the rest reads one tree.

use serde_json::{Map, Value};

use crate::error::{ImportError, Problem};
use crate::{MAX_INPUT_BYTES, MAX_RELATIONS, MAX_TASKS, MAX_WORKFLOWS};

/// Which of DolphinScheduler's shapes a workflow came in; it decides the field names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// 3.0 to 3.2: `processDefinition`, `processTaskRelationList`.
    Process,
    /// 3.3: `workflowDefinition`, `workflowTaskRelationList`.
    Workflow,
    /// The create-definition API's form fields: `name`, `taskDefinitionJson`, ...
    ApiBody,
}

/// One workflow of the export, its parts still DolphinScheduler's JSON.
#[derive(Debug)]
pub(crate) struct RawWorkflow {
    pub shape: Shape,
    /// `#N` in messages until the name is known.
    pub index: usize,
    /// The definition's own fields (for the API body: the body less its task and
    /// relation lists).
    pub definition: Map<String, Value>,
    /// The field path of `definition` in messages: `processDefinition.` or empty.
    pub definition_prefix: &'static str,
    pub relations: Vec<Value>,
    pub relations_field: &'static str,
    pub tasks: Vec<Value>,
    pub tasks_field: &'static str,
    pub schedule: Option<Map<String, Value>>,
    /// Fields beside the definition, task list, relation list and schedule.
    pub extra: Map<String, Value>,
}

impl RawWorkflow {
    /// The workflow's name, or `#N`.
    pub fn label(&self) -> String {
        match self.definition.get("name").and_then(Value::as_str) {
            Some(n) if !n.trim().is_empty() => n.to_owned(),
            _ => format!("#{}", self.index),
        }
    }
}

/// Parse and split an export into its workflows; problems inside them (a missing part,
/// nested JSON that does not parse) are added to `problems`.
pub(crate) fn read(
    json: &str,
    problems: &mut Vec<Problem>,
) -> Result<Vec<RawWorkflow>, ImportError> {
    if json.len() > MAX_INPUT_BYTES {
        return Err(ImportError::TooLarge {
            size: json.len(),
            limit: MAX_INPUT_BYTES,
        });
    }
    let root: Value = serde_json::from_str(json).map_err(|e| ImportError::Json {
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })?;
    let elements = match root {
        Value::Array(items) => items,
        Value::Object(map) => vec![Value::Object(map)],
        other => {
            return Err(ImportError::NotAnExport(format!(
                "the file holds {}, not a list or an object",
                kind(&other)
            )));
        }
    };
    if elements.is_empty() {
        return Err(ImportError::NotAnExport("the list is empty".into()));
    }
    if elements.len() > MAX_WORKFLOWS {
        return Err(ImportError::TooMany {
            what: "workflows",
            count: elements.len(),
            limit: MAX_WORKFLOWS,
        });
    }
    let mut workflows = Vec::with_capacity(elements.len());
    for (i, element) in elements.into_iter().enumerate() {
        let Value::Object(map) = element else {
            return Err(ImportError::NotAnExport(format!(
                "element {} of the list is {}, not an object",
                i + 1,
                kind(&element)
            )));
        };
        workflows.push(split(map, i + 1, problems)?);
    }
    let tasks: usize = workflows.iter().map(|w| w.tasks.len()).sum();
    if tasks > MAX_TASKS {
        return Err(ImportError::TooMany {
            what: "tasks",
            count: tasks,
            limit: MAX_TASKS,
        });
    }
    let relations: usize = workflows.iter().map(|w| w.relations.len()).sum();
    if relations > MAX_RELATIONS {
        return Err(ImportError::TooMany {
            what: "task relations",
            count: relations,
            limit: MAX_RELATIONS,
        });
    }
    for wf in &mut workflows {
        nested_json(wf, problems);
    }
    Ok(workflows)
}

/// serde_json's message ends with " at line L column C", which the error states apart.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// One element of the export, whichever shape it has.
fn split(
    mut map: Map<String, Value>,
    index: usize,
    problems: &mut Vec<Problem>,
) -> Result<RawWorkflow, ImportError> {
    let shape = if map.contains_key("processDefinition") {
        Shape::Process
    } else if map.contains_key("workflowDefinition") {
        Shape::Workflow
    } else if map.contains_key("taskDefinitionJson") || map.contains_key("taskRelationJson") {
        Shape::ApiBody
    } else {
        let keys: Vec<&str> = map.keys().take(8).map(String::as_str).collect();
        return Err(ImportError::NotAnExport(format!(
            "element {index} has none of processDefinition, workflowDefinition or taskDefinitionJson (its fields: {})",
            keys.join(", ")
        )));
    };
    // The name, for messages, wherever this shape keeps it.
    let name_in = |d: Option<&Value>| {
        d.and_then(|d| d.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let label = name_in(map.get("processDefinition"))
        .or_else(|| name_in(map.get("workflowDefinition")))
        .or_else(|| map.get("name").and_then(Value::as_str).map(str::to_owned))
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| format!("#{index}"));
    let mut absent: Vec<String> = Vec::new();
    let mut missing = |field: &str| absent.push(field.to_owned());
    let mut wf = match shape {
        Shape::Process | Shape::Workflow => {
            let (def_key, rel_key) = match shape {
                Shape::Process => ("processDefinition", "processTaskRelationList"),
                _ => ("workflowDefinition", "workflowTaskRelationList"),
            };
            let definition = match map.remove(def_key) {
                Some(Value::Object(d)) => d,
                _ => {
                    missing(def_key);
                    Map::new()
                }
            };
            // Either version's name for the relation list, whichever the file has.
            let (relations_field, relations) =
                ["processTaskRelationList", "workflowTaskRelationList"]
                    .into_iter()
                    .find_map(|k| map.remove(k).map(|v| (k, v)))
                    .unwrap_or((rel_key, Value::Null));
            let relations = list_or_missing(relations, relations_field, &mut missing);
            let tasks = list_or_missing(
                map.remove("taskDefinitionList").unwrap_or(Value::Null),
                "taskDefinitionList",
                &mut missing,
            );
            let schedule = match map.remove("schedule") {
                Some(Value::Object(s)) => Some(s),
                _ => None,
            };
            RawWorkflow {
                shape,
                index,
                definition_prefix: match shape {
                    Shape::Process => "processDefinition.",
                    _ => "workflowDefinition.",
                },
                definition,
                relations,
                relations_field,
                tasks,
                tasks_field: "taskDefinitionList",
                schedule,
                extra: map,
            }
        }
        Shape::ApiBody => {
            let tasks = map.remove("taskDefinitionJson").unwrap_or(Value::Null);
            let relations = map.remove("taskRelationJson").unwrap_or(Value::Null);
            let mut lists = Vec::new();
            for (field, value) in [
                ("taskDefinitionJson", tasks),
                ("taskRelationJson", relations),
            ] {
                let value = match value {
                    // The form field is a string holding the JSON list.
                    Value::String(s) => match serde_json::from_str::<Value>(&s) {
                        Ok(v) => v,
                        Err(e) => {
                            problems.push(Problem::Invalid {
                                workflow: label.clone(),
                                task: None,
                                field: field.to_owned(),
                                message: format!("not valid JSON: {e}"),
                            });
                            Value::Array(Vec::new())
                        }
                    },
                    other => other,
                };
                lists.push(list_or_missing(value, field, &mut missing));
            }
            let relations = lists.pop().unwrap_or_default();
            let tasks = lists.pop().unwrap_or_default();
            let schedule = match map.remove("schedule") {
                Some(Value::Object(s)) => Some(s),
                _ => None,
            };
            RawWorkflow {
                shape,
                index,
                definition: map,
                definition_prefix: "",
                relations,
                relations_field: "taskRelationJson",
                tasks,
                tasks_field: "taskDefinitionJson",
                schedule,
                extra: Map::new(),
            }
        }
    };
    for field in absent {
        problems.push(Problem::Missing {
            workflow: label.clone(),
            task: None,
            field,
        });
    }
    // 3.2 also serializes the schedule inside the definition; the outer one wins.
    if let Some(Value::Object(inner)) = wf.definition.remove("schedule")
        && wf.schedule.is_none()
    {
        wf.schedule = Some(inner);
    }
    Ok(wf)
}

fn list_or_missing(value: Value, field: &str, missing: &mut impl FnMut(&str)) -> Vec<Value> {
    match value {
        Value::Array(items) if !items.is_empty() => items,
        _ => {
            missing(field);
            Vec::new()
        }
    }
}

/// Parse the JSON DolphinScheduler keeps in strings, in place: the definition's
/// `globalParams` and each task's `taskParams` (written as an object by the export,
/// as a string by older versions and by API clients).
fn nested_json(wf: &mut RawWorkflow, problems: &mut Vec<Problem>) {
    let label = wf.label();
    if let Some(v) = wf.definition.get_mut("globalParams") {
        let field = format!("{}globalParams", wf.definition_prefix);
        parse_in_place(v, &label, None, &field, problems);
    }
    let tasks_field = wf.tasks_field;
    for (i, task) in wf.tasks.iter_mut().enumerate() {
        let Value::Object(t) = task else { continue };
        let name = t
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{tasks_field}[{i}]"));
        if let Some(v) = t.get_mut("taskParams") {
            parse_in_place(v, &label, Some(&name), "taskParams", problems);
        }
    }
}

fn parse_in_place(
    v: &mut Value,
    workflow: &str,
    task: Option<&str>,
    field: &str,
    problems: &mut Vec<Problem>,
) {
    let Value::String(s) = v else { return };
    if s.trim().is_empty() {
        *v = Value::Null;
        return;
    }
    match serde_json::from_str::<Value>(s) {
        Ok(parsed) => *v = parsed,
        Err(e) => {
            problems.push(Problem::Invalid {
                workflow: workflow.to_owned(),
                task: task.map(str::to_owned),
                field: field.to_owned(),
                message: format!("the text is not valid JSON: {e}"),
            });
            *v = Value::Null;
        }
    }
}
