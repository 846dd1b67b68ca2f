//! SCIM filters and sort orders translated to SQL for list queries, so a filtered list never
//! loads a table into memory. The translation mirrors `scim::filter::matches` (the tests compare
//! the two on generated data on both backends).
//!
//! Leaves under an odd number of NOTs are wrapped in `COALESCE(.., FALSE)` so SQL's three-valued
//! logic cannot make `not (x)` exclude rows where `x` is absent, which the evaluator includes.
//! Elsewhere a NULL leaf already acts as FALSE (AND and OR are monotone), and a bare comparison
//! lets the planner use an index. Attribute names
//! and JSON paths in the SQL come from the static schema, never from the request; every value
//! from the request is a bound parameter.
//!
//! Known difference: SQLite's `lower()` folds only ASCII, so case-insensitive comparisons of
//! non-ASCII letters on attributes other than `userName` (which has a Rust-folded key column)
//! can differ from the evaluator on SQLite. PostgreSQL folds Unicode.

use crate::domain::Timestamp;
use scimdesk_scim::error::{ScimError, ScimResult};
use scimdesk_scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use scimdesk_scim::schema::{AttrDef, AttrType, GROUP, ResourceSchema, USER};
use uuid::Uuid;

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    /// Text.
    Str(String),
    /// A UUID.
    Uuid(Uuid),
    /// A boolean.
    Bool(bool),
    /// A number.
    F64(f64),
    /// A time.
    Time(Timestamp),
}

/// Which SQL to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL (JSONB operators).
    Postgres,
    /// SQLite (json_extract / json_each).
    Sqlite,
}

/// Which table is queried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimTable {
    /// `users`
    Users,
    /// `groups`
    Groups,
}

impl ScimTable {
    fn schema(&self) -> &'static ResourceSchema {
        match self {
            ScimTable::Users => &USER,
            ScimTable::Groups => &GROUP,
        }
    }
}

/// How a column or JSON value compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Already lower-cased by Rust (`user_name_key`): compare with the Rust-lower-cased literal.
    Key,
    /// Text, compared ignoring case.
    TextCi,
    /// Text, compared exactly.
    Text,
    /// Boolean.
    Bool,
    /// Time column.
    Time,
    /// UUID column.
    Uuid,
    /// Number.
    Number,
}

/// A scalar SQL expression and how it compares.
#[derive(Debug, Clone)]
struct Scalar {
    expr: String,
    kind: Kind,
    /// The value is extracted from JSON (booleans differ by dialect).
    json: bool,
}

/// What a path refers to.
enum Target {
    Scalar(Scalar),
    /// A JSON array; `array` yields the array (JSON), elements compared on `sub` (or themselves).
    Array {
        array: String,
        def: &'static AttrDef,
        sub: Option<&'static AttrDef>,
    },
    /// Group members / user groups through the memberships table.
    Membership {
        members_of_group: bool,
    },
    /// `schemas`.
    Schemas,
    /// A constant (`meta.resourceType`).
    Const(&'static str),
}

/// The translation state: SQL dialect, parameters so far.
pub struct Translator {
    dialect: Dialect,
    table: ScimTable,
    /// Bound values, in placeholder order.
    pub binds: Vec<Bind>,
    first_param: usize,
    /// Inside an odd number of NOTs: leaves must not be NULL (see the module docs). Outside,
    /// they are left bare so the planner can use indexes (`userName eq` hits the unique index).
    negated: bool,
}

fn lit_key(k: &str) -> String {
    // Keys come from the static schema (names and URNs): letters, digits, ':', '.', '$', '_'.
    k.replace('\'', "''").replace('"', "")
}

impl Translator {
    /// A translator whose first placeholder is `$first_param`.
    pub fn new(dialect: Dialect, table: ScimTable, first_param: usize) -> Self {
        Self {
            dialect,
            table,
            binds: Vec::new(),
            first_param,
            negated: false,
        }
    }

    fn param(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.first_param + self.binds.len() - 1)
    }

    /// `attributes` JSON text at a key path.
    fn json_text(&self, col: &str, keys: &[&str]) -> String {
        match self.dialect {
            Dialect::Postgres => {
                let path: Vec<String> =
                    keys.iter().map(|k| format!("\"{}\"", lit_key(k))).collect();
                format!("({col} #>> '{{{}}}')", path.join(","))
            }
            Dialect::Sqlite => {
                let path: Vec<String> = keys
                    .iter()
                    .map(|k| format!(".\"{}\"", lit_key(k)))
                    .collect();
                format!("json_extract({col}, '${}')", path.join(""))
            }
        }
    }

    /// `attributes` JSON (not text) at a key path, for arrays.
    fn json_value(&self, col: &str, keys: &[&str]) -> String {
        match self.dialect {
            Dialect::Postgres => {
                let path: Vec<String> =
                    keys.iter().map(|k| format!("\"{}\"", lit_key(k))).collect();
                format!("({col} #> '{{{}}}')", path.join(","))
            }
            Dialect::Sqlite => self.json_text(col, keys),
        }
    }

    fn resolve(&self, path: &AttrPath) -> ScimResult<Target> {
        let schema = self.table.schema();
        let unknown = || ScimError::invalid_filter(format!("unknown attribute {path}"));
        let top = schema
            .attribute(path.uri.as_deref(), &path.name)
            .ok_or_else(unknown)?;
        let ext = path
            .uri
            .as_deref()
            .and_then(|u| {
                schema
                    .extensions
                    .iter()
                    .find(|e| e.id.eq_ignore_ascii_case(u))
            })
            .map(|e| e.id);
        let sub = match &path.sub {
            Some(s) => Some(top.sub(s).ok_or_else(unknown)?),
            None if top.ty == AttrType::Complex => top.sub("value"),
            None => None,
        };
        let col = |expr: &str, kind| {
            Ok(Target::Scalar(Scalar {
                expr: expr.to_string(),
                kind,
                json: false,
            }))
        };
        if ext.is_none() {
            match (self.table, top.name, sub.map(|s| s.name)) {
                (_, "id", _) => return col("id", Kind::Uuid),
                (_, "externalId", _) => return col("external_id", Kind::Text),
                (_, "schemas", _) => return Ok(Target::Schemas),
                (_, "meta", Some("created")) => return col("created_at", Kind::Time),
                (_, "meta", Some("lastModified")) => return col("updated_at", Kind::Time),
                (ScimTable::Users, "meta", Some("resourceType")) => {
                    return Ok(Target::Const("User"));
                }
                (ScimTable::Groups, "meta", Some("resourceType")) => {
                    return Ok(Target::Const("Group"));
                }
                (_, "meta", _) => {
                    return Err(ScimError::invalid_filter(format!(
                        "{path} cannot be filtered on"
                    )));
                }
                (ScimTable::Users, "userName", _) => return col("user_name_key", Kind::Key),
                (ScimTable::Users, "displayName", _) => return col("display_name", Kind::TextCi),
                (ScimTable::Users, "active", _) => return col("active", Kind::Bool),
                (ScimTable::Users, "name", Some("givenName")) => {
                    return col("given_name", Kind::TextCi);
                }
                (ScimTable::Users, "name", Some("familyName")) => {
                    return col("family_name", Kind::TextCi);
                }
                (ScimTable::Users, "emails", _) => {
                    return Ok(Target::Array {
                        array: "emails".into(),
                        def: top,
                        sub,
                    });
                }
                (ScimTable::Users, "groups", Some("value")) => {
                    return Ok(Target::Membership {
                        members_of_group: false,
                    });
                }
                (ScimTable::Groups, "displayName", _) => return col("display_name", Kind::TextCi),
                (ScimTable::Groups, "members", Some("value")) => {
                    return Ok(Target::Membership {
                        members_of_group: true,
                    });
                }
                (_, "groups" | "members", _) => {
                    return Err(ScimError::invalid_filter(format!(
                        "{path} cannot be filtered on; use .value"
                    )));
                }
                _ => {}
            }
        }
        // Everything else lives in the `attributes` JSON, extension objects under their URN.
        let mut keys: Vec<&str> = ext.into_iter().collect();
        keys.push(top.name);
        if top.multi_valued {
            return Ok(Target::Array {
                array: self.json_value("attributes", &keys),
                def: top,
                sub,
            });
        }
        if let Some(s) = sub {
            keys.push(s.name);
        }
        let leaf = sub.unwrap_or(top);
        Ok(Target::Scalar(Scalar {
            expr: self.json_text("attributes", &keys),
            kind: kind_of(leaf),
            json: true,
        }))
    }

    /// Runs `f` with the polarity flipped (inside a NOT).
    fn negate<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        self.negated = !self.negated;
        let out = f(self);
        self.negated = !self.negated;
        out
    }

    /// Translates a (validated) filter into a boolean SQL expression.
    pub fn filter(&mut self, f: &Filter) -> ScimResult<String> {
        Ok(match f {
            Filter::And(a, b) => format!("({} AND {})", self.filter(a)?, self.filter(b)?),
            Filter::Or(a, b) => format!("({} OR {})", self.filter(a)?, self.filter(b)?),
            Filter::Not(a) => format!("(NOT {})", self.negate(|t| t.filter(a))?),
            Filter::Present(path) => {
                let t = self.resolve(path)?;
                self.present(&t)
            }
            Filter::Compare(path, op, value) => {
                let t = self.resolve(path)?;
                self.compare_target(&t, *op, value)?
            }
            Filter::ValuePath(path, inner) => {
                let t = self.resolve(&AttrPath {
                    sub: None,
                    ..path.clone()
                })?;
                match t {
                    Target::Array { array, def, .. } => {
                        let (from, elem) = self.elements(&array);
                        let cond = self.element_filter(inner, def, &elem)?;
                        format!("EXISTS (SELECT 1 FROM {from} WHERE {cond})")
                    }
                    Target::Membership { members_of_group } => {
                        self.membership_filter(inner, members_of_group)?
                    }
                    _ => {
                        return Err(ScimError::invalid_filter(format!(
                            "{path} has no values to filter"
                        )));
                    }
                }
            }
        })
    }

    /// `FROM` clause over the elements of a JSON array, and the element expression.
    fn elements(&self, array: &str) -> (String, String) {
        match self.dialect {
            Dialect::Postgres => (
                format!(
                    "jsonb_array_elements(CASE WHEN jsonb_typeof({array}) = 'array' THEN {array} ELSE '[]'::jsonb END) AS e(v)"
                ),
                "e.v".into(),
            ),
            Dialect::Sqlite => (format!("json_each({array}) AS e"), "e.value".into()),
        }
    }

    /// A field of an array element as a scalar.
    fn element_field(&self, elem: &str, field: Option<&'static AttrDef>) -> Scalar {
        match field {
            Some(f) => Scalar {
                expr: match self.dialect {
                    Dialect::Postgres => format!("({elem} ->> '{}')", lit_key(f.name)),
                    Dialect::Sqlite => format!("json_extract({elem}, '$.\"{}\"')", lit_key(f.name)),
                },
                kind: kind_of(f),
                json: true,
            },
            None => Scalar {
                expr: match self.dialect {
                    Dialect::Postgres => format!("({elem} #>> '{{}}')"),
                    Dialect::Sqlite => elem.to_string(),
                },
                kind: Kind::Text,
                json: true,
            },
        }
    }

    fn element_filter(
        &mut self,
        f: &Filter,
        parent: &'static AttrDef,
        elem: &str,
    ) -> ScimResult<String> {
        let field = |p: &AttrPath| {
            parent.sub(&p.name).ok_or_else(|| {
                ScimError::invalid_filter(format!("unknown attribute {}.{}", parent.name, p.name))
            })
        };
        Ok(match f {
            Filter::And(a, b) => format!(
                "({} AND {})",
                self.element_filter(a, parent, elem)?,
                self.element_filter(b, parent, elem)?
            ),
            Filter::Or(a, b) => format!(
                "({} OR {})",
                self.element_filter(a, parent, elem)?,
                self.element_filter(b, parent, elem)?
            ),
            Filter::Not(a) => format!(
                "(NOT {})",
                self.negate(|t| t.element_filter(a, parent, elem))?
            ),
            Filter::Present(p) => {
                let s = self.element_field(elem, Some(field(p)?));
                present_scalar(&s)
            }
            Filter::Compare(p, op, v) => {
                let s = self.element_field(elem, Some(field(p)?));
                self.compare_scalar(&s, *op, v)?
            }
            Filter::ValuePath(..) => {
                return Err(ScimError::invalid_filter("value filters cannot be nested"));
            }
        })
    }

    fn membership_filter(&mut self, inner: &Filter, members_of_group: bool) -> ScimResult<String> {
        // Only `value eq "id"` (optionally or-ed/and-ed) is meaningful here.
        match inner {
            Filter::Compare(p, op, v) if p.name.eq_ignore_ascii_case("value") => {
                self.compare_target(&Target::Membership { members_of_group }, *op, v)
            }
            Filter::And(a, b) => Ok(format!(
                "({} AND {})",
                self.membership_filter(a, members_of_group)?,
                self.membership_filter(b, members_of_group)?
            )),
            Filter::Or(a, b) => Ok(format!(
                "({} OR {})",
                self.membership_filter(a, members_of_group)?,
                self.membership_filter(b, members_of_group)?
            )),
            Filter::Not(a) => Ok(format!(
                "(NOT {})",
                self.membership_filter(a, members_of_group)?
            )),
            _ => Err(ScimError::invalid_filter(
                "only value can be filtered on here",
            )),
        }
    }

    fn present(&mut self, t: &Target) -> String {
        match t {
            Target::Scalar(s) => present_scalar(s),
            Target::Array { array, sub, .. } => {
                let (from, elem) = self.elements(array);
                let cond = match sub {
                    Some(s) => present_scalar(&self.element_field(&elem, Some(s))),
                    None => "TRUE".into(),
                };
                format!("EXISTS (SELECT 1 FROM {from} WHERE {cond})")
            }
            Target::Membership { members_of_group } => membership_exists(*members_of_group, None),
            Target::Schemas | Target::Const(_) => "TRUE".into(),
        }
    }

    fn compare_target(
        &mut self,
        t: &Target,
        op: CompareOp,
        value: &CompValue,
    ) -> ScimResult<String> {
        match t {
            Target::Scalar(s) => self.compare_scalar(s, op, value),
            Target::Array { array, sub, .. } => {
                let (from, elem) = self.elements(array);
                let field = self.element_field(&elem, *sub);
                match (op, value) {
                    (CompareOp::Eq, CompValue::Null) => Ok(format!("(NOT {})", self.present(t))),
                    (CompareOp::Ne, CompValue::Null) => Ok(self.present(t)),
                    (CompareOp::Ne, v) => {
                        let cond = self.compare_scalar(&field, CompareOp::Eq, v)?;
                        Ok(format!("(NOT EXISTS (SELECT 1 FROM {from} WHERE {cond}))"))
                    }
                    (op, v) => {
                        let cond = self.compare_scalar(&field, op, v)?;
                        Ok(format!("EXISTS (SELECT 1 FROM {from} WHERE {cond})"))
                    }
                }
            }
            Target::Membership { members_of_group } => {
                let CompValue::Str(s) = value else {
                    return Err(ScimError::invalid_filter(
                        "member values are ids in double quotes",
                    ));
                };
                // Ids are case-exact: only the canonical spelling of a UUID matches.
                let id = Uuid::parse_str(s).ok().filter(|u| u.to_string() == *s);
                let exists = match id {
                    Some(u) => {
                        let p = self.param(Bind::Uuid(u));
                        membership_exists(*members_of_group, Some(&p))
                    }
                    None => "FALSE".into(),
                };
                match op {
                    CompareOp::Eq => Ok(exists),
                    CompareOp::Ne => Ok(format!("(NOT {exists})")),
                    _ => Err(ScimError::invalid_filter(
                        "member ids can only be compared with eq or ne",
                    )),
                }
            }
            Target::Schemas => {
                let CompValue::Str(s) = value else {
                    return Err(ScimError::invalid_filter(
                        "schemas are URNs in double quotes",
                    ));
                };
                let schema = self.table.schema();
                let has = if schema.core.id.eq_ignore_ascii_case(s) {
                    "TRUE".to_string()
                } else if let Some(ext) = schema
                    .extensions
                    .iter()
                    .find(|e| e.id.eq_ignore_ascii_case(s))
                {
                    format!("({} IS NOT NULL)", self.json_value("attributes", &[ext.id]))
                } else {
                    "FALSE".to_string()
                };
                match op {
                    CompareOp::Eq => Ok(has),
                    CompareOp::Ne => Ok(format!("(NOT {has})")),
                    _ => Err(ScimError::invalid_filter(
                        "schemas can only be compared with eq or ne",
                    )),
                }
            }
            Target::Const(c) => {
                let s = Scalar {
                    expr: format!("'{c}'"),
                    kind: Kind::Text,
                    json: false,
                };
                self.compare_scalar(&s, op, value)
            }
        }
    }

    /// A comparison on a scalar, never NULL.
    fn compare_scalar(
        &mut self,
        s: &Scalar,
        op: CompareOp,
        value: &CompValue,
    ) -> ScimResult<String> {
        let e = &s.expr;
        if let CompValue::Null = value {
            return Ok(match op {
                CompareOp::Eq => format!("(NOT {})", present_scalar(s)),
                CompareOp::Ne => present_scalar(s),
                _ => {
                    return Err(ScimError::invalid_filter(
                        "null can only be compared with eq or ne",
                    ));
                }
            });
        }
        if op == CompareOp::Ne {
            let eq = self.negate(|t| t.compare_scalar(s, CompareOp::Eq, value))?;
            return Ok(format!("(NOT {eq})"));
        }
        let cond = match (s.kind, value) {
            (Kind::Bool, CompValue::Bool(b)) => {
                if s.json && self.dialect == Dialect::Postgres {
                    let p = self.param(Bind::Str(b.to_string()));
                    format!("{e} = {p}")
                } else {
                    let p = self.param(Bind::Bool(*b));
                    format!("{e} = {p}")
                }
            }
            (Kind::Time, CompValue::Str(text)) => {
                let t = Timestamp::parse_rfc3339(text).map_err(|_| {
                    ScimError::invalid_filter(format!("{text:?} is not an RFC 3339 date-time"))
                })?;
                let p = self.param(Bind::Time(t));
                format!("{e} {} {p}", sql_op(op)?)
            }
            (Kind::Uuid, CompValue::Str(text)) => match Uuid::parse_str(text)
                .ok()
                .filter(|u| u.to_string() == *text)
            {
                Some(u) if op == CompareOp::Eq => {
                    let p = self.param(Bind::Uuid(u));
                    format!("{e} = {p}")
                }
                None if op == CompareOp::Eq => "FALSE".into(),
                _ => {
                    return Err(ScimError::invalid_filter(
                        "id can only be compared with eq or ne",
                    ));
                }
            },
            (Kind::Number, CompValue::Number(n)) => {
                let p = self.param(Bind::F64(n.as_f64().unwrap_or(0.0)));
                let lhs = match self.dialect {
                    Dialect::Postgres => format!("CAST({e} AS DOUBLE PRECISION)"),
                    Dialect::Sqlite => e.clone(),
                };
                format!("{lhs} {} {p}", sql_op(op)?)
            }
            (Kind::Key | Kind::TextCi | Kind::Text, CompValue::Str(text)) => {
                let (lhs, literal) = match s.kind {
                    Kind::Key => (e.clone(), text.to_lowercase()),
                    Kind::TextCi => (format!("lower({e})"), text.to_lowercase()),
                    _ => (e.clone(), text.clone()),
                };
                // Case-insensitive columns: fold the literal the way the column side is folded.
                let literal_is_folded_by_sql = s.kind == Kind::TextCi;
                let raw = if literal_is_folded_by_sql {
                    text.clone()
                } else {
                    literal
                };
                let p = self.param(Bind::Str(raw));
                let rhs = if literal_is_folded_by_sql {
                    format!("lower({p})")
                } else {
                    p
                };
                if op.is_substring() && text.is_empty() {
                    format!("{e} IS NOT NULL")
                } else {
                    match op {
                        CompareOp::Eq => format!("{lhs} = {rhs}"),
                        CompareOp::Co => match self.dialect {
                            Dialect::Postgres => format!("strpos({lhs}, {rhs}) > 0"),
                            Dialect::Sqlite => format!("instr({lhs}, {rhs}) > 0"),
                        },
                        CompareOp::Sw => format!("substr({lhs}, 1, length({rhs})) = {rhs}"),
                        CompareOp::Ew => match self.dialect {
                            Dialect::Postgres => format!("right({lhs}, length({rhs})) = {rhs}"),
                            Dialect::Sqlite => format!("substr({lhs}, -length({rhs})) = {rhs}"),
                        },
                        _ => {
                            let collate = if self.dialect == Dialect::Postgres {
                                " COLLATE \"C\""
                            } else {
                                ""
                            };
                            format!("{lhs}{collate} {} {rhs}{collate}", sql_op(op)?)
                        }
                    }
                }
            }
            _ => {
                return Err(ScimError::invalid_filter(format!(
                    "{value} cannot be compared with this attribute"
                )));
            }
        };
        Ok(if self.negated {
            format!("COALESCE(({cond}), FALSE)")
        } else {
            format!("({cond})")
        })
    }

    /// An `ORDER BY` expression for `sortBy`.
    pub fn sort_expr(&mut self, path: &AttrPath) -> ScimResult<String> {
        match self.resolve(path)? {
            Target::Scalar(s) => Ok(match s.kind {
                Kind::TextCi => format!("lower({})", s.expr),
                _ => s.expr,
            }),
            _ => Err(ScimError::invalid_value(format!("cannot sort by {path}"))),
        }
    }
}

fn kind_of(def: &AttrDef) -> Kind {
    match def.ty {
        AttrType::Boolean => Kind::Bool,
        AttrType::Integer | AttrType::Decimal => Kind::Number,
        _ if def.case_exact => Kind::Text,
        _ => Kind::TextCi,
    }
}

fn present_scalar(s: &Scalar) -> String {
    match s.kind {
        // `x IS NOT NULL AND ...` is FALSE, never NULL, when x is NULL.
        Kind::Key | Kind::Text | Kind::TextCi => {
            format!("({} IS NOT NULL AND {} <> '')", s.expr, s.expr)
        }
        _ => format!("({} IS NOT NULL)", s.expr),
    }
}

fn membership_exists(members_of_group: bool, id_param: Option<&str>) -> String {
    let (own, other) = if members_of_group {
        ("group_id", "user_id")
    } else {
        ("user_id", "group_id")
    };
    let table = if members_of_group { "groups" } else { "users" };
    let extra = id_param
        .map(|p| format!(" AND m.{other} = {p}"))
        .unwrap_or_default();
    format!(
        "EXISTS (SELECT 1 FROM memberships m WHERE m.organization_id = {table}.organization_id AND m.{own} = {table}.id{extra})"
    )
}

fn sql_op(op: CompareOp) -> ScimResult<&'static str> {
    Ok(match op {
        CompareOp::Eq => "=",
        CompareOp::Ne => "<>",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        _ => {
            return Err(ScimError::invalid_filter(format!(
                "{} does not apply here",
                op.as_str()
            )));
        }
    })
}
