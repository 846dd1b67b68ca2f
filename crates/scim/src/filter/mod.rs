//! SCIM filters (RFC 7644 §3.4.2.2): the syntax tree, its parser and printer, and an in-memory
//! evaluator. The SQL translation for list queries lives with the store.
//!
//! We own the parser rather than use `scim_v2`'s: we need exact `scimType` errors with positions,
//! a depth limit, a printer that round-trips, and a tree the SQL translator can walk.

mod eval;
mod parse;

pub use eval::{matches, matches_within, validate, validate_within};
pub use parse::{parse, parse_path};

use std::fmt;

/// `[URI ":"] name ["." sub]`, e.g. `name.familyName` or
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The schema URN, when given.
    pub uri: Option<String>,
    /// The attribute name.
    pub name: String,
    /// The sub-attribute name.
    pub sub: Option<String>,
}

impl AttrPath {
    /// A path to a top-level attribute.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            uri: None,
            name: name.into(),
            sub: None,
        }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(uri) = &self.uri {
            write!(f, "{uri}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// equal
    Eq,
    /// not equal
    Ne,
    /// contains
    Co,
    /// starts with
    Sw,
    /// ends with
    Ew,
    /// greater than
    Gt,
    /// greater than or equal
    Ge,
    /// less than
    Lt,
    /// less than or equal
    Le,
}

impl CompareOp {
    /// Parses an operator keyword, ignoring case.
    pub fn from_keyword(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            _ => return None,
        })
    }

    /// The keyword.
    pub fn as_str(&self) -> &'static str {
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

    /// Whether the operator orders values (gt, ge, lt, le).
    pub fn is_ordering(&self) -> bool {
        matches!(
            self,
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
        )
    }

    /// Whether the operator matches substrings (co, sw, ew).
    pub fn is_substring(&self) -> bool {
        matches!(self, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
    }
}

/// A literal on the right of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A JSON number.
    Number(serde_json::Number),
    /// A JSON string (also used for dateTime values).
    Str(String),
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::Str(s) => {
                // JSON string syntax; serialising a &str cannot fail.
                f.write_str(&serde_json::to_string(s).unwrap_or_default())
            }
        }
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `path op value`
    Compare(AttrPath, CompareOp, CompValue),
    /// `path pr`
    Present(AttrPath),
    /// `a and b`
    And(Box<Filter>, Box<Filter>),
    /// `a or b`
    Or(Box<Filter>, Box<Filter>),
    /// `not (a)`
    Not(Box<Filter>),
    /// `path[inner]`: some value of the multi-valued `path` matches `inner`, whose paths are
    /// relative to that value.
    ValuePath(AttrPath, Box<Filter>),
}

impl Filter {
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare(p, op, v) => write!(f, "{p} {} {v}", op.as_str()),
            Filter::Present(p) => write!(f, "{p} pr"),
            Filter::And(l, r) => {
                paren_if(f, l, matches!(**l, Filter::Or(..)))?;
                f.write_str(" and ")?;
                paren_if(f, r, matches!(**r, Filter::Or(..) | Filter::And(..)))
            }
            Filter::Or(l, r) => {
                l.write(f)?;
                f.write_str(" or ")?;
                paren_if(f, r, matches!(**r, Filter::Or(..)))
            }
            Filter::Not(inner) => {
                f.write_str("not (")?;
                inner.write(f)?;
                f.write_str(")")
            }
            Filter::ValuePath(p, inner) => {
                write!(f, "{p}[")?;
                inner.write(f)?;
                f.write_str("]")
            }
        }
    }
}

fn paren_if(f: &mut fmt::Formatter<'_>, filter: &Filter, paren: bool) -> fmt::Result {
    if paren {
        f.write_str("(")?;
        filter.write(f)?;
        f.write_str(")")
    } else {
        filter.write(f)
    }
}

/// Prints the filter in canonical syntax; `parse` of the output gives the same tree.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f)
    }
}

/// A PATCH `path` (RFC 7644 §3.5.2): an attribute path, or a value path with an optional
/// sub-attribute, e.g. `emails[type eq "work"].value`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute (with URI and, for plain paths, sub-attribute).
    pub attr: AttrPath,
    /// The value filter, for `attr[filter]` paths.
    pub filter: Option<Filter>,
    /// The sub-attribute after a value filter (`...].value`).
    pub sub_after_filter: Option<String>,
}
