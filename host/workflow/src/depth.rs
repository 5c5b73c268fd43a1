//! A fast scan of a definition's text that refuses nesting deeper than [`MAX_DEPTH`] before
//! the YAML parser sees it.
//!
//! The parser (yaml-rust2 under marked_yaml) recurses once per level of block nesting: on a
//! 2 MiB thread stack, 10000 levels of `- - - ...` (20 KB of text) abort the process with a
//! stack overflow, and dropping or walking the tree recurses as well. Flow collections
//! (`[`, `{`) have a limit of their own in the parser, but a far higher one than any
//! definition needs. Real definitions nest a handful of levels.
//!
//! The scan follows enough of YAML to find where collections start: indentation, `- `,
//! `? ` and `key: ` indicators, flow brackets, and the text that cannot hold structure
//! (quoted, block and multi-line plain scalars, comments). Where it is unsure it counts a
//! level rather than skip one, so it may overestimate a depth by a level but does not miss
//! nesting that the parser would build.

use std::path::Path;

use crate::{Diagnostic, Diagnostics};

/// The deepest nesting of lists and mappings, block and flow together, that a definition
/// may have.
pub const MAX_DEPTH: usize = 64;

/// Refuses `text` if its lists and mappings nest deeper than [`MAX_DEPTH`], naming the line
/// where the limit is passed.
pub fn check(text: &str, origin: &Path) -> Result<(), Diagnostics> {
    match deepest(text, MAX_DEPTH) {
        None => Ok(()),
        Some(line) => Err(Diagnostics(vec![Diagnostic {
            file: origin.to_path_buf(),
            line,
            field: None,
            message: format!(
                "lists and mappings nest deeper than {MAX_DEPTH} levels; a definition may \
                 nest at most {MAX_DEPTH}"
            ),
        }])),
    }
}

/// The 1-based line on which nesting first exceeds `limit`, if it does.
fn deepest(text: &str, limit: usize) -> Option<usize> {
    let mut scan = Scan {
        limit,
        blocks: Vec::new(),
        carry: Carry::None,
    };
    for (i, line) in lines(text).enumerate() {
        if scan.line(line).is_err() {
            return Some(i + 1);
        }
    }
    None
}

/// The lines of `text` as the YAML parser sees them: broken at `\n`, `\r\n` and a lone
/// `\r` alike (`str::lines` would leave a lone `\r` inside a line, and with it whatever
/// nesting follows).
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n')
        .flat_map(|l| l.strip_suffix('\r').unwrap_or(l).split('\r'))
}

/// A block collection open at a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Map,
    Seq,
}

/// What a line continues from the lines before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carry {
    None,
    /// Inside flow collections `depth` deep.
    Flow(Flow),
    /// Inside a quoted scalar; `flow` is the flow state to return to (depth 0: block).
    Quote {
        double: bool,
        flow: Flow,
    },
    /// A block scalar (`|`, `>`): lines indented at least `content` (or, until the first
    /// content line sets it, more than `parent`) belong to it.
    BlockScalar {
        parent: isize,
        content: Option<usize>,
    },
    /// A plain scalar that lines indented more than `parent` continue.
    Plain {
        parent: isize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flow {
    depth: usize,
    /// A node may start here, so a quote opens a quoted scalar (elsewhere it is text).
    node_start: bool,
    /// The last node was quoted or a collection, so a `:` right after it is a separator.
    json_like: bool,
}

const BLOCK: Flow = Flow {
    depth: 0,
    node_start: true,
    json_like: false,
};

struct TooDeep;

/// Where the scan of a line is.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// A block node may start here.
    Node,
    /// In a plain scalar that began at `start`.
    Plain { start: usize },
    /// Just after a quoted scalar or flow collection that began at `key_col`.
    After { key_col: usize },
    /// In a quoted scalar.
    Quote {
        double: bool,
        flow: Flow,
        key_col: usize,
    },
    /// In flow collections.
    Flow { flow: Flow, key_col: usize },
}

struct Scan {
    limit: usize,
    /// Open block collections, outermost first, with their columns.
    blocks: Vec<(usize, Block)>,
    carry: Carry,
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `-`, `?` or `:` as an indicator: followed by a blank or the end of the line.
fn indicator_at(line: &[u8], pos: usize, c: u8) -> bool {
    line.get(pos) == Some(&c) && line.get(pos + 1).is_none_or(|&b| is_blank(b))
}

fn skip_blanks(line: &[u8], mut pos: usize) -> usize {
    while line.get(pos).is_some_and(|&b| is_blank(b)) {
        pos += 1;
    }
    pos
}

impl Scan {
    fn depth(&self, flow: usize) -> usize {
        self.blocks.len() + flow
    }

    fn check(&self, flow: usize) -> Result<(), TooDeep> {
        if self.depth(flow) > self.limit {
            Err(TooDeep)
        } else {
            Ok(())
        }
    }

    /// The column block content must be indented past to belong to the innermost open
    /// collection (-1 at the top level).
    fn parent(&self) -> isize {
        self.blocks.last().map_or(-1, |&(col, _)| col as isize)
    }

    /// A block collection of `kind` has a node at `col`.
    fn open(&mut self, col: usize, kind: Block) -> Result<(), TooDeep> {
        match self.blocks.last() {
            Some(&(top, top_kind)) if top == col => {
                // A `- ` entry at the column of a mapping's keys is a sequence that is the
                // mapping's value (an "indentless" sequence): one level more.
                if top_kind == Block::Map && kind == Block::Seq {
                    self.blocks.push((col, Block::Seq));
                }
            }
            _ => self.blocks.push((col, kind)),
        }
        self.check(0)
    }

    fn line(&mut self, text: &str) -> Result<(), TooDeep> {
        let line = text.as_bytes();
        let indent = line.iter().take_while(|&&b| b == b' ').count();
        let blank = skip_blanks(line, 0) == line.len();
        if (line.starts_with(b"---") || line.starts_with(b"..."))
            && line.get(3).is_none_or(|&b| is_blank(b))
        {
            // A new document (or the end of one) starts from the top, whatever was open.
            self.carry = Carry::None;
            self.blocks.clear();
            return self.rest(line, 3, Mode::Node);
        }
        match self.carry {
            Carry::Flow(flow) => return self.rest(line, 0, Mode::Flow { flow, key_col: 0 }),
            Carry::Quote { double, flow } => {
                let key_col = 0;
                return self.rest(
                    line,
                    0,
                    Mode::Quote {
                        double,
                        flow,
                        key_col,
                    },
                );
            }
            Carry::BlockScalar { parent, content } => {
                if blank {
                    return Ok(());
                }
                match content {
                    None if indent as isize > parent => {
                        self.carry = Carry::BlockScalar {
                            parent,
                            content: Some(indent),
                        };
                        return Ok(());
                    }
                    Some(m) if indent >= m => return Ok(()),
                    _ => self.carry = Carry::None,
                }
            }
            Carry::Plain { parent } => {
                if blank {
                    return Ok(());
                }
                if indent as isize > parent && line[indent] != b'#' {
                    return Ok(());
                }
                self.carry = Carry::None;
            }
            Carry::None => {}
        }
        if blank || line[indent] == b'#' {
            return Ok(());
        }
        if indent == 0 && line.starts_with(b"%") {
            // A directive (`%YAML 1.2`).
            return Ok(());
        }
        while self.blocks.last().is_some_and(|&(col, _)| col > indent) {
            self.blocks.pop();
        }
        // Leaving an indentless sequence: back at its mapping's column without a `- `.
        if let [.., (a, Block::Map), (b, Block::Seq)] = self.blocks[..]
            && a == b
            && b == indent
            && !indicator_at(line, indent, b'-')
        {
            self.blocks.pop();
        }
        self.rest(line, indent, Mode::Node)
    }

    /// Scans the rest of a line from `pos` in `mode`. One loop rather than mutual recursion,
    /// so that a line of a hundred thousand quoted items costs no stack.
    fn rest(&mut self, line: &[u8], mut pos: usize, mut mode: Mode) -> Result<(), TooDeep> {
        loop {
            mode = match mode {
                Mode::Node => {
                    pos = skip_blanks(line, pos);
                    let Some(&c) = line.get(pos) else {
                        return Ok(());
                    };
                    match c {
                        b'#' => return Ok(()),
                        b'-' if indicator_at(line, pos, b'-') => {
                            self.open(pos, Block::Seq)?;
                            pos += 1;
                            Mode::Node
                        }
                        b'?' if indicator_at(line, pos, b'?') => {
                            self.open(pos, Block::Map)?;
                            pos += 1;
                            Mode::Node
                        }
                        b':' if indicator_at(line, pos, b':') => {
                            pos += 1;
                            Mode::Node
                        }
                        b'&' | b'!' => {
                            // An anchor or tag before the node: the node starts after it.
                            while line.get(pos).is_some_and(|&b| !is_blank(b)) {
                                pos += 1;
                            }
                            Mode::Node
                        }
                        b'|' | b'>' => {
                            let explicit = line[pos + 1..]
                                .iter()
                                .take_while(|&&b| !is_blank(b))
                                .find(|b| b.is_ascii_digit())
                                .map(|d| usize::from(d - b'0'));
                            let parent = self.parent();
                            self.carry = Carry::BlockScalar {
                                parent,
                                content: explicit.map(|n| parent.max(0) as usize + n),
                            };
                            return Ok(());
                        }
                        b'[' | b'{' => Mode::Flow {
                            flow: BLOCK,
                            key_col: pos,
                        },
                        b'"' | b'\'' => {
                            pos += 1;
                            Mode::Quote {
                                double: c == b'"',
                                flow: BLOCK,
                                key_col: pos - 1,
                            }
                        }
                        _ => Mode::Plain { start: pos },
                    }
                }
                Mode::Plain { start } => {
                    // A key if `: ` follows on the line, else a value later lines may
                    // continue.
                    let mut key_end = None;
                    while pos < line.len() {
                        let b = line[pos];
                        if b == b'#' && pos > start && is_blank(line[pos - 1]) {
                            break;
                        }
                        if b == b':' && line.get(pos + 1).is_none_or(|&n| is_blank(n)) {
                            key_end = Some(pos);
                            break;
                        }
                        pos += 1;
                    }
                    let Some(colon) = key_end else {
                        self.carry = Carry::Plain {
                            parent: self.parent(),
                        };
                        return Ok(());
                    };
                    self.open(start, Block::Map)?;
                    pos = colon + 1;
                    Mode::Node
                }
                Mode::After { key_col } => {
                    // A quoted scalar or flow collection closed in block context: a `:`
                    // makes it a key whose value follows.
                    pos = skip_blanks(line, pos);
                    if line.get(pos) != Some(&b':') {
                        return Ok(());
                    }
                    self.open(key_col, Block::Map)?;
                    pos += 1;
                    Mode::Node
                }
                Mode::Quote {
                    double,
                    flow,
                    key_col,
                } => {
                    let mut closed = false;
                    while pos < line.len() {
                        let b = line[pos];
                        pos += 1;
                        if double && b == b'\\' {
                            pos += 1;
                        } else if b == if double { b'"' } else { b'\'' } {
                            if !double && line.get(pos) == Some(&b'\'') {
                                pos += 1;
                            } else {
                                closed = true;
                                break;
                            }
                        }
                    }
                    if !closed {
                        self.carry = Carry::Quote { double, flow };
                        return Ok(());
                    }
                    self.carry = Carry::None;
                    if flow.depth == 0 {
                        Mode::After { key_col }
                    } else {
                        Mode::Flow {
                            flow: Flow {
                                node_start: false,
                                json_like: true,
                                ..flow
                            },
                            key_col,
                        }
                    }
                }
                Mode::Flow { mut flow, key_col } => {
                    let mut next = None;
                    while pos < line.len() {
                        let b = line[pos];
                        pos += 1;
                        match b {
                            b'#' if pos == 1 || is_blank(line[pos - 2]) => {
                                pos = line.len();
                                break;
                            }
                            b'[' | b'{' => {
                                flow.depth += 1;
                                self.check(flow.depth)?;
                                flow.node_start = true;
                                flow.json_like = false;
                            }
                            b']' | b'}' => {
                                flow.depth = flow.depth.saturating_sub(1);
                                flow.node_start = false;
                                flow.json_like = true;
                                if flow.depth == 0 {
                                    next = Some(Mode::After { key_col });
                                    break;
                                }
                            }
                            b',' => {
                                flow.node_start = true;
                                flow.json_like = false;
                            }
                            b':' if flow.json_like
                                || line.get(pos).is_none_or(|&n| {
                                    is_blank(n) || matches!(n, b',' | b'[' | b']' | b'{' | b'}')
                                }) =>
                            {
                                flow.node_start = true;
                                flow.json_like = false;
                            }
                            b'?' if line.get(pos).is_none_or(|&n| is_blank(n)) => {
                                flow.node_start = true;
                            }
                            b'&' | b'!' if flow.node_start => {
                                // An anchor or tag: the node still starts after it.
                                while line.get(pos).is_some_and(|&n| {
                                    !is_blank(n) && !matches!(n, b',' | b'[' | b']' | b'{' | b'}')
                                }) {
                                    pos += 1;
                                }
                            }
                            b'"' | b'\'' if flow.node_start => {
                                next = Some(Mode::Quote {
                                    double: b == b'"',
                                    flow,
                                    key_col,
                                });
                                break;
                            }
                            _ if is_blank(b) => {}
                            _ => {
                                flow.node_start = false;
                                flow.json_like = false;
                            }
                        }
                    }
                    match next {
                        Some(mode) => {
                            self.carry = Carry::None;
                            mode
                        }
                        None => {
                            self.carry = if flow.depth == 0 {
                                Carry::None
                            } else {
                                Carry::Flow(flow)
                            };
                            return Ok(());
                        }
                    }
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(text: &str, limit: usize) -> bool {
        deepest(text, limit).is_none()
    }

    /// The smallest limit the text passes: its depth as the scan counts it.
    fn depth(text: &str) -> usize {
        (0..200).find(|&l| depth_ok(text, l)).expect("under 200")
    }

    #[test]
    fn counts_block_and_flow_nesting() {
        let cases = [
            ("a: 1\n", 1),
            ("a:\n  b: 1\n", 2),
            ("a:\n  b:\n    c: [1, [2, {d: 3}]]\n", 6),
            ("- - - 1\n", 3),
            ("a:\n- 1\n- 2\nb: 3\n", 2),
            ("a:\n- b:\n  - c: 1\n", 5),
            ("- a: 1\n  b: 2\n- c\n", 2),
            ("[1, [2, [3]]]\n", 3),
            ("{\"a\": {\"b\": [1]}}\n", 3),
            ("a: {b: [1,\n  [2,\n   [3]]]}\n", 5),
            ("? a\n: b\n", 1),
            ("a: &x\n  b: 1\n", 2),
            ("--- \na:\n  b: 1\n--- \nc: 1\n", 2),
        ];
        for (text, want) in cases {
            assert_eq!(depth(text), want, "{text:?}");
        }
    }

    #[test]
    fn text_that_cannot_hold_structure_is_not_counted() {
        let cases = [
            // Brackets in plain, quoted, block and multi-line scalars, and in comments.
            ("command: awk '{print $1}' [x] {y}\n", 1),
            ("command: \"[[[[[[\"\n", 1),
            ("command: '[[[ it''s ]]]'\n", 1),
            ("a: [\"]]]\", '[[[']\n", 2),
            ("command: |\n  - - - - [[[[\n  {{{{\nb: 1\n", 1),
            ("- >2\n    - - - -\n- c\n", 1),
            ("command: echo\n  - - - - [[[\n  more\nb: 1\n", 1),
            ("a: 1 # - - - [[[[\n# - - - -\n", 1),
            ("a: \"multi\n  - - - [[[\n  line\"\nb: 1\n", 1),
            ("a: {b: it's, c: [x]}\n", 3),
            ("a: {\"k\":'v', c: [x]}\n", 3),
        ];
        for (text, want) in cases {
            assert_eq!(depth(text), want, "{text:?}");
        }
    }

    #[test]
    fn structure_after_scalars_is_still_counted() {
        // Each scalar form ends, and what follows it is nesting again.
        let deep = "x:\n  y:\n    z: [[1]]\n";
        for prefix in [
            "a: 'quoted'\n",
            "a: \"q\\\"uoted\"\n",
            "a: |\n  block\n",
            "a: plain\n  continued\n",
            "a: [flow]\n",
            "a: \"multi\n  line\"\n",
            "'key': v\n",
            "[k]: v\n",
        ] {
            let text = format!("{prefix}{deep}");
            assert_eq!(depth(&text), 5, "{text:?}");
        }
    }

    #[test]
    fn every_line_break_and_document_counts() {
        // A lone carriage return breaks lines for the parser, so it must here too.
        let cr = format!("x:\r  {}1\r", "- ".repeat(100));
        assert_eq!(deepest(&cr, MAX_DEPTH), Some(2));
        let crlf = "a:\r\n  b:\r\n    c: 1\r\n";
        assert_eq!(depth(crlf), 3);
        // A document marker ends whatever scalar was open.
        let after_block = format!("a: |\n  text\n---\n{}1\n", "- ".repeat(100));
        assert_eq!(deepest(&after_block, MAX_DEPTH), Some(4));
        let after_quote = format!("a: 'open\n---\n{}1\n", "- ".repeat(100));
        assert_eq!(deepest(&after_quote, MAX_DEPTH), Some(3));
        // Anchors and tags in flow keep the quoted scalar after them a quoted scalar.
        let anchored = format!("a: [&x ']', {}{}]\n", "[".repeat(100), "]".repeat(100));
        assert_eq!(deepest(&anchored, MAX_DEPTH), Some(1));
        assert_eq!(depth("a: [!t '[[[', &x \"{{{\"]\n"), 2);
    }

    #[test]
    fn long_lines_cost_no_stack() {
        let items = format!("a: [{}]\n", "'x', ".repeat(200_000));
        assert_eq!(depth(&items), 2);
        let keys = format!("{}1\n", "'k': ".repeat(100_000));
        assert!(deepest(&keys, MAX_DEPTH).is_some());
    }

    #[test]
    fn hostile_nesting_is_refused_at_its_line() {
        let dashes = format!("workflow:\n  name: x\ntasks:\n{}1\n", "- ".repeat(100_000));
        assert_eq!(deepest(&dashes, MAX_DEPTH), Some(4));
        let flow = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(deepest(&flow, MAX_DEPTH), Some(1));
        let mut block = String::new();
        for i in 0..200 {
            block.push_str(&" ".repeat(i));
            block.push_str("k:\n");
        }
        assert_eq!(deepest(&block, MAX_DEPTH), Some(MAX_DEPTH + 1));
        let json = format!("{}1{}", "{\"a\":".repeat(65), "}".repeat(65));
        assert_eq!(deepest(&json, MAX_DEPTH), Some(1));
        let err = check(&dashes, Path::new("wf.yaml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "wf.yaml:4: lists and mappings nest deeper than 64 levels; a definition may nest \
             at most 64"
        );
        // Exactly at the limit passes.
        let at_limit = format!("a: {}{}\n", "[".repeat(63), "]".repeat(63));
        assert_eq!(deepest(&at_limit, MAX_DEPTH), None);
        assert!(check("workflow: {name: x}\ntasks: []\n", Path::new("x")).is_ok());
    }

    #[test]
    fn the_loader_refuses_before_the_parser_recurses() {
        // Unchecked, this overflows the stack of the thread that parses it.
        let text = format!(
            "workflow:\n  name: w\ntasks:\n  - name: t\n    task_type: noop\n    set:\n      \
             x:\n        {}1\n",
            "- ".repeat(100_000)
        );
        let err = crate::load::load_str(&text, Path::new("deep.yaml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "deep.yaml:8: lists and mappings nest deeper than 64 levels; a definition may nest \
             at most 64"
        );
        let json = format!(
            "{{\"workflow\": {}1{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let err = crate::load::load_str(&json, Path::new("deep.json")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("deep.json:1: lists and mappings nest")
        );
    }

    #[test]
    fn the_examples_pass() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("examples dir") {
            let path = entry.expect("entry").path();
            if path
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
            {
                let text = std::fs::read_to_string(&path).expect("readable");
                assert!(depth(&text) <= 8, "{}", path.display());
                seen += 1;
            }
        }
        assert!(seen > 0, "no examples in {}", dir.display());
    }
}
