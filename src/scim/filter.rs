//! SCIM filter and PATCH `path` syntax (RFC 7644 §3.4.2.2 filters, §3.5.2 PATCH paths).
//!
//! Hand-written recursive descent rather than a parser crate: errors must carry the exact
//! character position (it ends up in the `detail` of a 400 `invalidFilter`/`invalidPath`),
//! we accept the non-RFC forms that identity providers really send (Entra's
//! `emails[type eq "work"].value eq "x"` and the unquoted values of Entra's older docs,
//! docs/scim-clients.md), and `Display` prints a canonical form that parses back to the
//! same tree.
//!
//! This module is syntax only. Attribute names are kept exactly as written; resolving them
//! against the schema (case-insensitively, RFC 7643 §2.1) is the caller's job.
//!
//! Filters arrive in query strings from the network, so parsing is bounded before any
//! unbounded work: at most 8 KiB of input, 64 nesting levels (`(`, `not (`, `[`) and 200
//! comparison terms. Recursion only happens on a nesting level, so the depth bound is also
//! the stack bound.

// Hostile input must never take the process down: no panicking accessors outside tests.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fmt;

/// Longest accepted filter or path, in bytes (UTF-8), checked before anything else.
const MAX_INPUT_BYTES: usize = 8 * 1024;
/// Deepest accepted nesting of `( … )`, `not ( … )` and `attr[ … ]`; bounds the recursion.
const MAX_DEPTH: usize = 64;
/// Most comparison terms (`attr op value`, `attr pr`) accepted in one filter.
const MAX_TERMS: usize = 200;
/// Longest excerpt of the input quoted back in an error message.
const MAX_EXCERPT_CHARS: usize = 32;

/// Words that cannot be a bare (unquoted) value, so that `userName eq and x` reports a
/// missing value instead of comparing `userName` with the string "and".
const KEYWORDS: [&str; 13] = [
    "and", "or", "not", "pr", "eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le",
];

/// An attribute path as written: optional schema URN, attribute name, optional sub-attribute
/// (RFC 7644 §3.10 `attrPath = [URI ":"] ATTRNAME *1subAttr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// Schema URN without the final `:`, e.g. `urn:ietf:params:scim:schemas:core:2.0:User`.
    pub urn: Option<String>,
    /// Attribute name exactly as written; case-insensitive resolution happens elsewhere.
    pub name: String,
    /// Sub-attribute after `.`, e.g. `givenName` in `name.givenName`.
    pub sub: Option<String>,
}

/// A binary comparison operator of RFC 7644 §3.4.2.2 (Table 3); `pr` is [`Filter::Present`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `eq`: equal.
    Eq,
    /// `ne`: not equal.
    Ne,
    /// `co`: contains.
    Co,
    /// `sw`: starts with.
    Sw,
    /// `ew`: ends with.
    Ew,
    /// `gt`: greater than.
    Gt,
    /// `ge`: greater than or equal to.
    Ge,
    /// `lt`: less than.
    Lt,
    /// `le`: less than or equal to.
    Le,
}

impl CompareOp {
    const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    /// Operators are case-insensitive (RFC 7644 §3.4.2.2: `USERNAME EQ "x"` is valid).
    fn from_keyword(word: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(word))
    }
}

/// A comparison value: a JSON literal (RFC 7644 §3.4.2.2 `compValue`).
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    /// A JSON string, or an unquoted bare word read leniently as a string.
    Str(String),
    /// A JSON number.
    Num(serde_json::Number),
    /// `true` or `false`, in any case.
    Bool(bool),
    /// `null`, in any case.
    Null,
}

/// A parsed filter (RFC 7644 §3.4.2.2). Precedence is `()`/`[]` > `not` > `and` > `or`,
/// and `and`/`or` are left-associative.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `attrPath op compValue`.
    Compare(AttrPath, CompareOp, CompValue),
    /// `attrPath pr`: the attribute has a non-empty value.
    Present(AttrPath),
    /// `emails[type eq "work" and value co "@x"]`: the inner filter applies to the sub-attributes
    /// of each value of the multi-valued attribute `AttrPath` (whose `sub` is None).
    ValuePath(AttrPath, Box<Filter>),
    /// `filter and filter`.
    And(Box<Filter>, Box<Filter>),
    /// `filter or filter`.
    Or(Box<Filter>, Box<Filter>),
    /// `not ( filter )`.
    Not(Box<Filter>),
}

/// A PATCH `path` (RFC 7644 §3.5.2): `attrPath`, or `attr[filter]` optionally followed by `.sub`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The targeted attribute; for `name.givenName` its `sub` is `givenName`.
    pub attr: AttrPath,
    /// The value filter of `attr[filter]`, selecting values of a multi-valued attribute.
    pub filter: Option<Filter>,
    /// The sub-attribute after `]`, as in `emails[type eq "work"].value`.
    pub sub: Option<String>,
}

/// Why a filter or path was rejected; maps to 400 `invalidFilter` or `invalidPath`
/// (RFC 7644 §3.12).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {position}")]
pub struct ParseError {
    /// 0-based offset, in chars (not bytes), of the offending input.
    pub position: usize,
    /// Short description, e.g. "unknown operator 'foo'" or "expected ')'".
    pub message: String,
}

/// Parses a SCIM filter (RFC 7644 §3.4.2.2), e.g. `userName eq "bjensen" and active eq true`.
///
/// Also accepts Entra's non-RFC `emails[type eq "work"].value eq "x"`, read as
/// `emails[type eq "work" and value eq "x"]`, and an unquoted bare word as a string value
/// (`externalId eq jyoung`, shown in Entra's older docs).
///
/// # Errors
///
/// A [`ParseError`] at the first offending character; also when the input is longer than
/// 8 KiB, nests deeper than 64 levels or has more than 200 comparison terms.
pub fn parse_filter(input: &str) -> Result<Filter, ParseError> {
    let mut parser = Parser::new(input, "filter")?;
    let filter = parser.or_expr()?;
    parser.skip_ws();
    if parser.peek().is_some() {
        return Err(error(parser.pos, "unexpected input after filter"));
    }
    Ok(filter)
}

/// Parses a PATCH `path` (RFC 7644 §3.5.2): `members`, `name.givenName`,
/// `members[value eq "2819c223"]`, `emails[type eq "work"].value`, or a URN-qualified
/// attribute such as `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`.
///
/// # Errors
///
/// A [`ParseError`] at the first offending character, with the same limits as
/// [`parse_filter`] for the value filter.
pub fn parse_path(input: &str) -> Result<PatchPath, ParseError> {
    let mut parser = Parser::new(input, "path")?;
    parser.skip_ws();
    let attr = parser.attr_path()?;
    let (filter, sub) = if parser.peek() == Some('[') {
        let filter = parser.value_filter(&attr)?;
        let sub = if parser.peek() == Some('.') {
            parser.pos += 1;
            Some(parser.sub_attr()?)
        } else {
            None
        };
        (Some(filter), sub)
    } else {
        (None, None)
    };
    parser.skip_ws();
    if parser.peek().is_some() {
        return Err(error(parser.pos, "unexpected input after path"));
    }
    Ok(PatchPath { attr, filter, sub })
}

fn error(position: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        position,
        message: message.into(),
    }
}

/// Spaces and tabs separate tokens (RFC 7644 §3.4.2.2 uses SP); CR and LF are also accepted
/// because a `.search` body may carry a filter that was written across lines. `+` is not
/// whitespace: URL decoding has already happened.
fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Characters that end a bare word (operator, keyword or unquoted value).
fn is_delim(c: char) -> bool {
    is_ws(c) || matches!(c, '(' | ')' | '[' | ']' | '"')
}

/// Characters of an attribute path token: URN, name and sub-attribute together.
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '$')
}

/// RFC 7643 §2.1 `nameChar = "-" / "_" / DIGIT / ALPHA`.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_')
}

/// JSON number grammar (RFC 8259 §6); anything else falls back to a bare-word string.
fn is_json_number(word: &str) -> bool {
    let bytes = word.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if bytes.get(i) == Some(&b'-') {
        i += 1;
    }
    match bytes.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == bytes.len()
}

/// Integers stay integers; anything else goes through Rust's correctly rounded `f64` parser,
/// because `serde_json` without its `float_roundtrip` feature may be off by one ulp, which
/// would break the `Display` round trip. `None` when the value is not a finite `f64`.
fn json_number(word: &str) -> Option<serde_json::Number> {
    if let Ok(n) = word.parse::<u64>() {
        return Some(n.into());
    }
    if let Ok(n) = word.parse::<i64>() {
        return Some(n.into());
    }
    word.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
}

/// Quotes input back in an error without echoing kilobytes of it.
fn excerpt(text: &str) -> String {
    if text.chars().count() > MAX_EXCERPT_CHARS {
        let head: String = text.chars().take(MAX_EXCERPT_CHARS).collect();
        format!("{head}…")
    } else {
        text.to_owned()
    }
}

/// Cursor over the input as chars, so that positions are char offsets.
struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
    terms: usize,
    in_value_path: bool,
}

impl Parser {
    fn new(input: &str, what: &str) -> Result<Self, ParseError> {
        if input.len() > MAX_INPUT_BYTES {
            let position = input
                .char_indices()
                .position(|(at, c)| at + c.len_utf8() > MAX_INPUT_BYTES)
                .unwrap_or(0);
            return Err(error(
                position,
                format!("{what} is longer than {MAX_INPUT_BYTES} bytes"),
            ));
        }
        Ok(Self {
            chars: input.chars().collect(),
            pos: 0,
            depth: 0,
            terms: 0,
            in_value_path: false,
        })
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn char_at(&self, at: usize) -> Option<char> {
        self.chars.get(at).copied()
    }

    fn text(&self, from: usize, to: usize) -> String {
        self.chars
            .get(from..to)
            .map(|chars| chars.iter().collect())
            .unwrap_or_default()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
    }

    /// End of the bare word starting at `from`.
    fn word_end(&self, from: usize) -> usize {
        let mut end = from;
        while self.char_at(end).is_some_and(|c| !is_delim(c)) {
            end += 1;
        }
        end
    }

    /// End of `keyword` (any case) if it stands as a whole word at `at`.
    fn keyword_at(&self, at: usize, keyword: &str) -> Option<usize> {
        let mut end = at;
        for expected in keyword.chars() {
            if !self.char_at(end)?.eq_ignore_ascii_case(&expected) {
                return None;
            }
            end += 1;
        }
        match self.char_at(end) {
            Some(c) if !is_delim(c) => None,
            _ => Some(end),
        }
    }

    /// Consumes optional whitespace and `keyword`, or nothing if the keyword is not next.
    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let mut at = self.pos;
        while self.char_at(at).is_some_and(is_ws) {
            at += 1;
        }
        match self.keyword_at(at, keyword) {
            Some(end) => {
                self.pos = end;
                true
            }
            None => false,
        }
    }

    fn enter(&mut self, at: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(error(at, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn close(&mut self, closing: char, message: &str) -> Result<(), ParseError> {
        self.skip_ws();
        if self.peek() != Some(closing) {
            return Err(error(self.pos, message));
        }
        self.pos += 1;
        Ok(())
    }

    /// `filter *("or" filter)`, left-associative; `or` binds loosest.
    fn or_expr(&mut self) -> Result<Filter, ParseError> {
        let mut left = self.and_expr()?;
        while self.eat_keyword("or") {
            let right = self.and_expr()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `unary *("and" unary)`, left-associative.
    fn and_expr(&mut self) -> Result<Filter, ParseError> {
        let mut left = self.unary()?;
        while self.eat_keyword("and") {
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `"(" filter ")"`, `"not" ["("] filter ")"` or an attribute expression.
    fn unary(&mut self) -> Result<Filter, ParseError> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            None | Some(')' | ']') => Err(error(start, "expected a filter")),
            Some('(') => {
                self.enter(start)?;
                self.pos += 1;
                let inner = self.or_expr()?;
                self.close(')', "expected ')'")?;
                self.leave();
                Ok(inner)
            }
            Some(_) => match self.keyword_at(start, "not") {
                // RFC 7644 §3.4.2.2 only has `not ( filter )`; both `not (x)` and `not(x)`
                // are seen in practice. `not` is therefore reserved as an attribute name.
                Some(end) => {
                    self.enter(start)?;
                    self.pos = end;
                    self.skip_ws();
                    if self.peek() != Some('(') {
                        return Err(error(self.pos, "expected '(' after 'not'"));
                    }
                    self.pos += 1;
                    let inner = self.or_expr()?;
                    self.close(')', "expected ')'")?;
                    self.leave();
                    Ok(Filter::Not(Box::new(inner)))
                }
                None => self.attr_expr(),
            },
        }
    }

    /// `attrPath op value`, `attrPath pr`, `attrPath[valFilter]`, or Entra's
    /// `attrPath[valFilter].sub op value`.
    fn attr_expr(&mut self) -> Result<Filter, ParseError> {
        let start = self.pos;
        let path = self.attr_path()?;
        if self.peek() != Some('[') {
            return self.comparison(path, start);
        }
        let inner = self.value_filter(&path)?;
        if self.peek() != Some('.') {
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        // Entra's uniqueness lookup `emails[type eq "work"].value eq "a@x.com"` is not RFC
        // syntax; it means `emails[type eq "work" and value eq "a@x.com"]` (docs/scim-clients.md,
        // the same rewrite SCIM-SDK ships).
        self.pos += 1;
        let sub_start = self.pos;
        let sub = self.sub_attr()?;
        let sub_path = AttrPath {
            urn: None,
            name: sub,
            sub: None,
        };
        let tail = self.comparison(sub_path, sub_start)?;
        Ok(Filter::ValuePath(
            path,
            Box::new(Filter::And(Box::new(inner), Box::new(tail))),
        ))
    }

    /// The operator and value after an attribute path that starts at `start`.
    fn comparison(&mut self, path: AttrPath, start: usize) -> Result<Filter, ParseError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(error(
                start,
                format!("more than {MAX_TERMS} comparison terms"),
            ));
        }
        self.skip_ws();
        let op_start = self.pos;
        let op_end = self.word_end(op_start);
        if op_end == op_start {
            return Err(error(op_start, "expected an operator"));
        }
        let word = self.text(op_start, op_end);
        self.pos = op_end;
        if word.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::from_keyword(&word) else {
            return Err(error(
                op_start,
                format!("unknown operator '{}'", excerpt(&word)),
            ));
        };
        self.skip_ws();
        let value = self.comp_value()?;
        Ok(Filter::Compare(path, op, value))
    }

    /// `"[" valFilter "]"` after `path`; the cursor is on the `[`.
    fn value_filter(&mut self, path: &AttrPath) -> Result<Filter, ParseError> {
        let open = self.pos;
        // RFC 7644 §3.4.2.2: a value filter selects values of a multi-valued attribute by
        // their sub-attributes, so there is nothing for a nested one or `a.b[…]` to select.
        if self.in_value_path {
            return Err(error(open, "nested value filter is not allowed"));
        }
        if path.sub.is_some() {
            return Err(error(
                open,
                "value filter on a sub-attribute is not allowed",
            ));
        }
        self.enter(open)?;
        self.pos += 1;
        self.in_value_path = true;
        let inner = self.or_expr()?;
        self.close(']', "expected ']'")?;
        self.in_value_path = false;
        self.leave();
        Ok(inner)
    }

    /// `[URN ":"] ATTRNAME ["." ATTRNAME]`, starting at the cursor.
    fn attr_path(&mut self) -> Result<AttrPath, ParseError> {
        let start = self.pos;
        let mut end = start;
        while self.char_at(end).is_some_and(is_path_char) {
            end += 1;
        }
        if end == start {
            return Err(error(start, "expected an attribute name"));
        }
        // Schema URNs contain dots (`…:core:2.0:User:name.givenName`), so the URN is
        // everything before the last ':' and only the rest is split on '.' (RFC 7644 §3.10).
        let last_colon = (start..end).rev().find(|&at| self.char_at(at) == Some(':'));
        let (urn, name_start) = match last_colon {
            Some(colon) => {
                self.check_urn(start, colon)?;
                (Some(self.text(start, colon)), colon + 1)
            }
            None => (None, start),
        };
        let name_end = self.attr_name(name_start, end)?;
        let sub = if name_end < end {
            let sub_start = name_end + 1;
            let sub_end = self.attr_name(sub_start, end)?;
            if sub_end < end {
                return Err(error(sub_end, "too many '.' in attribute path"));
            }
            Some(self.text(sub_start, sub_end))
        } else {
            None
        };
        self.pos = end;
        self.check_path_end()?;
        Ok(AttrPath {
            urn,
            name: self.text(name_start, name_end),
            sub,
        })
    }

    /// A lone sub-attribute name, as after `]` in `emails[type eq "work"].value`.
    fn sub_attr(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let mut end = start;
        while self.char_at(end).is_some_and(is_path_char) {
            end += 1;
        }
        let name_end = self.attr_name(start, end)?;
        if name_end < end {
            return Err(error(name_end, "too many '.' in attribute path"));
        }
        self.pos = end;
        self.check_path_end()?;
        Ok(self.text(start, end))
    }

    /// Checks `ATTRNAME = ALPHA *(nameChar)` (RFC 7643 §2.1, plus a leading `$` for `$ref`)
    /// from `from`, and returns where it stops: at a '.' or at `limit`.
    fn attr_name(&self, from: usize, limit: usize) -> Result<usize, ParseError> {
        let mut at = from;
        if at < limit && self.char_at(at) == Some('$') {
            at += 1;
        }
        match self.char_at(at) {
            Some(c) if at < limit && c.is_ascii_alphabetic() => at += 1,
            Some(c) if at < limit && c != '.' => {
                return Err(error(at, "attribute name must start with a letter"));
            }
            _ => return Err(error(at, "expected an attribute name")),
        }
        while at < limit {
            match self.char_at(at) {
                Some(c) if is_name_char(c) => at += 1,
                Some('.') | None => break,
                Some(c) => {
                    return Err(error(
                        at,
                        format!("invalid character {c:?} in attribute name"),
                    ));
                }
            }
        }
        Ok(at)
    }

    /// The part before the last ':' must look like a schema URN (RFC 7643 §3,
    /// `urn:ietf:params:scim:schemas:…`); a stray ':' is more likely a typo than a URI.
    fn check_urn(&self, start: usize, colon: usize) -> Result<(), ParseError> {
        let has_prefix = self
            .text(start, colon)
            .get(..4)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("urn:"));
        if !has_prefix {
            return Err(error(start, "expected a schema URN before ':'"));
        }
        let mut segment_len = 0;
        for at in start..colon {
            match self.char_at(at) {
                Some(':') if segment_len == 0 => {
                    return Err(error(at, "empty segment in schema URN"));
                }
                Some(':') => segment_len = 0,
                Some(c) if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') => {
                    segment_len += 1;
                }
                Some(c) => {
                    return Err(error(at, format!("invalid character {c:?} in schema URN")));
                }
                None => break,
            }
        }
        if segment_len == 0 {
            return Err(error(colon, "empty segment in schema URN"));
        }
        Ok(())
    }

    /// After an attribute path only whitespace, a bracket or a parenthesis may follow;
    /// this catches `userName@x.com` and `userName+eq+"x"` at the offending character.
    fn check_path_end(&self) -> Result<(), ParseError> {
        match self.peek() {
            None | Some('[' | ']' | ')') => Ok(()),
            Some(c) if is_ws(c) => Ok(()),
            Some(c) => Err(error(
                self.pos,
                format!("invalid character {c:?} in attribute path"),
            )),
        }
    }

    /// `compValue = false / null / true / number / string` (RFC 7644 §3.4.2.2), literals in
    /// any case, plus an unquoted bare word read as a string: Entra's older docs show
    /// `externalId eq jyoung` and unquoted GUIDs (docs/scim-clients.md).
    fn comp_value(&mut self) -> Result<CompValue, ParseError> {
        let start = self.pos;
        if self.peek() == Some('"') {
            return self.string().map(CompValue::Str);
        }
        let end = self.word_end(start);
        if end == start {
            return Err(error(start, "expected a value"));
        }
        let word = self.text(start, end);
        let lower = word.to_ascii_lowercase();
        let value = match lower.as_str() {
            "true" => CompValue::Bool(true),
            "false" => CompValue::Bool(false),
            "null" => CompValue::Null,
            keyword if KEYWORDS.contains(&keyword) => {
                return Err(error(start, "expected a value"));
            }
            _ if is_json_number(&word) => CompValue::Num(
                json_number(&word).ok_or_else(|| error(start, "number out of range"))?,
            ),
            _ => CompValue::Str(word),
        };
        self.pos = end;
        Ok(value)
    }

    /// A JSON string (RFC 8259 §7); the cursor is on the opening quote. Raw control
    /// characters are tolerated, since the input has already left JSON or a URL.
    fn string(&mut self) -> Result<String, ParseError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(error(open, "unterminated string"));
            };
            self.pos += 1;
            match c {
                '"' => return Ok(out),
                '\\' => out.push(self.escape(open)?),
                c => out.push(c),
            }
        }
    }

    /// One escape sequence; the cursor is just after the backslash.
    fn escape(&mut self, open: usize) -> Result<char, ParseError> {
        let backslash = self.pos.saturating_sub(1);
        let Some(c) = self.peek() else {
            return Err(error(open, "unterminated string"));
        };
        self.pos += 1;
        let decoded = match c {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => return self.unicode_escape(open, backslash),
            other => {
                return Err(error(
                    backslash,
                    format!("invalid escape '\\{}'", other.escape_debug()),
                ));
            }
        };
        Ok(decoded)
    }

    /// `\uXXXX`, combining a UTF-16 surrogate pair `\uD83D\uDE00` into one char.
    fn unicode_escape(&mut self, open: usize, backslash: usize) -> Result<char, ParseError> {
        let invalid = || error(backslash, "invalid unicode escape");
        let high = self.hex4(open, backslash)?;
        let code = match high {
            0xD800..=0xDBFF => {
                if self.peek() != Some('\\') || self.char_at(self.pos + 1) != Some('u') {
                    return Err(invalid());
                }
                self.pos += 2;
                let low = self.hex4(open, backslash)?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(invalid());
                }
                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(invalid()),
            _ => high,
        };
        char::from_u32(code).ok_or_else(invalid)
    }

    fn hex4(&mut self, open: usize, backslash: usize) -> Result<u32, ParseError> {
        let mut code = 0;
        for _ in 0..4 {
            let Some(c) = self.peek() else {
                return Err(error(open, "unterminated string"));
            };
            let digit = c
                .to_digit(16)
                .ok_or_else(|| error(backslash, "invalid unicode escape"))?;
            code = code * 16 + digit;
            self.pos += 1;
        }
        Ok(code)
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Always quoted, so a string that looks like a number or keyword stays a string.
            CompValue::Str(s) => {
                let quoted = serde_json::to_string(s).map_err(|_| fmt::Error)?;
                f.write_str(&quoted)
            }
            CompValue::Num(n) => write!(f, "{n}"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Null => f.write_str("null"),
        }
    }
}

/// Canonical form: lower-case operators, JSON-escaped strings, and parentheses only where
/// the tree shape needs them, so that `parse_filter(&f.to_string()) == Ok(f)`.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare(path, op, value) => write!(f, "{path} {op} {value}"),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::ValuePath(path, inner) => write!(f, "{path}[{inner}]"),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            // `and` binds tighter than `or`, and both associate to the left.
            Filter::And(left, right) => {
                write_operand(f, left, matches!(**left, Filter::Or(..)))?;
                f.write_str(" and ")?;
                write_operand(
                    f,
                    right,
                    matches!(**right, Filter::And(..) | Filter::Or(..)),
                )
            }
            Filter::Or(left, right) => {
                write_operand(f, left, false)?;
                f.write_str(" or ")?;
                write_operand(f, right, matches!(**right, Filter::Or(..)))
            }
        }
    }
}

fn write_operand(f: &mut fmt::Formatter<'_>, operand: &Filter, parens: bool) -> fmt::Result {
    if parens {
        write!(f, "({operand})")
    } else {
        write!(f, "{operand}")
    }
}

/// Prints `attr`, `attr[filter]` or `attr[filter].sub`; parses back with [`parse_path`].
impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

// Tests fail by panicking; the module-level deny is about hostile input, not assertions.
#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::FileFailurePersistence;

    const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn attr(name: &str) -> AttrPath {
        AttrPath {
            urn: None,
            name: name.into(),
            sub: None,
        }
    }

    fn sub(name: &str, sub: &str) -> AttrPath {
        AttrPath {
            sub: Some(sub.into()),
            ..attr(name)
        }
    }

    fn urn(urn: &str, name: &str, sub: Option<&str>) -> AttrPath {
        AttrPath {
            urn: Some(urn.into()),
            name: name.into(),
            sub: sub.map(Into::into),
        }
    }

    fn s(value: &str) -> CompValue {
        CompValue::Str(value.into())
    }

    fn num(value: i64) -> CompValue {
        CompValue::Num(value.into())
    }

    fn cmp(path: AttrPath, op: CompareOp, value: CompValue) -> Filter {
        Filter::Compare(path, op, value)
    }

    fn eq(name: &str, value: &str) -> Filter {
        cmp(attr(name), CompareOp::Eq, s(value))
    }

    fn pr(name: &str) -> Filter {
        Filter::Present(attr(name))
    }

    fn and(left: Filter, right: Filter) -> Filter {
        Filter::And(Box::new(left), Box::new(right))
    }

    fn or(left: Filter, right: Filter) -> Filter {
        Filter::Or(Box::new(left), Box::new(right))
    }

    fn not(inner: Filter) -> Filter {
        Filter::Not(Box::new(inner))
    }

    fn value_path(path: AttrPath, inner: Filter) -> Filter {
        Filter::ValuePath(path, Box::new(inner))
    }

    fn parse(input: &str) -> Filter {
        match parse_filter(input) {
            Ok(filter) => filter,
            Err(e) => panic!("{input:?} failed: {e}"),
        }
    }

    #[track_caller]
    fn assert_error(input: &str, position: usize, message: &str) {
        assert_eq!(
            parse_filter(input),
            Err(error(position, message)),
            "input {input:?}"
        );
    }

    #[track_caller]
    fn assert_path_error(input: &str, position: usize, message: &str) {
        assert_eq!(
            parse_path(input),
            Err(error(position, message)),
            "input {input:?}"
        );
    }

    #[test]
    fn every_operator_in_any_case() {
        for op in CompareOp::ALL {
            for word in [
                op.as_str().to_owned(),
                op.as_str().to_ascii_uppercase(),
                format!(
                    "{}{}",
                    &op.as_str()[..1].to_ascii_uppercase(),
                    &op.as_str()[1..]
                ),
            ] {
                let input = format!("userName {word} \"x\"");
                assert_eq!(parse(&input), cmp(attr("userName"), op, s("x")), "{input}");
            }
            assert_eq!(op.to_string(), op.as_str());
        }
        assert_eq!(parse("title pr"), pr("title"));
        assert_eq!(parse("title PR"), pr("title"));
    }

    #[test]
    fn keywords_are_case_insensitive_and_names_kept_as_written() {
        assert_eq!(parse("USERNAME EQ \"x\""), eq("USERNAME", "x"));
        assert_eq!(
            parse("UserName Eq \"x\" AND Active pR OR NOT (DisplayName Co \"y\")"),
            or(
                and(eq("UserName", "x"), pr("Active")),
                not(cmp(attr("DisplayName"), CompareOp::Co, s("y")))
            )
        );
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let (a, b, c) = (
            cmp(attr("a"), CompareOp::Eq, num(1)),
            cmp(attr("b"), CompareOp::Eq, num(2)),
            cmp(attr("c"), CompareOp::Eq, num(3)),
        );
        assert_eq!(
            parse("a eq 1 or b eq 2 and c eq 3"),
            or(a.clone(), and(b.clone(), c.clone()))
        );
        assert_eq!(
            parse("a eq 1 and b eq 2 or c eq 3"),
            or(and(a.clone(), b.clone()), c.clone())
        );
        assert_eq!(parse("(a eq 1 or b eq 2) and c eq 3"), and(or(a, b), c));
    }

    #[test]
    fn and_or_are_left_associative() {
        assert_eq!(
            parse("a pr and b pr and c pr"),
            and(and(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(
            parse("a pr or b pr or c pr"),
            or(or(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(
            parse("a pr and (b pr and c pr)"),
            and(pr("a"), and(pr("b"), pr("c")))
        );
    }

    #[test]
    fn parentheses_and_whitespace() {
        assert_eq!(parse("((a pr))"), pr("a"));
        assert_eq!(parse("  \t( a pr )\t "), pr("a"));
        assert_eq!(
            parse("a pr\tand\t\tb   eq    \"x\""),
            and(pr("a"), eq("b", "x"))
        );
        assert_eq!(parse("(a pr)or(b pr)"), or(pr("a"), pr("b")));
        assert_eq!(parse("userName eq\"x\""), eq("userName", "x"));
    }

    #[test]
    fn not_with_and_without_space() {
        assert_eq!(parse("not (a pr)"), not(pr("a")));
        assert_eq!(parse("not(a pr)"), not(pr("a")));
        assert_eq!(parse("NOT\t(a pr or b pr)"), not(or(pr("a"), pr("b"))));
        // `not` binds tighter than `and`.
        assert_eq!(parse("not (a pr) and b pr"), and(not(pr("a")), pr("b")));
        assert_eq!(parse("not (not (a pr))"), not(not(pr("a"))));
        // `not` only starts a negation as a whole word.
        assert_eq!(parse("notes pr"), pr("notes"));
        assert_eq!(parse("not.x pr"), Filter::Present(sub("not", "x")));
    }

    #[test]
    fn value_path_filters() {
        assert_eq!(
            parse("emails[type eq \"work\" and value co \"@x\"]"),
            value_path(
                attr("emails"),
                and(
                    eq("type", "work"),
                    cmp(attr("value"), CompareOp::Co, s("@x"))
                )
            )
        );
        assert_eq!(
            parse("emails[type eq \"work\"] and active eq true"),
            and(
                value_path(attr("emails"), eq("type", "work")),
                cmp(attr("active"), CompareOp::Eq, CompValue::Bool(true))
            )
        );
        assert_eq!(
            parse("emails[ not (type eq \"work\") ]"),
            value_path(attr("emails"), not(eq("type", "work")))
        );
        assert_eq!(
            parse(&format!("{CORE_USER}:emails[primary eq true]")),
            value_path(
                urn(CORE_USER, "emails", None),
                cmp(attr("primary"), CompareOp::Eq, CompValue::Bool(true))
            )
        );
        assert_eq!(
            parse("members[$ref eq \"https://x/Users/1\"]"),
            value_path(attr("members"), eq("$ref", "https://x/Users/1"))
        );
    }

    #[test]
    fn entra_value_path_with_trailing_comparison() {
        assert_eq!(
            parse("emails[type eq \"work\"].value eq \"a@x.com\""),
            value_path(
                attr("emails"),
                and(eq("type", "work"), eq("value", "a@x.com"))
            )
        );
        assert_eq!(
            parse("emails[type eq \"work\"].value pr"),
            value_path(attr("emails"), and(eq("type", "work"), pr("value")))
        );
        // The bracket is a complete filter, so an `or` inside stays grouped.
        let parsed = parse("emails[type eq \"a\" or type eq \"b\"].value eq \"x\" and active pr");
        assert_eq!(
            parsed,
            and(
                value_path(
                    attr("emails"),
                    and(or(eq("type", "a"), eq("type", "b")), eq("value", "x"))
                ),
                pr("active")
            )
        );
        assert_eq!(
            parsed.to_string(),
            "emails[(type eq \"a\" or type eq \"b\") and value eq \"x\"] and active pr"
        );
    }

    #[test]
    fn urn_qualified_paths() {
        assert_eq!(
            parse(&format!("{CORE_USER}:userName eq \"bjensen\"")),
            cmp(
                urn(CORE_USER, "userName", None),
                CompareOp::Eq,
                s("bjensen")
            )
        );
        assert_eq!(
            parse(&format!("{CORE_USER}:name.familyName sw \"J\"")),
            cmp(
                urn(CORE_USER, "name", Some("familyName")),
                CompareOp::Sw,
                s("J")
            )
        );
        assert_eq!(
            parse(&format!("{ENTERPRISE}:manager.value eq \"26118915\"")),
            cmp(
                urn(ENTERPRISE, "manager", Some("value")),
                CompareOp::Eq,
                s("26118915")
            )
        );
        assert_eq!(
            parse(&format!("{ENTERPRISE}:employeeNumber pr")),
            Filter::Present(urn(ENTERPRISE, "employeeNumber", None))
        );
        assert_eq!(
            parse("meta.lastModified gt \"2026-01-01T00:00:00Z\""),
            cmp(
                sub("meta", "lastModified"),
                CompareOp::Gt,
                s("2026-01-01T00:00:00Z")
            )
        );
    }

    #[test]
    fn json_string_escapes() {
        assert_eq!(
            parse(r#"a eq "q\"b\\s\/\b\f\n\r\t\u00e9\uD83D\uDE00""#),
            eq("a", "q\"b\\s/\u{8}\u{c}\n\r\té😀")
        );
        assert_eq!(parse("a eq \"café 😀\""), eq("a", "café 😀"));
        assert_eq!(parse("a eq \"\""), eq("a", ""));
        assert_eq!(parse("a eq \"and ) ] (\""), eq("a", "and ) ] ("));
    }

    #[test]
    fn literals_and_numbers() {
        let value = |input: &str| match parse(&format!("a eq {input}")) {
            Filter::Compare(_, _, value) => value,
            other => panic!("{other:?}"),
        };
        assert_eq!(value("true"), CompValue::Bool(true));
        assert_eq!(value("FALSE"), CompValue::Bool(false));
        assert_eq!(value("Null"), CompValue::Null);
        assert_eq!(value("\"true\""), s("true"));
        assert_eq!(value("42"), num(42));
        assert_eq!(value("-7"), num(-7));
        assert_eq!(value("0"), num(0));
        for float in ["1.5", "-0.25", "1e3", "2.5E-3", "1e+2"] {
            let expected: serde_json::Number = float.parse().unwrap();
            assert_eq!(value(float), CompValue::Num(expected), "{float}");
        }
        assert_eq!(
            value("18446744073709551615"),
            CompValue::Num(u64::MAX.into())
        );
    }

    #[test]
    fn bare_words_are_lenient_strings() {
        assert_eq!(parse("externalId eq jyoung"), eq("externalId", "jyoung"));
        assert_eq!(
            parse(concat!(
                "id eq 54D382A4-4C48-4C80-91A6-34A7F0C9B9D5",
                " and manager eq 2819c223-7f76-453a-919d-413861904646"
            )),
            and(
                eq("id", "54D382A4-4C48-4C80-91A6-34A7F0C9B9D5"),
                eq("manager", "2819c223-7f76-453a-919d-413861904646")
            )
        );
        // Not JSON numbers, so strings.
        assert_eq!(parse("a eq 01"), eq("a", "01"));
        assert_eq!(parse("a eq 2819c223"), eq("a", "2819c223"));
        assert_eq!(parse("a eq 1."), eq("a", "1."));
        // A bare word stops at a bracket.
        assert_eq!(parse("(id eq abc)"), eq("id", "abc"));
        assert_eq!(
            parse("members[value eq abc]"),
            value_path(attr("members"), eq("value", "abc"))
        );
    }

    #[test]
    fn syntax_errors_carry_position_and_message() {
        assert_error("", 0, "expected a filter");
        assert_error("   ", 3, "expected a filter");
        assert_error("userName", 8, "expected an operator");
        assert_error("userName \"x\"", 9, "expected an operator");
        assert_error("userName foo \"x\"", 9, "unknown operator 'foo'");
        assert_error("userName equals \"x\"", 9, "unknown operator 'equals'");
        assert_error("userName eq", 11, "expected a value");
        assert_error("userName eq )", 12, "expected a value");
        assert_error("userName eq and b pr", 12, "expected a value");
        assert_error("userName eq \"abc", 12, "unterminated string");
        assert_error("userName eq \"abc\\", 12, "unterminated string");
        assert_error("userName eq \"a\\qb\"", 14, "invalid escape '\\q'");
        assert_error("userName eq \"\\u12\"", 13, "invalid unicode escape");
        assert_error("userName eq \"\\uD800\"", 13, "invalid unicode escape");
        assert_error("userName eq \"\\uDE00\"", 13, "invalid unicode escape");
        assert_error(
            "userName eq \"\\uD800\\u0041\"",
            13,
            "invalid unicode escape",
        );
        assert_error("a eq 1e999", 5, "number out of range");
        assert_error("(userName pr", 12, "expected ')'");
        assert_error("(a pr b pr)", 6, "expected ')'");
        assert_error("userName pr)", 11, "unexpected input after filter");
        assert_error(
            "userName eq \"x\" userName pr",
            16,
            "unexpected input after filter",
        );
        assert_error("a pr and", 8, "expected a filter");
        assert_error("a pr or )", 8, "expected a filter");
        assert_error("()", 1, "expected a filter");
        assert_error("not userName pr", 4, "expected '(' after 'not'");
        assert_error("not", 3, "expected '(' after 'not'");
        assert_error("emails[type eq \"work\"", 21, "expected ']'");
        assert_error("emails[type eq \"work\")", 21, "expected ']'");
        assert_error("emails[]", 7, "expected a filter");
        assert_error(
            "emails[type[value pr]]",
            11,
            "nested value filter is not allowed",
        );
        assert_error(
            "name.givenName[value pr]",
            14,
            "value filter on a sub-attribute is not allowed",
        );
        assert_error("emails[type pr].value", 21, "expected an operator");
        assert_error("emails[type pr].", 16, "expected an attribute name");
        assert_error(
            "emails[type pr].value.x eq 1",
            21,
            "too many '.' in attribute path",
        );
        assert_error("emails[type pr] eq 1", 16, "unexpected input after filter");
        assert_error("\"x\" eq \"y\"", 0, "expected an attribute name");
        assert_error("1abc pr", 0, "attribute name must start with a letter");
        assert_error("-a pr", 0, "attribute name must start with a letter");
        assert_error("a.b.c pr", 3, "too many '.' in attribute path");
        assert_error("name. pr", 5, "expected an attribute name");
        assert_error("a$b pr", 1, "invalid character '$' in attribute name");
        assert_error("foo:bar pr", 0, "expected a schema URN before ':'");
        assert_error("urn:bar pr", 0, "expected a schema URN before ':'");
        assert_error("urn::x pr", 4, "empty segment in schema URN");
        assert_error("urn:a:b: pr", 8, "expected an attribute name");
        assert_error("urn:a$:b pr", 5, "invalid character '$' in schema URN");
        // Okta's spec test sends this malformed filter and expects 400.
        assert_error(
            "RUNSCOPE123@example.com",
            11,
            "invalid character '@' in attribute path",
        );
        // URL decoding happened before us: '+' is not a space.
        assert_error(
            "userName+eq+\"x\"",
            8,
            "invalid character '+' in attribute path",
        );
        let long_operator = format!("a {} 1", "x".repeat(40));
        assert_error(
            &long_operator,
            2,
            &format!("unknown operator '{}…'", "x".repeat(32)),
        );
    }

    #[test]
    fn error_positions_count_chars_not_bytes() {
        assert_error("a eq \"é\" é", 9, "unexpected input after filter");
    }

    #[test]
    fn parse_error_display() {
        let e = parse_filter("(a pr").unwrap_err();
        assert_eq!(e.to_string(), "expected ')' at position 5");
    }

    #[test]
    fn nesting_limit() {
        let ok = format!("{}a pr{}", "(".repeat(64), ")".repeat(64));
        assert_eq!(parse(&ok), pr("a"));
        let deep = format!("{}a pr{}", "(".repeat(65), ")".repeat(65));
        assert_error(&deep, 64, "nesting deeper than 64 levels");
        // Far deeper than any stack allows, yet below the size limit.
        assert_error(&"(".repeat(8000), 64, "nesting deeper than 64 levels");
        assert_error(
            &"not (".repeat(100),
            64 * 5,
            "nesting deeper than 64 levels",
        );
        // Brackets count too.
        let brackets_ok = format!("{}emails[a pr]{}", "(".repeat(63), ")".repeat(63));
        assert!(parse_filter(&brackets_ok).is_ok());
        let brackets = format!("{}emails[a pr]{}", "(".repeat(64), ")".repeat(64));
        assert_error(&brackets, 70, "nesting deeper than 64 levels");
        // 10,000 parentheses: rejected (by size) without recursing.
        let huge = parse_filter(&"(".repeat(10_000)).unwrap_err();
        assert_eq!(huge.message, "filter is longer than 8192 bytes");
    }

    #[test]
    fn size_limit() {
        let fits = format!("a eq \"{}\"", "x".repeat(MAX_INPUT_BYTES - 7));
        assert_eq!(fits.len(), MAX_INPUT_BYTES);
        assert!(parse_filter(&fits).is_ok());
        let too_long = format!("a eq \"{}\"", "x".repeat(MAX_INPUT_BYTES));
        assert_error(&too_long, 8192, "filter is longer than 8192 bytes");
        // Two bytes per char: the 4097th char is the first that does not fit.
        assert_error(&"é".repeat(5000), 4096, "filter is longer than 8192 bytes");
        assert_path_error(&"a".repeat(9000), 8192, "path is longer than 8192 bytes");
    }

    #[test]
    fn term_limit() {
        let terms = |n: usize| {
            (0..n)
                .map(|i| format!("a{i} pr"))
                .collect::<Vec<_>>()
                .join(" or ")
        };
        assert!(parse_filter(&terms(200)).is_ok());
        let too_many = terms(201);
        let position = too_many.find("a200").unwrap();
        assert_error(&too_many, position, "more than 200 comparison terms");
        // Terms inside value filters and Entra's trailing comparison count as well.
        let bracketed = (0..101)
            .map(|i| format!("emails[a{i} pr].value eq 1"))
            .collect::<Vec<_>>()
            .join(" and ");
        assert_eq!(
            parse_filter(&bracketed).unwrap_err().message,
            "more than 200 comparison terms"
        );
    }

    #[test]
    fn display_is_canonical() {
        let canonical = |input: &str| parse(input).to_string();
        assert_eq!(canonical("USERNAME EQ \"x\""), "USERNAME eq \"x\"");
        assert_eq!(canonical("a PR"), "a pr");
        assert_eq!(canonical("((a pr))"), "a pr");
        assert_eq!(canonical("a pr or b pr and c pr"), "a pr or b pr and c pr");
        assert_eq!(
            canonical("(a pr or b pr) and c pr"),
            "(a pr or b pr) and c pr"
        );
        assert_eq!(
            canonical("a pr and (b pr or c pr)"),
            "a pr and (b pr or c pr)"
        );
        assert_eq!(
            canonical("a pr or (b pr or c pr)"),
            "a pr or (b pr or c pr)"
        );
        assert_eq!(
            canonical("a pr and (b pr and c pr)"),
            "a pr and (b pr and c pr)"
        );
        assert_eq!(
            canonical("(a pr and b pr) and c pr"),
            "a pr and b pr and c pr"
        );
        assert_eq!(canonical("NOT(a pr)"), "not (a pr)");
        assert_eq!(canonical("a eq jyoung"), "a eq \"jyoung\"");
        assert_eq!(canonical("a eq TRUE"), "a eq true");
        assert_eq!(canonical("a eq NULL"), "a eq null");
        assert_eq!(canonical("a eq -12"), "a eq -12");
        assert_eq!(canonical("a eq 1.5"), "a eq 1.5");
        assert_eq!(canonical("a eq \"\\u0041\\n\\/\""), "a eq \"A\\n/\"");
        assert_eq!(
            canonical("emails[type eq \"work\"].value eq \"a@x.com\""),
            "emails[type eq \"work\" and value eq \"a@x.com\"]"
        );
        assert_eq!(
            canonical(&format!("{ENTERPRISE}:manager.value eq \"1\"")),
            format!("{ENTERPRISE}:manager.value eq \"1\"")
        );
    }

    #[test]
    fn patch_paths() {
        let path = |input: &str| parse_path(input).unwrap();
        let plain = |attr: AttrPath| PatchPath {
            attr,
            filter: None,
            sub: None,
        };
        assert_eq!(path("members"), plain(attr("members")));
        assert_eq!(path(" members "), plain(attr("members")));
        assert_eq!(path("name.givenName"), plain(sub("name", "givenName")));
        assert_eq!(path("members.$ref"), plain(sub("members", "$ref")));
        assert_eq!(
            path("emails[type eq \"work\"].value"),
            PatchPath {
                attr: attr("emails"),
                filter: Some(eq("type", "work")),
                sub: Some("value".into()),
            }
        );
        assert_eq!(
            path("members[value eq \"2819c223\"]"),
            PatchPath {
                attr: attr("members"),
                filter: Some(eq("value", "2819c223")),
                sub: None,
            }
        );
        assert_eq!(
            path("addresses[type eq \"work\"].$ref"),
            PatchPath {
                attr: attr("addresses"),
                filter: Some(eq("type", "work")),
                sub: Some("$ref".into()),
            }
        );
        assert_eq!(
            path(&format!("{ENTERPRISE}:department")),
            plain(urn(ENTERPRISE, "department", None))
        );
        assert_eq!(
            path(&format!("{ENTERPRISE}:manager.value")),
            plain(urn(ENTERPRISE, "manager", Some("value")))
        );
        assert_eq!(
            path(&format!("{CORE_USER}:emails[primary eq true].value")),
            PatchPath {
                attr: urn(CORE_USER, "emails", None),
                filter: Some(cmp(attr("primary"), CompareOp::Eq, CompValue::Bool(true))),
                sub: Some("value".into()),
            }
        );
        for input in [
            "members",
            "name.givenName",
            "emails[type eq \"work\"].value",
            "members[value eq \"2819c223\"]",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        ] {
            assert_eq!(path(input).to_string(), input);
        }
    }

    #[test]
    fn patch_path_errors() {
        assert_path_error("", 0, "expected an attribute name");
        assert_path_error("  ", 2, "expected an attribute name");
        assert_path_error("members extra", 8, "unexpected input after path");
        assert_path_error("members[value eq \"x\"", 20, "expected ']'");
        assert_path_error("members[]", 8, "expected a filter");
        assert_path_error(
            "emails[type eq \"work\"].",
            23,
            "expected an attribute name",
        );
        assert_path_error(
            "emails[type eq \"work\"].value.x",
            28,
            "too many '.' in attribute path",
        );
        assert_path_error(
            "emails[type eq \"work\"] .value",
            23,
            "unexpected input after path",
        );
        assert_path_error(
            "emails[type[value pr]]",
            11,
            "nested value filter is not allowed",
        );
        assert_path_error(
            "name.givenName[value pr]",
            14,
            "value filter on a sub-attribute is not allowed",
        );
        assert_path_error("members)", 7, "unexpected input after path");
        assert_path_error("members@x", 7, "invalid character '@' in attribute path");
    }

    fn proptest_config() -> ProptestConfig {
        ProptestConfig {
            // Regressions go next to this file, not into a new top-level directory.
            failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
                "proptest-regressions",
            ))),
            ..ProptestConfig::default()
        }
    }

    fn arb_urn() -> impl Strategy<Value = Option<String>> {
        prop::option::of(
            prop::sample::select(vec![
                CORE_USER,
                ENTERPRISE,
                "URN:IETF:params:scim:schemas:core:2.0:Group",
            ])
            .prop_map(String::from),
        )
    }

    /// Includes keywords other than `not` as names: they are legal attribute names.
    fn arb_name() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "userName",
            "displayName",
            "emails",
            "name",
            "$ref",
            "x-Y_9",
            "and",
            "or",
            "pr",
            "eq",
            "true",
        ])
        .prop_map(String::from)
    }

    fn arb_attr_path() -> impl Strategy<Value = AttrPath> {
        (arb_urn(), arb_name(), prop::option::of(arb_name()))
            .prop_map(|(urn, name, sub)| AttrPath { urn, name, sub })
    }

    fn arb_multi_valued_path() -> impl Strategy<Value = AttrPath> {
        (arb_urn(), arb_name()).prop_map(|(urn, name)| AttrPath {
            urn,
            name,
            sub: None,
        })
    }

    fn arb_op() -> impl Strategy<Value = CompareOp> {
        prop::sample::select(CompareOp::ALL.to_vec())
    }

    fn arb_value() -> impl Strategy<Value = CompValue> {
        prop_oneof![
            any::<String>().prop_map(CompValue::Str),
            r#"[\\"/ a-zé😀\t\n\x00-\x1f]{0,12}"#.prop_map(CompValue::Str),
            prop::sample::select(vec!["true", "null", "and", "1", "-0", "x y"])
                .prop_map(|word| CompValue::Str(word.into())),
            any::<i64>().prop_map(|n| CompValue::Num(n.into())),
            any::<u64>().prop_map(|n| CompValue::Num(n.into())),
            any::<f64>().prop_filter_map("finite", |x| {
                serde_json::Number::from_f64(x).map(CompValue::Num)
            }),
            any::<bool>().prop_map(CompValue::Bool),
            Just(CompValue::Null),
        ]
    }

    fn arb_leaf() -> impl Strategy<Value = Filter> {
        prop_oneof![
            (arb_attr_path(), arb_op(), arb_value())
                .prop_map(|(path, op, value)| Filter::Compare(path, op, value)),
            arb_attr_path().prop_map(Filter::Present),
        ]
    }

    /// Filters allowed inside `[...]`: no nested value path.
    fn arb_value_filter() -> impl Strategy<Value = Filter> {
        arb_leaf().prop_recursive(2, 8, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(l, r)| and(l, r)),
                (inner.clone(), inner.clone()).prop_map(|(l, r)| or(l, r)),
                inner.prop_map(not),
            ]
        })
    }

    fn arb_filter() -> impl Strategy<Value = Filter> {
        arb_leaf().prop_recursive(4, 32, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(l, r)| and(l, r)),
                (inner.clone(), inner.clone()).prop_map(|(l, r)| or(l, r)),
                inner.prop_map(not),
                (arb_multi_valued_path(), arb_value_filter())
                    .prop_map(|(path, inner)| value_path(path, inner)),
            ]
        })
    }

    fn arb_patch_path() -> impl Strategy<Value = PatchPath> {
        prop_oneof![
            arb_attr_path().prop_map(|attr| PatchPath {
                attr,
                filter: None,
                sub: None,
            }),
            (
                arb_multi_valued_path(),
                arb_value_filter(),
                prop::option::of(arb_name())
            )
                .prop_map(|(attr, filter, sub)| PatchPath {
                    attr,
                    filter: Some(filter),
                    sub,
                }),
        ]
    }

    /// Strings built from the filter's own tokens, so the parser gets past the first error.
    fn arb_filter_like() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                "a", "userName", "emails", "value", ".", ":", "urn:", "x:", "$", "[", "]", "(",
                ")", "\"", "\\", "\\u", "d83d", "\\n", " ", "  ", "\t", "eq", "EQ", "co", "pr",
                "and", "or", "not", "not(", "1", "-", "e", "1.5", "true", "null", "é", "+", "@",
            ]),
            0..48,
        )
        .prop_map(|tokens| tokens.concat())
    }

    proptest! {
        #![proptest_config(proptest_config())]

        #[test]
        fn display_round_trips(filter in arb_filter()) {
            let printed = filter.to_string();
            prop_assert_eq!(parse_filter(&printed), Ok(filter), "printed: {}", printed);
        }

        #[test]
        fn patch_path_display_round_trips(path in arb_patch_path()) {
            let printed = path.to_string();
            prop_assert_eq!(parse_path(&printed), Ok(path), "printed: {}", printed);
        }

        #[test]
        fn arbitrary_strings_never_panic(input in any::<String>()) {
            let chars = input.chars().count();
            if let Err(e) = parse_filter(&input) {
                prop_assert!(e.position <= chars);
            }
            if let Err(e) = parse_path(&input) {
                prop_assert!(e.position <= chars);
            }
        }

        #[test]
        fn filter_like_strings_never_panic_and_reparse(input in arb_filter_like()) {
            let chars = input.chars().count();
            match parse_filter(&input) {
                Ok(filter) => {
                    let printed = filter.to_string();
                    prop_assert_eq!(parse_filter(&printed), Ok(filter), "printed: {}", printed);
                }
                Err(e) => prop_assert!(e.position <= chars),
            }
            match parse_path(&input) {
                Ok(path) => {
                    let printed = path.to_string();
                    prop_assert_eq!(parse_path(&printed), Ok(path), "printed: {}", printed);
                }
                Err(e) => prop_assert!(e.position <= chars),
            }
        }
    }
}
