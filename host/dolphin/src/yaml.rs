//! Writing definitions as YAML: a block-style emitter for the few kinds of value a
//! definition holds, whose output is read back with the YAML parser of Shoal's loader
//! before it is returned.
//!
//! Text is written plain where that is unambiguous (`name: extract`), as a literal block
//! where it spans lines (scripts and SQL stay readable), and double-quoted otherwise,
//! with JSON's escapes, which YAML's double-quoted style shares. Anything a YAML reader
//! could take for another type (`NO`, `0`, `null`, `2024-01-01`) is quoted. The check
//! after writing compares every value as the loader will read it (a plain scalar such
//! as `3` is a number in a task's own fields, a quoted one text); should any differ, the
//! document is written again with every text quoted, and that is checked too.

use marked_yaml::{LoaderOptions, Node};

/// A value in a generated definition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Y {
    Str(String),
    Int(i64),
    Bool(bool),
    Seq(Vec<Y>),
    /// Keys in the order they are written.
    Map(Vec<(String, Y)>),
}

impl Y {
    pub fn str(s: impl Into<String>) -> Y {
        Y::Str(s.into())
    }

    pub fn strs<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Y {
        Y::Seq(items.into_iter().map(|s| Y::Str(s.into())).collect())
    }
}

/// A mapping being built in order.
#[derive(Debug, Default)]
pub(crate) struct MapBuilder(pub Vec<(String, Y)>);

impl MapBuilder {
    pub fn put(&mut self, key: &str, value: Y) {
        self.0.push((key.to_owned(), value));
    }

    pub fn build(self) -> Y {
        Y::Map(self.0)
    }
}

/// The document as YAML that Shoal's YAML parser reads back as `doc`.
pub(crate) fn to_yaml(doc: &Y) -> Result<String, String> {
    let readable = render(doc, false);
    let first = match verify(&readable, doc) {
        Ok(()) => return Ok(readable),
        Err(e) => e,
    };
    let quoted = render(doc, true);
    verify(&quoted, doc).map(|()| quoted).map_err(|second| {
        format!("the generated YAML does not read back as written: {first}; quoted: {second}")
    })
}

fn render(doc: &Y, quote_all: bool) -> String {
    let mut out = String::new();
    let w = Writer { quote_all };
    match doc {
        Y::Map(entries) if !entries.is_empty() => w.map(&mut out, entries, 0, false),
        other => {
            // Definitions are mappings; anything else is written as a one-line document.
            w.inline_or_block(&mut out, other, 0);
        }
    }
    out
}

struct Writer {
    quote_all: bool,
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

impl Writer {
    /// Entries of a mapping at `indent`; the first one continues the current line when
    /// `inline_first` (a mapping that is a list item: `- name: x`).
    fn map(&self, out: &mut String, entries: &[(String, Y)], indent: usize, inline_first: bool) {
        for (i, (key, value)) in entries.iter().enumerate() {
            if i > 0 || !inline_first {
                pad(out, indent);
            }
            out.push_str(&self.key(key));
            out.push(':');
            match value {
                Y::Map(inner) if !inner.is_empty() => {
                    out.push('\n');
                    self.map(out, inner, indent + 2, false);
                }
                Y::Seq(items) if !items.is_empty() => {
                    out.push('\n');
                    self.seq(out, items, indent + 2);
                }
                scalar => {
                    out.push(' ');
                    self.inline_or_block(out, scalar, indent + 2);
                }
            }
        }
    }

    fn seq(&self, out: &mut String, items: &[Y], indent: usize) {
        for item in items {
            pad(out, indent);
            out.push('-');
            match item {
                Y::Map(inner) if !inner.is_empty() => {
                    out.push(' ');
                    self.map(out, inner, indent + 2, true);
                }
                Y::Seq(inner) if !inner.is_empty() => {
                    out.push('\n');
                    self.seq(out, inner, indent + 2);
                }
                scalar => {
                    out.push(' ');
                    self.inline_or_block(out, scalar, indent + 2);
                }
            }
        }
    }

    /// A scalar or an empty collection, then the line's end; a literal block's lines
    /// are indented by `content_indent`.
    fn inline_or_block(&self, out: &mut String, value: &Y, content_indent: usize) {
        match value {
            Y::Str(s) => match (!self.quote_all).then(|| block(s)).flatten() {
                Some(Block {
                    header,
                    lines,
                    extra_newlines,
                }) => {
                    out.push_str(&header);
                    out.push('\n');
                    for line in lines {
                        if !line.is_empty() {
                            pad(out, content_indent);
                            out.push_str(line);
                        }
                        out.push('\n');
                    }
                    for _ in 0..extra_newlines {
                        out.push('\n');
                    }
                }
                None => {
                    out.push_str(&self.scalar(s));
                    out.push('\n');
                }
            },
            Y::Int(n) => {
                out.push_str(&n.to_string());
                out.push('\n');
            }
            Y::Bool(b) => {
                out.push_str(if *b { "true" } else { "false" });
                out.push('\n');
            }
            Y::Seq(_) => out.push_str("[]\n"),
            Y::Map(_) => out.push_str("{}\n"),
        }
    }

    fn key(&self, key: &str) -> String {
        self.scalar(key)
    }

    fn scalar(&self, s: &str) -> String {
        if !self.quote_all && plain_ok(s) {
            s.to_owned()
        } else {
            quoted(s)
        }
    }
}

/// A literal block: `|`, `|-` or `|+` (with an indentation indicator where the text
/// starts with blanks), its lines, and the empty lines `|+` keeps after the last one.
struct Block<'s> {
    header: String,
    lines: Vec<&'s str>,
    extra_newlines: usize,
}

/// How `s` is written as a literal block, or `None` when it should be quoted: it is one
/// line, or holds characters a block cannot carry (carriage returns, other control
/// characters, Unicode line separators, a byte-order mark).
fn block(s: &str) -> Option<Block<'_>> {
    if !s.contains('\n') {
        return None;
    }
    let printable = s
        .chars()
        .all(|c| c == '\n' || c == '\t' || !needs_escape(c));
    if !printable {
        return None;
    }
    let body = s.trim_end_matches('\n');
    if body.is_empty() {
        return None;
    }
    let trailing = s.len() - body.len();
    let lines: Vec<&str> = body.split('\n').collect();
    // Blank lines before the first text, or a first text line starting with a blank,
    // would make the reader guess the indentation wrongly: state it (2, this emitter's
    // step).
    let first_text = lines.iter().find(|l| !l.trim().is_empty())?;
    let leading_blank_lines = lines.first().is_some_and(|l| l.trim().is_empty());
    let indicator = if first_text.starts_with([' ', '\t']) || leading_blank_lines {
        "2"
    } else {
        ""
    };
    let chomp = match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    };
    // Blanks on the lines before the first text line are where a reader looks for the
    // indentation: quote such text instead.
    if lines
        .iter()
        .take_while(|l| l.trim().is_empty())
        .any(|l| !l.is_empty())
    {
        return None;
    }
    Some(Block {
        header: format!("|{indicator}{chomp}"),
        lines,
        extra_newlines: trailing.saturating_sub(1),
    })
}

/// Text that YAML reads back as this same text when written plain, in a block mapping
/// and in a list. Deliberately narrow: letters, digits and a few punctuation marks,
/// nothing that starts like a number, a date or another YAML type, and nothing a YAML
/// 1.1 reader takes for a boolean (`NO`, `on`).
fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if !(first.is_alphabetic() || first == '_' || first == '$') {
        return false;
    }
    if s.ends_with(' ') || s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return false;
    }
    let allowed = |c: char| c.is_alphanumeric() || " _-./$()+=^@%:,".contains(c);
    if !s.chars().all(allowed) {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    const WORDS: &[&str] = &[
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan", "inf",
    ];
    !WORDS.contains(&lower.as_str())
}

/// Characters YAML does not allow raw in a document (control characters, the Unicode
/// line separators a reader would fold, a byte-order mark, non-characters).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
        )
}

/// Double-quoted text. JSON's escapes are YAML's too; what JSON leaves raw and YAML
/// does not allow raw is escaped as well.
fn quoted(s: &str) -> String {
    let json = serde_json::Value::String(s.to_owned()).to_string();
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if needs_escape(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Read `text` as the loader does and compare it with `doc`.
fn verify(text: &str, doc: &Y) -> Result<(), String> {
    let options = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    let node = marked_yaml::parse_yaml_with_options(0, text, options).map_err(|e| e.to_string())?;
    same(&node, doc, "")
}

/// How the loader reads a plain scalar among a task's own fields (`Walk::json`).
fn plain_reads_as_text(s: &str) -> bool {
    !matches!(
        s,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" | "~" | "null" | "Null" | "NULL"
    ) && s.parse::<i64>().is_err()
        && s.parse::<f64>().is_err()
}

fn same(node: &Node, want: &Y, path: &str) -> Result<(), String> {
    let differs = |got: String| Err(format!("at `{path}`: wrote {want:?}, reads back {got}"));
    match (node, want) {
        (Node::Scalar(s), Y::Str(text)) => {
            if s.as_str() == text && (!s.may_coerce() || plain_reads_as_text(text)) {
                Ok(())
            } else {
                differs(format!("{:?} (plain: {})", s.as_str(), s.may_coerce()))
            }
        }
        (Node::Scalar(s), Y::Int(n)) => {
            if s.may_coerce() && s.as_str().parse::<i64>() == Ok(*n) {
                Ok(())
            } else {
                differs(format!("{:?}", s.as_str()))
            }
        }
        (Node::Scalar(s), Y::Bool(b)) => {
            if s.may_coerce() && s.as_str() == if *b { "true" } else { "false" } {
                Ok(())
            } else {
                differs(format!("{:?}", s.as_str()))
            }
        }
        (Node::Sequence(seq), Y::Seq(items)) => {
            if seq.len() != items.len() {
                return differs(format!("a list of {}", seq.len()));
            }
            for (i, (n, y)) in seq.iter().zip(items).enumerate() {
                same(n, y, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (Node::Mapping(map), Y::Map(entries)) => {
            if map.len() != entries.len() {
                return differs(format!("a mapping of {}", map.len()));
            }
            for ((k, n), (key, y)) in map.iter().zip(entries) {
                if k.as_str() != key {
                    return differs(format!("key {:?}", k.as_str()));
                }
                same(n, y, &format!("{path}.{key}"))?;
            }
            Ok(())
        }
        (other, _) => differs(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(entries: Vec<(&str, Y)>) -> Y {
        Y::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        )
    }

    #[test]
    fn readable_output_for_ordinary_definitions() {
        let d = doc(vec![
            (
                "workflow",
                doc(vec![
                    ("name", Y::str("daily report")),
                    ("param", doc(vec![("dt", Y::str("$[yyyyMMdd-1]"))])),
                ]),
            ),
            (
                "tasks",
                Y::Seq(vec![doc(vec![
                    ("name", Y::str("extract")),
                    ("flag", Y::str("NO")),
                    ("delay_time", Y::Int(5)),
                    ("command", Y::str("echo 1\necho \"${dt}\"\n")),
                    ("deps", Y::strs(["a", "b"])),
                    ("empty", Y::Seq(vec![])),
                ])]),
            ),
        ]);
        let yaml = to_yaml(&d).unwrap();
        assert_eq!(
            yaml,
            "workflow:\n  name: daily report\n  param:\n    dt: \"$[yyyyMMdd-1]\"\ntasks:\n  - name: extract\n    flag: \"NO\"\n    delay_time: 5\n    command: |\n      echo 1\n      echo \"${dt}\"\n    deps:\n      - a\n      - b\n    empty: []\n"
        );
    }

    #[test]
    fn awkward_text_reads_back_exactly() {
        let texts = [
            "",
            " ",
            "no",
            "0",
            "1.5",
            "2024-01-01 00:00:00",
            "a: b",
            "x #y",
            "- item",
            "@at",
            "tab\there",
            "  indented\n    more\n",
            "\nleading blank line\n",
            "no trailing newline\nsecond",
            "keep\n\n\n",
            "blank-only line\n   \nafter",
            "cr\r\nlf",
            "nel\u{85}line",
            "中文 任务",
            "ends with colon:",
            "'single' \"double\" \\ back",
            "{json: [1]}",
            "del\u{7f} and bom\u{feff}",
            "line\u{2028}separator",
        ];
        for t in texts {
            let d = doc(vec![
                ("v", Y::str(t)),
                ("list", Y::Seq(vec![Y::str(t), doc(vec![("k", Y::str(t))])])),
                (t, Y::Int(1)),
            ]);
            let yaml = to_yaml(&d).unwrap_or_else(|e| panic!("{t:?}: {e}"));
            // The readable form itself reads back: no text needed the all-quoted form.
            assert_eq!(yaml, render(&d, false), "{t:?}");
            assert!(verify(&yaml, &d).is_ok(), "{t:?}:\n{yaml}");
        }
    }

    #[test]
    fn a_mismatch_is_caught() {
        let d = doc(vec![("v", Y::str("3"))]);
        assert!(verify("v: 3\n", &d).is_err());
        assert!(verify("v: \"3\"\n", &d).is_ok());
        assert!(verify("v: 3\n", &doc(vec![("v", Y::Int(3))])).is_ok());
    }
}
