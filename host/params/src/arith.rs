//! The small integer arithmetic used inside time expressions: offsets such as `+7*2`,
//! `-1/24/60` and the numeric arguments of `add_months(fmt, -12*2)`.
//!
//! DolphinScheduler evaluates these with Java `int` arithmetic, where `1/24` of a day only
//! works because it first multiplies by the minutes in a day. Evaluating with exact
//! fractions gives the same answers for every documented form, and lets the caller reject a
//! result that is not whole (a month offset of `1/2`) instead of silently truncating it.

/// An exact fraction, kept normalised: the denominator is positive and shares no factor
/// with the numerator, so equal values compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ratio {
    num: i128,
    den: i128,
}

/// How deeply parentheses may nest. Time expressions check this before evaluating (see
/// `time_expr::MAX_EXPRESSION_DEPTH`); the parser checks it again so that no caller can make
/// it recurse without bound.
pub(crate) const MAX_DEPTH: usize = 64;

/// Operands are capped well below `i128::MAX` so that no intermediate product of two
/// accepted values can overflow before the overflow checks see it.
const MAX_DIGITS: usize = 18;

impl Ratio {
    fn new(num: i128, den: i128) -> Result<Self, String> {
        if den == 0 {
            return Err("division by zero".to_string());
        }
        let g = gcd(num.unsigned_abs(), den.unsigned_abs());
        // gcd is at least 1 unless both are 0, and den is non-zero here.
        let g = i128::try_from(g).map_err(|_| TOO_LARGE.to_string())?;
        let (mut num, mut den) = (num / g, den / g);
        if den < 0 {
            num = num.checked_neg().ok_or(TOO_LARGE)?;
            den = den.checked_neg().ok_or(TOO_LARGE)?;
        }
        Ok(Ratio { num, den })
    }

    pub(crate) fn integer(n: i128) -> Self {
        Ratio { num: n, den: 1 }
    }

    /// The value as a whole number, or `None` if it has a fractional part.
    pub(crate) fn as_integer(self) -> Option<i128> {
        (self.den == 1).then_some(self.num)
    }

    /// `self * factor`, if that is a whole number.
    pub(crate) fn scaled_integer(self, factor: i128) -> Option<i128> {
        let n = self.num.checked_mul(factor)?;
        (n % self.den == 0).then(|| n / self.den)
    }

    fn add(self, o: Ratio) -> Result<Ratio, String> {
        let a = self.num.checked_mul(o.den).ok_or(TOO_LARGE)?;
        let b = o.num.checked_mul(self.den).ok_or(TOO_LARGE)?;
        let den = self.den.checked_mul(o.den).ok_or(TOO_LARGE)?;
        Ratio::new(a.checked_add(b).ok_or(TOO_LARGE)?, den)
    }

    fn neg(self) -> Result<Ratio, String> {
        Ok(Ratio {
            num: self.num.checked_neg().ok_or(TOO_LARGE)?,
            den: self.den,
        })
    }

    fn mul(self, o: Ratio) -> Result<Ratio, String> {
        let num = self.num.checked_mul(o.num).ok_or(TOO_LARGE)?;
        let den = self.den.checked_mul(o.den).ok_or(TOO_LARGE)?;
        Ratio::new(num, den)
    }

    fn div(self, o: Ratio) -> Result<Ratio, String> {
        if o.num == 0 {
            return Err("division by zero".to_string());
        }
        let num = self.num.checked_mul(o.den).ok_or(TOO_LARGE)?;
        let den = self.den.checked_mul(o.num).ok_or(TOO_LARGE)?;
        Ratio::new(num, den)
    }
}

const TOO_LARGE: &str = "number too large";

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// Evaluates `src` as integers combined with `+ - * /`, unary signs and parentheses,
/// with the usual precedence. Whitespace between tokens is ignored.
pub(crate) fn eval(src: &str) -> Result<Ratio, String> {
    let mut p = Parser {
        src: src.as_bytes(),
        pos: 0,
        depth: 0,
    };
    p.skip_ws();
    if p.pos == p.src.len() {
        return Err("expected a number".to_string());
    }
    let value = p.sum()?;
    p.skip_ws();
    match p.peek() {
        None => Ok(value),
        Some(b')') => Err("unbalanced parentheses: `)` without `(`".to_string()),
        Some(_) => Err(format!(
            "unexpected `{}` in `{}`",
            p.rest_char(),
            src.trim()
        )),
    }
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    /// Parentheses open at the cursor.
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    /// The (possibly multi-byte) character at the cursor, for error messages.
    fn rest_char(&self) -> String {
        String::from_utf8_lossy(&self.src[self.pos..])
            .chars()
            .next()
            .map(String::from)
            .unwrap_or_default()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn sum(&mut self) -> Result<Ratio, String> {
        let mut acc = self.product()?;
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'+') => {
                    self.pos += 1;
                    acc = acc.add(self.product()?)?;
                }
                Some(b'-') => {
                    self.pos += 1;
                    acc = acc.add(self.product()?.neg()?)?;
                }
                _ => return Ok(acc),
            }
        }
    }

    fn product(&mut self) -> Result<Ratio, String> {
        let mut acc = self.unary()?;
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'*') => {
                    self.pos += 1;
                    acc = acc.mul(self.unary()?)?;
                }
                Some(b'/') => {
                    self.pos += 1;
                    acc = acc.div(self.unary()?)?;
                }
                _ => return Ok(acc),
            }
        }
    }

    /// Signs are counted in a loop rather than by recursion, so `------1` costs no stack.
    fn unary(&mut self) -> Result<Ratio, String> {
        let mut negative = false;
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'-') => negative = !negative,
                Some(b'+') => {}
                _ => break,
            }
            self.pos += 1;
        }
        let value = self.atom()?;
        if negative { value.neg() } else { Ok(value) }
    }

    fn atom(&mut self) -> Result<Ratio, String> {
        self.skip_ws();
        match self.peek() {
            Some(b'(') => {
                if self.depth == MAX_DEPTH {
                    return Err(format!("parentheses nest deeper than {MAX_DEPTH} levels"));
                }
                self.pos += 1;
                self.depth += 1;
                let inner = self.sum()?;
                self.depth -= 1;
                self.skip_ws();
                if self.peek() != Some(b')') {
                    return Err("unbalanced parentheses: missing `)`".to_string());
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(b) if b.is_ascii_digit() => {
                let start = self.pos;
                while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    self.pos += 1;
                }
                let digits = &self.src[start..self.pos];
                if digits.len() > MAX_DIGITS {
                    return Err(TOO_LARGE.to_string());
                }
                let n = digits
                    .iter()
                    .fold(0i128, |n, d| n * 10 + i128::from(d - b'0'));
                Ok(Ratio::integer(n))
            }
            None => Err("expected a number at the end".to_string()),
            Some(_) => Err(format!("expected a number, found `{}`", self.rest_char())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(src: &str) -> Option<i128> {
        eval(src).ok().and_then(Ratio::as_integer)
    }

    #[test]
    fn integers_and_precedence() {
        let cases = [
            ("1", 1),
            ("  42 ", 42),
            ("7*2", 14),
            ("-12*2", -24),
            ("+3", 3),
            ("1+2*3", 7),
            ("(1+2)*3", 9),
            ("10-2-3", 5),
            ("-(4-6)", 2),
            ("2*-3", -6),
            ("24/24", 1),
            ("8/2/2", 2),
            ("12 * 1", 12),
        ];
        for (src, want) in cases {
            assert_eq!(int(src), Some(want), "{src}");
        }
    }

    #[test]
    fn nesting_up_to_the_limit_evaluates_and_signs_cost_no_depth() {
        let deepest = format!("{}7{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(int(&deepest), Some(7));
        // A million signs would overflow the stack if each were a recursive call.
        let signs = format!("{}3", "-".repeat(1_000_000));
        assert_eq!(int(&signs), Some(3));
        assert_eq!(int(&format!("{}3", "-".repeat(999_999))), Some(-3));
        assert_eq!(int("+-+-2"), Some(2));
        // Past the limit, a long run of parentheses is refused quickly, without recursion.
        let hostile = format!("{}1", "(".repeat(100_000));
        assert!(eval(&hostile).unwrap_err().contains("deeper than 64"));
    }

    #[test]
    fn fractions_are_exact() {
        let hour = eval("1/24").unwrap();
        assert_eq!(hour.as_integer(), None);
        assert_eq!(hour.scaled_integer(86_400), Some(3_600));
        assert_eq!(eval("1/24/60").unwrap().scaled_integer(86_400), Some(60));
        assert_eq!(eval("-3/24").unwrap().scaled_integer(86_400), Some(-10_800));
        // A seventh of a day is not a whole number of seconds.
        assert_eq!(eval("1/7").unwrap().scaled_integer(86_400), None);
        assert_eq!(eval("2/4").unwrap(), eval("1/2").unwrap());
    }

    #[test]
    fn malformed_input_is_rejected_with_a_reason() {
        let too_deep = format!(
            "{}1{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        let cases: [(&str, &str); 12] = [
            ("", "expected a number"),
            ("   ", "expected a number"),
            ("1.5", "unexpected `.`"),
            ("1/0", "division by zero"),
            ("(1+2", "missing `)`"),
            ("1+2)", "`)` without `(`"),
            ("x", "found `x`"),
            ("1+", "at the end"),
            ("1 2", "unexpected `2`"),
            ("9999999999999999999", "too large"),
            (
                "999999999999999999*999999999999999999*999999999999999999",
                "too large",
            ),
            (&too_deep, "deeper than 64 levels"),
        ];
        for (src, want) in cases {
            let err = eval(src).expect_err(src);
            assert!(err.contains(want), "{src}: {err}");
        }
    }
}
