//! Patterns: the strings of actions, resources and condition values, compiled once at parse time.
//!
//! A pattern is a run of pieces: literal text, the wildcards `*` (any run of characters, `:` and
//! `/` included) and `?` (one character), and policy variables `${key}` / `${key, 'default'}`
//! ("IAM policy elements: Variables and tags"). A variable's value is literal text: a `*` in a user
//! name is not a wildcard. `${*}`, `${?}` and `${$}` stand for those characters. A variable whose
//! key the request lacks, or holds several values, makes the pattern match nothing, unless it has a
//! default; it never becomes the empty string. Matching is a backtracking glob over the pieces: no
//! regex and, for patterns without variables, no allocation.

use crate::context::{Env, Key};

/// One compiled string of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    pieces: Box<[Piece]>,
    /// No wildcards and no variables: the pattern is its one literal.
    literal: bool,
    variables: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Star,
    One,
    Variable { key: Key, default: Option<String> },
}

/// A piece with its variable resolved.
#[derive(Clone, Copy)]
enum Segment<'a> {
    Literal(&'a str),
    Star,
    One,
}

/// How letters compare.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Case {
    /// As written (resources, `StringEquals`, `StringLike`, ARNs).
    Sensitive,
    /// Without regard to ASCII case (actions, `Bool`).
    AsciiInsensitive,
    /// Without regard to case, Unicode's lowercase mapping (`StringEqualsIgnoreCase`).
    Insensitive,
}

impl Pattern {
    /// Compiles `text`. `wildcards`: whether `*` and `?` are wildcards (else literal);
    /// `variables`: whether `${...}` is a variable (policy version `2012-10-17`, in a place that
    /// takes them).
    pub(crate) fn parse(text: &str, wildcards: bool, variables: bool) -> Pattern {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if wildcards && (c == '*' || c == '?') {
                flush(&mut literal, &mut pieces);
                pieces.push(if c == '*' { Piece::Star } else { Piece::One });
                rest = &rest[1..];
                continue;
            }
            if variables
                && rest.starts_with("${")
                && let Some((piece, after)) = variable(rest)
            {
                match piece {
                    Piece::Literal(text) => literal.push_str(&text),
                    piece => {
                        flush(&mut literal, &mut pieces);
                        pieces.push(piece);
                    }
                }
                rest = after;
                continue;
            }
            literal.push(c);
            rest = &rest[c.len_utf8()..];
        }
        flush(&mut literal, &mut pieces);
        let is_literal = pieces.iter().all(|piece| matches!(piece, Piece::Literal(_)));
        let variables = pieces.iter().any(|piece| matches!(piece, Piece::Variable { .. }));
        if is_literal && pieces.len() != 1 {
            // "" compiles to one empty literal, so the fast path has one string to compare.
            pieces = vec![Piece::Literal(pieces.iter().map(piece_text).collect())];
        }
        Pattern { pieces: pieces.into_boxed_slice(), literal: is_literal, variables }
    }

    /// The pattern's text when it is one fixed string (no wildcard, no variable).
    pub(crate) fn as_literal(&self) -> Option<&str> {
        match (&*self.pieces, self.literal) {
            ([Piece::Literal(text)], true) => Some(text),
            _ => None,
        }
    }

    /// Whether the pattern holds a variable.
    pub(crate) fn has_variables(&self) -> bool {
        self.variables
    }

    /// Whether `text` matches, variables resolved from `env`.
    pub(crate) fn matches(&self, text: &str, case: Case, env: &Env<'_>) -> bool {
        if let Some(literal) = self.as_literal() {
            return equal(literal, text, case);
        }
        if !self.variables {
            return glob(&self.pieces, text, case);
        }
        let mut segments = Vec::with_capacity(self.pieces.len());
        for piece in self.pieces.iter() {
            segments.push(match piece {
                Piece::Literal(text) => Segment::Literal(text),
                Piece::Star => Segment::Star,
                Piece::One => Segment::One,
                Piece::Variable { key, default } => match env.single(key).or(default.as_deref()) {
                    Some(value) => Segment::Literal(value),
                    None => return false,
                },
            });
        }
        if case == Case::Insensitive {
            // StringEqualsIgnoreCase takes no wildcards: compare the resolved text whole.
            let resolved: String =
                segments.iter().map(|segment| if let Segment::Literal(text) = segment { *text } else { "" }).collect();
            return equal(&resolved, text, case);
        }
        glob(&segments, text, case)
    }
}

fn piece_text(piece: &Piece) -> &str {
    match piece {
        Piece::Literal(text) => text,
        _ => "",
    }
}

fn flush(literal: &mut String, pieces: &mut Vec<Piece>) {
    if !literal.is_empty() {
        pieces.push(Piece::Literal(std::mem::take(literal)));
    }
}

/// Reads the variable at the start of `text` (which starts with `${`): the piece and the text after
/// it, or `None` when it is not a well-formed variable (then `${` is literal text).
fn variable(text: &str) -> Option<(Piece, &str)> {
    let body = &text[2..];
    let end_of_key = body.find([',', '}'])?;
    let key = body[..end_of_key].trim();
    if key.is_empty() || (key != "$" && key.contains(['$', '{', '\''])) {
        return None;
    }
    let (default, after) = if body[end_of_key..].starts_with(',') {
        let rest = body[end_of_key + 1..].trim_start();
        let rest = rest.strip_prefix('\'')?;
        let mut default = String::new();
        let mut chars = rest.char_indices();
        let close = loop {
            let (index, c) = chars.next()?;
            if c == '\'' {
                if rest[index + 1..].starts_with('\'') {
                    default.push('\'');
                    chars.next();
                } else {
                    break index;
                }
            } else {
                default.push(c);
            }
        };
        let rest = rest[close + 1..].trim_start();
        (Some(default), rest.strip_prefix('}')?)
    } else {
        (None, &body[end_of_key + 1..])
    };
    let piece = match (key, &default) {
        ("*", None) | ("?", None) | ("$", None) => Piece::Literal(key.to_owned()),
        _ => Piece::Variable { key: Key::new(key), default },
    };
    Some((piece, after))
}

fn equal(a: &str, b: &str, case: Case) -> bool {
    match case {
        Case::Sensitive => a == b,
        Case::AsciiInsensitive => a.eq_ignore_ascii_case(b),
        Case::Insensitive => a.chars().flat_map(char::to_lowercase).eq(b.chars().flat_map(char::to_lowercase)),
    }
}

trait AsSegment {
    fn segment(&self) -> Segment<'_>;
}

impl AsSegment for Piece {
    fn segment(&self) -> Segment<'_> {
        match self {
            Piece::Literal(text) => Segment::Literal(text),
            Piece::Star => Segment::Star,
            Piece::One => Segment::One,
            Piece::Variable { .. } => unreachable!("patterns with variables are resolved before matching"),
        }
    }
}

impl AsSegment for Segment<'_> {
    fn segment(&self) -> Segment<'_> {
        *self
    }
}

/// Whether `text` matches the segments, `*` any run of characters and `?` one character: the
/// classic matcher that backtracks to the last `*` only, linear in practice.
fn glob<S: AsSegment>(pattern: &[S], text: &str, case: Case) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() {
            match pattern[p].segment() {
                Segment::Star if p + 1 == pattern.len() => return true,
                Segment::Star => {
                    star = Some((p + 1, t));
                    p += 1;
                    continue;
                }
                Segment::One if t < text.len() => {
                    t += char_len(text, t);
                    p += 1;
                    continue;
                }
                Segment::Literal(literal) if starts_at(text, t, literal, case) => {
                    t += literal.len();
                    p += 1;
                    continue;
                }
                _ => {}
            }
        } else if t == text.len() {
            return true;
        }
        match star {
            Some((after_star, from)) if from < text.len() => {
                let next = from + char_len(text, from);
                star = Some((after_star, next));
                p = after_star;
                t = next;
            }
            _ => return false,
        }
    }
}

fn char_len(text: &str, at: usize) -> usize {
    text[at..].chars().next().map_or(1, char::len_utf8)
}

fn starts_at(text: &str, at: usize, literal: &str, case: Case) -> bool {
    let Some(candidate) = text.as_bytes().get(at..at + literal.len()) else {
        return false;
    };
    match case {
        Case::Sensitive | Case::Insensitive => candidate == literal.as_bytes(),
        Case::AsciiInsensitive => candidate.eq_ignore_ascii_case(literal.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, Principal};

    fn matches(pattern: &str, text: &str) -> bool {
        let principal = Principal::user("111122223333", "/", "Bob");
        let context = Context::new().with("s3:prefix", "a*b");
        let env = Env { principal: &principal, context: &context };
        Pattern::parse(pattern, true, true).matches(text, Case::Sensitive, &env)
    }

    #[test]
    fn wildcards_span_any_run_and_one_character() {
        assert!(matches("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a/b:c"));
        assert!(matches("*", ""));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "ac"));
        assert!(matches("a?c", "aéc"));
        assert!(matches("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!matches("*a*b*c", "xxaxxbxxcxx"));
        assert!(!matches("abc", "ABC"));
    }

    #[test]
    fn variables_are_literal_text_and_missing_ones_match_nothing() {
        assert!(matches("home/${aws:username}/*", "home/Bob/x"));
        assert!(!matches("home/${aws:username}/*", "home/bob/x"));
        // The value a*b is literal: its * is no wildcard.
        assert!(matches("${s3:prefix}", "a*b"));
        assert!(!matches("${s3:prefix}", "axxb"));
        assert!(!matches("${aws:TokenIssueTime}", ""));
        assert!(matches("${aws:TokenIssueTime, 'none'}", "none"));
        assert!(matches("${aws:missing, 'it''s'}", "it's"));
        assert!(matches("a${*}b${?}${$}", "a*b?$"));
        assert!(!matches("a${*}b", "axxb"));
        // Not a well-formed variable: literal text.
        assert!(matches("${unterminated", "${unterminated"));
    }

    #[test]
    fn without_variables_the_text_is_literal() {
        let principal = Principal::anonymous();
        let context = Context::new();
        let env = Env { principal: &principal, context: &context };
        let pattern = Pattern::parse("${aws:username}", true, false);
        assert!(pattern.matches("${aws:username}", Case::Sensitive, &env));
        assert!(Pattern::parse("a*", false, false).matches("a*", Case::Sensitive, &env));
        assert!(!Pattern::parse("a*", false, false).matches("ab", Case::Sensitive, &env));
    }
}
