//! The limits of substitution checked on a definition's raw values, without a run: cycles,
//! reference chains deeper than [`Limits::max_depth`], `$[...]` expressions nested deeper
//! than [`MAX_EXPRESSION_DEPTH`](crate::MAX_EXPRESSION_DEPTH), and values whose expansion
//! would exceed [`Limits::max_bytes`], so that an upload is refused before any task fails.
//!
//! Sizes are estimated rather than computed: a time expression counts as long as its source
//! and a reference to a parameter outside the scope (a startup or upstream value, a
//! built-in) as long as the reference itself. A chain that doubles at every link is caught
//! after about twenty links without anything being expanded.
//!
//! Only these problems are reported. A reference to an unknown parameter may be satisfied
//! at run time, and a malformed placeholder in a value nobody uses does no harm, so those
//! stay for dispatch to report.

use std::collections::{HashMap, HashSet};

use crate::error::ParamError;
use crate::scope::ParamScope;
use crate::substitute::{Limits, Piece, scan};
use crate::time_expr;

/// Checks the values of one scope and texts that refer to them, reporting each problem
/// once: after a parameter's problem has been returned, later checks that reach the same
/// parameter pass over it.
pub struct Checker<'a> {
    params: &'a ParamScope,
    /// Values that take precedence over `params` (a task's own over the workflow's).
    overrides: Option<&'a ParamScope>,
    limits: Limits,
    /// Estimated expanded size of each parameter checked so far.
    sizes: HashMap<String, usize>,
    /// Parameters whose problem has been returned already.
    reported: HashSet<String>,
    /// The parameters being checked right now, outermost first.
    in_progress: Vec<String>,
    /// Bytes of text scanned so far.
    scanned: usize,
}

/// Why a size could not be estimated.
enum Stop {
    Problem(ParamError),
    /// The text reaches a parameter whose problem was returned before.
    Reported,
}

impl From<ParamError> for Stop {
    fn from(e: ParamError) -> Self {
        Stop::Problem(e)
    }
}

impl<'a> Checker<'a> {
    pub fn new(params: &'a ParamScope, limits: Limits) -> Self {
        Checker {
            params,
            overrides: None,
            limits,
            sizes: HashMap::new(),
            reported: HashSet::new(),
            in_progress: Vec::new(),
            scanned: 0,
        }
    }

    /// Looks names up in `overrides` first, then in the scope: checking many tasks against
    /// one workflow's values this way copies none of them.
    pub fn with_overrides(mut self, overrides: &'a ParamScope) -> Self {
        self.overrides = Some(overrides);
        self
    }

    /// Bytes of text this checker has scanned, each value at most once, so that a caller
    /// checking many texts can bound the work.
    pub fn scanned(&self) -> usize {
        self.scanned
    }

    /// Checks the value of parameter `name` (nothing to check if the scope lacks it).
    pub fn check_value(&mut self, name: &str) -> Result<(), ParamError> {
        self.settle(|c| c.size_of(name).map(drop))
    }

    /// Checks a text that refers to the scope, such as a task's `command`.
    pub fn check_text(&mut self, text: &str) -> Result<(), ParamError> {
        self.settle(|c| c.size_of_text(text).map(drop))
    }

    fn settle(
        &mut self,
        check: impl FnOnce(&mut Self) -> Result<(), Stop>,
    ) -> Result<(), ParamError> {
        match check(self) {
            Ok(()) | Err(Stop::Reported) => Ok(()),
            Err(Stop::Problem(e)) => Err(e),
        }
    }

    fn size_of(&mut self, name: &str) -> Result<usize, Stop> {
        if let Some(&size) = self.sizes.get(name) {
            return Ok(size);
        }
        if self.reported.contains(name) {
            return Err(Stop::Reported);
        }
        if let Some(pos) = self.in_progress.iter().position(|n| n == name) {
            let mut chain = self.in_progress[pos..].to_vec();
            chain.push(name.to_string());
            return Err(ParamError::Cycle { chain }.into());
        }
        let raw = self
            .overrides
            .and_then(|o| o.get(name))
            .or_else(|| self.params.get(name));
        let Some(raw) = raw else {
            // Left for the run to provide: it stays as long as its reference.
            return Ok(name.len() + 3);
        };
        if self.in_progress.len() >= self.limits.max_depth {
            return Err(ParamError::ChainTooDeep {
                name: name.to_string(),
                deepest: name.to_string(),
                limit: self.limits.max_depth,
            }
            .into());
        }
        self.in_progress.push(name.to_string());
        let size = self.size_of_text(raw);
        self.in_progress.pop();
        match size {
            Ok(size) => {
                self.sizes.insert(name.to_string(), size);
                Ok(size)
            }
            Err(stop) => {
                self.reported.insert(name.to_string());
                Err(match stop {
                    Stop::Problem(e) => Stop::Problem(e.inside(name)),
                    Stop::Reported => Stop::Reported,
                })
            }
        }
    }

    fn size_of_text(&mut self, text: &str) -> Result<usize, Stop> {
        self.scanned += text.len();
        self.size_of_pieces(text)
    }

    /// [`Self::size_of_text`] without counting `text` as scanned, for a part of a text that
    /// has been counted already.
    fn size_of_pieces(&mut self, text: &str) -> Result<usize, Stop> {
        let mut size = 0usize;
        let mut stop = None;
        let scanned = scan(text, |piece| {
            let add = match piece {
                Piece::Text(t) => t.len(),
                Piece::Reference { name } => match self.size_of(name) {
                    Ok(n) => n,
                    Err(s) => {
                        stop = Some(s);
                        // Any error ends the scan; the real one is in `stop`.
                        return Err(ParamError::Unterminated { at: 0 });
                    }
                },
                // References inside the brackets are expanded before evaluation, so they are
                // followed like any others; what they expand to is only known at run time.
                Piece::Expression { expr } if expr.contains("${") => {
                    match self.size_of_pieces(expr) {
                        Ok(n) => n.saturating_add(3),
                        Err(s) => {
                            stop = Some(s);
                            return Err(ParamError::Unterminated { at: 0 });
                        }
                    }
                }
                Piece::Expression { expr } => {
                    time_expr::check_depth(expr)?;
                    expr.len() + 3
                }
            };
            size = size.saturating_add(add);
            if size > self.limits.max_bytes {
                return Err(ParamError::OutputTooLarge {
                    name: self.in_progress.last().cloned(),
                    limit: self.limits.max_bytes,
                });
            }
            Ok(())
        });
        if let Some(stop) = stop {
            return Err(stop);
        }
        match scanned {
            Ok(()) => Ok(size),
            Err(e @ (ParamError::ExpressionTooDeep { .. } | ParamError::OutputTooLarge { .. })) => {
                Err(e.into())
            }
            // A malformed placeholder is dispatch's to report (see the module docs); what
            // was scanned before it is still counted.
            Err(_) => Ok(size),
        }
    }
}

/// Every problem among the values of `params`, by parameter name, each problem once.
pub fn check_scope(params: &ParamScope, limits: Limits) -> Vec<(String, ParamError)> {
    let mut checker = Checker::new(params, limits);
    params
        .names()
        .filter_map(|name| {
            checker
                .check_value(name)
                .err()
                .map(|e| (name.to_string(), e))
        })
        .collect()
}

/// Checks one text that refers to `params`.
pub fn check_text(text: &str, params: &ParamScope, limits: Limits) -> Result<(), ParamError> {
    Checker::new(params, limits).check_text(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(values: &[(&str, &str)]) -> ParamScope {
        ParamScope::new().with_global(values.iter().copied())
    }

    fn doubling(links: usize) -> Vec<(String, String)> {
        let mut values = vec![("a0".to_string(), "xy".to_string())];
        for i in 1..=links {
            values.push((format!("a{i}"), format!("${{a{0}}}${{a{0}}}", i - 1)));
        }
        values
    }

    #[test]
    fn cycles_are_reported_once_with_their_members() {
        let s = scope(&[("a", "${b}"), ("b", "x${a}"), ("ok", "${c}"), ("c", "1")]);
        let problems = check_scope(&s, Limits::DEFAULT);
        assert_eq!(
            problems,
            vec![(
                "a".to_string(),
                ParamError::Cycle {
                    chain: vec!["a".into(), "b".into(), "a".into()]
                }
            )]
        );
        let own = scope(&[("x", "${x}")]);
        assert_eq!(check_scope(&own, Limits::DEFAULT).len(), 1);
    }

    #[test]
    fn a_long_chain_is_too_deep_and_names_where_it_starts() {
        let values: Vec<(String, String)> = (0..100_000)
            .map(|i| (format!("p{i}"), format!("${{p{}}}", i + 1)))
            .collect();
        let s = ParamScope::new().with_global(values);
        let err = Checker::new(&s, Limits::DEFAULT)
            .check_value("p0")
            .unwrap_err();
        assert_eq!(
            err,
            ParamError::ChainTooDeep {
                name: "p0".into(),
                deepest: "p64".into(),
                limit: 64
            }
        );
        // Exactly at the limit it passes.
        let values: Vec<(String, String)> = (0..64)
            .map(|i| (format!("p{i}"), format!("${{p{}}}", i + 1)))
            .collect();
        let s = ParamScope::new().with_global(values);
        assert_eq!(Checker::new(&s, Limits::DEFAULT).check_value("p0"), Ok(()));
    }

    #[test]
    fn a_doubling_chain_is_too_large_before_anything_is_expanded() {
        let s = ParamScope::new().with_global(doubling(60));
        let problems = check_scope(&s, Limits::DEFAULT);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let (name, err) = &problems[0];
        // `a19` expands to exactly 1 MiB; `a20` is the first over.
        assert_eq!(name, "a20");
        assert_eq!(
            err,
            &ParamError::OutputTooLarge {
                name: Some("a20".into()),
                limit: 1 << 20
            }
        );
        // Twelve links stay well below the limit.
        let small = ParamScope::new().with_global(doubling(12));
        assert!(check_scope(&small, Limits::DEFAULT).is_empty());
        assert_eq!(check_text("${a12}", &small, Limits::DEFAULT), Ok(()));
        let tight = Limits {
            max_bytes: 1000,
            ..Limits::DEFAULT
        };
        // The error names the first link over the limit, not the whole chain to it.
        assert_eq!(
            check_text("${a12}", &small, tight),
            Err(ParamError::OutputTooLarge {
                name: Some("a9".into()),
                limit: 1000
            })
        );
    }

    #[test]
    fn deep_expressions_are_found_in_values_and_texts() {
        let deep = format!("$[yyyyMMdd+{}1{}]", "(".repeat(65), ")".repeat(65));
        let s = scope(&[("dt", &deep), ("fine", "$[yyyyMMdd-1]")]);
        let problems = check_scope(&s, Limits::DEFAULT);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, "dt");
        assert!(matches!(
            problems[0].1.root(),
            ParamError::ExpressionTooDeep { limit: 64, .. }
        ));
        let err = check_text(&format!("echo {deep}"), &s, Limits::DEFAULT).unwrap_err();
        assert!(matches!(err, ParamError::ExpressionTooDeep { .. }));
    }

    #[test]
    fn references_inside_time_expressions_are_followed() {
        let s = scope(&[("a", "$[yyyyMMdd-${b}]"), ("b", "${a}"), ("n", "1")]);
        let problems = check_scope(&s, Limits::DEFAULT);
        assert_eq!(
            problems,
            vec![(
                "a".to_string(),
                ParamError::Cycle {
                    chain: vec!["a".into(), "b".into(), "a".into()]
                }
            )]
        );
        let big = ParamScope::new().with_global(doubling(12));
        let tight = Limits {
            max_bytes: 1000,
            ..Limits::DEFAULT
        };
        assert!(matches!(
            check_text("$[yyyy${a12}]", &big, tight),
            Err(ParamError::OutputTooLarge { .. })
        ));
        // Brackets DolphinScheduler leaves alone are text, however deep their parentheses.
        let shell = format!("$[$x+{}1{}] $[1]", "(".repeat(100), ")".repeat(100));
        assert_eq!(check_text(&shell, &s, Limits::DEFAULT), Ok(()));
        assert_eq!(check_text("$[yyyyMMdd-${n}]", &s, Limits::DEFAULT), Ok(()));
    }

    #[test]
    fn overrides_take_precedence() {
        let global = scope(&[("a", "${b}"), ("b", "${a}"), ("c", "ok")]);
        let local = ParamScope::new().with_local([("b", "${c}")]);
        let mut checker = Checker::new(&global, Limits::DEFAULT).with_overrides(&local);
        assert_eq!(checker.check_value("a"), Ok(()));
        assert_eq!(checker.check_text("${a}${b}"), Ok(()));
        let cycle = ParamScope::new().with_local([("c", "${a}")]);
        let mut checker = Checker::new(&global, Limits::DEFAULT).with_overrides(&cycle);
        assert!(matches!(
            checker.check_value("a"),
            Err(ParamError::Cycle { .. })
        ));
    }

    #[test]
    fn what_dispatch_reports_is_left_alone() {
        let s = scope(&[
            ("broken", "${"),
            ("bad", "${a b}"),
            ("uses", "${startup_only}"),
        ]);
        assert!(check_scope(&s, Limits::DEFAULT).is_empty());
        assert_eq!(
            check_text("${nope} ${system.biz.date}", &s, Limits::DEFAULT),
            Ok(())
        );
    }
}
