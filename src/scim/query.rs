//! Filters resolved against the schema into a closed vocabulary
//! (docs/design.md#filters-compile-to-sql): only these attributes can be queried, and only
//! `db::filter_sql` turns them into SQL. An unknown attribute or an operator that makes no sense
//! for its type is `400 invalidFilter`.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::ScimError;
use super::filter::{AttrPath, CompValue, CompareOp, Filter};
use super::schema::{self, Attr, Mutability, Resource, Scope, Ty, urn};

/// Queryable User attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserField {
    /// `id`: `scim_user.userPHID`.
    Id,
    /// `userName`: `scim_user.userName` (unique, case-insensitive collation).
    UserName,
    /// `externalId`: `scim_user.externalID`.
    ExternalId,
    /// `displayName`: `user.realName`.
    DisplayName,
    /// `active`: `user.isDisabled`.
    Active,
    /// `meta.created`: `scim_user.dateCreated`.
    Created,
    /// `meta.lastModified`: `scim_user.dateModified`.
    LastModified,
    /// Any other stored attribute, read from the `scim_user.attributes` JSON document.
    Json(JsonAttr),
}

/// An attribute kept only in the resource's JSON document (`name.givenName`, `title`,
/// enterprise `department`, ...). Built from the static schema table, never from request
/// text, so its JSON path is made of schema names only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonAttr {
    /// The extension URN the attribute lives under, if any.
    pub ext: Option<&'static str>,
    /// The top-level attribute name, in schema spelling.
    pub name: &'static str,
    /// The sub-attribute of a single-valued complex attribute, in schema spelling.
    pub sub: Option<&'static str>,
    /// The type of the addressed value.
    pub ty: Ty,
    /// RFC 7643 §2.2 `caseExact` of the addressed value.
    pub case_exact: bool,
    /// Multi-valued or complex without a sub-attribute: only `pr` applies.
    pub composite: bool,
}

impl JsonAttr {
    /// The MariaDB JSON path of the value, e.g. `$.name.givenName` or
    /// `$."urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".department`.
    pub fn json_path(&self) -> String {
        let mut p = String::from("$");
        if let Some(u) = self.ext {
            p.push_str(&format!(".\"{u}\""));
        }
        p.push('.');
        p.push_str(self.name);
        if let Some(s) = self.sub {
            p.push('.');
            p.push_str(s);
        }
        p
    }
}

/// Sub-attributes of an email value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailField {
    Value,
    Type,
    Primary,
}

/// The multi-valued complex User attributes kept only in the JSON document whose values can be
/// filtered one by one (`phoneNumbers[type eq "work" and value co "555"]`, `roles.value eq
/// "admin"`). `emails` (own table) and `groups` (edges) are handled apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultiAttr {
    PhoneNumbers,
    Ims,
    Photos,
    Addresses,
    Entitlements,
    Roles,
    X509Certificates,
}

impl MultiAttr {
    /// Every variant.
    pub const ALL: [MultiAttr; 7] = [
        MultiAttr::PhoneNumbers,
        MultiAttr::Ims,
        MultiAttr::Photos,
        MultiAttr::Addresses,
        MultiAttr::Entitlements,
        MultiAttr::Roles,
        MultiAttr::X509Certificates,
    ];

    /// The attribute name, in schema spelling (also its key in the stored document).
    pub fn name(self) -> &'static str {
        match self {
            MultiAttr::PhoneNumbers => "phoneNumbers",
            MultiAttr::Ims => "ims",
            MultiAttr::Photos => "photos",
            MultiAttr::Addresses => "addresses",
            MultiAttr::Entitlements => "entitlements",
            MultiAttr::Roles => "roles",
            MultiAttr::X509Certificates => "x509Certificates",
        }
    }

    /// The attribute named `name`, case-insensitively.
    pub fn from_name(name: &str) -> Option<MultiAttr> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// Its sub-attributes, from the schema table.
    pub fn subs(self) -> &'static [Attr] {
        schema::find_in(schema::USER, self.name()).map_or(&[], |a| a.sub)
    }

    /// The sub-attribute named `name`, case-insensitively (RFC 7643 §2.1).
    pub fn sub_field(self, name: &str) -> Option<SubField> {
        let a = schema::find_in(self.subs(), name)?;
        if matches!(a.mutability, Mutability::ReadOnly | Mutability::WriteOnly) {
            return None;
        }
        Some(SubField::of(a))
    }
}

/// One sub-attribute of a [`MultiAttr`] value, from the schema table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubField {
    /// The name in schema spelling (the key inside each value).
    pub name: &'static str,
    /// String, Reference, Binary or Boolean.
    pub ty: Ty,
    /// RFC 7643 §2.2 `caseExact`; binary values always compare exactly.
    pub case_exact: bool,
}

impl SubField {
    /// The field of a schema sub-attribute.
    pub fn of(a: &'static Attr) -> SubField {
        SubField {
            name: a.name,
            ty: a.ty,
            case_exact: a.case_exact || a.ty == Ty::Binary,
        }
    }
}

/// A condition on one value of a [`MultiAttr`].
#[derive(Debug, Clone, PartialEq)]
pub enum ValueCond {
    Cmp(SubField, CompareOp, Literal),
    Present(SubField),
    And(Box<ValueCond>, Box<ValueCond>),
    Or(Box<ValueCond>, Box<ValueCond>),
    Not(Box<ValueCond>),
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
    /// Some value of a multi-valued document attribute satisfies the whole condition
    /// (`phoneNumbers[type eq "work" and value co "555"]`; `roles.value eq "admin"` is
    /// `roles[value eq "admin"]`).
    Multi(MultiAttr, Box<ValueCond>),
    /// Member of the group with this id (`groups.value eq`, `groups eq`).
    Group(CompareOp, String),
    /// Member of any SCIM group (`groups pr`).
    InAnyGroup,
    /// A condition known without looking at rows (`meta.resourceType eq "User"`).
    Const(bool),
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

/// Parses and resolves a list request's `filter` (None when absent or blank): syntax errors
/// and unknown attributes become `400 invalidFilter` with their position.
pub fn list_filter<F>(
    raw: Option<&str>,
    resolve: impl Fn(&Filter) -> Result<F, ScimError>,
) -> Result<Option<F>, ScimError> {
    let Some(f) = raw.map(str::trim).filter(|f| !f.is_empty()) else {
        return Ok(None);
    };
    let parsed = crate::scim::filter::parse_filter(f)
        .map_err(|e| ScimError::invalid_filter(format!("filter: {e}")))?;
    resolve(&parsed).map(Some).map_err(|e| locate(e, f))
}

/// Adds the position of the offending attribute to a resolution error ("attribute X cannot be
/// filtered"), as the parser does for syntax errors: the client sees where in its filter.
pub fn locate(err: ScimError, filter: &str) -> ScimError {
    let Some(rest) = err.detail.strip_prefix("attribute ") else {
        return err;
    };
    let Some(end) = rest.find(" cannot be filtered") else {
        return err;
    };
    let name = &rest[..end];
    let lower = filter.to_lowercase();
    match lower.find(&name.to_lowercase()) {
        Some(byte) => {
            let position = filter[..byte].chars().count();
            ScimError {
                detail: format!("{} at position {position}", err.detail),
                ..err
            }
        }
        None => err,
    }
}

fn bad(msg: impl Into<String>) -> ScimError {
    ScimError::invalid_filter(msg)
}

/// Resolves a parsed filter for `/Users`.
pub fn resolve_user(f: &Filter) -> Result<UserFilter, ScimError> {
    Ok(match f {
        Filter::And(a, b) => {
            UserFilter::And(Box::new(resolve_user(a)?), Box::new(resolve_user(b)?))
        }
        Filter::Or(a, b) => UserFilter::Or(Box::new(resolve_user(a)?), Box::new(resolve_user(b)?)),
        Filter::Not(a) => UserFilter::Not(Box::new(resolve_user(a)?)),
        Filter::ValuePath(p, inner) => {
            let name = core_name(p)?;
            if name.eq_ignore_ascii_case("emails") {
                UserFilter::Email(Box::new(resolve_email(inner)?))
            } else if name.eq_ignore_ascii_case("groups") {
                match &**inner {
                    Filter::Compare(ip, op, CompValue::Str(s))
                        if ip.name.eq_ignore_ascii_case("value") =>
                    {
                        group_cond(*op, s)?
                    }
                    _ => return Err(bad("groups filters support only value eq/ne")),
                }
            } else if let Some(m) = MultiAttr::from_name(name).filter(|_| p.sub.is_none()) {
                UserFilter::Multi(m, Box::new(resolve_value(m, inner)?))
            } else {
                return Err(bad(format!("attribute {p} cannot be filtered")));
            }
        }
        Filter::Present(p) => match field_of(p)? {
            Target::User(f) => UserFilter::Present(f),
            Target::Multi(m, sf) => UserFilter::Multi(m, Box::new(ValueCond::Present(sf))),
            Target::Email(f) => UserFilter::Email(Box::new(EmailCond::Present(f))),
            Target::Group => UserFilter::InAnyGroup,
            Target::ResourceType => UserFilter::Const(true),
        },
        Filter::Compare(p, op, v) => match field_of(p)? {
            // `roles eq "admin"`: a multi-valued attribute compared as a whole compares its
            // values' `value` (as `emails eq` does); `addresses` has none.
            Target::User(UserField::Json(j))
                if j.ext.is_none() && j.sub.is_none() && MultiAttr::from_name(j.name).is_some() =>
            {
                let m = MultiAttr::from_name(j.name)
                    .ok_or_else(|| bad(format!("attribute {p} cannot be filtered")))?;
                let sf = m.sub_field("value").ok_or_else(|| {
                    bad(format!(
                        "{} has no value sub-attribute; compare one of its sub-attributes",
                        m.name()
                    ))
                })?;
                UserFilter::Multi(
                    m,
                    Box::new(ValueCond::Cmp(sf, *op, literal_for_sub(m, sf, *op, v)?)),
                )
            }
            Target::User(f) => UserFilter::Cmp(f, *op, literal_for_user(f, *op, v)?),
            Target::Email(f) => UserFilter::Email(Box::new(EmailCond::Cmp(
                f,
                *op,
                literal_for_email(f, *op, v)?,
            ))),
            Target::Multi(m, sf) => UserFilter::Multi(
                m,
                Box::new(ValueCond::Cmp(sf, *op, literal_for_sub(m, sf, *op, v)?)),
            ),
            Target::Group => match v {
                CompValue::Str(s) => group_cond(*op, s)?,
                _ => return Err(bad("groups compare with a string id")),
            },
            Target::ResourceType => UserFilter::Const(resource_type_matches("User", *op, v)?),
        },
    })
}

fn group_cond(op: CompareOp, id: &str) -> Result<UserFilter, ScimError> {
    match op {
        CompareOp::Eq => Ok(UserFilter::Group(CompareOp::Eq, id.to_owned())),
        CompareOp::Ne => Ok(UserFilter::Not(Box::new(UserFilter::Group(
            CompareOp::Eq,
            id.to_owned(),
        )))),
        _ => Err(bad("groups support only eq and ne")),
    }
}

enum Target {
    User(UserField),
    Email(EmailField),
    /// `attr.sub` of a multi-valued document attribute: any value matches.
    Multi(MultiAttr, SubField),
    Group,
    ResourceType,
}

fn core_name(p: &AttrPath) -> Result<&str, ScimError> {
    match &p.urn {
        None => Ok(&p.name),
        Some(u) if u.eq_ignore_ascii_case(urn::USER) => Ok(&p.name),
        Some(_) => Err(bad(format!("attribute {p} cannot be filtered"))),
    }
}

/// `meta.resourceType` is constant per endpoint (RFC 7643 §3.1); comparing it lets a root
/// search (RFC 7644 §3.4.2.1) pick one resource type. caseExact is false.
fn resource_type_matches(name: &str, op: CompareOp, v: &CompValue) -> Result<bool, ScimError> {
    let CompValue::Str(want) = v else {
        return Err(bad("meta.resourceType compares with a string"));
    };
    let (have, want) = (name.to_lowercase(), want.to_lowercase());
    Ok(match op {
        CompareOp::Eq => have == want,
        CompareOp::Ne => have != want,
        CompareOp::Co => have.contains(&want),
        CompareOp::Sw => have.starts_with(&want),
        CompareOp::Ew => have.ends_with(&want),
        CompareOp::Gt => have > want,
        CompareOp::Ge => have >= want,
        CompareOp::Lt => have < want,
        CompareOp::Le => have <= want,
    })
}

/// Resolves any other User attribute against the schema table into a [`JsonAttr`]: the
/// attributes kept only in the JSON document. Read-only attributes with no stored value
/// (`groups` is handled before this) and binary values cannot be filtered.
fn json_field(p: &AttrPath) -> Option<JsonAttr> {
    let (scope, def) = schema::resolve(Resource::User, p.urn.as_deref(), &p.name)?;
    let ext = match scope {
        Scope::Core => None,
        Scope::Extension(u) => Some(u),
    };
    if def.mutability == Mutability::WriteOnly || def.mutability == Mutability::ReadOnly {
        return None;
    }
    let (sub, ty, case_exact, composite) = match p.sub.as_deref() {
        Some(s) => {
            // Sub-attributes of multi-valued attributes need a value filter (only emails has one).
            if def.multi {
                return None;
            }
            let sd = schema::find_in(def.sub, s)?;
            if sd.mutability == Mutability::ReadOnly {
                return None;
            }
            (Some(sd.name), sd.ty, sd.case_exact, false)
        }
        None => (
            None,
            def.ty,
            def.case_exact,
            def.multi || def.ty == Ty::Complex,
        ),
    };
    if ty == Ty::Binary {
        return None;
    }
    Some(JsonAttr {
        ext,
        name: def.name,
        sub,
        ty,
        case_exact,
        composite,
    })
}

fn field_of(p: &AttrPath) -> Result<Target, ScimError> {
    let is_core = p
        .urn
        .as_deref()
        .is_none_or(|u| u.eq_ignore_ascii_case(urn::USER));
    if !is_core {
        // Enterprise extension attributes (RFC 7643 §4.3), URN-qualified.
        return json_field(p)
            .map(|j| Target::User(UserField::Json(j)))
            .ok_or_else(|| bad(format!("attribute {p} cannot be filtered")));
    }
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
        ("meta", Some("resourcetype")) => Target::ResourceType,
        (n, Some(_)) if MultiAttr::from_name(n).is_some() => {
            let m = MultiAttr::from_name(n)
                .ok_or_else(|| bad(format!("attribute {p} cannot be filtered")))?;
            Target::Multi(m, multi_sub(m, p)?)
        }
        _ => match json_field(p) {
            Some(j) => Target::User(UserField::Json(j)),
            None => return Err(bad(format!("attribute {p} cannot be filtered"))),
        },
    };
    Ok(t)
}

fn resolve_email(f: &Filter) -> Result<EmailCond, ScimError> {
    Ok(match f {
        Filter::And(a, b) => {
            EmailCond::And(Box::new(resolve_email(a)?), Box::new(resolve_email(b)?))
        }
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

/// Resolves the inner filter of `attr[...]` for a multi-valued document attribute.
fn resolve_value(m: MultiAttr, f: &Filter) -> Result<ValueCond, ScimError> {
    Ok(match f {
        Filter::And(a, b) => ValueCond::And(
            Box::new(resolve_value(m, a)?),
            Box::new(resolve_value(m, b)?),
        ),
        Filter::Or(a, b) => ValueCond::Or(
            Box::new(resolve_value(m, a)?),
            Box::new(resolve_value(m, b)?),
        ),
        Filter::Not(a) => ValueCond::Not(Box::new(resolve_value(m, a)?)),
        Filter::ValuePath(..) => return Err(bad("nested value filters are not allowed")),
        Filter::Present(p) => ValueCond::Present(multi_sub(m, p)?),
        Filter::Compare(p, op, v) => {
            let sf = multi_sub(m, p)?;
            ValueCond::Cmp(sf, *op, literal_for_sub(m, sf, *op, v)?)
        }
    })
}

/// A sub-attribute of `m`: `type` inside `phoneNumbers[...]`, or `phoneNumbers.type` (also
/// spelled out inside the brackets, or URN-qualified with the core User schema).
fn multi_sub(m: MultiAttr, p: &AttrPath) -> Result<SubField, ScimError> {
    let core = p
        .urn
        .as_deref()
        .is_none_or(|u| u.eq_ignore_ascii_case(urn::USER));
    let name = match (core, p.sub.as_deref()) {
        (true, Some(s)) if p.name.eq_ignore_ascii_case(m.name()) => Some(s),
        (true, None) if p.urn.is_none() => Some(p.name.as_str()),
        _ => None,
    };
    name.and_then(|n| m.sub_field(n))
        .ok_or_else(|| bad(format!("{p} is not a sub-attribute of {}", m.name())))
}

/// Type checks a comparison on a sub-attribute of a multi-valued document attribute: strings
/// take every operator, booleans and binary values only `eq`/`ne`.
fn literal_for_sub(
    m: MultiAttr,
    sf: SubField,
    op: CompareOp,
    v: &CompValue,
) -> Result<Literal, ScimError> {
    let (a, s) = (m.name(), sf.name);
    match sf.ty {
        Ty::Boolean => {
            if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return Err(bad(format!("{a}.{s} is a boolean: only eq and ne apply")));
            }
            boolean(v)
        }
        Ty::Binary => match v {
            CompValue::Str(x) if matches!(op, CompareOp::Eq | CompareOp::Ne) => {
                Ok(Literal::Str(x.clone()))
            }
            _ => Err(bad(format!(
                "{a}.{s} is binary: only eq, ne and pr apply, with a string"
            ))),
        },
        Ty::String | Ty::Reference => match v {
            CompValue::Str(x) => Ok(Literal::Str(x.clone())),
            CompValue::Num(n) if !is_ordering(op) => Ok(Literal::Str(n.to_string())),
            _ => Err(bad(format!("{a}.{s} compares with a string"))),
        },
        Ty::Integer | Ty::Decimal | Ty::DateTime | Ty::Complex => {
            Err(bad(format!("{a}.{s} cannot be compared")))
        }
    }
}

fn is_ordering(op: CompareOp) -> bool {
    matches!(
        op,
        CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
    )
}

fn literal_for_user(f: UserField, op: CompareOp, v: &CompValue) -> Result<Literal, ScimError> {
    match f {
        UserField::Json(j) => literal_for_json(&j, op, v),
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

/// Type checks a comparison on a JSON-document attribute (RFC 7644 §3.4.2.2): strings take
/// every operator, booleans only `eq`/`ne`, dates compare chronologically.
fn literal_for_json(j: &JsonAttr, op: CompareOp, v: &CompValue) -> Result<Literal, ScimError> {
    if j.composite {
        return Err(bad(format!(
            "{} has sub-attributes; compare one of them, or use pr",
            j.name
        )));
    }
    match j.ty {
        Ty::Boolean => {
            if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return Err(bad(format!(
                    "{} is a boolean: only eq and ne apply",
                    j.name
                )));
            }
            boolean(v)
        }
        Ty::DateTime => match v {
            CompValue::Str(s) => OffsetDateTime::parse(s, &Rfc3339)
                .map(|_| Literal::Str(s.clone()))
                .map_err(|_| bad(format!("{s:?} is not an xsd:dateTime"))),
            _ => Err(bad("a dateTime compares with a dateTime string")),
        },
        Ty::Integer | Ty::Decimal | Ty::Binary | Ty::Complex => {
            Err(bad(format!("{} cannot be compared", j.name)))
        }
        Ty::String | Ty::Reference => match v {
            CompValue::Str(s) => Ok(Literal::Str(s.clone())),
            CompValue::Num(n) if !is_ordering(op) => Ok(Literal::Str(n.to_string())),
            _ => Err(bad(format!("{} compares with a string", j.name))),
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

/// What a User list can be sorted by (RFC 7644 §3.4.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSort {
    /// A single-valued attribute.
    Field(UserField),
    /// `emails` / `emails.value`: a multi-valued attribute sorts by its primary value, else its
    /// first (RFC 7644 §3.4.2.3).
    Email,
}

/// Sortable User attributes (RFC 7644 §3.4.2.3).
pub fn user_sort_field(sort_by: &str) -> Result<UserSort, ScimError> {
    let p = sort_by.trim();
    let p = p
        .strip_prefix(urn::USER)
        .and_then(|r| r.strip_prefix(':'))
        .unwrap_or(p);
    let field = |f| Ok(UserSort::Field(f));
    match p.to_ascii_lowercase().as_str() {
        "id" => field(UserField::Id),
        "username" => field(UserField::UserName),
        "externalid" => field(UserField::ExternalId),
        // name.formatted is not the same value as realName: it sorts from the document below.
        "displayname" => field(UserField::DisplayName),
        "active" => field(UserField::Active),
        "meta.created" => field(UserField::Created),
        "meta.lastmodified" => field(UserField::LastModified),
        "emails" | "emails.value" => Ok(UserSort::Email),
        _ => {
            // Any single-valued string in the JSON document (`name.familyName`, `title`,
            // enterprise `department`): RFC 7644 §3.4.2.3 sorts by the attribute's value.
            let path = crate::scim::filter::parse_path(sort_by.trim())
                .ok()
                .filter(|pp| pp.filter.is_none() && pp.sub.is_none())
                .map(|pp| pp.attr);
            match path.as_ref().and_then(json_field) {
                Some(j)
                    if !j.composite
                        && matches!(j.ty, Ty::String | Ty::Reference | Ty::DateTime) =>
                {
                    field(UserField::Json(j))
                }
                _ => Err(ScimError::invalid_value(format!(
                    "cannot sort by {sort_by:?}"
                ))),
            }
        }
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
    /// Has at least one member (`members pr`).
    HasMembers,
    /// A condition known without looking at rows (`meta.resourceType eq "Group"`).
    Const(bool),
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
    let CompValue::Str(id) = v else {
        return Err(bad("members compare with a string id"));
    };
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
        Filter::And(a, b) => {
            GroupFilter::And(Box::new(resolve_group(a)?), Box::new(resolve_group(b)?))
        }
        Filter::Or(a, b) => {
            GroupFilter::Or(Box::new(resolve_group(a)?), Box::new(resolve_group(b)?))
        }
        Filter::Not(a) => GroupFilter::Not(Box::new(resolve_group(a)?)),
        Filter::ValuePath(p, inner) => {
            if !group_core_name(p)?.eq_ignore_ascii_case("members") {
                return Err(bad(format!("attribute {p} cannot be filtered")));
            }
            match &**inner {
                Filter::Compare(ip, op, v)
                    if ip.name.eq_ignore_ascii_case("value") && ip.sub.is_none() =>
                {
                    member_cond(*op, v)?
                }
                _ => return Err(bad("members filters support only value eq/ne")),
            }
        }
        Filter::Present(p) => {
            if is_group_resource_type(p) {
                return Ok(GroupFilter::Const(true));
            }
            match group_field_of(p)? {
                Some(f) => GroupFilter::Present(f),
                None => GroupFilter::HasMembers,
            }
        }
        Filter::Compare(p, op, v) => {
            if is_group_resource_type(p) {
                return Ok(GroupFilter::Const(resource_type_matches("Group", *op, v)?));
            }
            match group_field_of(p)? {
                Some(f) => GroupFilter::Cmp(f, *op, literal_for_group(f, *op, v)?),
                None => member_cond(*op, v)?,
            }
        }
    })
}

fn is_group_resource_type(p: &AttrPath) -> bool {
    p.urn
        .as_deref()
        .is_none_or(|u| u.eq_ignore_ascii_case(urn::GROUP))
        && p.name.eq_ignore_ascii_case("meta")
        && p.sub
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("resourceType"))
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
    let p = p
        .strip_prefix(urn::GROUP)
        .and_then(|r| r.strip_prefix(':'))
        .unwrap_or(p);
    match p.to_ascii_lowercase().as_str() {
        "id" => Ok(GroupField::Id),
        "displayname" => Ok(GroupField::DisplayName),
        "externalid" => Ok(GroupField::ExternalId),
        "meta.created" => Ok(GroupField::Created),
        "meta.lastmodified" => Ok(GroupField::LastModified),
        _ => Err(ScimError::invalid_value(format!(
            "cannot sort by {sort_by:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::parse_filter;

    fn user(f: &str) -> Result<UserFilter, ScimError> {
        resolve_user(&parse_filter(f).unwrap())
    }

    fn sub(m: MultiAttr, name: &str) -> SubField {
        m.sub_field(name).unwrap()
    }

    #[test]
    fn unknown_attributes_are_located() {
        let f = r#"userName eq "a" and nickname2 eq "b""#;
        let e = resolve_user(&crate::scim::filter::parse_filter(f).unwrap()).unwrap_err();
        let e = locate(e, f);
        assert!(e.detail.ends_with("at position 20"), "{}", e.detail);
    }

    #[test]
    fn value_filters_resolve_against_the_schema() {
        let m = MultiAttr::PhoneNumbers;
        assert_eq!(
            user(r#"phoneNumbers[Type eq "work" and VALUE co "555"]"#).unwrap(),
            UserFilter::Multi(
                m,
                Box::new(ValueCond::And(
                    Box::new(ValueCond::Cmp(
                        sub(m, "type"),
                        CompareOp::Eq,
                        Literal::Str("work".into())
                    )),
                    Box::new(ValueCond::Cmp(
                        sub(m, "value"),
                        CompareOp::Co,
                        Literal::Str("555".into())
                    )),
                )),
            )
        );
        // The schema spelling is kept whatever the request's case.
        assert_eq!(sub(MultiAttr::Addresses, "POSTALCODE").name, "postalCode");
        let a = MultiAttr::Addresses;
        assert_eq!(
            user(r#"addresses[type eq "work"].postalCode eq "98052""#).unwrap(),
            UserFilter::Multi(
                a,
                Box::new(ValueCond::And(
                    Box::new(ValueCond::Cmp(
                        sub(a, "type"),
                        CompareOp::Eq,
                        Literal::Str("work".into())
                    )),
                    Box::new(ValueCond::Cmp(
                        sub(a, "postalCode"),
                        CompareOp::Eq,
                        Literal::Str("98052".into())
                    )),
                )),
            )
        );
        let r = MultiAttr::Roles;
        assert_eq!(
            user(r#"roles.primary eq "True""#).unwrap(),
            UserFilter::Multi(
                r,
                Box::new(ValueCond::Cmp(
                    sub(r, "primary"),
                    CompareOp::Eq,
                    Literal::Bool(true)
                ))
            )
        );
        assert_eq!(
            user("roles.display pr").unwrap(),
            UserFilter::Multi(r, Box::new(ValueCond::Present(sub(r, "display"))))
        );
        assert!(sub(MultiAttr::X509Certificates, "value").case_exact);
        assert!(!sub(MultiAttr::Photos, "value").case_exact);
    }

    #[test]
    fn bad_value_filters_are_invalid_filter() {
        for f in [
            r#"phoneNumbers[nope eq "1"]"#,
            r#"phoneNumbers.nope pr"#,
            r#"phoneNumbers[type eq "work"].nope eq "1""#,
            r#"roles[primary gt true]"#,
            r#"roles[value eq null]"#,
            r#"roles[urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:value eq "x"]"#,
            r#"addresses eq "x""#,
            r#"x509Certificates.value sw "M""#,
        ] {
            let e = user(f).unwrap_err();
            assert_eq!(
                (e.status, e.scim_type),
                (400, Some(crate::scim::error::ScimType::InvalidFilter)),
                "{f}"
            );
        }
    }
}
