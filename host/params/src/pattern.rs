//! Date patterns in the Java `SimpleDateFormat` subset DolphinScheduler users write:
//! `yyyy`, `yy`, `MM`, `dd`, `HH`, `mm`, `ss`, with everything that is not a letter copied
//! literally and `'quoted text'` for literal letters.
//!
//! We render patterns ourselves rather than translating them to chrono's `%` syntax so that
//! a `%` in a pattern stays a literal and every rule here is ours to document. Unsupported
//! letters are errors rather than literals because the common mistakes (`YYYY` week-year,
//! `DD` day-of-year, `hh` 12-hour clock) mean something else in Java and would otherwise
//! produce plausible-looking wrong dates.

use chrono::{Datelike, NaiveDateTime, Timelike};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Literal(String),
    /// A field and how many pattern letters spelled it (its minimum width).
    Field(Field, usize),
}

/// A parsed, non-empty pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    pub(crate) fn parse(src: &str) -> Result<Pattern, String> {
        if src.trim().is_empty() {
            return Err("empty format".to_string());
        }
        let mut tokens = Vec::new();
        let mut literal = String::new();
        let mut chars = src.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                // Java: `''` is one quote, `'text'` is literal text (where `''` is also a quote).
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    literal.push('\'');
                    continue;
                }
                loop {
                    match chars.next() {
                        None => return Err(format!("unterminated quote in format `{src}`")),
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            literal.push('\'');
                        }
                        Some('\'') => break,
                        Some(q) => literal.push(q),
                    }
                }
            } else if c.is_ascii_alphabetic() {
                let mut count = 1;
                while chars.peek() == Some(&c) {
                    chars.next();
                    count += 1;
                }
                let field = field_for(c, count, src)?;
                if !literal.is_empty() {
                    tokens.push(Token::Literal(std::mem::take(&mut literal)));
                }
                tokens.push(Token::Field(field, count));
            } else {
                literal.push(c);
            }
        }
        if !literal.is_empty() {
            tokens.push(Token::Literal(literal));
        }
        Ok(Pattern { tokens })
    }

    pub(crate) fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    pub(crate) fn render(&self, dt: NaiveDateTime) -> String {
        let mut out = String::new();
        for token in &self.tokens {
            match token {
                Token::Literal(s) => out.push_str(s),
                Token::Field(field, n) => {
                    let n = *n;
                    let text = match field {
                        Field::Year => render_year(dt.year(), n),
                        Field::Month => zero_padded(dt.month().into(), n),
                        Field::Day => zero_padded(dt.day().into(), n),
                        Field::Hour => zero_padded(dt.hour().into(), n),
                        Field::Minute => zero_padded(dt.minute().into(), n),
                        Field::Second => zero_padded(dt.second().into(), n),
                    };
                    out.push_str(&text);
                }
            }
        }
        out
    }
}

/// Years follow Java: exactly two letters print the last two digits, any other count prints
/// the full year zero-padded to that many digits.
pub(crate) fn render_year(year: i32, letters: usize) -> String {
    if letters == 2 {
        format!("{:02}", year.rem_euclid(100))
    } else {
        zero_padded(year.into(), letters)
    }
}

/// `n` padded with zeros to `width` characters, as `format!("{n:0width$}")` would, but for
/// any width: the formatter panics on widths above 65535, and a pattern may repeat a letter
/// that often.
fn zero_padded(n: i64, width: usize) -> String {
    let sign = if n < 0 { "-" } else { "" };
    let digits = n.unsigned_abs().to_string();
    let zeros = width.saturating_sub(sign.len() + digits.len());
    format!("{sign}{}{digits}", "0".repeat(zeros))
}

fn field_for(letter: char, count: usize, src: &str) -> Result<Field, String> {
    let run: String = std::iter::repeat_n(letter, count).collect();
    let field = match letter {
        'y' => Field::Year,
        'M' if count <= 2 => Field::Month,
        'M' => {
            return Err(format!(
                "month names (`{run}`) are not supported in format `{src}`; use `MM`"
            ));
        }
        'd' => Field::Day,
        'H' => Field::Hour,
        'm' => Field::Minute,
        's' => Field::Second,
        _ => {
            let hint = match letter {
                'Y' => " (`Y` is Java's week-year; use `yyyy`)",
                'D' => " (`D` is Java's day-of-year; use `dd`)",
                'h' => " (`h` is Java's 12-hour clock; use `HH`)",
                'S' => " (milliseconds are not available)",
                _ => "",
            };
            return Err(format!(
                "unsupported pattern letter `{letter}` in format `{src}`{hint}; \
                 supported: yyyy yy MM dd HH mm ss, and 'quoted' text for literal letters"
            ));
        }
    };
    Ok(field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|date| date.and_hms_opt(h, mi, s))
            .expect("valid test date")
    }

    fn render(pattern: &str, dt: NaiveDateTime) -> Result<String, String> {
        Pattern::parse(pattern).map(|p| p.render(dt))
    }

    #[test]
    fn renders_fields_and_literals() {
        let dt = at(2024, 3, 5, 7, 8, 9);
        let cases = [
            ("yyyyMMdd", "20240305"),
            ("yyyy-MM-dd HH:mm:ss", "2024-03-05 07:08:09"),
            ("HHmmss", "070809"),
            ("yyMMdd", "240305"),
            ("yyyy/MM/dd", "2024/03/05"),
            ("M/d/yyyy", "3/5/2024"),
            ("yyyyMMddHHmmss", "20240305070809"),
            ("yyyy-MM-dd'T'HH:mm:ss", "2024-03-05T07:08:09"),
            ("'week' ''dd''", "week '05'"),
            ("dd.MM.yyyy 100%", "05.03.2024 100%"),
            ("y", "2024"),
        ];
        for (pattern, want) in cases {
            assert_eq!(render(pattern, dt).as_deref(), Ok(want), "{pattern}");
        }
    }

    #[test]
    fn padding_matches_the_formatter() {
        for (n, width) in [
            (5, 0),
            (5, 1),
            (5, 3),
            (-5, 4),
            (2024, 2),
            (-2024, 6),
            (0, 2),
        ] {
            assert_eq!(zero_padded(n, width), format!("{n:0width$}"), "{n} {width}");
        }
        assert_eq!(zero_padded(7, 70_000).len(), 70_000);
    }

    #[test]
    fn two_letter_year_wraps_at_centuries() {
        assert_eq!(render("yy", at(2000, 1, 1, 0, 0, 0)).as_deref(), Ok("00"));
        assert_eq!(render("yy", at(1999, 1, 1, 0, 0, 0)).as_deref(), Ok("99"));
    }

    #[test]
    fn rejects_bad_patterns() {
        let dt = at(2024, 3, 5, 0, 0, 0);
        let cases = [
            ("", "empty format"),
            ("  ", "empty format"),
            ("YYYYMMDD", "week-year"),
            ("yyyyMMDD", "day-of-year"),
            ("hh:mm", "12-hour"),
            ("yyyyMMM", "month names"),
            ("yyyy'MM", "unterminated quote"),
            ("yyyyMMddX", "unsupported pattern letter `X`"),
        ];
        for (pattern, want) in cases {
            let err = render(pattern, dt).expect_err(pattern);
            assert!(err.contains(want), "{pattern}: {err}");
        }
    }
}
