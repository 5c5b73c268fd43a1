//! The one error type of parameter substitution, worded so a caller can prefix it with the
//! field it came from (`field command: unknown parameter `foo` ...`) and show it to a user.

/// Why a text could not be substituted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// `${name}` names nothing in the scope and no built-in.
    #[error(
        "unknown parameter `{name}`: define it as a global, local, startup or upstream OUT \
         parameter, or write `$${{{name}}}` to keep a literal `${{{name}}}`"
    )]
    UnknownParameter { name: String },

    /// The text between `${` and `}` is not a parameter name; `at` is measured like
    /// [`ParamError::Unterminated`]'s.
    #[error(
        "invalid parameter reference `${{{name}}}` at byte {at}: names may only contain \
         letters, digits, `_`, `.` and `-`; write `$${{` to keep a literal `${{`"
    )]
    InvalidName { name: String, at: usize },

    /// A `$[...]` time expression that cannot be evaluated.
    #[error("bad time expression `$[{}]`: {reason}", shorten(.expr))]
    BadExpression { expr: String, reason: String },

    /// `${` or `$[` with no closing bracket; `at` is the byte offset of the `$` in the text
    /// being scanned (inside [`ParamError::InParameter`], in that parameter's value).
    #[error(
        "unterminated placeholder at byte {at}: `${{` needs a closing `}}` and `$[` a closing \
         `]`; write `$${{` or `$$[` to keep them literally"
    )]
    Unterminated { at: usize },

    /// Parameter values refer to each other in a loop; `chain` starts and ends with the same
    /// name, e.g. `[a, b, a]`.
    #[error("parameters refer to each other in a cycle: {}", quoted_chain(.chain))]
    Cycle { chain: Vec<String> },

    /// A `$[...]` expression nests parentheses deeper than the limit; evaluating it could
    /// exhaust the stack.
    #[error(
        "time expression `$[{}]` nests parentheses deeper than {limit} levels",
        shorten(.expr)
    )]
    ExpressionTooDeep { expr: String, limit: usize },

    /// Expanding `name` goes through more than `limit` parameters whose values refer to the
    /// next one (`a` uses `${b}`, `b` uses `${c}`, ...); `deepest` is where it stopped.
    #[error(
        "parameter `{name}` refers to parameters that refer to others more than {limit} \
         levels deep (stopped at `{deepest}`)"
    )]
    ChainTooDeep {
        name: String,
        deepest: String,
        limit: usize,
    },

    /// The substituted text, or the expanded value of parameter `name`, would be larger than
    /// `limit` bytes (for example a chain of parameters that each double the previous one).
    #[error(
        "{} would be larger than {limit} bytes after substitution",
        .name.as_deref().map_or_else(|| "the text".to_string(), |n| format!("the value of parameter `{n}`"))
    )]
    OutputTooLarge { name: Option<String>, limit: usize },

    /// The error is in the named field of a task (for example `command` or `args[1]`).
    #[error("field `{field}`: {source}")]
    InField {
        field: String,
        source: Box<ParamError>,
    },

    /// A built-in date would fall outside the dates chrono can represent.
    #[error("built-in parameter `{name}` is outside the supported date range")]
    DateOutOfRange { name: String },

    /// The error happened while expanding the value of a parameter that the text refers to.
    /// `chain` is the path of references from the text to the failing value (`[a, b]`: the
    /// text used `${a}`, whose value used `${b}`, whose value is wrong).
    #[error("in the value of parameter {}: {source}", quoted_chain(.chain))]
    InParameter {
        chain: Vec<String>,
        source: Box<ParamError>,
    },
}

impl ParamError {
    /// The underlying error, looking through [`ParamError::InParameter`] and
    /// [`ParamError::InField`] wrappers.
    pub fn root(&self) -> &ParamError {
        match self {
            ParamError::InParameter { source, .. } | ParamError::InField { source, .. } => {
                source.root()
            }
            other => other,
        }
    }

    /// Records that this error happened inside the value of `name`. Cycles already name
    /// every parameter involved, and the limits name where they were hit, so they are passed
    /// through without a chain that could be as long as the limit.
    pub(crate) fn inside(self, name: &str) -> ParamError {
        match self {
            ParamError::Cycle { .. } | ParamError::OutputTooLarge { .. } => self,
            ParamError::ChainTooDeep { deepest, limit, .. } => ParamError::ChainTooDeep {
                name: name.to_string(),
                deepest,
                limit,
            },
            ParamError::InParameter { mut chain, source } => {
                chain.insert(0, name.to_string());
                ParamError::InParameter { chain, source }
            }
            other => ParamError::InParameter {
                chain: vec![name.to_string()],
                source: Box::new(other),
            },
        }
    }
}

/// Expressions are quoted in messages; a hostile one may be megabytes long.
pub(crate) fn shorten(text: &str) -> String {
    const KEEP: usize = 60;
    match text.char_indices().nth(KEEP) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

fn quoted_chain(chain: &[String]) -> String {
    chain
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(" -> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_problem_and_the_fix() {
        let unknown = ParamError::UnknownParameter { name: "foo".into() };
        assert_eq!(
            unknown.to_string(),
            "unknown parameter `foo`: define it as a global, local, startup or upstream OUT \
             parameter, or write `$${foo}` to keep a literal `${foo}`"
        );
        let bad = ParamError::BadExpression {
            expr: "yyyyMMdd+x".into(),
            reason: "expected a number".into(),
        };
        assert_eq!(
            bad.to_string(),
            "bad time expression `$[yyyyMMdd+x]`: expected a number"
        );
        let cycle = ParamError::Cycle {
            chain: vec!["a".into(), "b".into(), "a".into()],
        };
        assert_eq!(
            cycle.to_string(),
            "parameters refer to each other in a cycle: `a` -> `b` -> `a`"
        );
        let unterminated = ParamError::Unterminated { at: 7 };
        assert!(
            unterminated
                .to_string()
                .starts_with("unterminated placeholder at byte 7:")
        );
        let invalid = ParamError::InvalidName {
            name: "a b".into(),
            at: 3,
        };
        assert!(
            invalid
                .to_string()
                .starts_with("invalid parameter reference `${a b}` at byte 3:")
        );
    }

    #[test]
    fn limit_errors_name_what_hit_them_and_stay_short() {
        let deep = ParamError::ExpressionTooDeep {
            expr: format!("yyyy+{}", "(".repeat(100_000)),
            limit: 64,
        };
        let text = deep.to_string();
        assert!(text.len() < 150, "{text}");
        assert!(text.starts_with("time expression `$[yyyy+((((("), "{text}");
        assert!(text.contains("...]` nests parentheses deeper than 64 levels"));
        let chain = ParamError::ChainTooDeep {
            name: "p9".into(),
            deepest: "p73".into(),
            limit: 64,
        };
        // An outer parameter becomes the one named; the chain is not spelt out.
        assert_eq!(
            chain.clone().inside("p0"),
            ParamError::ChainTooDeep {
                name: "p0".into(),
                deepest: "p73".into(),
                limit: 64
            }
        );
        let large = ParamError::OutputTooLarge {
            name: Some("a20".into()),
            limit: 1 << 20,
        };
        assert_eq!(large.clone().inside("a21"), large);
        let in_field = ParamError::InField {
            field: "command".into(),
            source: Box::new(large.clone()),
        };
        assert_eq!(
            in_field.to_string(),
            "field `command`: the value of parameter `a20` would be larger than 1048576 bytes \
             after substitution"
        );
        assert_eq!(in_field.root(), &large);
    }

    #[test]
    fn inside_builds_a_chain_and_root_finds_the_cause() {
        let cause = ParamError::UnknownParameter { name: "c".into() };
        let err = cause.clone().inside("b").inside("a");
        assert_eq!(
            err,
            ParamError::InParameter {
                chain: vec!["a".into(), "b".into()],
                source: Box::new(cause.clone()),
            }
        );
        assert_eq!(err.root(), &cause);
        assert!(
            err.to_string()
                .starts_with("in the value of parameter `a` -> `b`: unknown parameter `c`")
        );

        let cycle = ParamError::Cycle {
            chain: vec!["x".into(), "x".into()],
        };
        assert_eq!(cycle.clone().inside("y"), cycle);
    }
}
