//! DolphinScheduler's parameter semantics for Shoal: what `${name}` and `$[yyyyMMdd-1]` in a
//! task's fields turn into for one run.
//!
//! - [`scope`]: the four layers of parameter values and their priority
//!   (startup > local > upstream OUT parameters > global).
//! - [`substitute`](mod@substitute): scanning a text for references, escapes (`$${`, `$$[`)
//!   and OUT-parameter markers (`${setValue(...)}`, `#{setValue(...)}`); the `system.*`
//!   built-ins; recursive expansion of values with cycle detection, within [`Limits`]
//!   (reference depth and bytes produced).
//! - [`check`]: the same limits checked on a definition's raw values, without a run, so
//!   that an upload can be refused before any task is dispatched.
//! - [`time_expr`]: `$[...]` time expressions and DolphinScheduler's date functions.
//! - [`error`]: the one error type, worded for users.
//!
//! Nothing here reads the clock or the machine's time zone: every date is derived from
//! [`RunContext::schedule_time`], so a rerun of the same schedule sees the same values.

mod arith;
pub mod check;
pub mod error;
mod pattern;
pub mod scope;
pub mod substitute;
pub mod time_expr;

pub use check::{check_scope, check_text};
pub use error::ParamError;
pub use scope::{Layer, ParamScope};
pub use substitute::{
    BUILTIN_NAMES, Limits, RunContext, Substituter, builtin, resolve_value, resolve_values,
    substitute,
};
pub use time_expr::{MAX_EXPRESSION_DEPTH, eval_time_expr};
