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
    #[error("bad time expression `$[{expr}]`: {reason}")]
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
    /// The underlying error, looking through [`ParamError::InParameter`] wrappers.
    pub fn root(&self) -> &ParamError {
        match self {
            ParamError::InParameter { source, .. } => source.root(),
            other => other,
        }
    }

    /// Records that this error happened inside the value of `name`. Cycles already name
    /// every parameter involved, so they are passed through unwrapped.
    pub(crate) fn inside(self, name: &str) -> ParamError {
        match self {
            ParamError::Cycle { .. } => self,
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
