//! Compiles a resolved filter (`scim::query`) into a WHERE fragment over `scim_user s JOIN user
//! u` with bound values. Comparisons never yield SQL NULL, so `not` keeps SCIM's two-valued
//! logic. Case rules follow each attribute's `caseExact` (RFC 7644 §3.4.2.2): `userName` and
//! email addresses use their case-insensitive column collation, `externalId` and `id` compare
//! exactly, `displayName` (a binary column) asks for a case-insensitive collation.
//!
//! Attributes kept only in the `attributes` JSON document (`name.givenName`, `title`,
//! `nickName`, `userType`, enterprise `employeeNumber`, `department`, ...) are compiled with
//! MariaDB's `JSON_VALUE(s.attributes, ?)` / `JSON_EXISTS(s.attributes, ?)`, the path bound like
//! any value. These are NOT indexed: each such term scans the (already narrowed) candidate
//! rows. The indexed columns serve what IdPs filter on (`userName`, `externalId`, `id`, emails,
//! `displayName`, `active`, `meta.*`).
//!
//! Multi-valued complex attributes of the document (`phoneNumbers`, `ims`, `photos`,
//! `addresses`, `entitlements`, `roles`, `x509Certificates`) are compiled to
//! `EXISTS (SELECT 1 FROM JSON_TABLE(s.attributes, '$.phoneNumbers[*]' COLUMNS (...)) jt WHERE
//! ...)`: one row per value, so a value filter matches when ONE value satisfies all of it (RFC
//! 7644 §3.4.2.2). These are NOT indexed either. JSON_TABLE takes its paths as literals, so the
//! path and column names are written into the SQL text, from the static schema table only
//! (identifier characters, checked); every compared value is still bound.

use crate::scim::filter::CompareOp;
use crate::scim::query::{
    EmailCond, EmailField, GroupField, GroupFilter, JsonAttr, Literal, MultiAttr, SubField,
    UserField, UserFilter, UserSort, ValueCond,
};
use crate::scim::schema::Ty;
use crate::scim::user::ACTIVE_UNASSIGNED;

use super::Tables;
use super::phabricator::edge::{MEMBER_OF_PROJECT, PROJECT_HAS_MEMBER};
use super::sidecar::Bind;

/// A compiled fragment.
#[derive(Debug, Default)]
pub struct Sql {
    /// The SQL text with `?` placeholders.
    pub text: String,
    /// The values of the placeholders, in order.
    pub binds: Vec<Bind>,
    /// The text reads a column of `user u` (the real name, `isDisabled`), so the statement
    /// must join it; set where such a column is written, never read back from `text`.
    pub needs_user: bool,
}

impl Sql {
    /// A column of `user u`: marks the fragment as needing the join.
    fn user_column(&mut self, column: &'static str) -> &'static str {
        self.needs_user = true;
        column
    }
}

/// The value expression of a JSON-document attribute; case-insensitive attributes
/// (caseExact=false, RFC 7643 §2.2) compare under a case-insensitive collation.
fn json_value(j: &JsonAttr, out: &mut Sql) -> String {
    out.binds.push(Bind::Str(j.json_path()));
    if j.case_exact || j.ty == Ty::Boolean {
        "JSON_VALUE(s.attributes, ?)".to_owned()
    } else {
        "JSON_VALUE(s.attributes, ?) COLLATE utf8mb4_unicode_ci".to_owned()
    }
}

/// Compiles a user filter.
pub fn user_where(t: &Tables, f: &UserFilter) -> Sql {
    let mut out = Sql::default();
    user(t, f, &mut out);
    out
}

/// The ORDER BY clause for a sort field (stable: ties broken by id), with its binds (the JSON
/// path of a document attribute). Unassigned values sort last ascending (RFC 7644 §3.4.2.3).
pub fn user_order(t: &Tables, sort: Option<UserSort>, descending: bool) -> Sql {
    let dir = if descending { "DESC" } else { "ASC" };
    let mut out = Sql::default();
    let field = match sort {
        Some(UserSort::Email) => {
            // The primary address, else the first one; users without one sort last ascending.
            let first = format!(
                "(SELECT em.address FROM {} em WHERE em.userPHID = s.userPHID ORDER BY em.isPrimary DESC, em.id ASC LIMIT 1)",
                t.scim_useremail
            );
            out.text = format!("{first} IS NULL {dir}, {first} {dir}, s.id {dir}");
            return out;
        }
        Some(UserSort::Field(f)) => Some(f),
        None => None,
    };
    match field {
        None => out.text = format!("s.id {dir}"),
        Some(UserField::Json(j)) => {
            // `IS NULL` sorts missing values after present ones ascending, before them
            // descending. Both placeholders take the same path.
            out.binds.push(Bind::Str(j.json_path()));
            let expr = json_value(&j, &mut out);
            out.text =
                format!("JSON_VALUE(s.attributes, ?) IS NULL {dir}, {expr} {dir}, s.id {dir}");
        }
        Some(f) => {
            let col = match f {
                UserField::Id => "s.userPHID",
                UserField::UserName => "s.userName",
                UserField::ExternalId => "s.externalID",
                UserField::DisplayName => out.user_column("u.realName COLLATE utf8mb4_unicode_ci"),
                UserField::Active => out.user_column("u.isDisabled"),
                UserField::Created => "s.dateCreated",
                UserField::LastModified => "s.dateModified",
                UserField::Json(_) => "s.id",
            };
            // `active` ascending means false first: isDisabled descending.
            let dir = if f == UserField::Active {
                if descending { "ASC" } else { "DESC" }
            } else {
                dir
            };
            out.text = format!("{col} {dir}, s.id {dir}");
        }
    }
    out
}

/// The JSON path of [`ACTIVE_UNASSIGNED`] in a stored attribute document.
fn active_unassigned_path() -> String {
    format!("$.\"{ACTIVE_UNASSIGNED}\"")
}

fn user(t: &Tables, f: &UserFilter, out: &mut Sql) {
    match f {
        UserFilter::All => out.text.push_str("1 = 1"),
        UserFilter::And(a, b) => binary(t, a, "AND", b, out),
        UserFilter::Or(a, b) => binary(t, a, "OR", b, out),
        UserFilter::Not(a) => {
            out.text.push_str("NOT (");
            user(t, a, out);
            out.text.push(')');
        }
        UserFilter::Const(b) => out.text.push_str(if *b { "1 = 1" } else { "1 = 0" }),
        UserFilter::Present(UserField::Json(j)) => {
            // Stored documents never hold nulls or empty arrays (RFC 7643 §2.5: unassigned is
            // dropped on write), so existence is presence; a string must also be non-empty.
            out.binds.push(Bind::Str(j.json_path()));
            if j.composite {
                out.text.push_str("JSON_EXISTS(s.attributes, ?) = 1");
            } else {
                out.binds.push(Bind::Str(j.json_path()));
                out.text.push_str("(JSON_EXISTS(s.attributes, ?) = 1 AND COALESCE(JSON_VALUE(s.attributes, ?), '') <> '')");
            }
        }
        UserFilter::Present(UserField::Active) => {
            out.binds.push(Bind::Str(active_unassigned_path()));
            out.text.push_str("JSON_VALUE(s.attributes, ?) IS NULL");
        }
        UserFilter::Present(field) => {
            let text = match field {
                UserField::Id
                | UserField::UserName
                | UserField::Active
                | UserField::Created
                | UserField::LastModified => "1 = 1",
                UserField::ExternalId => "(s.externalID IS NOT NULL AND s.externalID <> '')",
                UserField::DisplayName => out.user_column("u.realName <> ''"),
                UserField::Json(_) => "1 = 0",
            };
            out.text.push_str(text);
        }
        UserFilter::Cmp(field, op, lit) => user_cmp(field, *op, lit, out),
        UserFilter::Email(cond) => {
            out.text.push_str(&format!(
                "EXISTS (SELECT 1 FROM {} em WHERE em.userPHID = s.userPHID AND (",
                t.scim_useremail
            ));
            email(cond, out);
            out.text.push_str("))");
        }
        UserFilter::Multi(m, cond) => multi(*m, cond, out),
        UserFilter::InAnyGroup => {
            // `groups` lists SCIM-managed groups only (RFC 7643 §4.1.2).
            out.text.push_str(&format!(
                "EXISTS (SELECT 1 FROM {} ge JOIN {} sg ON sg.projectPHID = ge.dst WHERE ge.src = s.userPHID AND ge.type = {MEMBER_OF_PROJECT})",
                t.user_edge, t.scim_group
            ));
        }
        UserFilter::Group(_, id) => {
            out.text.push_str(&format!(
                "EXISTS (SELECT 1 FROM {} ge WHERE ge.src = s.userPHID AND ge.type = {MEMBER_OF_PROJECT} AND ge.dst = ?)",
                t.user_edge
            ));
            out.binds.push(Bind::Str(id.clone()));
        }
    }
}

/// A comparison of one user attribute with a literal.
fn user_cmp(field: &UserField, op: CompareOp, lit: &Literal, out: &mut Sql) {
    match field {
        UserField::Active => {
            // An unassigned `active` equals neither value (so `ne` matches it).
            let disabled = if matches!(lit, Literal::Bool(true)) {
                0
            } else {
                1
            };
            let not = if op == CompareOp::Ne { "NOT " } else { "" };
            out.binds.push(Bind::Str(active_unassigned_path()));
            let is_disabled = out.user_column("u.isDisabled");
            out.text.push_str(&format!(
                "{not}({is_disabled} = {disabled} AND JSON_VALUE(s.attributes, ?) IS NULL)"
            ));
        }
        UserField::Created | UserField::LastModified => {
            let col = if *field == UserField::Created {
                "s.dateCreated"
            } else {
                "s.dateModified"
            };
            let Literal::Time(ts) = lit else {
                out.text.push_str("1 = 0");
                return;
            };
            out.text.push_str(&format!("{col} {} ?", sql_op(op)));
            out.binds.push(Bind::Int(*ts));
        }
        UserField::Id => string_cmp("s.userPHID", false, op, lit, out),
        UserField::UserName => string_cmp("s.userName", false, op, lit, out),
        UserField::ExternalId => string_cmp("s.externalID", true, op, lit, out),
        UserField::DisplayName => {
            let col = out.user_column("u.realName COLLATE utf8mb4_unicode_ci");
            string_cmp(col, false, op, lit, out);
        }
        UserField::Json(j) => json_cmp(j, op, lit, out),
    }
}

/// Compiles a group filter over `scim_group g`. `displayName` uses the column's
/// case-insensitive collation (caseExact=false); `externalId` and `id` compare exactly.
pub fn group_where(t: &Tables, f: &GroupFilter) -> Sql {
    group_where_on(t, f, Members::ProjectSide)
}

/// Which edges a group filter on members reads. Both directions are written together
/// (src/db/phabricator/edge.rs); a statement can only join the one whose database is on the
/// master of `<ns>_scim` (docs/design.md#partitioned-databases).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Members {
    /// Type 13 in `<ns>_project.edge` (one master, or `project` with `scim`).
    ProjectSide,
    /// Type 14 in `<ns>_user.edge` (`project` on another master than `scim`).
    UserSide,
}

/// [`group_where`], reading members from `members`' edges.
pub fn group_where_on(t: &Tables, f: &GroupFilter, members: Members) -> Sql {
    let mut out = Sql::default();
    group(t, f, members, &mut out);
    out
}

/// The ORDER BY clause of a group list (stable: ties broken by id).
pub fn group_order(field: Option<GroupField>, descending: bool) -> String {
    let dir = if descending { "DESC" } else { "ASC" };
    let col = match field {
        None => return format!("g.id {dir}"),
        Some(GroupField::Id) => "g.projectPHID",
        Some(GroupField::DisplayName) => "g.displayName",
        Some(GroupField::ExternalId) => "g.externalID",
        Some(GroupField::Created) => "g.dateCreated",
        Some(GroupField::LastModified) => "g.dateModified",
    };
    format!("{col} {dir}, g.id {dir}")
}

fn group(t: &Tables, f: &GroupFilter, members: Members, out: &mut Sql) {
    match f {
        GroupFilter::All => out.text.push_str("1 = 1"),
        GroupFilter::And(a, b) | GroupFilter::Or(a, b) => {
            let op = if matches!(f, GroupFilter::And(..)) {
                " AND "
            } else {
                " OR "
            };
            out.text.push('(');
            group(t, a, members, out);
            out.text.push_str(op);
            group(t, b, members, out);
            out.text.push(')');
        }
        GroupFilter::Not(a) => {
            out.text.push_str("NOT (");
            group(t, a, members, out);
            out.text.push(')');
        }
        GroupFilter::Present(field) => out.text.push_str(match field {
            GroupField::ExternalId => "(g.externalID IS NOT NULL AND g.externalID <> '')",
            _ => "1 = 1",
        }),
        GroupFilter::Cmp(field, op, lit) => match field {
            GroupField::Created | GroupField::LastModified => {
                let col = if *field == GroupField::Created {
                    "g.dateCreated"
                } else {
                    "g.dateModified"
                };
                let Literal::Time(ts) = lit else {
                    out.text.push_str("1 = 0");
                    return;
                };
                out.text.push_str(&format!("{col} {} ?", sql_op(*op)));
                out.binds.push(Bind::Int(*ts));
            }
            GroupField::Id => string_cmp("g.projectPHID", false, *op, lit, out),
            GroupField::DisplayName => string_cmp("g.displayName", false, *op, lit, out),
            GroupField::ExternalId => string_cmp("g.externalID", true, *op, lit, out),
        },
        GroupFilter::Const(b) => out.text.push_str(if *b { "1 = 1" } else { "1 = 0" }),
        GroupFilter::HasMembers if members == Members::UserSide => {
            out.text.push_str(&format!(
                "EXISTS (SELECT 1 FROM {} me WHERE me.dst = g.projectPHID AND me.type = {MEMBER_OF_PROJECT})",
                t.user_edge
            ));
        }
        GroupFilter::Member(id) if members == Members::UserSide => {
            // Type 14: user is member of project, the inverse of 13.
            out.text.push_str(&format!(
                "EXISTS (SELECT 1 FROM {} me WHERE me.src = ? AND me.type = {MEMBER_OF_PROJECT} AND me.dst = g.projectPHID)",
                t.user_edge
            ));
            out.binds.push(Bind::Str(id.clone()));
        }
        GroupFilter::HasMembers => {
            out.text.push_str(&format!(
                "EXISTS (SELECT 1 FROM {} me WHERE me.src = g.projectPHID AND me.type = {PROJECT_HAS_MEMBER})",
                t.project_edge
            ));
        }
        GroupFilter::Member(id) => {
            // Type 13: project has member (docs/phabricator-tables.md#edges).
            out.text.push_str(&format!(
                "EXISTS (SELECT 1 FROM {} me WHERE me.src = g.projectPHID AND me.type = {PROJECT_HAS_MEMBER} AND me.dst = ?)",
                t.project_edge
            ));
            out.binds.push(Bind::Str(id.clone()));
        }
    }
}

fn binary(t: &Tables, a: &UserFilter, op: &str, b: &UserFilter, out: &mut Sql) {
    out.text.push('(');
    user(t, a, out);
    out.text.push_str(&format!(" {op} "));
    user(t, b, out);
    out.text.push(')');
}

fn email(c: &EmailCond, out: &mut Sql) {
    match c {
        EmailCond::And(a, b) | EmailCond::Or(a, b) => {
            let op = if matches!(c, EmailCond::And(..)) {
                " AND "
            } else {
                " OR "
            };
            out.text.push('(');
            email(a, out);
            out.text.push_str(op);
            email(b, out);
            out.text.push(')');
        }
        EmailCond::Not(a) => {
            out.text.push_str("NOT (");
            email(a, out);
            out.text.push(')');
        }
        EmailCond::Present(f) => out.text.push_str(match f {
            EmailField::Value | EmailField::Primary => "1 = 1",
            EmailField::Type => "(em.emailType IS NOT NULL AND em.emailType <> '')",
        }),
        EmailCond::Cmp(EmailField::Primary, op, lit) => {
            let want = matches!(lit, Literal::Bool(true)) == (*op == CompareOp::Eq);
            out.text.push_str(if want {
                "em.isPrimary = 1"
            } else {
                "em.isPrimary = 0"
            });
        }
        EmailCond::Cmp(EmailField::Value, op, lit) => {
            string_cmp("em.address", false, *op, lit, out)
        }
        EmailCond::Cmp(EmailField::Type, op, lit) => {
            string_cmp("em.emailType", true, *op, lit, out)
        }
    }
}

/// Schema names go into JSON_TABLE's literal paths and column names: only identifier
/// characters may (the schema table has nothing else for these attributes; a unit test walks it).
fn is_ident(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The JSON_TABLE column holding sub-attribute `name` of each value.
fn column(name: &str) -> String {
    format!("jt.v_{name}")
}

/// `EXISTS (SELECT 1 FROM JSON_TABLE(...) jt WHERE cond)`: some value of `m` satisfies `cond`.
/// Strings are read as LONGTEXT (a VARCHAR column would silently truncate a long value, and a
/// truncated value can match `sw`/`eq` it should not); booleans come out as `true`/`false`.
/// A document that is not valid JSON has no values (JSON_TABLE would fail the whole query).
fn multi(m: MultiAttr, cond: &ValueCond, out: &mut Sql) {
    let name = m.name();
    let subs = m.subs();
    if !is_ident(name) || subs.is_empty() || !subs.iter().all(|a| is_ident(a.name)) {
        out.text.push_str("1 = 0");
        return;
    }
    let cols: Vec<String> = subs
        .iter()
        .map(|a| {
            let ty = if a.ty == Ty::Boolean {
                "VARCHAR(5)"
            } else {
                "LONGTEXT"
            };
            format!("v_{n} {ty} CHARACTER SET utf8mb4 PATH '$.{n}'", n = a.name)
        })
        .collect();
    out.text.push_str(&format!(
        "EXISTS (SELECT 1 FROM JSON_TABLE(IF(JSON_VALID(s.attributes), s.attributes, NULL), '$.{name}[*]' COLUMNS ({})) jt WHERE ",
        cols.join(", ")
    ));
    value_cond(cond, out);
    out.text.push(')');
}

/// A condition on one JSON_TABLE row; never SQL NULL (a missing sub-attribute matches only
/// under `ne`, like [`json_cmp`]), so `not` stays two-valued.
fn value_cond(c: &ValueCond, out: &mut Sql) {
    match c {
        ValueCond::And(a, b) | ValueCond::Or(a, b) => {
            let op = if matches!(c, ValueCond::And(..)) {
                " AND "
            } else {
                " OR "
            };
            out.text.push('(');
            value_cond(a, out);
            out.text.push_str(op);
            value_cond(b, out);
            out.text.push(')');
        }
        ValueCond::Not(a) => {
            out.text.push_str("NOT (");
            value_cond(a, out);
            out.text.push(')');
        }
        ValueCond::Present(f) => {
            let col = column(f.name);
            if f.ty == Ty::Boolean {
                out.text.push_str(&format!("{col} IS NOT NULL"));
            } else {
                out.text.push_str(&format!("COALESCE({col} <> '', 0)"));
            }
        }
        ValueCond::Cmp(f, op, Literal::Bool(b)) => {
            let col = column(f.name);
            let want = *b == (*op == CompareOp::Eq);
            out.text.push_str(&if want {
                format!("COALESCE({col} = 'true', 0)")
            } else {
                format!("COALESCE({col} <> 'true', 1)")
            });
        }
        ValueCond::Cmp(f, op, lit @ Literal::Str(_)) => {
            let expr = sub_expr(f);
            let mut inner = Sql::default();
            string_cmp(&expr, false, *op, lit, &mut inner);
            let guard = if *op == CompareOp::Ne { "1" } else { "0" };
            out.text
                .push_str(&format!("COALESCE({}, {guard})", inner.text));
            out.binds.extend(inner.binds);
        }
        ValueCond::Cmp(_, _, Literal::Time(_)) => out.text.push_str("1 = 0"),
    }
}

/// A sub-attribute's column under the collation its `caseExact` asks for.
fn sub_expr(f: &SubField) -> String {
    let collation = if f.case_exact {
        "utf8mb4_bin"
    } else {
        "utf8mb4_unicode_ci"
    };
    format!("{} COLLATE {collation}", column(f.name))
}

/// A comparison on a JSON-document attribute. A missing value never matches, except under
/// `ne` (like the nullable columns: the comparison is never SQL NULL, so `not` stays exact).
fn json_cmp(j: &JsonAttr, op: CompareOp, lit: &Literal, out: &mut Sql) {
    match lit {
        Literal::Bool(b) => {
            out.binds.push(Bind::Str(j.json_path()));
            let want = *b == (op == CompareOp::Eq);
            out.text.push_str(if want {
                "COALESCE(JSON_VALUE(s.attributes, ?) = 'true', 0)"
            } else {
                "COALESCE(JSON_VALUE(s.attributes, ?) <> 'true', 1)"
            });
        }
        Literal::Str(_) => {
            let mut inner = Sql::default();
            let expr = json_value(j, &mut inner);
            string_cmp(&expr, false, op, lit, &mut inner);
            let guard = if op == CompareOp::Ne { "1" } else { "0" };
            out.text
                .push_str(&format!("COALESCE({}, {guard})", inner.text));
            // string_cmp put the path first (from json_value), then the value.
            out.binds.extend(inner.binds);
        }
        Literal::Time(_) => out.text.push_str("1 = 0"),
    }
}

fn sql_op(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "=",
        CompareOp::Ne => "<>",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => "LIKE",
    }
}

/// `nullable` columns are guarded so the comparison is never NULL.
fn string_cmp(col: &str, nullable: bool, op: CompareOp, lit: &Literal, out: &mut Sql) {
    let Literal::Str(s) = lit else {
        out.text.push_str("1 = 0");
        return;
    };
    let cond = match op {
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => {
            let esc = escape_like(s);
            let pattern = match op {
                CompareOp::Co => format!("%{esc}%"),
                CompareOp::Sw => format!("{esc}%"),
                _ => format!("%{esc}"),
            };
            out.binds.push(Bind::Str(pattern));
            format!("{col} LIKE ? ESCAPE '!'")
        }
        _ => {
            out.binds.push(Bind::Str(s.clone()));
            format!("{col} {} ?", sql_op(op))
        }
    };
    if nullable {
        let guard = if op == CompareOp::Ne {
            "IS NULL OR"
        } else {
            "IS NOT NULL AND"
        };
        let bare = col.split(' ').next().unwrap_or(col);
        out.text.push_str(&format!("({bare} {guard} {cond})"));
    } else {
        out.text.push_str(&cond);
    }
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '!') {
            out.push('!');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Namespace;
    use crate::scim::filter::parse_filter;
    use crate::scim::query::resolve_user;

    fn compile(f: &str) -> Sql {
        let t = Tables::new(&Namespace::parse("ns").unwrap());
        user_where(&t, &resolve_user(&parse_filter(f).unwrap()).unwrap())
    }

    #[test]
    fn values_are_always_bound() {
        let sql =
            compile(r#"userName eq "x' OR 1=1 --" and emails[type eq "work" and value co "%a_"]"#);
        assert!(!sql.text.contains("OR 1=1"));
        assert_eq!(
            sql.binds,
            vec![
                Bind::Str("x' OR 1=1 --".into()),
                Bind::Str("work".into()),
                Bind::Str("%!%a!_%".into())
            ]
        );
    }

    /// Does `sql` use the alias `u` (as `u.column`)? What the join decision was made by
    /// before the compiler reported it; kept here to check the report against the text.
    fn mentions_user(sql: &str) -> bool {
        let b = sql.as_bytes();
        b.windows(2).enumerate().any(|(i, w)| {
            w == b"u." && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        })
    }

    #[test]
    fn the_user_join_is_reported_where_a_user_column_is_written() {
        for (f, needs) in [
            (r#"userName eq "a""#, false),
            (r#"externalId pr"#, false),
            (r#"emails[type eq "work"]"#, false),
            (r#"name.givenName sw "B""#, false),
            (r#"groups pr"#, false),
            (r#"displayName eq "A""#, true),
            (r#"displayName pr"#, true),
            (r#"active eq true"#, true),
            (r#"not (active ne false)"#, true),
            (r#"userName eq "a" or displayName co "b""#, true),
        ] {
            let sql = compile(f);
            assert_eq!(sql.needs_user, needs, "{f}: {}", sql.text);
            assert_eq!(mentions_user(&sql.text), needs, "{f}: {}", sql.text);
        }
        let t = Tables::new(&Namespace::parse("ns").unwrap());
        for (sort, needs) in [
            (None, false),
            (Some(UserSort::Email), false),
            (Some(UserSort::Field(UserField::UserName)), false),
            (Some(UserSort::Field(UserField::DisplayName)), true),
            (Some(UserSort::Field(UserField::Active)), true),
        ] {
            let order = user_order(&t, sort, false);
            assert_eq!(order.needs_user, needs, "{}", order.text);
            assert_eq!(mentions_user(&order.text), needs, "{}", order.text);
        }
    }

    #[test]
    fn nullable_ne_includes_missing() {
        let sql = compile(r#"externalId ne "a""#);
        assert_eq!(sql.text, "(s.externalID IS NULL OR s.externalID <> ?)");
    }

    #[test]
    fn unknown_attributes_and_bad_operators_are_refused() {
        for f in [
            r#"nickName2 eq "x""#,
            r#"active gt true"#,
            r#"password eq "x""#,
            r#"phoneNumbers.nope eq "1""#,
            r#"phoneNumbers[nope eq "1"]"#,
            r#"phoneNumbers[type eq "work"].nope eq "1""#,
            r#"phoneNumbers.primary gt true"#,
            r#"phoneNumbers.primary co "t""#,
            r#"phoneNumbers.value gt 5"#,
            r#"roles[value eq true]"#,
            r#"roles[emails.value eq "x"]"#,
            r#"addresses eq "x""#,
            r#"addresses.value pr"#,
            r#"name co "x""#,
            r#"x509Certificates.value co "x""#,
            r#"x509Certificates.value gt "x""#,
            r#"groups.display eq "x""#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:nope eq "x""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "x""#,
        ] {
            assert!(resolve_user(&parse_filter(f).unwrap()).is_err(), "{f}");
        }
    }

    #[test]
    fn document_attributes_compile_to_bound_json_paths() {
        let sql = compile(
            r#"name.givenName sw "Ba" and urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "R&D""#,
        );
        assert_eq!(
            sql.text,
            "(COALESCE(JSON_VALUE(s.attributes, ?) COLLATE utf8mb4_unicode_ci LIKE ? ESCAPE '!', 0) AND \
             COALESCE(JSON_VALUE(s.attributes, ?) COLLATE utf8mb4_unicode_ci = ?, 0))"
        );
        assert_eq!(
            sql.binds,
            vec![
                Bind::Str("$.name.givenName".into()),
                Bind::Str("Ba%".into()),
                Bind::Str(
                    "$.\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\".department"
                        .into()
                ),
                Bind::Str("R&D".into()),
            ]
        );
        let sql = compile(r#"not (title ne "x") or phoneNumbers pr"#);
        assert_eq!(
            sql.text,
            "(NOT (COALESCE(JSON_VALUE(s.attributes, ?) COLLATE utf8mb4_unicode_ci <> ?, 1)) OR JSON_EXISTS(s.attributes, ?) = 1)"
        );
    }

    #[test]
    fn multi_valued_values_compile_to_json_table() {
        let sql = compile(r#"phoneNumbers[type eq "work" and value co "5%5"]"#);
        assert_eq!(
            sql.text,
            "EXISTS (SELECT 1 FROM JSON_TABLE(IF(JSON_VALID(s.attributes), s.attributes, NULL), '$.phoneNumbers[*]' COLUMNS (\
             v_value LONGTEXT CHARACTER SET utf8mb4 PATH '$.value', v_display LONGTEXT CHARACTER SET utf8mb4 PATH '$.display', \
             v_type LONGTEXT CHARACTER SET utf8mb4 PATH '$.type', v_primary VARCHAR(5) CHARACTER SET utf8mb4 PATH '$.primary')) jt WHERE \
             (COALESCE(jt.v_type COLLATE utf8mb4_unicode_ci = ?, 0) AND COALESCE(jt.v_value COLLATE utf8mb4_unicode_ci LIKE ? ESCAPE '!', 0)))"
        );
        assert_eq!(
            sql.binds,
            vec![Bind::Str("work".into()), Bind::Str("%5!%5%".into())]
        );

        // Entra's trailing form, case-insensitive names, `.sub` outside brackets, whole-attribute compare.
        let a = compile(r#"ADDRESSES[TYPE eq "work"].POSTALCODE eq "98052""#);
        assert!(
            a.text.contains("'$.addresses[*]'") && a.text.contains("jt.v_postalCode COLLATE"),
            "{}",
            a.text
        );
        assert_eq!(
            a.binds,
            vec![Bind::Str("work".into()), Bind::Str("98052".into())]
        );
        let r = compile(r#"roles.value eq "admin""#);
        assert_eq!(r.text, compile(r#"roles[value eq "admin"]"#).text);
        assert_eq!(r.text, compile(r#"roles eq "admin""#).text);
        assert_eq!(
            r.text,
            compile(r#"urn:ietf:params:scim:schemas:core:2.0:User:roles.value eq "admin""#).text
        );

        // Booleans, presence, ne and not.
        let p = compile(
            r#"not (ims[primary eq true]) or ims[primary ne true] or ims.display pr or ims.primary pr or ims.type ne "x""#,
        );
        for frag in [
            "COALESCE(jt.v_primary = 'true', 0)",
            "COALESCE(jt.v_primary <> 'true', 1)",
            "COALESCE(jt.v_display <> '', 0)",
            "jt.v_primary IS NOT NULL",
            "COALESCE(jt.v_type COLLATE utf8mb4_unicode_ci <> ?, 1)",
        ] {
            assert!(p.text.contains(frag), "{frag} in {}", p.text);
        }
        assert!(p.text.starts_with("((((NOT (EXISTS"), "{}", p.text);

        // Binary values compare exactly.
        let x = compile(r#"x509Certificates.value eq "TUlJ""#);
        assert!(
            x.text.contains("jt.v_value COLLATE utf8mb4_bin = ?"),
            "{}",
            x.text
        );
        // `phoneNumbers pr` stays a JSON_EXISTS.
        assert_eq!(
            compile("phoneNumbers pr").text,
            "JSON_EXISTS(s.attributes, ?) = 1"
        );
    }

    #[test]
    fn multi_valued_schema_names_are_identifiers() {
        for m in MultiAttr::ALL {
            assert!(is_ident(m.name()), "{}", m.name());
            let def = crate::scim::schema::find_in(crate::scim::schema::USER, m.name()).unwrap();
            assert!(def.multi && def.ty == Ty::Complex, "{}", m.name());
            assert!(!m.subs().is_empty());
            for a in m.subs() {
                assert!(is_ident(a.name), "{}.{}", m.name(), a.name);
                assert!(
                    matches!(a.ty, Ty::String | Ty::Reference | Ty::Binary | Ty::Boolean),
                    "{}.{}",
                    m.name(),
                    a.name
                );
            }
        }
    }
}
