//! Splitting a SQL text into statements, as DolphinScheduler's `splitAndRemoveComment`
//! does: at `;` outside quotes, comments removed; or, when the task gives a
//! `segment_separator`, at that text (DolphinScheduler's older behaviour).

/// The statements of `sql`, trimmed, empty ones dropped.
pub fn statements(sql: &str, separator: &str) -> Vec<String> {
    let parts: Vec<String> = if separator.is_empty() {
        split_at_semicolons(sql)
    } else {
        sql.split(separator).map(str::to_owned).collect()
    };
    parts
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Split at `;` that are not inside '...', "...", `...`, $tag$...$tag$ (PostgreSQL) or a
/// comment; `--` and `/* */` comments are dropped.
fn split_at_semicolons(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut current = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\'' | '"' | '`' => {
                let end = quoted_end(&chars, i, c);
                current.extend(&chars[i..end]);
                i = end;
            }
            '-' if next == Some('-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i = (i + 2).min(chars.len());
                current.push(' ');
            }
            '$' => match dollar_tag(&chars, i) {
                Some(tag) => {
                    let body_start = i + tag.len();
                    let end = find(&chars, body_start, &tag)
                        .map(|at| at + tag.len())
                        .unwrap_or(chars.len());
                    current.extend(&chars[i..end]);
                    i = end;
                }
                None => {
                    current.push(c);
                    i += 1;
                }
            },
            ';' => {
                out.push(std::mem::take(&mut current));
                i += 1;
            }
            _ => {
                current.push(c);
                i += 1;
            }
        }
    }
    out.push(current);
    out
}

/// Index just past the quote that closes the one at `start` (a doubled quote is an
/// escaped one; a backslash escapes in MySQL-style strings).
fn quoted_end(chars: &[char], start: usize, quote: char) -> usize {
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == '\\' && quote != '`' {
            i += 2;
            continue;
        }
        if chars[i] == quote {
            if chars.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    chars.len()
}

/// `$tag$` (or `$$`) starting at `start`, as PostgreSQL's dollar quoting.
fn dollar_tag(chars: &[char], start: usize) -> Option<Vec<char>> {
    let mut i = start + 1;
    while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
        i += 1;
    }
    // `$1` is a parameter, not a tag.
    if i > start + 1 && chars[start + 1].is_ascii_digit() {
        return None;
    }
    (chars.get(i) == Some(&'$')).then(|| chars[start..=i].to_vec())
}

fn find(chars: &[char], from: usize, needle: &[char]) -> Option<usize> {
    (from..=chars.len().saturating_sub(needle.len())).find(|&i| chars[i..].starts_with(needle))
}

#[cfg(test)]
mod tests {
    use super::statements;

    #[test]
    fn splits_at_semicolons_outside_quotes_and_comments() {
        assert_eq!(
            statements(
                "insert into t values ('a;b'); -- a comment; still\nselect \"x;y\" from t /* ; */;",
                ""
            ),
            vec!["insert into t values ('a;b')", "select \"x;y\" from t"]
        );
        assert_eq!(
            statements("select 'it''s; fine'", ""),
            vec!["select 'it''s; fine'"]
        );
    }

    #[test]
    fn dollar_quoted_bodies_stay_whole() {
        let f = "create function f() returns int as $body$ begin return 1; end; $body$ language plpgsql; select f()";
        assert_eq!(
            statements(f, ""),
            vec![
                "create function f() returns int as $body$ begin return 1; end; $body$ language plpgsql",
                "select f()"
            ]
        );
        assert_eq!(
            statements("select $1; select 2", ""),
            vec!["select $1", "select 2"]
        );
    }

    #[test]
    fn a_separator_splits_plainly() {
        assert_eq!(
            statements("a ## b ##  ", "##"),
            vec!["a".to_owned(), "b".to_owned()]
        );
    }
}
