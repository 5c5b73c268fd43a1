//! Loading definitions from YAML (DolphinScheduler's Python-SDK format) or JSON.
//!
//! The YAML tree is walked by hand rather than deserialized, so that every problem can be
//! reported with its line and field, and so that all problems are reported at once
//! rather than the first one only. JSON is YAML's flow syntax, so the same walker reads
//! JSON with line numbers too.
//!
//! String values may reference other files, resolved relative to the file being read:
//! `$FILE{"query.sql"}` (the file's text), `$ENV{NAME}` (an environment variable) and
//! `$WORKFLOW{"other.yaml"}` (another workflow definition, loaded as well; the value
//! becomes that workflow's name). `$PROCESS{...}` is accepted as DolphinScheduler's older
//! spelling of `$WORKFLOW{...}`.
//!
//! Those references read the machine that loads the file, so only a loader acting for
//! the file's owner may resolve them: `shoal run FILE` and the CLI's `apply` (which sends
//! the resolved document, see [`render_resolved`]). A server loads uploads with
//! [`load_uploaded`], which refuses every reference instead of reading its own files and
//! environment on a user's behalf.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{LoaderOptions, Node};

use crate::model::*;
use crate::{Diagnostic, Diagnostics};

mod params;

/// A loaded workflow and the workflows it references through `$WORKFLOW{...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedWorkflow {
    pub workflow: WorkflowDefinition,
    /// Referenced workflows, by name (transitively), with the file each came from.
    pub referenced: BTreeMap<String, (PathBuf, WorkflowDefinition)>,
    pub file: PathBuf,
    /// Fields DolphinScheduler's SDK accepts that Shoal reads but does not act on, each
    /// naming file, line and field ("accepted, not supported: ..."), so that nothing a
    /// user wrote is dropped silently. They do not stop the load.
    pub warnings: Vec<Diagnostic>,
}

/// Load a definition file (`.yaml`, `.yml` or `.json`).
pub fn load_file(path: &Path) -> Result<LoadedWorkflow, Diagnostics> {
    let mut loader = Loader::default();
    let workflow = loader.file(path)?;
    Ok(LoadedWorkflow {
        workflow,
        referenced: loader.referenced,
        file: path.to_path_buf(),
        warnings: loader.warnings,
    })
}

/// Load a definition from text; `origin` names it in diagnostics and is the base for
/// relative file references.
pub fn load_str(text: &str, origin: &Path) -> Result<LoadedWorkflow, Diagnostics> {
    let mut loader = Loader::default();
    let workflow = loader.text(text, origin)?;
    Ok(LoadedWorkflow {
        workflow,
        referenced: loader.referenced,
        file: origin.to_path_buf(),
        warnings: loader.warnings,
    })
}

/// Why an uploaded definition was not accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UploadError {
    /// It still holds `$FILE{}`, `$ENV{}` or `$WORKFLOW{}`: the client must resolve them.
    #[error("{0}")]
    References(Diagnostics),
    /// It is not a valid definition.
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Load a definition uploaded by a user (a server's view): file and environment
/// references are refused, each naming its line and field, never resolved.
pub fn load_uploaded(text: &str, origin: &Path) -> Result<LoadedWorkflow, UploadError> {
    let mut loader = Loader {
        refuse_refs: true,
        ..Loader::default()
    };
    match loader.text(text, origin) {
        Ok(workflow) => Ok(LoadedWorkflow {
            workflow,
            referenced: loader.referenced,
            file: origin.to_path_buf(),
            warnings: loader.warnings,
        }),
        Err(problems) if loader.refused => Err(UploadError::References(problems)),
        Err(problems) => Err(UploadError::Invalid(problems)),
    }
}

/// A definition file's text, or the problem naming the file.
fn read_definition(path: &Path) -> Result<String, Diagnostics> {
    std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic {
            file: path.to_path_buf(),
            line: 0,
            field: None,
            message: format!("cannot read: {e}"),
        }])
    })
}

/// The definition in `path` as a JSON document with every `$FILE{}`, `$ENV{}` and
/// `$WORKFLOW{}` resolved on this machine (a referenced workflow becomes its name), for
/// a client to upload; `None` when the file holds no reference and can be sent as it is.
/// The result loads (with [`load_uploaded`]) to the same definition as the file.
pub fn render_resolved(path: &Path) -> Result<Option<String>, Diagnostics> {
    let text = read_definition(path)?;
    if !REF_MARKERS.iter().any(|m| text.contains(m)) {
        return Ok(None);
    }
    let original = load_str(&text, path)?.workflow;
    let mut loader = Loader::default();
    let root = parse_tree(&text, path)?;
    let mut walk = Walk {
        file: path.to_path_buf(),
        base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        problems: Vec::new(),
        loader: &mut loader,
    };
    let mut out = String::with_capacity(text.len() * 2);
    walk.render(&root, "", 0, &mut out);
    if !walk.problems.is_empty() {
        return Err(Diagnostics(walk.problems));
    }
    // Plain YAML scalars are typed by the field that reads them; JSON fixes a type up
    // front. Where the two readings would differ, say so rather than upload another
    // definition than the file's.
    let mut rendered = load_uploaded(&out, path)
        .map_err(|e| match e {
            UploadError::References(d) | UploadError::Invalid(d) => d,
        })?
        .workflow;
    rendered.task_lines.clone_from(&original.task_lines);
    if rendered != original {
        return Err(Diagnostics(vec![Diagnostic {
            file: path.to_path_buf(),
            line: 0,
            field: None,
            message: "the resolved definition reads differently as JSON: quote plain values such as `True`, `~` or `.5` that are meant as text".into(),
        }]));
    }
    Ok(Some(out))
}

/// Markers of values that read the loading machine.
const REF_MARKERS: [&str; 4] = ["$FILE{", "$ENV{", "$WORKFLOW{", "$PROCESS{"];

fn parse_tree(text: &str, origin: &Path) -> Result<Node, Diagnostics> {
    // The parser recurses per level of nesting; too deep a text must not reach it.
    crate::depth::check(text, origin)?;
    // Quoted scalars stay strings (`"3"` is text, `3` a number), as in any YAML reader.
    let options = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    marked_yaml::parse_yaml_with_options(0, text, options).map_err(|e| {
        let (line, message) = load_error(&e);
        Diagnostics(vec![Diagnostic {
            file: origin.to_path_buf(),
            line,
            field: None,
            message,
        }])
    })
}

#[derive(Default)]
struct Loader {
    referenced: BTreeMap<String, (PathBuf, WorkflowDefinition)>,
    /// Files being loaded, to refuse `$WORKFLOW` cycles.
    stack: Vec<PathBuf>,
    /// Refuse file and environment references instead of resolving them.
    refuse_refs: bool,
    /// A reference was refused.
    refused: bool,
    /// Accepted-but-unsupported fields of every file loaded, in reading order.
    warnings: Vec<Diagnostic>,
}

impl Loader {
    fn file(&mut self, path: &Path) -> Result<WorkflowDefinition, Diagnostics> {
        let text = read_definition(path)?;
        self.text(&text, path)
    }

    fn text(&mut self, text: &str, origin: &Path) -> Result<WorkflowDefinition, Diagnostics> {
        let key = origin
            .canonicalize()
            .unwrap_or_else(|_| origin.to_path_buf());
        if self.stack.contains(&key) {
            let chain: Vec<String> = self.stack.iter().map(|p| p.display().to_string()).collect();
            return Err(Diagnostics(vec![Diagnostic {
                file: origin.to_path_buf(),
                line: 0,
                field: None,
                message: format!(
                    "workflow files reference each other in a cycle: {} -> {}",
                    chain.join(" -> "),
                    key.display()
                ),
            }]));
        }
        self.stack.push(key);
        let result = self.parse(text, origin);
        self.stack.pop();
        result
    }

    fn parse(&mut self, text: &str, origin: &Path) -> Result<WorkflowDefinition, Diagnostics> {
        let root = parse_tree(text, origin)?;
        let mut walk = Walk {
            file: origin.to_path_buf(),
            base: origin.parent().map(Path::to_path_buf).unwrap_or_default(),
            problems: Vec::new(),
            loader: self,
        };
        let workflow = walk.document(&root);
        if walk.problems.is_empty() {
            Ok(workflow)
        } else {
            Err(Diagnostics(walk.problems))
        }
    }
}

fn load_error(e: &marked_yaml::LoadError) -> (usize, String) {
    use marked_yaml::LoadError::*;
    let line = match e {
        TopLevelMustBeMapping(m)
        | TopLevelMustBeSequence(m)
        | UnexpectedAnchor(m)
        | MappingKeyMustBeScalar(m)
        | UnexpectedTag(m)
        | ScanError(m, _) => m.line(),
        DuplicateKey(inner) => inner.key.span().start().map(|m| m.line()).unwrap_or(0),
    };
    let message = match e {
        DuplicateKey(inner) => format!("duplicate key `{}`", inner.key.as_str()),
        ScanError(_, err) => format!("not valid YAML: {}", err.info()),
        TopLevelMustBeMapping(_) => {
            "the document must be a mapping with `workflow:` and `tasks:`".into()
        }
        other => other.to_string(),
    };
    (line, message)
}

fn line_of(node: &Node) -> usize {
    node.span().start().map(|m| m.line()).unwrap_or(0)
}

fn scalar_line(node: &MarkedScalarNode) -> usize {
    node.span().start().map(|m| m.line()).unwrap_or(0)
}

/// Workflow fields pydolphinscheduler accepts that Shoal reads without acting on, with
/// what a user should know instead. Each one read becomes a warning, never a silent drop.
const UNSUPPORTED_WORKFLOW_KEYS: &[(&str, &str)] = &[
    (
        "user",
        "DolphinScheduler's user; Shoal runs the workflow for the caller who applies or runs it",
    ),
    (
        "tenant",
        "tenants (OS users per workflow); Shoal runs every task's processes as its sandbox's unprivileged user",
    ),
    (
        "warning_type",
        "per-workflow alert types; configure alerts with Shoal's alert channels",
    ),
    (
        "warning_group_id",
        "alert groups; configure alerts with Shoal's alert channels",
    ),
    (
        "timeout",
        "a whole-workflow timeout; set `timeout` on tasks instead",
    ),
    (
        "worker_group",
        "the run's worker group; each task runs on its own `worker_group` (default `default`)",
    ),
    (
        "release_state",
        "the release state in the file; use `shoal apply --online` or `shoal release NAME online`",
    ),
    (
        "resource_list",
        "DolphinScheduler's resource center; use `$FILE{...}` to bring a file's text in",
    ),
    (
        "online_schedule",
        "the schedule's online flag in the file; create the schedule with `shoal schedule set`",
    ),
    (
        "run",
        "pydolphinscheduler's run-after-submit; use `shoal run FILE`",
    ),
    ("queue", "YARN queues"),
    (
        "resource_plugin",
        "DolphinScheduler's resource plugins; use `$FILE{...}` to bring a file's text in",
    ),
];

/// DolphinScheduler's execution types, as Shoal's run modes spell them.
const RUN_MODES: [&str; 4] = [
    "parallel",
    "serial-wait",
    "serial-discard",
    "serial-priority",
];

/// Task fields pydolphinscheduler accepts that Shoal reads without acting on.
const UNSUPPORTED_TASK_KEYS: &[(&str, &str)] = &[
    (
        "environment_name",
        "DolphinScheduler environments; export variables in the task's command instead",
    ),
    (
        "environment_code",
        "DolphinScheduler environments; export variables in the task's command instead",
    ),
    (
        "resource_list",
        "DolphinScheduler's resource center; use `$FILE{...}` to bring a file's text in",
    ),
    (
        "resource_plugin",
        "DolphinScheduler's resource plugins; use `$FILE{...}` to bring a file's text in",
    ),
    (
        "task_group_priority",
        "priority inside a task group; tasks of a group are served by task priority",
    ),
    (
        "cpu_quota",
        "CPU quotas; the operator policy's process limits apply to every task",
    ),
    (
        "memory_max",
        "memory limits per task; the operator policy's process limits apply to every task",
    ),
    ("is_cache", "task result caching; the task runs every time"),
    (
        "wait_start_timeout",
        "a Dependent task's start timeout; it waits until its own `timeout`",
    ),
];

struct Walk<'l> {
    file: PathBuf,
    base: PathBuf,
    problems: Vec<Diagnostic>,
    loader: &'l mut Loader,
}

impl Walk<'_> {
    fn problem(&mut self, line: usize, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Diagnostic {
            file: self.file.clone(),
            line,
            field: Some(field.into()),
            message: message.into(),
        });
    }

    /// A field that is read but not acted on: a warning, not a problem.
    fn unsupported(&mut self, line: usize, field: String, instead: &str) {
        self.loader.warnings.push(Diagnostic {
            file: self.file.clone(),
            line,
            field: Some(field),
            message: format!("accepted, not supported: {instead}"),
        });
    }

    fn document(&mut self, root: &Node) -> WorkflowDefinition {
        let mut wf = WorkflowDefinition {
            name: String::new(),
            description: String::new(),
            project: None,
            global_params: BTreeMap::new(),
            schedule: None,
            start_time: None,
            end_time: None,
            timezone: None,
            failure_strategy: FailureStrategy::End,
            run_mode: None,
            tasks: Vec::new(),
            task_lines: Vec::new(),
        };
        let Some(top) = root.as_mapping() else {
            self.problem(
                line_of(root),
                "workflow",
                "the document must be a mapping with `workflow:` and `tasks:`",
            );
            return wf;
        };
        for (key, value) in top.iter() {
            match key.as_str() {
                "workflow" => self.workflow(value, &mut wf),
                "tasks" => self.tasks(value, &mut wf),
                other => self.problem(
                    scalar_line(key),
                    other,
                    "unknown top-level key (expected `workflow` and `tasks`)",
                ),
            }
        }
        if top.get_node("workflow").is_none() {
            self.problem(
                line_of(root),
                "workflow",
                "missing: every definition needs a `workflow:` block with at least `name`",
            );
        }
        if top.get_node("tasks").is_none() {
            self.problem(
                line_of(root),
                "tasks",
                "missing: a workflow needs a `tasks:` list",
            );
        }
        let implied = crate::implied::add_implied_edges(&mut wf, &self.file);
        self.problems.extend(implied);
        wf
    }

    fn workflow(&mut self, node: &Node, wf: &mut WorkflowDefinition) {
        let Some(map) = node.as_mapping() else {
            self.problem(line_of(node), "workflow", "must be a mapping");
            return;
        };
        for (key, value) in map.iter() {
            let field = format!("workflow.{}", key.as_str());
            match key.as_str() {
                "name" => wf.name = self.string(value, &field).unwrap_or_default(),
                "description" => wf.description = self.string(value, &field).unwrap_or_default(),
                "project" | "project_name" => wf.project = self.string(value, &field),
                "schedule" => {
                    wf.schedule = self.string(value, &field);
                    if let Some(Err(e)) = wf
                        .schedule
                        .as_deref()
                        .map(|expr| shoal_schedule::CronSchedule::new(expr, "UTC"))
                    {
                        self.problem(line_of(value), field, e.to_string());
                    }
                }
                "start_time" => wf.start_time = self.string(value, &field),
                "end_time" => wf.end_time = self.string(value, &field),
                "timezone" => {
                    wf.timezone = self.string(value, &field);
                    if let Some(zone) = wf.timezone.as_deref()
                        && let Err(e) = shoal_schedule::CronSchedule::new("0 0 0 * * ?", zone)
                    {
                        self.problem(line_of(value), field, e.to_string());
                    }
                }
                "param" => {
                    if let Some(params) = value.as_mapping() {
                        for (k, v) in params.iter() {
                            if let Some(s) = self.string(v, &format!("{field}.{}", k.as_str())) {
                                wf.global_params.insert(k.as_str().to_owned(), s);
                            }
                        }
                    } else {
                        self.problem(line_of(value), field, "must be a mapping of name: value");
                    }
                }
                "execution_type" | "run_mode" => {
                    if let Some(text) = self.string(value, &field) {
                        let norm = text.trim().to_ascii_lowercase().replace('_', "-");
                        if RUN_MODES.contains(&norm.as_str()) {
                            wf.run_mode = Some(norm);
                        } else {
                            self.problem(
                                line_of(value),
                                field,
                                format!(
                                    "`{text}` is not PARALLEL, SERIAL_WAIT, SERIAL_DISCARD or SERIAL_PRIORITY"
                                ),
                            );
                        }
                    }
                }
                "failure_strategy" => {
                    match self
                        .string(value, &field)
                        .map(|s| s.to_ascii_lowercase())
                        .as_deref()
                    {
                        Some("continue") => wf.failure_strategy = FailureStrategy::Continue,
                        Some("end") => wf.failure_strategy = FailureStrategy::End,
                        Some(other) => self.problem(
                            line_of(value),
                            field,
                            format!("`{other}` is not `continue` or `end`"),
                        ),
                        None => {}
                    }
                }
                k if let Some((_, instead)) = UNSUPPORTED_WORKFLOW_KEYS
                    .iter()
                    .find(|(name, _)| *name == k) =>
                {
                    self.unsupported(line_of(value), field, instead)
                }
                _ => self.problem(scalar_line(key), field, "unknown workflow field"),
            }
        }
        if wf.name.trim().is_empty() {
            self.problem(line_of(node), "workflow.name", "missing or empty");
        }
    }

    fn tasks(&mut self, node: &Node, wf: &mut WorkflowDefinition) {
        let Some(seq) = node.as_sequence() else {
            self.problem(line_of(node), "tasks", "must be a list of tasks");
            return;
        };
        for (i, item) in seq.iter().enumerate() {
            let field = format!("tasks[{i}]");
            match item.as_mapping() {
                Some(map) => {
                    if let Some(task) = self.task(map, &field) {
                        wf.tasks.push(task);
                        wf.task_lines.push(line_of(item));
                    }
                }
                None => self.problem(line_of(item), field, "each task must be a mapping"),
            }
        }
    }

    fn task(&mut self, map: &MarkedMappingNode, at: &str) -> Option<TaskDefinition> {
        let line = map.span().start().map(|m| m.line()).unwrap_or(0);
        let name = map
            .get_node("name")
            .and_then(|n| self.string(n, &format!("{at}.name")));
        let task_type = map
            .get_node("task_type")
            .and_then(|n| self.string(n, &format!("{at}.task_type")));
        let at = match &name {
            Some(n) => format!("{at} `{n}`"),
            None => at.to_owned(),
        };
        let mut task = TaskDefinition {
            name: name.clone().unwrap_or_default(),
            task_type: task_type.clone().unwrap_or_default(),
            deps: Vec::new(),
            description: String::new(),
            flag: Flag::Yes,
            priority: Priority::Medium,
            delay_ms: 0,
            fail_retry_times: 0,
            retry_interval_ms: 60_000,
            timeout_ms: None,
            timeout_strategy: TimeoutStrategy::Fail,
            worker_group: "default".into(),
            task_group: None,
            local_params: Vec::new(),
            plugin_version: None,
            params: serde_json::Map::new(),
        };
        let mut timeout_closed = false;
        // `input_params` / `output_params` follow `local_params`, wherever they are
        // written (pydolphinscheduler's `Task.local_params`).
        let mut typed = Vec::new();
        for (key, value) in map.iter() {
            let k = key.as_str();
            let field = format!("{at}.{k}");
            match k {
                "name" | "task_type" => {}
                "deps" => task.deps = self.string_list(value, &field),
                "description" => task.description = self.string(value, &field).unwrap_or_default(),
                "flag" => {
                    task.flag = match self.word(value, &field).as_deref() {
                        Some("yes" | "true") => Flag::Yes,
                        Some("no" | "false") => Flag::No,
                        Some(other) => {
                            self.problem(
                                line_of(value),
                                field,
                                format!("`{other}` is not YES or NO"),
                            );
                            Flag::Yes
                        }
                        None => Flag::Yes,
                    }
                }
                "task_priority" | "priority" => {
                    task.priority = match self.word(value, &field).as_deref() {
                        Some("highest") => Priority::Highest,
                        Some("high") => Priority::High,
                        Some("medium") => Priority::Medium,
                        Some("low") => Priority::Low,
                        Some("lowest") => Priority::Lowest,
                        Some(other) => {
                            self.problem(
                                line_of(value),
                                field,
                                format!(
                                    "`{other}` is not one of HIGHEST, HIGH, MEDIUM, LOW, LOWEST"
                                ),
                            );
                            Priority::Medium
                        }
                        None => Priority::Medium,
                    }
                }
                "delay_time" => task.delay_ms = self.duration_ms(value, &field).unwrap_or(0),
                "fail_retry_times" => {
                    task.fail_retry_times = self.number(value, &field).unwrap_or(0)
                }
                "fail_retry_interval" => {
                    task.retry_interval_ms = self.duration_ms(value, &field).unwrap_or(60_000)
                }
                "timeout" => task.timeout_ms = self.duration_ms(value, &field).filter(|m| *m > 0),
                "timeout_flag" => {
                    timeout_closed = self.word(value, &field).as_deref() == Some("close")
                }
                "timeout_strategy" | "timeout_notify_strategy" => {
                    task.timeout_strategy = match self.word(value, &field).as_deref() {
                        Some("warn") => TimeoutStrategy::Warn,
                        Some("fail" | "failed") => TimeoutStrategy::Fail,
                        Some("both" | "warnfailed" | "warn_failed") => TimeoutStrategy::Both,
                        Some(other) => {
                            self.problem(
                                line_of(value),
                                field,
                                format!("`{other}` is not WARN, FAILED or WARNFAILED"),
                            );
                            TimeoutStrategy::Fail
                        }
                        None => TimeoutStrategy::Fail,
                    }
                }
                "worker_group" => {
                    task.worker_group = self
                        .string(value, &field)
                        .unwrap_or_else(|| "default".into())
                }
                "task_group" | "task_group_id" | "task_group_name" => {
                    task.task_group = self.string(value, &field)
                }
                "plugin_version" => {
                    if let Some(v) = self.string(value, &field) {
                        match semver::Version::parse(&v) {
                            Ok(v) => task.plugin_version = Some(v),
                            Err(e) => self.problem(
                                line_of(value),
                                field,
                                format!("`{v}` is not a version: {e}"),
                            ),
                        }
                    }
                }
                "local_params" => task.local_params = self.local_params(value, &field),
                "input_params" => {
                    typed.extend(self.typed_params(value, &field, ParamDirection::In))
                }
                "output_params" => {
                    typed.extend(self.typed_params(value, &field, ParamDirection::Out))
                }
                k if let Some((_, instead)) =
                    UNSUPPORTED_TASK_KEYS.iter().find(|(name, _)| *name == k) =>
                {
                    self.unsupported(line_of(value), field, instead)
                }
                _ => {
                    let json = self.json(value, &field);
                    task.params.insert(k.to_owned(), json);
                }
            }
        }
        task.local_params.extend(typed);
        if timeout_closed {
            task.timeout_ms = None;
        }
        if name.as_deref().is_none_or(|n| n.trim().is_empty()) {
            self.problem(line, format!("{at}.name"), "missing or empty");
        }
        if task_type.as_deref().is_none_or(|t| t.trim().is_empty()) {
            self.problem(line, format!("{at}.task_type"), "missing or empty");
        }
        Some(task)
    }

    /// A scalar as text, with file references resolved.
    fn string(&mut self, node: &Node, field: &str) -> Option<String> {
        match node.as_scalar() {
            Some(s) => self.resolve_refs(s.as_str(), scalar_line(s), field),
            None => {
                self.problem(
                    line_of(node),
                    field,
                    "must be a single value, not a list or mapping",
                );
                None
            }
        }
    }

    /// A scalar as a lower-case word (enum values are written in any case).
    fn word(&mut self, node: &Node, field: &str) -> Option<String> {
        self.string(node, field)
            .map(|s| s.trim().to_ascii_lowercase())
    }

    fn number(&mut self, node: &Node, field: &str) -> Option<u32> {
        let text = self.string(node, field)?;
        match text.trim().parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.problem(
                    line_of(node),
                    field,
                    format!("`{text}` is not a whole number ≥ 0"),
                );
                None
            }
        }
    }

    /// A duration in ms: a whole number of minutes (DolphinScheduler's unit) or a number
    /// with a unit: `500ms`, `30s`, `5m`, `2h`.
    fn duration_ms(&mut self, node: &Node, field: &str) -> Option<u64> {
        let text = self.string(node, field)?;
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let scale = match unit.trim() {
            "" | "m" | "min" => Some(60_000),
            "ms" => Some(1),
            "s" => Some(1_000),
            "h" => Some(3_600_000),
            _ => None,
        };
        match (digits.parse::<u64>(), scale) {
            (Ok(n), Some(scale)) => Some(n.saturating_mul(scale)),
            _ => {
                self.problem(
                    line_of(node),
                    field,
                    format!("`{text}` is not a duration: write whole minutes (`5`) or a number with a unit (`500ms`, `30s`, `5m`, `2h`)"),
                );
                None
            }
        }
    }

    fn string_list(&mut self, node: &Node, field: &str) -> Vec<String> {
        match node {
            Node::Sequence(seq) => seq
                .iter()
                .enumerate()
                .filter_map(|(i, n)| self.string(n, &format!("{field}[{i}]")))
                .collect(),
            Node::Scalar(_) => self.string(node, field).into_iter().collect(),
            Node::Mapping(_) => {
                self.problem(line_of(node), field, "must be a list of task names");
                Vec::new()
            }
        }
    }

    /// Any value as JSON: the task type's own fields, checked later by its plugin.
    fn json(&mut self, node: &Node, field: &str) -> serde_json::Value {
        use serde_json::Value;
        match node {
            Node::Scalar(s) => {
                let Some(text) = self.resolve_refs(s.as_str(), scalar_line(s), field) else {
                    return Value::Null;
                };
                if !s.may_coerce() || text != s.as_str() {
                    return Value::String(text);
                }
                match text.as_str() {
                    "true" | "True" | "TRUE" => Value::Bool(true),
                    "false" | "False" | "FALSE" => Value::Bool(false),
                    "~" | "null" | "Null" | "NULL" => Value::Null,
                    t => t
                        .parse::<i64>()
                        .map(Value::from)
                        .ok()
                        .or_else(|| {
                            t.parse::<f64>()
                                .ok()
                                .filter(|f| f.is_finite())
                                .map(Value::from)
                        })
                        .unwrap_or(Value::String(text)),
                }
            }
            Node::Sequence(seq) => Value::Array(
                seq.iter()
                    .enumerate()
                    .map(|(i, n)| self.json(n, &format!("{field}[{i}]")))
                    .collect(),
            ),
            Node::Mapping(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_owned(),
                            self.json(v, &format!("{field}.{}", k.as_str())),
                        )
                    })
                    .collect(),
            ),
        }
    }

    /// Append `node` as JSON, references resolved. A plain scalar that is a JSON literal
    /// (`3`, `true`, `null`) stays one, so each field reads it as it read the YAML.
    fn render(&mut self, node: &Node, field: &str, depth: usize, out: &mut String) {
        let indent = |out: &mut String, depth: usize| {
            out.push('\n');
            out.extend(std::iter::repeat_n("  ", depth));
        };
        match node {
            Node::Scalar(s) => {
                let raw = s.as_str();
                let text = self
                    .resolve_refs(raw, scalar_line(s), field)
                    .unwrap_or_default();
                let literal = s.may_coerce()
                    && text == raw
                    && matches!(
                        serde_json::from_str::<serde_json::Value>(raw),
                        Ok(serde_json::Value::Number(_)
                            | serde_json::Value::Bool(_)
                            | serde_json::Value::Null)
                    )
                    && raw.trim() == raw;
                if literal {
                    out.push_str(raw);
                } else {
                    out.push_str(&serde_json::Value::String(text).to_string());
                }
            }
            Node::Sequence(seq) => {
                out.push('[');
                for (i, n) in seq.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    indent(out, depth + 1);
                    self.render(n, &format!("{field}[{i}]"), depth + 1, out);
                }
                if !seq.is_empty() {
                    indent(out, depth);
                }
                out.push(']');
            }
            Node::Mapping(map) => {
                out.push('{');
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    indent(out, depth + 1);
                    out.push_str(&serde_json::Value::String(k.as_str().to_owned()).to_string());
                    out.push_str(": ");
                    let sub = if field.is_empty() {
                        k.as_str().to_owned()
                    } else {
                        format!("{field}.{}", k.as_str())
                    };
                    self.render(v, &sub, depth + 1, out);
                }
                if !map.is_empty() {
                    indent(out, depth);
                }
                out.push('}');
            }
        }
    }

    /// Resolve `$FILE{"..."}`, `$ENV{...}` and `$WORKFLOW{"..."}` in a string value.
    fn resolve_refs(&mut self, text: &str, line: usize, field: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = text;
        let mut ok = true;
        while let Some((at, marker)) = REF_MARKERS
            .iter()
            .filter_map(|m| rest.find(m).map(|i| (i, *m)))
            .min_by_key(|(i, _)| *i)
        {
            out.push_str(&rest[..at]);
            let after = &rest[at + marker.len()..];
            let Some(end) = after.find('}') else {
                self.problem(line, field, format!("`{marker}` is not closed with `}}`"));
                return None;
            };
            let arg = after[..end].trim().trim_matches('"');
            rest = &after[end + 1..];
            if self.loader.refuse_refs {
                self.loader.refused = true;
                let reference = &marker[..marker.len() - 1];
                self.problem(
                    line,
                    field,
                    format!("{reference}{{{}}} would read the server's own files or environment: resolve it where the file is (`shoal apply FILE` does) or write the value in", after[..end].trim()),
                );
                ok = false;
                continue;
            }
            match marker {
                "$ENV{" => match std::env::var(arg) {
                    Ok(v) => out.push_str(&v),
                    Err(_) => {
                        self.problem(
                            line,
                            field,
                            format!("$ENV{{{arg}}}: environment variable `{arg}` is not set"),
                        );
                        ok = false;
                    }
                },
                "$FILE{" => {
                    let path = self.base.join(arg);
                    match std::fs::read_to_string(&path) {
                        Ok(v) => out.push_str(&v),
                        Err(e) => {
                            self.problem(
                                line,
                                field,
                                format!("$FILE{{\"{arg}\"}}: cannot read {}: {e}", path.display()),
                            );
                            ok = false;
                        }
                    }
                }
                _ => {
                    let path = self.base.join(arg);
                    match self.loader.file(&path) {
                        Ok(wf) => {
                            out.push_str(&wf.name);
                            self.loader.referenced.insert(wf.name.clone(), (path, wf));
                        }
                        Err(Diagnostics(mut inner)) => {
                            self.problem(line, field, format!("$WORKFLOW{{\"{arg}\"}}: the referenced workflow has errors (below)"));
                            self.problems.append(&mut inner);
                            ok = false;
                        }
                    }
                }
            }
        }
        out.push_str(rest);
        ok.then_some(out)
    }
}
