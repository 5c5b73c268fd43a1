//! The expression language of Switch conditions: a small, JavaScript-flavoured boolean
//! language, parsed and evaluated here so the plugin needs no script engine.
//!
//! The host substitutes `${...}` references before the plugin sees a condition, so the
//! text is already concrete: `5 > 1`, `'abc' == 'abc'`, `ok && (n >= 10 || force)`.
//!
//! - Values: numbers (`3`, `-2.5`, `1e3`), strings in single or double quotes (`\` escapes
//!   the next character), bare words (`abc`, `2024-01-01`, treated as strings) and
//!   `true` / `false`.
//! - Comparisons: `==` `!=` `>` `>=` `<` `<=`. Two numbers compare as numbers; as in
//!   JavaScript, a quoted string that reads as a number compares as a number with a
//!   number (`'5' > 1`); anything else compares as text (`'10' < '9'`). Comparisons do
//!   not chain (`1 < 2 < 3` is an error).
//! - Logic: `!` / `not`, `&&` / `and`, `||` / `or` (loosest), and parentheses. `!` binds
//!   looser than a comparison: `!a == b` means `!(a == b)`. Both sides of `&&` and `||`
//!   are always evaluated, so a mistake is reported whichever way the other side went.
//!
//! The result must be `true` or `false`. Errors give the 1-based column in the text and
//! say what was expected there.

use std::cmp::Ordering;
use std::fmt;

/// Parentheses and `!` deeper than this are refused rather than risking the guest stack.
const MAX_DEPTH: usize = 64;

/// Why a condition could not be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// 1-based column (in characters) where the problem is.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for ExprError {}

fn error<T>(column: usize, message: impl Into<String>) -> Result<T, ExprError> {
    Err(ExprError {
        column,
        message: message.into(),
    })
}

/// Evaluate a condition to `true` or `false`.
pub fn evaluate(text: &str) -> Result<bool, ExprError> {
    let expr = parse(text)?;
    match expr.eval()? {
        Value::Bool(b) => Ok(b),
        other => error(
            expr.column,
            format!(
                "expected a condition that is true or false, found {}; compare it, e.g. `{} == ...`",
                other.describe(),
                other.text()
            ),
        ),
    }
}

/// Check a condition's syntax without evaluating it.
pub fn check(text: &str) -> Result<(), ExprError> {
    parse(text).map(|_| ())
}

// ---------------------------------------------------------------------------------------
// Values

#[derive(Debug, Clone, PartialEq)]
enum Value {
    /// A number, with its text as written (for text comparisons and messages).
    Num(Number),
    Text(String),
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq)]
struct Number {
    value: f64,
    /// Exact value of an integer literal, so large ids compare exactly.
    int: Option<i128>,
    text: String,
}

impl Number {
    /// A number if `s` is written like one: digits with an optional sign, point and
    /// exponent. Words such as `inf` or `NaN` stay words.
    fn parse(s: &str) -> Option<Self> {
        let first = s.chars().next()?;
        let shaped = (first.is_ascii_digit() || matches!(first, '-' | '+' | '.'))
            && s.chars().any(|c| c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'));
        if !shaped {
            return None;
        }
        let value: f64 = s.parse().ok()?;
        value.is_finite().then(|| Self {
            value,
            int: s.parse().ok(),
            text: s.to_owned(),
        })
    }

    fn cmp(&self, other: &Self) -> Option<Ordering> {
        match (self.int, other.int) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => self.value.partial_cmp(&other.value),
        }
    }
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::Num(n) => n.text.clone(),
            Value::Text(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Value::Num(n) => format!("the number {}", n.text),
            Value::Text(s) => format!("the string '{s}'"),
            Value::Bool(b) => b.to_string(),
        }
    }
}

/// Order two values: as numbers when both are (or one is a number and the other text
/// that reads as one, as JavaScript does), else as text.
fn order(left: &Value, right: &Value) -> Option<Ordering> {
    match (left, right) {
        (Value::Num(a), Value::Num(b)) => a.cmp(b),
        (Value::Num(a), Value::Text(t)) => match Number::parse(t.trim()) {
            Some(b) => a.cmp(&b),
            None => Some(a.text.as_str().cmp(t.as_str())),
        },
        (Value::Text(t), Value::Num(b)) => match Number::parse(t.trim()) {
            Some(a) => a.cmp(b),
            None => Some(t.as_str().cmp(b.text.as_str())),
        },
        _ => Some(left.text().cmp(&right.text())),
    }
}

// ---------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    fn holds(self, ordering: Option<Ordering>) -> bool {
        match ordering {
            // Not comparable (cannot happen with finite numbers): only `!=` holds.
            None => self == CmpOp::Ne,
            Some(o) => match self {
                CmpOp::Eq => o == Ordering::Equal,
                CmpOp::Ne => o != Ordering::Equal,
                CmpOp::Gt => o == Ordering::Greater,
                CmpOp::Ge => o != Ordering::Less,
                CmpOp::Lt => o == Ordering::Less,
                CmpOp::Le => o != Ordering::Greater,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Value(Value),
    Cmp(CmpOp),
    And,
    Or,
    Not,
    Open,
    Close,
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    column: usize,
    /// The token as written, for messages.
    text: String,
}

impl Token {
    fn found(&self) -> String {
        match self.tok {
            Tok::End => "the end of the condition".to_owned(),
            _ => format!("`{}`", self.text),
        }
    }
}

/// Characters that end a bare word.
fn is_special(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '(' | ')' | '\'' | '"' | '=' | '!' | '<' | '>' | '&' | '|'
        )
}

fn lex(text: &str) -> Result<Vec<Token>, ExprError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        let next = chars.get(i + 1).copied();
        let mut push = |tok: Tok, len: usize| {
            tokens.push(Token {
                tok,
                column,
                text: chars[i..i + len].iter().collect(),
            });
            len
        };
        i += match (c, next) {
            (c, _) if c.is_whitespace() => 1,
            ('(', _) => push(Tok::Open, 1),
            (')', _) => push(Tok::Close, 1),
            ('=', Some('=')) => push(Tok::Cmp(CmpOp::Eq), 2),
            ('=', _) => {
                return error(
                    column,
                    "expected `==`, found `=` (`=` alone is not an operator)",
                );
            }
            ('!', Some('=')) => push(Tok::Cmp(CmpOp::Ne), 2),
            ('!', _) => push(Tok::Not, 1),
            ('>', Some('=')) => push(Tok::Cmp(CmpOp::Ge), 2),
            ('>', _) => push(Tok::Cmp(CmpOp::Gt), 1),
            ('<', Some('=')) => push(Tok::Cmp(CmpOp::Le), 2),
            ('<', _) => push(Tok::Cmp(CmpOp::Lt), 1),
            ('&', Some('&')) => push(Tok::And, 2),
            ('&', _) => return error(column, "expected `&&`, found a single `&`"),
            ('|', Some('|')) => push(Tok::Or, 2),
            ('|', _) => return error(column, "expected `||`, found a single `|`"),
            ('\'' | '"', _) => {
                let mut value = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => {
                            return error(
                                column,
                                format!(
                                    "expected a closing {c} for the string that starts here, found the end of the condition"
                                ),
                            );
                        }
                        Some('\\') if j + 1 < chars.len() => {
                            value.push(chars[j + 1]);
                            j += 2;
                        }
                        Some(&q) if q == c => break,
                        Some(&other) => {
                            value.push(other);
                            j += 1;
                        }
                    }
                }
                push(Tok::Value(Value::Text(value)), j + 1 - i)
            }
            _ => {
                let len = chars[i..].iter().take_while(|c| !is_special(**c)).count();
                let word: String = chars[i..i + len].iter().collect();
                let tok = match word.to_ascii_lowercase().as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    "true" => Tok::Value(Value::Bool(true)),
                    "false" => Tok::Value(Value::Bool(false)),
                    _ => Tok::Value(match Number::parse(&word) {
                        Some(n) => Value::Num(n),
                        None => Value::Text(word),
                    }),
                };
                push(tok, len)
            }
        };
    }
    tokens.push(Token {
        tok: Tok::End,
        column: chars.len() + 1,
        text: String::new(),
    });
    Ok(tokens)
}

// ---------------------------------------------------------------------------------------
// Syntax tree

#[derive(Debug)]
struct Expr {
    column: usize,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Value(Value),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
}

const VALUE: &str = "a value (a number, a quoted string, a word, true, false or `(`)";

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

fn parse(text: &str) -> Result<Expr, ExprError> {
    let mut p = Parser {
        tokens: lex(text)?,
        at: 0,
        depth: 0,
    };
    let expr = p.or()?;
    let t = p.peek();
    match t.tok {
        Tok::End => Ok(expr),
        Tok::Close => error(
            t.column,
            "expected `&&`, `||` or the end of the condition, found a `)` that closes nothing",
        ),
        Tok::Cmp(_) => error(
            t.column,
            format!(
                "expected `&&`, `||` or the end of the condition, found {} (comparisons do not chain; join them with `&&`)",
                t.found()
            ),
        ),
        _ => error(
            t.column,
            format!(
                "expected a comparison (`==` `!=` `>` `>=` `<` `<=`), `&&`, `||` or the end of the condition, found {}{}",
                t.found(),
                if matches!(t.tok, Tok::Value(_)) {
                    " (quote text that contains spaces)"
                } else {
                    ""
                }
            ),
        ),
    }
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.at]
    }

    fn next(&mut self) -> Token {
        let t = self.tokens[self.at].clone();
        if t.tok != Tok::End {
            self.at += 1;
        }
        t
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.and()?;
        while self.peek().tok == Tok::Or {
            self.next();
            let right = self.and()?;
            left = Expr {
                column: left.column,
                kind: Kind::Or(Box::new(left), Box::new(right)),
            };
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.not()?;
        while self.peek().tok == Tok::And {
            self.next();
            let right = self.not()?;
            left = Expr {
                column: left.column,
                kind: Kind::And(Box::new(left), Box::new(right)),
            };
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ExprError> {
        if self.peek().tok != Tok::Not {
            return self.comparison();
        }
        let t = self.next();
        self.enter(t.column)?;
        let inner = self.not()?;
        self.depth -= 1;
        Ok(Expr {
            column: t.column,
            kind: Kind::Not(Box::new(inner)),
        })
    }

    fn comparison(&mut self) -> Result<Expr, ExprError> {
        let left = self.primary()?;
        let Tok::Cmp(op) = self.peek().tok else {
            return Ok(left);
        };
        self.next();
        let right = self.primary()?;
        Ok(Expr {
            column: left.column,
            kind: Kind::Cmp(op, Box::new(left), Box::new(right)),
        })
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let t = self.next();
        match t.tok {
            Tok::Value(v) => Ok(Expr {
                column: t.column,
                kind: Kind::Value(v),
            }),
            Tok::Open => {
                self.enter(t.column)?;
                let inner = self.or()?;
                self.depth -= 1;
                let close = self.next();
                if close.tok != Tok::Close {
                    return error(
                        close.column,
                        format!(
                            "expected `)` to close the `(` at column {}, found {}",
                            t.column,
                            close.found()
                        ),
                    );
                }
                Ok(Expr {
                    column: t.column,
                    kind: inner.kind,
                })
            }
            _ => error(t.column, format!("expected {VALUE}, found {}", t.found())),
        }
    }

    fn enter(&mut self, column: usize) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return error(
                column,
                format!("parentheses and `!` nested more than {MAX_DEPTH} deep"),
            );
        }
        Ok(())
    }
}

impl Expr {
    fn eval(&self) -> Result<Value, ExprError> {
        Ok(match &self.kind {
            Kind::Value(v) => v.clone(),
            Kind::Not(inner) => Value::Bool(!inner.boolean("`!`")?),
            Kind::And(l, r) => {
                let (l, r) = (l.boolean("`&&`")?, r.boolean("`&&`")?);
                Value::Bool(l && r)
            }
            Kind::Or(l, r) => {
                let (l, r) = (l.boolean("`||`")?, r.boolean("`||`")?);
                Value::Bool(l || r)
            }
            Kind::Cmp(op, l, r) => Value::Bool(op.holds(order(&l.eval()?, &r.eval()?))),
        })
    }

    /// Evaluate an operand of a logical operator, which must be true or false.
    fn boolean(&self, operator: &str) -> Result<bool, ExprError> {
        match self.eval()? {
            Value::Bool(b) => Ok(b),
            other => error(
                self.column,
                format!(
                    "expected true, false or a comparison as operand of {operator}, found {}",
                    other.describe()
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yes(text: &str) {
        assert_eq!(evaluate(text), Ok(true), "{text}");
    }

    fn no(text: &str) {
        assert_eq!(evaluate(text), Ok(false), "{text}");
    }

    fn fails(text: &str, column: usize, needle: &str) {
        let err = evaluate(text).expect_err(text);
        assert_eq!(err.column, column, "{text}: {err}");
        assert!(err.message.contains(needle), "{text}: {err}");
    }

    #[test]
    fn numbers_compare_as_numbers() {
        yes("5 > 1");
        no("5 < 1");
        yes("10 > 9");
        yes("-2 < 1");
        yes("-2.5 <= -2.5");
        yes("1.0 == 1");
        yes("1e3 == 1000");
        yes("0.5 >= .5");
        no("3 != 3");
        yes("3 != 4");
        yes("5>-1");
        // Larger than f64 can hold exactly.
        no("12345678901234567891 == 12345678901234567890");
    }

    #[test]
    fn strings_and_words_compare_as_text() {
        yes("'abc' == 'abc'");
        yes("\"abc\" == 'abc'");
        yes("abc == 'abc'");
        no("abc == abd");
        yes("'b' > 'a'");
        yes("'10' < '9'");
        yes("2024-01-02 > 2024-01-01");
        yes("'it\\'s' == \"it's\"");
        yes("'' == \"\"");
        yes("'a b' == 'a b'");
        // A word that only looks numeric-ish stays a word.
        yes("inf == 'inf'");
        yes("1-2 == '1-2'");
    }

    #[test]
    fn numeric_text_meets_a_number_as_a_number() {
        yes("'5' > 1");
        yes("'10' > 9");
        yes("' 7 ' == 7");
        no("'abc' == 5");
        yes("'abc' != 5");
    }

    #[test]
    fn booleans_and_logic() {
        yes("true");
        no("false");
        yes("TRUE");
        yes("!false");
        yes("not false");
        yes("true == true");
        yes("'true' == true");
        yes("1 < 2 && 2 < 3");
        no("1 < 2 && 2 > 3");
        yes("1 > 2 || 2 < 3");
        yes("1 > 2 or 2 < 3 AND 3 < 4");
        // `&&` binds tighter than `||`.
        yes("true || false && false");
        no("(true || false) && false");
        yes("!(1 > 2)");
        yes("!1 > 2");
        yes("!!true");
        yes("((((5 > 1))))");
        yes("(1 > 0) == true");
    }

    #[test]
    fn errors_name_the_column_and_what_was_expected() {
        fails("", 1, "expected a value");
        fails("   ", 4, "the end of the condition");
        fails("5 >", 4, "expected a value");
        fails("5 > > 1", 5, "found `>`");
        fails("5 = 1", 3, "expected `==`");
        fails("a & b", 3, "expected `&&`");
        fails("a | b", 3, "expected `||`");
        fails("'abc == 'abc'", 13, "closing '");
        fails("(1 > 2", 7, "expected `)` to close the `(` at column 1");
        fails("1 > 2)", 6, "closes nothing");
        fails("1 < 2 < 3", 7, "do not chain");
        fails("hello world == 'x'", 7, "quote text");
        fails("5", 1, "true or false");
        fails("5 && true", 1, "operand of `&&`");
        fails("true || abc", 9, "the string 'abc'");
        fails("!5", 2, "operand of `!`");
        fails("a == !b", 6, "expected a value");
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let deep = format!("{}true{}", "(".repeat(200), ")".repeat(200));
        fails(&deep, 65, "nested more than");
        let nots = format!("{}true", "!".repeat(200));
        fails(&nots, 65, "nested more than");
    }

    #[test]
    fn check_only_parses() {
        assert!(check("${var} > 1").is_ok());
        assert!(check("$[yyyyMMdd-1] >= 20240101").is_ok());
        assert!(check("5").is_ok());
        assert_eq!(check("5 >").unwrap_err().column, 4);
    }
}
