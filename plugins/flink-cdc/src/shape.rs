//! The shape of a Flink CDC 3.x pipeline definition, checked before anything is
//! submitted: top-level `source` and `sink` (each a mapping with a `type`), `route` and
//! `transform` (lists of mappings naming a `source-table`, routes a `sink-table` too) and
//! `pipeline` (a mapping; `parallelism` a positive whole number). Each problem names the
//! line of the pipeline text it is on. Connector options are the connector's business
//! and are not checked here.

use marked_yaml::types::MarkedMappingNode;
use marked_yaml::{LoaderOptions, Node};

/// The most pipeline text read; a definition is a few KiB.
const MAX_TEXT: usize = 1 << 20;
/// The YAML parser recurses once per nesting level.
const MAX_DEPTH: usize = 64;

const TOP_LEVEL: [&str; 5] = ["source", "sink", "route", "transform", "pipeline"];

/// Every problem, as `line N: ...`; empty when the shape is right.
pub fn check(text: &str) -> Vec<String> {
    if text.len() > MAX_TEXT {
        return vec![format!(
            "the pipeline is {} bytes, more than {MAX_TEXT}",
            text.len()
        )];
    }
    if let Some(line) = too_deep(text) {
        return vec![format!(
            "line {line}: nested deeper than {MAX_DEPTH} levels"
        )];
    }
    let root = match parse(text) {
        Ok(r) => r,
        Err(e) => return vec![e],
    };
    let Some(map) = root.as_mapping() else {
        return vec![format!(
            "line {}: a pipeline is a mapping with source, sink and pipeline",
            line(&root)
        )];
    };
    let mut problems = Vec::new();
    for (key, _) in map.iter() {
        if !TOP_LEVEL.contains(&key.as_str()) {
            problems.push(format!(
                "line {}: unknown top-level key `{}` (a Flink CDC 3.x pipeline has {})",
                key.span().start().map(|m| m.line()).unwrap_or(0),
                key.as_str(),
                TOP_LEVEL.join(", ")
            ));
        }
    }
    for end in ["source", "sink"] {
        match map.get_node(end) {
            None => problems.push(format!(
                "line {}: the pipeline has no `{end}`",
                line_of_map(map)
            )),
            Some(node) => match node.as_mapping() {
                None => problems.push(format!(
                    "line {}: `{end}` must be a mapping with a `type`",
                    line(node)
                )),
                Some(m) => {
                    if m.get_scalar("type")
                        .is_none_or(|t| t.as_str().trim().is_empty())
                    {
                        problems.push(format!(
                            "line {}: `{end}` needs a `type` (the connector, e.g. mysql, doris, values)",
                            line(node)
                        ));
                    }
                }
            },
        }
    }
    for (list, required) in [
        ("route", &["source-table", "sink-table"][..]),
        ("transform", &["source-table"][..]),
    ] {
        let Some(node) = map.get_node(list) else {
            continue;
        };
        let Some(items) = node.as_sequence() else {
            problems.push(format!("line {}: `{list}` must be a list", line(node)));
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            let Some(m) = item.as_mapping() else {
                problems.push(format!(
                    "line {}: `{list}` entry {} must be a mapping",
                    line(item),
                    i + 1
                ));
                continue;
            };
            for field in required {
                if m.get_scalar(field).is_none() {
                    problems.push(format!(
                        "line {}: `{list}` entry {} needs `{field}`",
                        line(item),
                        i + 1
                    ));
                }
            }
        }
    }
    if let Some(node) = map.get_node("pipeline") {
        match node.as_mapping() {
            None => problems.push(format!("line {}: `pipeline` must be a mapping", line(node))),
            Some(m) => {
                if let Some(p) = m.get_node("parallelism") {
                    // A reference (`${p}`) is substituted before the task runs.
                    let ok = p.as_scalar().is_some_and(|s| {
                        s.as_str().contains("${")
                            || s.as_str().trim().parse::<u64>().is_ok_and(|n| n > 0)
                    });
                    if !ok {
                        problems.push(format!(
                            "line {}: `pipeline.parallelism` must be a whole number above 0",
                            line(p)
                        ));
                    }
                }
            }
        }
    }
    problems
}

/// `pipeline.name`, which names the job on the cluster.
pub fn pipeline_name(text: &str) -> Option<String> {
    let root = parse(text).ok()?;
    let name = root
        .as_mapping()?
        .get_mapping("pipeline")?
        .get_scalar("name")?;
    Some(name.as_str().to_owned())
}

/// `pipeline.parallelism`, the job's parallelism unless the task sets one.
pub fn pipeline_parallelism(text: &str) -> Option<u64> {
    let root = parse(text).ok()?;
    let p = root
        .as_mapping()?
        .get_mapping("pipeline")?
        .get_scalar("parallelism")?;
    p.as_str().trim().parse().ok()
}

fn parse(text: &str) -> Result<Node, String> {
    let options = LoaderOptions::default().error_on_duplicate_keys(true);
    marked_yaml::parse_yaml_with_options(0, text, options).map_err(|e| {
        use marked_yaml::LoadError::*;
        let at = match &e {
            TopLevelMustBeMapping(m)
            | TopLevelMustBeSequence(m)
            | UnexpectedAnchor(m)
            | MappingKeyMustBeScalar(m)
            | UnexpectedTag(m)
            | ScanError(m, _) => m.line(),
            DuplicateKey(inner) => inner.key.span().start().map(|m| m.line()).unwrap_or(0),
        };
        let what = match &e {
            DuplicateKey(inner) => format!("duplicate key `{}`", inner.key.as_str()),
            ScanError(_, err) => format!("not valid YAML: {}", err.info()),
            TopLevelMustBeMapping(_) => {
                "a pipeline is a mapping with source, sink and pipeline".into()
            }
            other => other.to_string(),
        };
        format!("line {at}: {what}")
    })
}

fn line(node: &Node) -> usize {
    node.span().start().map(|m| m.line()).unwrap_or(0)
}

fn line_of_map(map: &MarkedMappingNode) -> usize {
    map.span().start().map(|m| m.line()).unwrap_or(1)
}

/// The first line nesting goes deeper than [`MAX_DEPTH`], by indentation or by
/// brackets, before the recursive parser sees it.
fn too_deep(text: &str) -> Option<usize> {
    let mut brackets = 0usize;
    for (n, l) in text.lines().enumerate() {
        let indent = l.len() - l.trim_start().len();
        if indent / 2 > MAX_DEPTH {
            return Some(n + 1);
        }
        for c in l.chars() {
            match c {
                '[' | '{' => brackets += 1,
                ']' | '}' => brackets = brackets.saturating_sub(1),
                _ => {}
            }
            if brackets > MAX_DEPTH {
                return Some(n + 1);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "source:
  type: mysql
  hostname: 127.0.0.1
  password: ${secret.MYSQL}
sink:
  type: doris
route:
  - source-table: app.orders
    sink-table: ods.orders
transform:
  - source-table: app.orders
    projection: id, amount
pipeline:
  name: Sync orders
  parallelism: 2
";

    #[test]
    fn a_well_formed_pipeline_passes() {
        assert!(check(GOOD).is_empty(), "{:?}", check(GOOD));
        assert_eq!(pipeline_name(GOOD).as_deref(), Some("Sync orders"));
        assert_eq!(pipeline_parallelism(GOOD), Some(2));
    }

    #[test]
    fn problems_name_their_line() {
        let bad = "source:
  hostname: x
sink: doris
route:
  - sink-table: a
extra: 1
pipeline:
  parallelism: zero
";
        assert_eq!(
            check(bad),
            [
                "line 6: unknown top-level key `extra` (a Flink CDC 3.x pipeline has source, sink, route, transform, pipeline)",
                "line 2: `source` needs a `type` (the connector, e.g. mysql, doris, values)",
                "line 3: `sink` must be a mapping with a `type`",
                "line 5: `route` entry 1 needs `source-table`",
                "line 8: `pipeline.parallelism` must be a whole number above 0",
            ]
        );
        assert_eq!(
            check("source: [a\n"),
            ["line 2: not valid YAML: while parsing a flow sequence, expected ',' or ']'"]
        );
        assert!(check("sink:\n  type: x\n")[0].contains("has no `source`"));
        let deep = format!("source: {}{}\n", "[".repeat(100), "]".repeat(100));
        assert!(check(&deep)[0].contains("nested deeper"));
    }
}
