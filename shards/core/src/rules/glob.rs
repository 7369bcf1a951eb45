//! M3's filter patterns for one tag value: `*` (any run of bytes), `?` (one byte), `[abc]`,
//! `[a-z]` and `[!a-z]` (one byte in or out of a set), `{a,b}` (one of several literals), and a
//! leading `!` that negates the whole pattern.
//!
//! Compiled on the control thread when a rule set is loaded; matched (read-only) on the shard
//! core that creates a series, and by the admin API's match endpoint.

use smallvec::SmallVec;

use super::RuleError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(Vec<u8>),
    AnyByte,
    AnyRun,
    Class { negated: bool, ranges: Vec<(u8, u8)> },
    OneOf(Vec<Vec<u8>>),
}

/// One compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    negated: bool,
    tokens: Vec<Token>,
}

impl Glob {
    /// Compiles `pattern`; a `[` or `{` left open, an empty `[]` or `{}`, or a reversed range
    /// (`[z-a]`) is refused.
    pub fn parse(pattern: &str) -> Result<Self, RuleError> {
        let bad = |why: &str| RuleError::new("filter", format!("pattern {pattern:?}: {why}"));
        let (negated, body) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest.as_bytes()),
            None => (false, pattern.as_bytes()),
        };
        let mut tokens: Vec<Token> = Vec::new();
        let mut i = 0;
        while i < body.len() {
            match body[i] {
                b'*' => {
                    if tokens.last() != Some(&Token::AnyRun) {
                        tokens.push(Token::AnyRun);
                    }
                    i += 1;
                }
                b'?' => {
                    tokens.push(Token::AnyByte);
                    i += 1;
                }
                b'[' => {
                    let end = body[i + 1..].iter().position(|&b| b == b']').ok_or_else(|| bad("'[' is not closed"))?;
                    let mut set = &body[i + 1..i + 1 + end];
                    let class_negated = matches!(set.first(), Some(b'!' | b'^'));
                    if class_negated {
                        set = &set[1..];
                    }
                    if set.is_empty() {
                        return Err(bad("empty '[]'"));
                    }
                    let mut ranges = Vec::new();
                    let mut j = 0;
                    while j < set.len() {
                        if j + 2 < set.len() && set[j + 1] == b'-' {
                            if set[j] > set[j + 2] {
                                return Err(bad("a range's start is after its end"));
                            }
                            ranges.push((set[j], set[j + 2]));
                            j += 3;
                        } else {
                            ranges.push((set[j], set[j]));
                            j += 1;
                        }
                    }
                    tokens.push(Token::Class { negated: class_negated, ranges });
                    i += end + 2;
                }
                b'{' => {
                    let end = body[i + 1..].iter().position(|&b| b == b'}').ok_or_else(|| bad("'{' is not closed"))?;
                    let inner = &body[i + 1..i + 1 + end];
                    if inner.is_empty() {
                        return Err(bad("empty '{}'"));
                    }
                    if inner.iter().any(|b| b"*?[{".contains(b)) {
                        return Err(bad("'{...}' holds plain alternatives only"));
                    }
                    tokens.push(Token::OneOf(inner.split(|&b| b == b',').map(<[u8]>::to_vec).collect()));
                    i += end + 2;
                }
                b']' | b'}' => return Err(bad("unbalanced ']' or '}'")),
                _ => {
                    let run = body[i..].iter().position(|b| b"*?[{]}".contains(b)).unwrap_or(body.len() - i);
                    tokens.push(Token::Literal(body[i..i + run].to_vec()));
                    i += run;
                }
            }
        }
        Ok(Self { negated, tokens })
    }

    /// Whether `value` matches (negation applied).
    pub fn matches(&self, value: &[u8]) -> bool {
        self.matches_body(value) != self.negated
    }

    fn matches_body(&self, value: &[u8]) -> bool {
        // The common shapes without the general walk: exact, `*`, `prefix*`.
        match self.tokens.as_slice() {
            [] => return value.is_empty(),
            [Token::Literal(l)] => return value == l.as_slice(),
            [Token::AnyRun] => return true,
            [Token::Literal(l), Token::AnyRun] => return value.starts_with(l),
            _ => {}
        }
        // The set of positions of `value` reachable after each token: linear in
        // tokens × bytes, so no pattern can make a match take exponential time.
        let n = value.len();
        let mut reach: SmallVec<[bool; 128]> = SmallVec::from_elem(false, n + 1);
        let mut next: SmallVec<[bool; 128]> = SmallVec::from_elem(false, n + 1);
        reach[0] = true;
        for token in &self.tokens {
            next.iter_mut().for_each(|r| *r = false);
            let mut any = false;
            for i in 0..=n {
                match token {
                    Token::AnyRun => {
                        any |= reach[i];
                        next[i] = any;
                        continue;
                    }
                    _ if !reach[i] => continue,
                    Token::AnyByte => {
                        if i < n {
                            next[i + 1] = true;
                        }
                    }
                    Token::Class { negated, ranges } => {
                        if i < n && ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&value[i])) != *negated {
                            next[i + 1] = true;
                        }
                    }
                    Token::Literal(l) => {
                        if value[i..].starts_with(l) {
                            next[i + l.len()] = true;
                        }
                    }
                    Token::OneOf(alternatives) => {
                        for alt in alternatives {
                            if value[i..].starts_with(alt) {
                                next[i + alt.len()] = true;
                            }
                        }
                    }
                }
            }
            std::mem::swap(&mut reach, &mut next);
            if !reach.iter().any(|&r| r) {
                return false;
            }
        }
        reach[n]
    }
}
