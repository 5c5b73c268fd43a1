//! `python`: runs a Python script, as DolphinScheduler's PYTHON task does.
//!
//! The script is pydolphinscheduler's `definition` (or `rawScript` as DolphinScheduler
//! exports it), with `${...}` already substituted by the host. As pydolphinscheduler
//! does, a definition that starts with `def name(` is a function and gets a call to
//! `name()` appended. The interpreter is not the workflow author's to pick: it is the
//! operator policy's `interpreter` setting for this plugin, `python3` by default (as
//! DolphinScheduler's `PYTHON_LAUNCHER` is the worker's). Output goes to the task log;
//! `${setValue(key=value)}` lines become OUT parameters.

use shoal_sdk::prelude::*;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The Python source to run.
    #[serde(alias = "rawScript", alias = "raw_script")]
    pub definition: String,
}

/// The interpreter when the policy names none.
const DEFAULT_INTERPRETER: &str = "python3";

pub struct Python;

impl TaskType for Python {
    type Params = Params;
    const NAME: &'static str = "python";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Runs a Python script in the task's work dir";
    const EXECUTION_CLASS: ExecutionClass = ExecutionClass::Blocking;
    const CAPABILITIES: &'static [&'static str] = &["process", "work-dir"];

    fn validate(params: &Params) -> Vec<FieldError> {
        if params.definition.trim().is_empty() {
            vec![FieldError::new("definition", "the script is empty")]
        } else {
            Vec::new()
        }
    }

    fn start(ctx: &mut TaskContext, params: Params) -> Result<Start, Error> {
        let interpreter = setting("interpreter")
            .filter(|i| !i.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_INTERPRETER.to_owned());
        let script = executable(&params.definition);
        // Unbuffered, so output reaches the log as it is printed, not at exit.
        let env = [
            ("PYTHONUNBUFFERED".to_owned(), "1".to_owned()),
            ("PYTHONIOENCODING".to_owned(), "utf-8".to_owned()),
        ];
        script::run(ctx, &interpreter, "py", &script, &env)
    }
}

/// pydolphinscheduler's `Python._build_exe_str`: a definition matching `^def (\w+)\(`
/// is a function, called after its text (one blank line between, as there).
pub fn executable(definition: &str) -> String {
    let Some(name) = function_name(definition) else {
        return definition.to_owned();
    };
    if definition.ends_with('\n') {
        format!("{definition}{name}()")
    } else {
        format!("{definition}\n{name}()")
    }
}

/// The name in a leading `def name(`, as Python's `re.match("^def (\w+)\(")` finds it.
fn function_name(definition: &str) -> Option<&str> {
    let rest = definition.strip_prefix("def ")?;
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    (end > 0 && rest[end..].starts_with('(')).then(|| &rest[..end])
}

export_task!(Python);

#[cfg(test)]
mod tests {
    use super::executable;

    #[test]
    fn a_function_definition_gets_called_as_pydolphinscheduler_does() {
        assert_eq!(
            executable("def foo():\n    print(1)\n"),
            "def foo():\n    print(1)\nfoo()"
        );
        assert_eq!(
            executable("def bar_2(x=1):\n    print(x)"),
            "def bar_2(x=1):\n    print(x)\nbar_2()"
        );
        // Only a definition at the very start counts (`re.findall("^def ...")`).
        assert_eq!(
            executable("print(1)\ndef f():\n  pass\n"),
            "print(1)\ndef f():\n  pass\n"
        );
        assert_eq!(executable("def (x):"), "def (x):");
        assert_eq!(executable("define = 1"), "define = 1");
    }
}
