//! A task's parameters as the loader reads them: `local_params` (DolphinScheduler's
//! `{prop, direct, type, value}` list) and pydolphinscheduler's `input_params` /
//! `output_params` mappings with their `TYPE(text)` values.

use marked_yaml::Node;

use super::{Walk, line_of, scalar_line};
use crate::model::{LocalParam, ParamDirection};

/// The parameter types DolphinScheduler knows (`DataType` there).
const PARAM_TYPES: &[&str] = &[
    "VARCHAR",
    "INTEGER",
    "LONG",
    "FLOAT",
    "DOUBLE",
    "DATE",
    "TIME",
    "TIMESTAMP",
    "BOOLEAN",
    "LIST",
    "FILE",
];

/// `TYPE(text)` → (TYPE, text), as pydolphinscheduler reads it: the type is what comes
/// before the first `(`, the text what follows up to the next `)`, both with trailing
/// blanks cut.
fn typed_value(s: &str) -> Option<(&str, &str)> {
    let (kind, rest) = s.split_once('(')?;
    let (text, _) = rest.split_once(')')?;
    Some((kind.trim_end(), text.trim_end()))
}

impl Walk<'_> {
    pub(super) fn local_params(&mut self, node: &Node, field: &str) -> Vec<LocalParam> {
        let Some(seq) = node.as_sequence() else {
            self.problem(
                line_of(node),
                field,
                "must be a list of {prop, direct, type, value}",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in seq.iter().enumerate() {
            let f = format!("{field}[{i}]");
            let Some(map) = item.as_mapping() else {
                self.problem(
                    line_of(item),
                    f,
                    "must be a mapping with prop, direct, type, value",
                );
                continue;
            };
            let mut p = LocalParam {
                prop: String::new(),
                direct: ParamDirection::In,
                kind: "VARCHAR".into(),
                value: String::new(),
            };
            for (k, v) in map.iter() {
                let kf = format!("{f}.{}", k.as_str());
                match k.as_str() {
                    "prop" => p.prop = self.string(v, &kf).unwrap_or_default(),
                    "value" => p.value = self.string(v, &kf).unwrap_or_default(),
                    "type" => p.kind = self.string(v, &kf).unwrap_or_default().to_ascii_uppercase(),
                    "direct" => {
                        p.direct = match self.word(v, &kf).as_deref() {
                            Some("in") => ParamDirection::In,
                            Some("out") => ParamDirection::Out,
                            Some(other) => {
                                self.problem(line_of(v), kf, format!("`{other}` is not IN or OUT"));
                                ParamDirection::In
                            }
                            None => ParamDirection::In,
                        }
                    }
                    _ => self.problem(
                        scalar_line(k),
                        kf,
                        "unknown field (expected prop, direct, type, value)",
                    ),
                }
            }
            if p.prop.trim().is_empty() {
                self.problem(line_of(item), format!("{f}.prop"), "missing or empty");
            }
            out.push(p);
        }
        out
    }

    /// pydolphinscheduler's `input_params` / `output_params`: a mapping of names to
    /// values. A value written `TYPE(text)` names its type (`VARCHAR()`, `INTEGER(3)`,
    /// `FILE(text.txt)`); a plain value takes the type of its YAML kind (an integer
    /// INTEGER, a float FLOAT, a boolean BOOLEAN, text or nothing VARCHAR), as
    /// `ParameterHelper.convert_params` has it.
    pub(super) fn typed_params(
        &mut self,
        node: &Node,
        field: &str,
        direct: ParamDirection,
    ) -> Vec<LocalParam> {
        let Some(map) = node.as_mapping() else {
            self.problem(
                line_of(node),
                field,
                "must be a mapping of parameter names to values",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, value) in map.iter() {
            let prop = key.as_str().to_owned();
            let f = format!("{field}.{prop}");
            let (kind, text) = match self.json(value, &f) {
                serde_json::Value::Null => ("VARCHAR".to_owned(), String::new()),
                serde_json::Value::Bool(b) => ("BOOLEAN".to_owned(), b.to_string()),
                serde_json::Value::Number(n) if n.is_f64() => ("FLOAT".to_owned(), n.to_string()),
                serde_json::Value::Number(n) => ("INTEGER".to_owned(), n.to_string()),
                serde_json::Value::String(s) => match typed_value(&s) {
                    Some((kind, text)) => (kind.to_owned(), text.to_owned()),
                    None => ("VARCHAR".to_owned(), s),
                },
                _ => {
                    self.problem(
                        line_of(value),
                        f,
                        "must be a value such as `VARCHAR(text)`, a number or text",
                    );
                    continue;
                }
            };
            if !PARAM_TYPES.contains(&kind.as_str()) {
                self.problem(
                    line_of(value),
                    f,
                    format!(
                        "`{kind}` is not a parameter type (expected one of {})",
                        PARAM_TYPES.join(", ")
                    ),
                );
                continue;
            }
            let fits = match kind.as_str() {
                "INTEGER" | "LONG" => text.is_empty() || text.parse::<i64>().is_ok(),
                "FLOAT" | "DOUBLE" => text.is_empty() || text.parse::<f64>().is_ok(),
                _ => true,
            };
            if !fits {
                self.problem(
                    line_of(value),
                    f,
                    format!("`{text}` is not a valid {kind} value"),
                );
                continue;
            }
            out.push(LocalParam {
                prop,
                direct,
                kind,
                value: text,
            });
        }
        out
    }
}
