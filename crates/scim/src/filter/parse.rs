//! A recursive-descent parser for SCIM filters and PATCH paths.
//!
//! Grammar (RFC 7644 §3.4.2.2, precedence `not` > `and` > `or`, left-associative):
//! ```text
//! or    := and ("or" and)*
//! and   := unary ("and" unary)*
//! unary := "not" "(" or ")" | "(" or ")" | attrExp
//! attrExp := path "pr" | path OP value | path "[" or "]"
//! ```
//! Keywords, operators and the literals true/false/null are case-insensitive.

use super::{AttrPath, CompValue, CompareOp, Filter, PatchPath};
use crate::error::{ScimError, ScimResult};

/// Filters longer than this are refused (`invalidFilter`), before any work is done.
pub const MAX_FILTER_LEN: usize = 8 * 1024;
/// Nesting deeper than this is refused, so hostile input cannot exhaust the stack.
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Word(String),
    Str(String),
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn err(&self, msg: impl std::fmt::Display) -> ScimError {
        ScimError::invalid_filter(format!("{msg} at character {}", self.pos + 1))
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.src[self.pos..].chars().next() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }

    fn next(&mut self) -> ScimResult<Option<(usize, Tok)>> {
        self.skip_ws();
        let start = self.pos;
        let Some(c) = self.src[self.pos..].chars().next() else {
            return Ok(None);
        };
        let tok = match c {
            '(' => {
                self.pos += 1;
                Tok::LParen
            }
            ')' => {
                self.pos += 1;
                Tok::RParen
            }
            '[' => {
                self.pos += 1;
                Tok::LBracket
            }
            ']' => {
                self.pos += 1;
                Tok::RBracket
            }
            '"' => Tok::Str(self.string()?),
            _ => {
                let rest = &self.src[self.pos..];
                let len = rest
                    .find(|c: char| c.is_whitespace() || "()[]\"".contains(c))
                    .unwrap_or(rest.len());
                self.pos += len;
                Tok::Word(rest[..len].to_string())
            }
        };
        Ok(Some((start, tok)))
    }

    /// A JSON string literal starting at `"`; returns its decoded value.
    fn string(&mut self) -> ScimResult<String> {
        let bytes = self.src.as_bytes();
        let mut i = self.pos + 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => {
                    let literal = &self.src[self.pos..=i];
                    let value = serde_json::from_str::<String>(literal)
                        .map_err(|e| self.err(format!("invalid string literal ({e})")))?;
                    if value.contains('\0') {
                        return Err(self.err("NUL characters are not allowed in values"));
                    }
                    self.pos = i + 1;
                    return Ok(value);
                }
                _ => i += 1,
            }
        }
        Err(self.err("unterminated string"))
    }
}

struct Parser<'a> {
    toks: Vec<(usize, Tok)>,
    i: usize,
    src: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|(_, t)| t)
    }

    fn pos(&self) -> usize {
        self.toks
            .get(self.i)
            .map(|(p, _)| *p)
            .unwrap_or(self.src.len())
    }

    fn err(&self, msg: impl std::fmt::Display) -> ScimError {
        ScimError::invalid_filter(format!("{msg} at character {}", self.pos() + 1))
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.i).map(|(_, t)| t.clone());
        self.i += 1;
        t
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn expect(&mut self, tok: Tok, what: &str) -> ScimResult<()> {
        if self.peek() == Some(&tok) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(format!("expected {what}")))
        }
    }

    fn or(&mut self, depth: usize, in_value: bool) -> ScimResult<Filter> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!("filter nests deeper than {MAX_DEPTH} levels")));
        }
        let mut left = self.and(depth, in_value)?;
        while self.keyword("or") {
            self.i += 1;
            let right = self.and(depth, in_value)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize, in_value: bool) -> ScimResult<Filter> {
        let mut left = self.unary(depth, in_value)?;
        while self.keyword("and") {
            self.i += 1;
            let right = self.unary(depth, in_value)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize, in_value: bool) -> ScimResult<Filter> {
        if self.keyword("not") && self.toks.get(self.i + 1).map(|(_, t)| t) == Some(&Tok::LParen) {
            self.i += 2;
            let inner = self.or(depth + 1, in_value)?;
            self.expect(Tok::RParen, "')' to close 'not ('")?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.keyword("not") {
            self.i += 1;
            return Err(self.err("expected '(' after 'not'"));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.i += 1;
            let inner = self.or(depth + 1, in_value)?;
            self.expect(Tok::RParen, "')'")?;
            return Ok(inner);
        }
        self.attr_exp(depth, in_value)
    }

    fn attr_exp(&mut self, depth: usize, in_value: bool) -> ScimResult<Filter> {
        let path = match self.next() {
            Some(Tok::Word(w)) => parse_attr_path(&w).map_err(|m| {
                ScimError::invalid_filter(format!(
                    "{m} at character {}",
                    self.toks[self.i - 1].0 + 1
                ))
            })?,
            Some(_) => {
                self.i -= 1;
                return Err(self.err("expected an attribute name"));
            }
            None => return Err(self.err("expected an attribute name, found the end of the filter")),
        };
        if self.peek() == Some(&Tok::LBracket) {
            if in_value {
                return Err(self.err("value filters cannot be nested"));
            }
            if path.sub.is_some() {
                return Err(self.err("a value filter applies to an attribute, not a sub-attribute"));
            }
            self.i += 1;
            let inner = self.or(depth + 1, true)?;
            self.expect(Tok::RBracket, "']' to close the value filter")?;
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        let op = match self.next() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("pr") => return Ok(Filter::Present(path)),
            Some(Tok::Word(w)) => match CompareOp::from_keyword(&w) {
                Some(op) => op,
                None => {
                    self.i -= 1;
                    return Err(self.err(format!("unknown operator {w:?}")));
                }
            },
            _ => {
                self.i = self.i.saturating_sub(1);
                return Err(self.err(format!("expected an operator after {path}")));
            }
        };
        let value = match self.next() {
            Some(Tok::Str(s)) => CompValue::Str(s),
            Some(Tok::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "true" => CompValue::Bool(true),
                "false" => CompValue::Bool(false),
                "null" => CompValue::Null,
                _ => match serde_json::from_str::<serde_json::Number>(&w) {
                    Ok(n) if w.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => {
                        CompValue::Number(n)
                    }
                    // Entra ID sends some values unquoted (`externalId eq jyoung`): a bare word
                    // that starts with a letter is taken as a string.
                    _ if w.starts_with(|c: char| c.is_alphabetic()) => CompValue::Str(w),
                    _ => {
                        self.i -= 1;
                        return Err(self.err(format!(
                            "{w:?} is not a value; strings must be in double quotes"
                        )));
                    }
                },
            },
            _ => {
                self.i = self.i.saturating_sub(1);
                return Err(self.err(format!("expected a value after '{}'", op.as_str())));
            }
        };
        Ok(Filter::Compare(path, op, value))
    }
}

fn valid_name(name: &str) -> bool {
    if name.eq_ignore_ascii_case("$ref") {
        return true;
    }
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Text that is not an attribute path; the caller says where (a filter) or how (a PATCH
/// path) it was used. (No error crate here: the protocol core depends on serde_json and time
/// only.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InvalidAttrPath(String);

impl std::fmt::Display for InvalidAttrPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} is not a valid attribute path", self.0)
    }
}

impl From<InvalidAttrPath> for String {
    fn from(e: InvalidAttrPath) -> Self {
        e.to_string()
    }
}

/// Parses `[URI ":"] name ["." sub]`. The URI is everything up to the last `:` (URNs contain
/// dots, e.g. `2.0`, so the split at `.` happens only after the URI is removed).
pub(crate) fn parse_attr_path(text: &str) -> Result<AttrPath, InvalidAttrPath> {
    let (uri, rest) = if text
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
    {
        match text.rfind(':') {
            Some(i) => (Some(text[..i].to_string()), &text[i + 1..]),
            None => (None, text),
        }
    } else {
        (None, text)
    };
    let (name, sub) = match rest.split_once('.') {
        Some((n, s)) => (n, Some(s)),
        None => (rest, None),
    };
    if !valid_name(name) {
        return Err(InvalidAttrPath(text.to_string()));
    }
    if let Some(s) = sub
        && !valid_name(s)
    {
        return Err(InvalidAttrPath(text.to_string()));
    }
    Ok(AttrPath {
        uri,
        name: name.to_string(),
        sub: sub.map(str::to_string),
    })
}

fn tokens(src: &str) -> ScimResult<Vec<(usize, Tok)>> {
    let mut lexer = Lexer { src, pos: 0 };
    let mut toks = Vec::new();
    while let Some(t) = lexer.next()? {
        toks.push(t);
    }
    Ok(toks)
}

/// Parses a filter, or says exactly what is wrong (`invalidFilter`).
pub fn parse(src: &str) -> ScimResult<Filter> {
    if src.len() > MAX_FILTER_LEN {
        return Err(ScimError::invalid_filter(format!(
            "filter is longer than {MAX_FILTER_LEN} bytes"
        )));
    }
    let toks = tokens(src)?;
    let mut p = Parser { toks, i: 0, src };
    if p.peek().is_none() {
        return Err(ScimError::invalid_filter("the filter is empty"));
    }
    let filter = p.or(0, false)?;
    if p.peek().is_some() {
        return Err(p.err("unexpected text after the filter"));
    }
    Ok(filter)
}

/// Parses a PATCH `path`; errors are `invalidPath`.
pub fn parse_path(src: &str) -> ScimResult<PatchPath> {
    let as_path_error = |e: ScimError| ScimError::invalid_path(e.detail);
    let src_trim = src.trim();
    if src_trim.is_empty() {
        return Err(ScimError::invalid_path("the path is empty"));
    }
    let Some(open) = src_trim.find('[') else {
        let attr = parse_attr_path(src_trim).map_err(ScimError::invalid_path)?;
        return Ok(PatchPath {
            attr,
            filter: None,
            sub_after_filter: None,
        });
    };
    let close = src_trim
        .rfind(']')
        .ok_or_else(|| ScimError::invalid_path(format!("{src_trim:?} has '[' without ']'")))?;
    if close < open {
        return Err(ScimError::invalid_path(format!(
            "{src_trim:?} is not a valid path"
        )));
    }
    let attr = parse_attr_path(&src_trim[..open]).map_err(ScimError::invalid_path)?;
    if attr.sub.is_some() {
        return Err(ScimError::invalid_path(format!(
            "{src_trim:?}: a value filter applies to an attribute, not a sub-attribute"
        )));
    }
    let toks = tokens(&src_trim[open + 1..close]).map_err(as_path_error)?;
    let inner_src = &src_trim[open + 1..close];
    let mut p = Parser {
        toks,
        i: 0,
        src: inner_src,
    };
    let filter = p.or(1, true).map_err(as_path_error)?;
    if p.peek().is_some() {
        return Err(ScimError::invalid_path(format!(
            "{src_trim:?}: unexpected text in the value filter"
        )));
    }
    let tail = &src_trim[close + 1..];
    let sub_after_filter = match tail {
        "" => None,
        t => {
            let sub = t
                .strip_prefix('.')
                .filter(|s| valid_name(s))
                .ok_or_else(|| {
                    ScimError::invalid_path(format!(
                        "{src_trim:?}: expected '.subAttribute' after ']'"
                    ))
                })?;
            Some(sub.to_string())
        }
    };
    Ok(PatchPath {
        attr,
        filter: Some(filter),
        sub_after_filter,
    })
}
