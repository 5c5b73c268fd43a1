//! Substitution of `${name}` references and `$[...]` time expressions in task text, with
//! the built-in `system.*` parameters, recursive expansion of parameter values, escapes and
//! the output markers that must survive untouched.
//!
//! Syntax, scanned left to right in one pass:
//! - `$${` and `$$[` are escapes for a literal `${` and `$[`; any other `$` is literal.
//! - `${setValue(...)}` and `#{setValue(...)}` are OUT-parameter markers that a task prints;
//!   the marker itself is kept, while references inside it are expanded (as in
//!   DolphinScheduler, so `#{setValue(day=${dt})}` passes the value of `dt` on).
//! - `#{...}` belongs to other tools and is copied verbatim up to the first `}`.
//! - `${name}` is replaced by the parameter's value, itself expanded; `$[expr]` by the time
//!   expression evaluated from the run's schedule time.
//! - `$[...]` that DolphinScheduler does not take for a time expression is copied as it is:
//!   a single digit (`$[1]`), an empty body (`$[]`) and a body holding a `$` (`$[$i+1]`),
//!   so that shell arithmetic survives (see `time_expr::is_time_expression`). References
//!   inside the brackets are expanded first, as DolphinScheduler replaces every `${...}`
//!   before it looks for `$[...]`: `$[yyyyMMdd-${n}]` with `n = 3` is `$[yyyyMMdd-3]`.
//!
//! Expanded values are inserted as they are and never rescanned, so an escape inside a value
//! (`$${HOME}`) still comes out as a literal `${HOME}`.

use std::collections::{BTreeMap, HashMap};

use chrono::{NaiveDateTime, TimeDelta};

use crate::error::ParamError;
use crate::scope::ParamScope;
use crate::time_expr::{eval_time_expr, is_time_expression};

/// Values a run is evaluated against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunContext {
    /// The run's schedule time (for a manual run: its start time). DolphinScheduler's time
    /// expressions and built-ins are computed from it.
    pub schedule_time: NaiveDateTime,
    pub workflow_instance_id: u64,
    pub task_instance_id: u64,
    /// For `${system.workflow.definition.name}`.
    pub workflow_definition_name: String,
    /// For `${system.task.definition.name}`.
    pub task_definition_name: String,
    /// For `${system.project.name}`.
    pub project_name: String,
}

/// The names of the built-in parameters, which a scope value of the same name overrides.
pub const BUILTIN_NAMES: [&str; 8] = [
    "system.biz.date",
    "system.biz.curdate",
    "system.datetime",
    "system.workflow.instance.id",
    "system.task.instance.id",
    "system.workflow.definition.name",
    "system.task.definition.name",
    "system.project.name",
];

/// The value of built-in parameter `name`, or `None` if `name` is not a built-in.
pub fn builtin(name: &str, ctx: &RunContext) -> Result<Option<String>, ParamError> {
    let t = ctx.schedule_time;
    let value = match name {
        "system.biz.date" => t
            .checked_sub_signed(TimeDelta::days(1))
            .ok_or_else(|| ParamError::DateOutOfRange {
                name: name.to_string(),
            })?
            .format("%Y%m%d")
            .to_string(),
        "system.biz.curdate" => t.format("%Y%m%d").to_string(),
        "system.datetime" => t.format("%Y%m%d%H%M%S").to_string(),
        "system.workflow.instance.id" => ctx.workflow_instance_id.to_string(),
        "system.task.instance.id" => ctx.task_instance_id.to_string(),
        "system.workflow.definition.name" => ctx.workflow_definition_name.clone(),
        "system.task.definition.name" => ctx.task_definition_name.clone(),
        "system.project.name" => ctx.project_name.clone(),
        _ => return Ok(None),
    };
    Ok(Some(value))
}

/// Bounds on one substitution, so that a hostile definition fails its task with an error
/// instead of exhausting the stack or the memory of the process that dispatches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How many parameters deep one value may refer (`a` uses `${b}`, which uses `${c}`,
    /// ...). Expansion recurses once per level.
    pub max_depth: usize,
    /// How many bytes one [`Substituter`] may produce in all: the texts it returns and the
    /// expanded parameter values they use. A chain of parameters that each double the
    /// previous one reaches it after about twenty links.
    pub max_bytes: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_depth: 64,
        max_bytes: 1 << 20,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Replaces every `${name}` and `$[expr]` in `text` (see the module docs for the syntax),
/// within [`Limits::DEFAULT`].
///
/// ```
/// # use chrono::NaiveDate;
/// # use shoal_params::{ParamScope, RunContext, substitute};
/// let ctx = RunContext {
///     schedule_time: NaiveDate::from_ymd_opt(2024, 3, 1).unwrap().and_hms_opt(2, 0, 0).unwrap(),
///     workflow_instance_id: 7,
///     task_instance_id: 70,
///     workflow_definition_name: "daily".into(),
///     task_definition_name: "load".into(),
///     project_name: "sales".into(),
/// };
/// let scope = ParamScope::new().with_global([("dt", "$[yyyyMMdd-1]")]);
/// let out = substitute("load ${dt} into ${system.project.name}; echo $${HOME}", &scope, &ctx);
/// assert_eq!(out.unwrap(), "load 20240229 into sales; echo ${HOME}");
/// ```
pub fn substitute(text: &str, params: &ParamScope, ctx: &RunContext) -> Result<String, ParamError> {
    Substituter::new(params, ctx).substitute(text)
}

/// The fully expanded value of every parameter in `params`, by name. Useful for handing a
/// task its parameters (for example as environment variables) rather than a text.
pub fn resolve_values(
    params: &ParamScope,
    ctx: &RunContext,
) -> Result<BTreeMap<String, String>, ParamError> {
    let mut expander = Substituter::new(params, ctx);
    params
        .names()
        .map(|name| Ok((name.to_string(), expander.value_of(name)?)))
        .collect()
}

/// The fully expanded value of one parameter: the scope's value if it has one, else the
/// built-in of that name.
pub fn resolve_value(
    name: &str,
    params: &ParamScope,
    ctx: &RunContext,
) -> Result<String, ParamError> {
    Substituter::new(params, ctx).value_of(name)
}

/// Substitutes texts against one scope, remembering each parameter's expanded value so
/// that a value referenced many times is expanded once. Its [`Limits`] cover everything it
/// produces, so one substituter for all fields of a task bounds the whole task.
pub struct Substituter<'a> {
    params: &'a ParamScope,
    ctx: &'a RunContext,
    limits: Limits,
    resolved: HashMap<String, String>,
    /// The parameters whose values are being expanded right now, outermost first.
    in_progress: Vec<String>,
    /// Bytes produced so far (returned texts and remembered values), against the limit.
    produced: usize,
}

const SET_VALUE: &str = "setValue(";
const MARKER_END: &str = ")}";

/// A piece of a scanned text.
pub(crate) enum Piece<'t> {
    /// Text copied as it is (including an escape's remaining `${` or `$[`).
    Text(&'t str),
    /// `${name}`.
    Reference { name: &'t str },
    /// `$[expr]`. An `expr` holding `${` has references to expand before it is evaluated
    /// (or, if what they expand to is no time expression, copied with its brackets).
    Expression { expr: &'t str },
}

/// Splits `text` into pieces in one left-to-right pass (the syntax of the module docs),
/// handing each to `each`. Shared by substitution and by the checks made at upload, so both
/// read a text the same way.
pub(crate) fn scan<'t>(
    text: &'t str,
    mut each: impl FnMut(Piece<'t>) -> Result<(), ParamError>,
) -> Result<(), ParamError> {
    let bytes = text.as_bytes();
    // Everything before `copied` has been handed on; all delimiters are ASCII, so every
    // index sliced at below is a char boundary.
    let mut copied = 0;
    let mut i = 0;
    // Searches ahead are remembered (where a `}` search failed, where the next `)}` is), so
    // a long run of openers scans the text once rather than once per opener.
    let mut no_brace_from = usize::MAX;
    let mut marker_end: Option<usize> = None;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("$${") || rest.starts_with("$$[") {
            each(Piece::Text(&text[copied..i]))?;
            each(Piece::Text(&rest[1..3]))?;
            i += 3;
            copied = i;
        } else if let Some(body) = rest.strip_prefix("#{") {
            if body.starts_with(SET_VALUE) {
                // Keep the marker; what follows its opener is scanned as usual.
                i += 2 + SET_VALUE.len();
                continue;
            }
            // Not ours: skip it whole so nothing inside is mistaken for a reference.
            let close = if i >= no_brace_from {
                None
            } else {
                body.find('}')
            };
            if close.is_none() {
                no_brace_from = no_brace_from.min(i);
            }
            i += 2 + close.map_or(0, |e| e + 1);
        } else if let Some(body) = rest.strip_prefix("${") {
            if body.starts_with(SET_VALUE) {
                let from = i + 2;
                if marker_end.is_none_or(|e| e < from) {
                    marker_end = text[from..].find(MARKER_END).map(|e| e + from);
                }
                if marker_end.is_none() {
                    return Err(ParamError::Unterminated { at: i });
                }
                i += 2 + SET_VALUE.len();
                continue;
            }
            let end = body.find('}').ok_or(ParamError::Unterminated { at: i })?;
            let name = &body[..end];
            if !is_valid_name(name) {
                return Err(ParamError::InvalidName {
                    name: name.to_string(),
                    at: i,
                });
            }
            each(Piece::Text(&text[copied..i]))?;
            each(Piece::Reference { name })?;
            i += 2 + end + 1;
            copied = i;
        } else if let Some(body) = rest.strip_prefix("$[") {
            let end = body.find(']').ok_or(ParamError::Unterminated { at: i })?;
            let expr = &body[..end];
            // A `$[` inside the body can never be closed within it, so such a body only
            // holds text; without references, the body is final and DolphinScheduler's rule
            // applies to it as it is.
            let has_reference = expr.contains("${") && !expr.contains("$[");
            if !has_reference && !is_time_expression(expr) {
                // Not a placeholder: the `$[` is text, and what follows is scanned as usual.
                i += 2;
                continue;
            }
            each(Piece::Text(&text[copied..i]))?;
            each(Piece::Expression { expr })?;
            i += 2 + end + 1;
            copied = i;
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    each(Piece::Text(&text[copied..]))
}

impl<'a> Substituter<'a> {
    pub fn new(params: &'a ParamScope, ctx: &'a RunContext) -> Self {
        Substituter {
            params,
            ctx,
            limits: Limits::DEFAULT,
            resolved: HashMap::new(),
            in_progress: Vec::new(),
            produced: 0,
        }
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// `text` with every reference replaced; counts against this substituter's limits.
    pub fn substitute(&mut self, text: &str) -> Result<String, ParamError> {
        let out = self.expand(text)?;
        self.produced += out.len();
        Ok(out)
    }

    /// The fully expanded value of one parameter (see [`resolve_value`]).
    pub fn value_of(&mut self, name: &str) -> Result<String, ParamError> {
        if let Some(done) = self.resolved.get(name) {
            return Ok(done.clone());
        }
        if let Some(pos) = self.in_progress.iter().position(|n| n == name) {
            let mut chain = self.in_progress[pos..].to_vec();
            chain.push(name.to_string());
            return Err(ParamError::Cycle { chain });
        }
        let value = match self.params.get(name) {
            Some(raw) => {
                if self.in_progress.len() >= self.limits.max_depth {
                    return Err(ParamError::ChainTooDeep {
                        name: name.to_string(),
                        deepest: name.to_string(),
                        limit: self.limits.max_depth,
                    });
                }
                self.in_progress.push(name.to_string());
                let expanded = self.expand(raw);
                self.in_progress.pop();
                let value = expanded.map_err(|e| e.inside(name))?;
                // `expand` kept this value within the limit together with what came before.
                self.produced += value.len();
                value
            }
            None => builtin(name, self.ctx)?.ok_or_else(|| ParamError::UnknownParameter {
                name: name.to_string(),
            })?,
        };
        self.resolved.insert(name.to_string(), value.clone());
        Ok(value)
    }

    fn expand(&mut self, text: &str) -> Result<String, ParamError> {
        let mut out = String::with_capacity(text.len().min(self.limits.max_bytes));
        scan(text, |piece| {
            let value = match piece {
                Piece::Text(t) => std::borrow::Cow::Borrowed(t),
                Piece::Reference { name } => self.value_of(name)?.into(),
                Piece::Expression { expr } => {
                    let expanded;
                    let expr = if expr.contains("${") {
                        expanded = self.expand(expr)?;
                        expanded.as_str()
                    } else {
                        expr
                    };
                    if is_time_expression(expr) {
                        eval_time_expr(expr, self.ctx.schedule_time)?.into()
                    } else {
                        format!("$[{expr}]").into()
                    }
                }
            };
            // Checked before the bytes are added, so nothing larger than the limit is
            // ever held.
            if self.produced + out.len() + value.len() > self.limits.max_bytes {
                return Err(ParamError::OutputTooLarge {
                    name: self.in_progress.last().cloned(),
                    limit: self.limits.max_bytes,
                });
            }
            out.push_str(&value);
            Ok(())
        })?;
        Ok(out)
    }
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn ctx_at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> RunContext {
        RunContext {
            schedule_time: NaiveDate::from_ymd_opt(y, mo, d)
                .and_then(|date| date.and_hms_opt(h, mi, s))
                .expect("valid test date"),
            workflow_instance_id: 101,
            task_instance_id: 202,
            workflow_definition_name: "daily-etl".into(),
            task_definition_name: "load_orders".into(),
            project_name: "sales".into(),
        }
    }

    /// A Sunday afternoon.
    fn ctx() -> RunContext {
        ctx_at(2024, 3, 10, 14, 30, 45)
    }

    fn sub(text: &str, scope: &ParamScope) -> Result<String, ParamError> {
        substitute(text, scope, &ctx())
    }

    #[test]
    fn builtins() {
        let empty = ParamScope::new();
        let cases = [
            ("${system.biz.date}", "20240309"),
            ("${system.biz.curdate}", "20240310"),
            ("${system.datetime}", "20240310143045"),
            ("${system.workflow.instance.id}", "101"),
            ("${system.task.instance.id}", "202"),
            ("${system.workflow.definition.name}", "daily-etl"),
            ("${system.task.definition.name}", "load_orders"),
            ("${system.project.name}", "sales"),
        ];
        for (text, want) in cases {
            assert_eq!(sub(text, &empty).as_deref(), Ok(want), "{text}");
        }
        assert_eq!(BUILTIN_NAMES.len(), cases.len());
        for name in BUILTIN_NAMES {
            assert!(builtin(name, &ctx()).is_ok_and(|v| v.is_some()), "{name}");
        }
        assert_eq!(builtin("system.nope", &ctx()), Ok(None));
    }

    #[test]
    fn biz_date_crosses_month_and_year_boundaries() {
        let empty = ParamScope::new();
        let text = "${system.biz.date}/${system.biz.curdate}";
        let cases = [
            (ctx_at(2024, 1, 1, 0, 0, 0), "20231231/20240101"),
            (ctx_at(2024, 3, 1, 0, 0, 0), "20240229/20240301"),
            (ctx_at(2023, 3, 1, 23, 59, 59), "20230228/20230301"),
        ];
        for (ctx, want) in cases {
            assert_eq!(substitute(text, &empty, &ctx).as_deref(), Ok(want));
        }
    }

    #[test]
    fn scope_values_override_builtins() {
        let scope = ParamScope::new()
            .with_global([("system.biz.date", "19700101")])
            .with_local([("system.project.name", "override")]);
        assert_eq!(
            sub(
                "${system.biz.date} ${system.project.name} ${system.biz.curdate}",
                &scope
            )
            .as_deref(),
            Ok("19700101 override 20240310")
        );
    }

    #[test]
    fn layer_priority_in_substitution() {
        let scope = ParamScope::new()
            .with_global([("a", "g"), ("b", "g"), ("c", "g"), ("d", "g")])
            .with_upstream([("b", "u"), ("c", "u"), ("d", "u")])
            .with_local([("c", "l"), ("d", "l")])
            .with_startup([("d", "s")]);
        assert_eq!(sub("${a}${b}${c}${d}", &scope).as_deref(), Ok("guls"));
    }

    #[test]
    fn values_expand_recursively_across_layers() {
        let scope = ParamScope::new()
            .with_global([("dt", "$[yyyyMMdd-1]"), ("root", "/data")])
            .with_local([("path", "${root}/${dt}/${system.project.name}")])
            .with_startup([("msg", "${path} ok")]);
        assert_eq!(
            sub("echo ${msg}", &scope).as_deref(),
            Ok("echo /data/20240309/sales ok")
        );
    }

    #[test]
    fn references_in_values_see_the_merged_scope() {
        // `p` is global but its `${base}` picks up the local override.
        let scope = ParamScope::new()
            .with_global([("base", "/global"), ("p", "${base}/x")])
            .with_local([("base", "/local")]);
        assert_eq!(sub("${p}", &scope).as_deref(), Ok("/local/x"));
    }

    #[test]
    fn shared_references_are_not_cycles() {
        let scope = ParamScope::new().with_global([
            ("a", "${b}${c}"),
            ("b", "${d}"),
            ("c", "${d}"),
            ("d", "1"),
        ]);
        assert_eq!(sub("${a}${a}", &scope).as_deref(), Ok("1111"));
    }

    #[test]
    fn resolve_values_expands_every_parameter() {
        let scope = ParamScope::new()
            .with_global([("dt", "$[yyyy-MM-dd]"), ("lit", "$${HOME}")])
            .with_upstream([("rows", "42")])
            .with_local([("file", "out_${dt}_${rows}.csv")]);
        let values = resolve_values(&scope, &ctx()).expect("resolves");
        let want: BTreeMap<String, String> = [
            ("dt", "2024-03-10"),
            ("file", "out_2024-03-10_42.csv"),
            ("lit", "${HOME}"),
            ("rows", "42"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(values, want);
        assert_eq!(
            resolve_value("system.datetime", &scope, &ctx()).as_deref(),
            Ok("20240310143045")
        );
        assert_eq!(
            resolve_value("file", &scope, &ctx()).as_deref(),
            Ok("out_2024-03-10_42.csv")
        );
    }

    #[test]
    fn cycles_are_errors_naming_the_parameters() {
        let two = ParamScope::new().with_global([("a", "x${b}"), ("b", "y${a}")]);
        assert_eq!(
            sub("${a}", &two),
            Err(ParamError::Cycle {
                chain: vec!["a".into(), "b".into(), "a".into()]
            })
        );
        let own = ParamScope::new().with_local([("x", "${x}")]);
        assert_eq!(
            sub("${x}", &own),
            Err(ParamError::Cycle {
                chain: vec!["x".into(), "x".into()]
            })
        );
        // Entered from outside the loop, the chain shows only the loop itself.
        let three = ParamScope::new().with_global([
            ("top", "${a}"),
            ("a", "${b}"),
            ("b", "${c}"),
            ("c", "${a}"),
        ]);
        let err = sub("${top}", &three).expect_err("cycle");
        assert_eq!(
            err,
            ParamError::Cycle {
                chain: vec!["a".into(), "b".into(), "c".into(), "a".into()]
            }
        );
        assert_eq!(
            err.to_string(),
            "parameters refer to each other in a cycle: `a` -> `b` -> `c` -> `a`"
        );
        assert!(resolve_values(&two, &ctx()).is_err());
    }

    #[test]
    fn a_long_reference_chain_is_an_error_not_a_stack_overflow() {
        let values: Vec<(String, String)> = (0..100_000)
            .map(|i| (format!("p{i}"), format!("${{p{}}}", i + 1)))
            .collect();
        let scope = ParamScope::new().with_global(values);
        let err = sub("echo ${p0}", &scope).expect_err("too deep");
        assert_eq!(
            err,
            ParamError::ChainTooDeep {
                name: "p0".into(),
                deepest: "p64".into(),
                limit: 64
            }
        );
        assert_eq!(
            err.to_string(),
            "parameter `p0` refers to parameters that refer to others more than 64 levels \
             deep (stopped at `p64`)"
        );
        // Sixty-four values expanding at once, the limit, still work.
        let values: Vec<(String, String)> = (0..63)
            .map(|i| (format!("p{i}"), format!("${{p{}}}", i + 1)))
            .chain([("p63".to_string(), "end".to_string())])
            .collect();
        let scope = ParamScope::new().with_global(values);
        assert_eq!(sub("${p0}", &scope).as_deref(), Ok("end"));
    }

    #[test]
    fn a_doubling_chain_hits_the_size_limit() {
        let mut values = vec![("a0".to_string(), "x".to_string())];
        // Forty links would be a terabyte; well within the depth limit.
        for i in 1..=40 {
            values.push((format!("a{i}"), format!("${{a{0}}}${{a{0}}}", i - 1)));
        }
        let scope = ParamScope::new().with_global(values);
        let err = sub("${a40}", &scope).expect_err("too large");
        let ParamError::OutputTooLarge {
            name: Some(name),
            limit,
        } = &err
        else {
            panic!("expected OutputTooLarge, got {err:?}");
        };
        assert_eq!(*limit, 1 << 20);
        // Values up to `a19` (512 KiB) fit alongside everything expanded before them.
        assert_eq!(name, "a20");
        assert_eq!(
            err.to_string(),
            "the value of parameter `a20` would be larger than 1048576 bytes after substitution"
        );
        assert_eq!(sub("${a10}", &scope).map(|s| s.len()), Ok(1024));
    }

    #[test]
    fn limits_cover_everything_one_substituter_produces() {
        let scope = ParamScope::new().with_global([("kb", "x".repeat(1000))]);
        let c = ctx();
        let limits = Limits {
            max_bytes: 3500,
            ..Limits::DEFAULT
        };
        let mut s = Substituter::new(&scope, &c).with_limits(limits);
        // The value (1000) and the text using it (1000) count; then a second text.
        assert_eq!(s.substitute("${kb}").map(|t| t.len()), Ok(1000));
        assert_eq!(s.substitute("${kb}").map(|t| t.len()), Ok(1000));
        assert_eq!(
            s.substitute("${kb}"),
            Err(ParamError::OutputTooLarge {
                name: None,
                limit: 3500
            })
        );
        assert!(
            ParamError::OutputTooLarge {
                name: None,
                limit: 3500
            }
            .to_string()
            .starts_with("the text would be larger than 3500 bytes")
        );
        // Literal text counts too.
        let mut s = Substituter::new(&scope, &c).with_limits(limits);
        assert!(s.substitute(&"y".repeat(4000)).is_err());
        let shallow = Limits {
            max_depth: 1,
            ..Limits::DEFAULT
        };
        let chain = ParamScope::new().with_global([("a", "${b}"), ("b", "1")]);
        assert!(matches!(
            Substituter::new(&chain, &c)
                .with_limits(shallow)
                .substitute("${a}"),
            Err(ParamError::ChainTooDeep { .. })
        ));
    }

    #[test]
    fn runs_of_unclosed_openers_scan_in_linear_time() {
        let empty = ParamScope::new();
        let started = std::time::Instant::now();
        let foreign = "#{".repeat(400_000);
        assert_eq!(sub(&foreign, &empty).as_deref(), Ok(foreign.as_str()));
        let markers = format!("{})}}", "${setValue(".repeat(80_000));
        assert_eq!(sub(&markers, &empty).as_deref(), Ok(markers.as_str()));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn escapes_produce_literal_openers() {
        let scope = ParamScope::new().with_global([("x", "1"), ("v", "$${HOME}/bin")]);
        let cases = [
            ("echo $${HOME}", "echo ${HOME}"),
            ("$$[yyyyMMdd]", "$[yyyyMMdd]"),
            ("$${x} is ${x}", "${x} is 1"),
            ("$${unknown}", "${unknown}"),
            ("$${a${x}}", "${a1}"),
            // An escaped value is inserted as is, never rescanned.
            ("PATH=${v}", "PATH=${HOME}/bin"),
            // Left to right: a lone `$`, then the escape.
            ("$$${x}", "$${x}"),
        ];
        for (text, want) in cases {
            assert_eq!(sub(text, &scope).as_deref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn lone_dollars_are_literal() {
        let empty = ParamScope::new();
        let text = "echo $HOME $1 $(date) $$ $? costs $5 $ {x} $]$} $";
        assert_eq!(sub(text, &empty).as_deref(), Ok(text));
    }

    #[test]
    fn output_markers_and_foreign_braces_pass_through() {
        let empty = ParamScope::new();
        let cases = [
            "echo '${setValue(out=1)}'",
            "echo \"#{setValue(out=1)}\"",
            "echo '${setValue(json={\"a\":1})}'",
            "#{anything} and #{more ${undefined}}",
            "a lone #{ brace",
            "# a comment ${{",
        ];
        for text in &cases[..5] {
            assert_eq!(sub(text, &empty).as_deref(), Ok(*text), "{text}");
        }
        // `#` followed by a space is no `#{`, so the `${` is ours and never closed.
        assert_eq!(
            sub(cases[5], &empty),
            Err(ParamError::Unterminated { at: 12 })
        );
        // Inside a marker, references are expanded and an unknown one is an error.
        let scope = ParamScope::new().with_global([("dt", "20240309")]);
        assert_eq!(
            sub(
                "echo '${setValue(dt=${dt})}' \"#{setValue(y=$[yyyy])}\"",
                &scope
            )
            .as_deref(),
            Ok("echo '${setValue(dt=20240309)}' \"#{setValue(y=2024)}\"")
        );
        assert!(sub("echo \"#{setValue(out=${not_defined})}\"", &empty).is_err());
        let scope = ParamScope::new().with_global([("dt", "20240309")]);
        assert_eq!(
            sub(
                "${dt}: echo '${setValue(dt=x)}' #{setValue(n=2)} ${dt}",
                &scope
            )
            .as_deref(),
            Ok("20240309: echo '${setValue(dt=x)}' #{setValue(n=2)} 20240309")
        );
    }

    #[test]
    fn time_expressions_in_text() {
        let scope = ParamScope::new().with_global([("n", "7")]);
        assert_eq!(
            sub(
                "dt=$[yyyyMMdd-1] hour=$[HH+1/24] month=$[add_months(yyyyMM,-1)] n=${n}",
                &scope
            )
            .as_deref(),
            Ok("dt=20240309 hour=15 month=202402 n=7")
        );
    }

    #[test]
    fn shell_brackets_dolphinscheduler_leaves_alone_survive() {
        let scope = ParamScope::new().with_global([("i", "4"), ("one", "1"), ("dollar", "$x")]);
        let cases = [
            // One digit: `Pattern.matches("^[0-9]", ..)` skips it.
            ("echo $[1]", "echo $[1]"),
            ("a[$[0]]=x; echo $[9]", "a[$[0]]=x; echo $[9]"),
            // Empty, or holding a `$`: DolphinScheduler's `\$\[([^\$\]]+)]` does not match.
            ("echo $[]", "echo $[]"),
            ("n=$[$n+1]", "n=$[$n+1]"),
            ("$[$[1]]", "$[$[1]]"),
            ("$[$(date +%s)]", "$[$(date +%s)]"),
            // Evaluated after those: a real expression later in the text.
            ("$[1] $[$x] $[yyyyMMdd]", "$[1] $[$x] 20240310"),
            // A longer body starting with a digit is an expression, as in DolphinScheduler.
            ("$[10] $[0-9]", "10 0"),
        ];
        for (text, want) in cases {
            assert_eq!(sub(text, &scope).as_deref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn references_inside_brackets_expand_first() {
        let scope = ParamScope::new().with_global([
            ("n", "3"),
            ("one", "1"),
            ("dollar", "$x"),
            ("fmt", "yyyy-MM"),
            ("letter", "q"),
            ("dt", "$[yyyyMMdd-${n}]"),
        ]);
        let cases = [
            ("$[yyyyMMdd-${n}]", "20240307"),
            ("$[add_months(${fmt},-${one})]", "2024-02"),
            ("${dt}", "20240307"),
            // What the references expand to decides, as after DolphinScheduler's first pass.
            ("$[${one}]", "$[1]"),
            ("$[${dollar}+1]", "$[$x+1]"),
            ("$[$${n}]", "$[${n}]"),
            // A body holding `$[` is text; references in it still expand.
            ("$[${n}$[1]]", "$[3$[1]]"),
        ];
        for (text, want) in cases {
            assert_eq!(sub(text, &scope).as_deref(), Ok(want), "{text}");
        }
        assert_eq!(
            sub("$[${missing}]", &scope),
            Err(ParamError::UnknownParameter {
                name: "missing".into()
            })
        );
        let bad = sub("$[yyyyMMdd${letter}]", &scope).expect_err("bad expression");
        assert!(matches!(
            bad,
            ParamError::BadExpression { ref expr, .. } if expr == "yyyyMMddq"
        ));
    }

    #[test]
    fn names_may_use_dots_dashes_digits_and_unicode_letters() {
        let scope = ParamScope::new().with_global([("my-param.v2_x", "ok"), ("日期", "d")]);
        assert_eq!(
            sub("日期 ${my-param.v2_x} ${日期} ✓", &scope).as_deref(),
            Ok("日期 ok d ✓")
        );
    }

    #[test]
    fn unknown_parameters_are_errors() {
        let scope = ParamScope::new().with_global([("p", "a/${missing}")]);
        let err = sub("run ${nope}", &scope).expect_err("unknown");
        assert_eq!(
            err,
            ParamError::UnknownParameter {
                name: "nope".into()
            }
        );
        assert!(err.to_string().starts_with("unknown parameter `nope`"));
        assert!(err.to_string().contains("`$${nope}`"));

        let nested = sub("${p}", &scope).expect_err("unknown inside a value");
        assert_eq!(
            nested.root(),
            &ParamError::UnknownParameter {
                name: "missing".into()
            }
        );
        assert_eq!(
            nested,
            ParamError::InParameter {
                chain: vec!["p".into()],
                source: Box::new(ParamError::UnknownParameter {
                    name: "missing".into()
                }),
            }
        );
        assert!(
            nested
                .to_string()
                .starts_with("in the value of parameter `p`: unknown parameter `missing`")
        );
    }

    #[test]
    fn invalid_names_are_errors() {
        let empty = ParamScope::new();
        let cases = [
            ("x ${a b}", "a b", 2),
            ("${}", "", 0),
            ("${VAR:-x}", "VAR:-x", 0),
        ];
        for (text, name, at) in cases {
            assert_eq!(
                sub(text, &empty),
                Err(ParamError::InvalidName {
                    name: name.into(),
                    at
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn unterminated_openers_report_their_offset() {
        let empty = ParamScope::new();
        let cases = [
            ("abc ${x", 4),
            ("x $[yyyy", 2),
            ("${setValue(a=1}", 0),
            ("ok ${a} $[", 8),
        ];
        let scope = ParamScope::new().with_global([("a", "1")]);
        for (text, at) in cases {
            assert_eq!(
                sub(text, &scope),
                Err(ParamError::Unterminated { at }),
                "{text}"
            );
        }
        let in_value = ParamScope::new().with_global([("v", "ab${c")]);
        assert_eq!(
            sub("${v}", &in_value),
            Err(ParamError::InParameter {
                chain: vec!["v".into()],
                source: Box::new(ParamError::Unterminated { at: 2 }),
            })
        );
        assert!(sub("${", &empty).is_err());
    }

    #[test]
    fn bad_time_expressions_propagate() {
        let scope = ParamScope::new().with_global([("dt", "$[yyyyMMdd+x]")]);
        assert!(matches!(
            sub("$[foo(x)]", &scope),
            Err(ParamError::BadExpression { expr, .. }) if expr == "foo(x)"
        ));
        let err = sub("${dt}", &scope).expect_err("bad expression in a value");
        assert!(matches!(
            err.root(),
            ParamError::BadExpression { expr, .. } if expr == "yyyyMMdd+x"
        ));
        assert!(
            err.to_string()
                .starts_with("in the value of parameter `dt`: bad time expression `$[yyyyMMdd+x]`")
        );
    }

    #[test]
    fn text_without_placeholders_is_unchanged() {
        let empty = ParamScope::new();
        for text in ["", "plain", "ünïcödé text", "a]b}c)", "100% #1"] {
            assert_eq!(sub(text, &empty).as_deref(), Ok(text));
        }
    }
}
