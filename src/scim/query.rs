//! Filters resolved against the schema into a closed vocabulary (style-anchors rule 2): only
//! these attributes can be queried, and only `db::filter_sql` turns them into SQL. An unknown
//! attribute or an operator that makes no sense for its type is `400 invalidFilter`.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::ScimError;
use super::filter::{AttrPath, CompValue, CompareOp, Filter};
use super::schema::urn;

/// Queryable User attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserField {
    Id,
    UserName,
    ExternalId,
    DisplayName,
    Active,
    Created,
    LastModified,
}

/// Sub-attributes of an email value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailField {
    Value,
    Type,
    Primary,
}

/// A literal after type checking.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Bool(bool),
    /// Epoch seconds, from an `xsd:dateTime`.
    Time(i64),
}

/// A resolved User filter.
#[derive(Debug, Clone, PartialEq)]
pub enum UserFilter {
    Cmp(UserField, CompareOp, Literal),
    Present(UserField),
    /// Some email value satisfies the inner condition.
    Email(Box<EmailCond>),
    /// Member of the group with this id (`groups.value eq`, `groups eq`).
    Group(CompareOp, String),
    And(Box<UserFilter>, Box<UserFilter>),
    Or(Box<UserFilter>, Box<UserFilter>),
    Not(Box<UserFilter>),
    /// Matches everything (no filter).
    All,
}

/// A condition on one email value.
#[derive(Debug, Clone, PartialEq)]
pub enum EmailCond {
    Cmp(EmailField, CompareOp, Literal),
    Present(EmailField),
    And(Box<EmailCond>, Box<EmailCond>),
    Or(Box<EmailCond>, Box<EmailCond>),
    Not(Box<EmailCond>),
}

fn bad(msg: impl Into<String>) -> ScimError {
    ScimError::invalid_filter(msg)
}

/// Resolves a parsed filter for `/Users`.
pub fn resolve_user(f: &Filter) -> Result<UserFilter, ScimError> {
    Ok(match f {
        Filter::And(a, b) => UserFilter::And(Box::new(resolve_user(a)?), Box::new(resolve_user(b)?)),
        Filter::Or(a, b) => UserFilter::Or(Box::new(resolve_user(a)?), Box::new(resolve_user(b)?)),
        Filter::Not(a) => UserFilter::Not(Box::new(resolve_user(a)?)),
        Filter::ValuePath(p, inner) => {
            let name = core_name(p)?;
            if name.eq_ignore_ascii_case("emails") {
                UserFilter::Email(Box::new(resolve_email(inner)?))
            } else if name.eq_ignore_ascii_case("groups") {
                match &**inner {
                    Filter::Compare(ip, op, CompValue::Str(s)) if ip.name.eq_ignore_ascii_case("value") => {
                        group_cond(*op, s)?
                    }
                    _ => return Err(bad("groups filters support only value eq/ne")),
                }
            } else {
                return Err(bad(format!("attribute {p} cannot be filtered")));
            }
        }
        Filter::Present(p) => match field_of(p)? {
            Target::User(f) => UserFilter::Present(f),
            Target::Email(f) => UserFilter::Email(Box::new(EmailCond::Present(f))),
            Target::Group => UserFilter::Group(CompareOp::Ne, String::new()),
        },
        Filter::Compare(p, op, v) => match field_of(p)? {
            Target::User(f) => UserFilter::Cmp(f, *op, literal_for_user(f, *op, v)?),
            Target::Email(f) => UserFilter::Email(Box::new(EmailCond::Cmp(f, *op, literal_for_email(f, *op, v)?))),
            Target::Group => match v {
                CompValue::Str(s) => group_cond(*op, s)?,
                _ => return Err(bad("groups compare with a string id")),
            },
        },
    })
}

fn group_cond(op: CompareOp, id: &str) -> Result<UserFilter, ScimError> {
    match op {
        CompareOp::Eq => Ok(UserFilter::Group(CompareOp::Eq, id.to_owned())),
        CompareOp::Ne => Ok(UserFilter::Not(Box::new(UserFilter::Group(CompareOp::Eq, id.to_owned())))),
        _ => Err(bad("groups support only eq and ne")),
    }
}

enum Target {
    User(UserField),
    Email(EmailField),
    Group,
}

fn core_name(p: &AttrPath) -> Result<&str, ScimError> {
    match &p.urn {
        None => Ok(&p.name),
        Some(u) if u.eq_ignore_ascii_case(urn::USER) => Ok(&p.name),
        Some(_) => Err(bad(format!("attribute {p} cannot be filtered"))),
    }
}

fn field_of(p: &AttrPath) -> Result<Target, ScimError> {
    let name = core_name(p)?.to_ascii_lowercase();
    let sub = p.sub.as_deref().map(str::to_ascii_lowercase);
    let t = match (name.as_str(), sub.as_deref()) {
        ("id", None) => Target::User(UserField::Id),
        ("username", None) => Target::User(UserField::UserName),
        ("externalid", None) => Target::User(UserField::ExternalId),
        ("displayname", None) => Target::User(UserField::DisplayName),
        ("active", None) => Target::User(UserField::Active),
        ("meta", Some("created")) => Target::User(UserField::Created),
        ("meta", Some("lastmodified")) => Target::User(UserField::LastModified),
        ("emails", None | Some("value")) => Target::Email(EmailField::Value),
        ("emails", Some("type")) => Target::Email(EmailField::Type),
        ("emails", Some("primary")) => Target::Email(EmailField::Primary),
        ("groups", None | Some("value")) => Target::Group,
        _ => return Err(bad(format!("attribute {p} cannot be filtered"))),
    };
    Ok(t)
}

fn resolve_email(f: &Filter) -> Result<EmailCond, ScimError> {
    Ok(match f {
        Filter::And(a, b) => EmailCond::And(Box::new(resolve_email(a)?), Box::new(resolve_email(b)?)),
        Filter::Or(a, b) => EmailCond::Or(Box::new(resolve_email(a)?), Box::new(resolve_email(b)?)),
        Filter::Not(a) => EmailCond::Not(Box::new(resolve_email(a)?)),
        Filter::ValuePath(..) => return Err(bad("nested value filters are not allowed")),
        Filter::Present(p) => EmailCond::Present(email_field(p)?),
        Filter::Compare(p, op, v) => {
            let f = email_field(p)?;
            EmailCond::Cmp(f, *op, literal_for_email(f, *op, v)?)
        }
    })
}

fn email_field(p: &AttrPath) -> Result<EmailField, ScimError> {
    // Inside `emails[...]` names are sub-attributes; `emails.value` spelled out is accepted.
    let name = match (&p.urn, p.sub.as_deref()) {
        (None, None) => p.name.as_str(),
        (None, Some(s)) if p.name.eq_ignore_ascii_case("emails") => s,
        _ => return Err(bad(format!("{p} is not an email sub-attribute"))),
    };
    match name.to_ascii_lowercase().as_str() {
        "value" => Ok(EmailField::Value),
        "type" => Ok(EmailField::Type),
        "primary" => Ok(EmailField::Primary),
        _ => Err(bad(format!("{p} is not an email sub-attribute"))),
    }
}

fn is_ordering(op: CompareOp) -> bool {
    matches!(op, CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le)
}

fn literal_for_user(f: UserField, op: CompareOp, v: &CompValue) -> Result<Literal, ScimError> {
    match f {
        UserField::Active => {
            if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return Err(bad("active supports only eq and ne"));
            }
            boolean(v)
        }
        UserField::Created | UserField::LastModified => match v {
            CompValue::Str(s) => OffsetDateTime::parse(s, &Rfc3339)
                .map(|t| Literal::Time(t.unix_timestamp()))
                .map_err(|_| bad(format!("{s:?} is not an xsd:dateTime"))),
            _ => Err(bad("meta dates compare with a dateTime string")),
        },
        _ => match v {
            CompValue::Str(s) => Ok(Literal::Str(s.clone())),
            CompValue::Num(n) if !is_ordering(op) => Ok(Literal::Str(n.to_string())),
            _ => Err(bad("this attribute compares with a string")),
        },
    }
}

fn literal_for_email(f: EmailField, op: CompareOp, v: &CompValue) -> Result<Literal, ScimError> {
    match f {
        EmailField::Primary => {
            if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return Err(bad("primary supports only eq and ne"));
            }
            boolean(v)
        }
        EmailField::Value => match v {
            CompValue::Str(s) => Ok(Literal::Str(s.clone())),
            _ => Err(bad("emails.value compares with a string")),
        },
        // Types are stored lower-cased (caseExact=false).
        EmailField::Type => match v {
            CompValue::Str(s) => Ok(Literal::Str(s.to_lowercase())),
            _ => Err(bad("emails.type compares with a string")),
        },
    }
}

fn boolean(v: &CompValue) -> Result<Literal, ScimError> {
    match v {
        CompValue::Bool(b) => Ok(Literal::Bool(*b)),
        CompValue::Str(s) if s.eq_ignore_ascii_case("true") => Ok(Literal::Bool(true)),
        CompValue::Str(s) if s.eq_ignore_ascii_case("false") => Ok(Literal::Bool(false)),
        _ => Err(bad("a boolean attribute compares with true or false")),
    }
}

/// Sortable User attributes (RFC 7644 §3.4.2.3).
pub fn user_sort_field(sort_by: &str) -> Result<UserField, ScimError> {
    let p = sort_by.trim();
    let p = p.strip_prefix(urn::USER).and_then(|r| r.strip_prefix(':')).unwrap_or(p);
    match p.to_ascii_lowercase().as_str() {
        "id" => Ok(UserField::Id),
        "username" => Ok(UserField::UserName),
        "externalid" => Ok(UserField::ExternalId),
        "displayname" | "name.formatted" => Ok(UserField::DisplayName),
        "active" => Ok(UserField::Active),
        "meta.created" => Ok(UserField::Created),
        "meta.lastmodified" => Ok(UserField::LastModified),
        _ => Err(ScimError::invalid_value(format!("cannot sort by {sort_by:?}"))),
    }
}

/// Queryable Group attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupField {
    /// `id` (the project PHID).
    Id,
    /// `displayName`.
    DisplayName,
    /// `externalId`.
    ExternalId,
    /// `meta.created`.
    Created,
    /// `meta.lastModified`.
    LastModified,
}

/// A resolved Group filter.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupFilter {
    /// `attr op value`.
    Cmp(GroupField, CompareOp, Literal),
    /// `attr pr`.
    Present(GroupField),
    /// Has this user as a direct member (`members.value eq`, `members[value eq]`).
    Member(String),
    /// `a and b`.
    And(Box<GroupFilter>, Box<GroupFilter>),
    /// `a or b`.
    Or(Box<GroupFilter>, Box<GroupFilter>),
    /// `not (a)`.
    Not(Box<GroupFilter>),
    /// Matches everything (no filter).
    All,
}

fn group_core_name(p: &AttrPath) -> Result<&str, ScimError> {
    match &p.urn {
        None => Ok(&p.name),
        Some(u) if u.eq_ignore_ascii_case(urn::GROUP) => Ok(&p.name),
        Some(_) => Err(bad(format!("attribute {p} cannot be filtered"))),
    }
}

fn member_cond(op: CompareOp, v: &CompValue) -> Result<GroupFilter, ScimError> {
    let CompValue::Str(id) = v else { return Err(bad("members compare with a string id")) };
    match op {
        CompareOp::Eq => Ok(GroupFilter::Member(id.clone())),
        CompareOp::Ne => Ok(GroupFilter::Not(Box::new(GroupFilter::Member(id.clone())))),
        _ => Err(bad("members support only eq and ne")),
    }
}

/// Resolves a parsed filter for `/Groups`: `displayName` (case-insensitive), `externalId`,
/// `id`, `meta.created`, `meta.lastModified` and `members.value`.
pub fn resolve_group(f: &Filter) -> Result<GroupFilter, ScimError> {
    Ok(match f {
        Filter::And(a, b) => GroupFilter::And(Box::new(resolve_group(a)?), Box::new(resolve_group(b)?)),
        Filter::Or(a, b) => GroupFilter::Or(Box::new(resolve_group(a)?), Box::new(resolve_group(b)?)),
        Filter::Not(a) => GroupFilter::Not(Box::new(resolve_group(a)?)),
        Filter::ValuePath(p, inner) => {
            if !group_core_name(p)?.eq_ignore_ascii_case("members") {
                return Err(bad(format!("attribute {p} cannot be filtered")));
            }
            match &**inner {
                Filter::Compare(ip, op, v) if ip.name.eq_ignore_ascii_case("value") && ip.sub.is_none() => member_cond(*op, v)?,
                _ => return Err(bad("members filters support only value eq/ne")),
            }
        }
        Filter::Present(p) => match group_field_of(p)? {
            Some(f) => GroupFilter::Present(f),
            None => return Err(bad("members pr is not supported")),
        },
        Filter::Compare(p, op, v) => match group_field_of(p)? {
            Some(f) => GroupFilter::Cmp(f, *op, literal_for_group(f, *op, v)?),
            None => member_cond(*op, v)?,
        },
    })
}

/// `None` is `members` / `members.value`.
fn group_field_of(p: &AttrPath) -> Result<Option<GroupField>, ScimError> {
    let name = group_core_name(p)?.to_ascii_lowercase();
    let sub = p.sub.as_deref().map(str::to_ascii_lowercase);
    Ok(Some(match (name.as_str(), sub.as_deref()) {
        ("id", None) => GroupField::Id,
        ("displayname", None) => GroupField::DisplayName,
        ("externalid", None) => GroupField::ExternalId,
        ("meta", Some("created")) => GroupField::Created,
        ("meta", Some("lastmodified")) => GroupField::LastModified,
        ("members", None | Some("value")) => return Ok(None),
        _ => return Err(bad(format!("attribute {p} cannot be filtered"))),
    }))
}

fn literal_for_group(f: GroupField, op: CompareOp, v: &CompValue) -> Result<Literal, ScimError> {
    match f {
        GroupField::Created | GroupField::LastModified => match v {
            CompValue::Str(s) => OffsetDateTime::parse(s, &Rfc3339)
                .map(|t| Literal::Time(t.unix_timestamp()))
                .map_err(|_| bad(format!("{s:?} is not an xsd:dateTime"))),
            _ => Err(bad("meta dates compare with a dateTime string")),
        },
        _ => match v {
            CompValue::Str(s) => Ok(Literal::Str(s.clone())),
            CompValue::Num(n) if !is_ordering(op) => Ok(Literal::Str(n.to_string())),
            _ => Err(bad("this attribute compares with a string")),
        },
    }
}

/// Sortable Group attributes.
pub fn group_sort_field(sort_by: &str) -> Result<GroupField, ScimError> {
    let p = sort_by.trim();
    let p = p.strip_prefix(urn::GROUP).and_then(|r| r.strip_prefix(':')).unwrap_or(p);
    match p.to_ascii_lowercase().as_str() {
        "id" => Ok(GroupField::Id),
        "displayname" => Ok(GroupField::DisplayName),
        "externalid" => Ok(GroupField::ExternalId),
        "meta.created" => Ok(GroupField::Created),
        "meta.lastmodified" => Ok(GroupField::LastModified),
        _ => Err(ScimError::invalid_value(format!("cannot sort by {sort_by:?}"))),
    }
}
