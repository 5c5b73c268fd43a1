//! The workflow loader on arbitrary text, read as YAML and as JSON: it must answer with a
//! definition or diagnostics, never panic or overflow the stack. Where the nesting scan
//! lets a text through, the parsed tree must indeed be within the limit (the scan is what
//! keeps the recursive YAML parser from overflowing).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use marked_yaml::Node;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = shoal_workflow::load_str(text, Path::new("fuzz.yaml"));
    let _ = shoal_workflow::load_str(text, Path::new("fuzz.json"));
    if shoal_workflow::depth::check(text, Path::new("fuzz.yaml")).is_ok()
        && let Ok(root) = marked_yaml::parse_yaml(0, text)
    {
        let depth = tree_depth(&root);
        assert!(
            depth <= shoal_workflow::depth::MAX_DEPTH + 1,
            "the nesting scan passed a tree {depth} levels deep"
        );
    }
});

/// Collections nested in `root`, counted without recursion.
fn tree_depth(root: &Node) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(root, 0usize)];
    while let Some((node, depth)) = stack.pop() {
        match node {
            Node::Scalar(_) => deepest = deepest.max(depth),
            Node::Sequence(seq) => {
                deepest = deepest.max(depth + 1);
                stack.extend(seq.iter().map(|n| (n, depth + 1)));
            }
            Node::Mapping(map) => {
                deepest = deepest.max(depth + 1);
                stack.extend(map.iter().map(|(_, n)| (n, depth + 1)));
            }
        }
    }
    deepest
}
