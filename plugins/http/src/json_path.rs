//! The part of JSONPath an OUT parameter needs: one value, reached by names and
//! indexes (`$.a.b`, `$.items[0]`, `$['a key']`, `$["a"][2]`). No wildcards or filters:
//! a parameter holds one value, so a path that could match several is refused rather
//! than guessed at. Written here rather than taken from a crate: the full RFC 9535
//! crates would more than double this component for syntax it must refuse anyway.

use shoal_sdk::serde_json::Value;

/// The value `path` names in `doc`; `Ok(None)` when it names nothing there.
pub fn find<'a>(doc: &'a Value, path: &str) -> Result<Option<&'a Value>, String> {
    let mut rest = path
        .strip_prefix('$')
        .ok_or_else(|| format!("`{path}`: a JSON path starts with `$`"))?;
    let mut at = doc;
    while !rest.is_empty() {
        let (step, after) = next_step(rest).map_err(|e| format!("`{path}`: {e}"))?;
        rest = after;
        let next = match step {
            Step::Name(name) => at.get(name.as_str()),
            Step::Index(i) => at.get(i),
        };
        match next {
            Some(v) => at = v,
            None => return Ok(None),
        }
    }
    Ok(Some(at))
}

enum Step {
    Name(String),
    Index(usize),
}

fn next_step(rest: &str) -> Result<(Step, &str), String> {
    if let Some(after) = rest.strip_prefix('.') {
        let end = after.find(['.', '[']).unwrap_or(after.len());
        let name = &after[..end];
        if name.is_empty() || name == "*" || name.contains(']') {
            return Err("expected a name after `.`".into());
        }
        return Ok((Step::Name(name.to_owned()), &after[end..]));
    }
    if let Some(after) = rest.strip_prefix('[') {
        for quote in ['\'', '"'] {
            if let Some(quoted) = after.strip_prefix(quote) {
                let end = quoted.find(quote).ok_or("a quoted name is not closed")?;
                let tail = quoted[end + 1..]
                    .strip_prefix(']')
                    .ok_or("expected `]` after a quoted name")?;
                return Ok((Step::Name(quoted[..end].to_owned()), tail));
            }
        }
        let end = after.find(']').ok_or("`[` is not closed")?;
        let index = after[..end]
            .trim()
            .parse::<usize>()
            .map_err(|_| format!("`[{}]` is not an index or a quoted name", &after[..end]))?;
        return Ok((Step::Index(index), &after[end + 1..]));
    }
    Err(format!("unexpected `{rest}`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_sdk::serde_json::json;

    #[test]
    fn names_indexes_and_quotes() {
        let doc = json!({"a": {"b c": [1, {"d": true}]}});
        assert_eq!(find(&doc, "$").unwrap(), Some(&doc));
        assert_eq!(find(&doc, "$.a['b c'][1].d").unwrap(), Some(&json!(true)));
        assert_eq!(find(&doc, "$[\"a\"]").unwrap(), Some(&doc["a"]));
        assert_eq!(find(&doc, "$.a.x").unwrap(), None);
        assert_eq!(find(&doc, "$.a['b c'][5]").unwrap(), None);
        for bad in ["a.b", "$.", "$.*", "$[x]", "$['a", "$.a]"] {
            assert!(find(&doc, bad).is_err(), "{bad}");
        }
    }
}
