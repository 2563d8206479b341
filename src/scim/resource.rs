//! Resource documents: normalising what clients send, and projecting what we return.
//!
//! A request body is normalised once into a canonical document: attribute names in their
//! schema spelling (names are case-insensitive, RFC 7643 §2.1), `"True"`/`"False"` strings
//! read as booleans (Entra, docs/scim-clients.md), nulls dropped (RFC 7643 §2.5: unassigned),
//! read-only attributes ignored, `password` discarded, extension attributes under their URN.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::ScimError;
use super::schema::{self, Attr, Mutability, Resource, Ty};

/// Normalises a request body into a canonical document of `res`.
pub fn normalize(res: Resource, body: &Value) -> Result<Map<String, Value>, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the request body must be a JSON object"))?;
    let mut out = Map::new();
    for (key, value) in obj {
        if value.is_null() || key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if let Some(ext) = schema::extension_urn(res, key) {
            // `"urn:...:enterprise:2.0:User": { "department": ... }`
            let Some(inner) = value.as_object() else {
                return Err(ScimError::invalid_value(format!("{key} must be an object")));
            };
            for (k, v) in inner {
                if let Some((_, def)) = schema::resolve(res, Some(ext), k) {
                    put(&mut out, Some(ext), def, v)?;
                }
            }
            continue;
        }
        let (urn, name) = match schema::split_urn(key) {
            Some((u, n)) => (Some(u), n),
            None => (None, key.as_str()),
        };
        // Dotted keys (`name.givenName`) appear in PATCH value maps; in bodies they are unusual
        // but harmless to accept the same way.
        let (top, sub) = match name.split_once('.') {
            Some((t, s)) => (t, Some(s)),
            None => (name, None),
        };
        let Some((scope, def)) = schema::resolve(res, urn, top) else {
            continue; // Unknown attributes are ignored (RFC 7644 §3.3 leaves this to the SP).
        };
        let ext = match scope {
            schema::Scope::Core => None,
            schema::Scope::Extension(u) => Some(u),
        };
        match sub {
            None => put(&mut out, ext, def, value)?,
            Some(sub) => {
                let Some(sdef) = schema::find_in(def.sub, sub) else {
                    continue;
                };
                if def.multi {
                    continue;
                }
                if let Some(v) = coerce(sdef, value, &format!("{}.{}", def.name, sdef.name))?
                    && let Some(target) = target_map(&mut out, ext)
                {
                    let entry = target
                        .entry(def.name)
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Some(m) = entry.as_object_mut() {
                        m.insert(sdef.name.to_owned(), v);
                    }
                }
            }
        }
    }
    Ok(out)
}

fn target_map<'a>(
    out: &'a mut Map<String, Value>,
    ext: Option<&str>,
) -> Option<&'a mut Map<String, Value>> {
    match ext {
        None => Some(out),
        Some(u) => {
            let entry = out.entry(u).or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            entry.as_object_mut()
        }
    }
}

fn put(
    out: &mut Map<String, Value>,
    ext: Option<&str>,
    def: &Attr,
    value: &Value,
) -> Result<(), ScimError> {
    if matches!(def.mutability, Mutability::ReadOnly | Mutability::WriteOnly) {
        return Ok(());
    }
    if let Some(v) = coerce(def, value, def.name)?
        && let Some(target) = target_map(out, ext)
    {
        target.insert(def.name.to_owned(), v);
    }
    Ok(())
}

/// Coerces one attribute value to its definition; `None` means unassigned.
pub fn coerce(def: &Attr, value: &Value, path: &str) -> Result<Option<Value>, ScimError> {
    if value.is_null() {
        return Ok(None);
    }
    if def.multi {
        let items: Vec<&Value> = match value {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        let mut out = Vec::with_capacity(items.len());
        let mut seen_primary = false;
        for item in items {
            if let Some(mut v) = coerce_single(def, item, path)? {
                // At most one primary value (RFC 7643 §2.4): the first one wins.
                if let Some(m) = v.as_object_mut()
                    && m.get("primary") == Some(&Value::Bool(true))
                {
                    if seen_primary {
                        m.insert("primary".into(), Value::Bool(false));
                    }
                    seen_primary = true;
                }
                if !out.contains(&v) {
                    out.push(v);
                }
            }
        }
        return Ok(if out.is_empty() {
            None
        } else {
            Some(Value::Array(out))
        });
    }
    let single = match value {
        // Entra sends a one-element array for single-valued complex attributes (manager).
        Value::Array(a) if a.len() == 1 && def.ty == Ty::Complex => &a[0],
        v => v,
    };
    coerce_single(def, single, path)
}

fn coerce_single(def: &Attr, value: &Value, path: &str) -> Result<Option<Value>, ScimError> {
    match def.ty {
        Ty::Complex => {
            let obj = match value {
                Value::Null => return Ok(None),
                Value::Object(o) => o.clone(),
                // Entra's bare manager id: `"manager": "271"`.
                Value::String(s) if schema::find_in(def.sub, "value").is_some() => {
                    let mut m = Map::new();
                    m.insert("value".into(), Value::String(s.clone()));
                    m
                }
                _ => {
                    return Err(ScimError::invalid_value(format!(
                        "{path} must be an object"
                    )));
                }
            };
            let mut out = Map::new();
            for (k, v) in &obj {
                let Some(sdef) = schema::find_in(def.sub, k) else {
                    continue;
                };
                if sdef.mutability == Mutability::ReadOnly && def.mutability != Mutability::ReadOnly
                {
                    continue;
                }
                if let Some(v) = coerce_single(sdef, v, &format!("{path}.{}", sdef.name))? {
                    out.insert(sdef.name.to_owned(), v);
                }
            }
            Ok(if out.is_empty() {
                None
            } else {
                Some(Value::Object(out))
            })
        }
        Ty::Boolean => match value {
            Value::Bool(b) => Ok(Some(Value::Bool(*b))),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Some(Value::Bool(true))),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Some(Value::Bool(false))),
            Value::Null => Ok(None),
            _ => Err(ScimError::invalid_value(format!(
                "{path} must be a boolean"
            ))),
        },
        Ty::Integer | Ty::Decimal => match value {
            Value::Number(_) => Ok(Some(value.clone())),
            _ => Err(ScimError::invalid_value(format!("{path} must be a number"))),
        },
        Ty::String | Ty::Reference | Ty::DateTime | Ty::Binary => match value {
            Value::String(s) => Ok(Some(Value::String(s.clone()))),
            // Numbers for string attributes (employee numbers) are kept as their text.
            Value::Number(n) if def.ty == Ty::String => Ok(Some(Value::String(n.to_string()))),
            _ => Err(ScimError::invalid_value(format!("{path} must be a string"))),
        },
    }
}

/// Largest `externalId` kept, in characters (`scim_user.externalID` and
/// `scim_group.externalID` are `varchar(128)`).
pub const MAX_EXTERNAL_ID_CHARS: usize = 128;

/// Removes `externalId` from a canonical document; one longer than
/// [`MAX_EXTERNAL_ID_CHARS`] is refused.
pub fn take_external_id(doc: &mut Map<String, Value>) -> Result<Option<String>, ScimError> {
    let external_id = match doc.remove("externalId") {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    if external_id
        .as_ref()
        .is_some_and(|e| e.chars().count() > MAX_EXTERNAL_ID_CHARS)
    {
        return Err(ScimError::invalid_value(format!(
            "externalId is longer than {MAX_EXTERNAL_ID_CHARS} characters"
        )));
    }
    Ok(external_id)
}

/// Epoch seconds as an RFC 3339 UTC timestamp (`xsd:dateTime`).
pub fn datetime(epoch: u32) -> String {
    OffsetDateTime::from_unix_timestamp(i64::from(epoch))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// The weak ETag of a resource version.
pub fn etag(version: u32) -> String {
    format!("W/\"{version}\"")
}

/// Does a conditional header's entity-tag list name `version`? Weak comparison (RFC 7232
/// §2.3.2: `W/"3"` and `"3"` match), and `*` matches any current resource.
fn tag_list_matches(header: &str, version: u32) -> bool {
    let current = etag(version);
    let strip = |s: &str| s.trim().trim_start_matches("W/").to_owned();
    header
        .split(',')
        .any(|t| t.trim() == "*" || strip(t) == strip(&current))
}

/// The conditional headers of a request on one resource (RFC 7644 §3.14; evaluated in the
/// order of RFC 7232 §6: `If-Match`, then `If-None-Match`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Preconditions<'a> {
    /// `If-Match`.
    pub if_match: Option<&'a str>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
}

/// What a read does once its preconditions are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadCheck {
    /// Send the resource.
    Proceed,
    /// 304 Not Modified: the client's copy is current.
    NotModified,
}

impl Preconditions<'_> {
    /// Only `If-Match`: what a Bulk operation's `version` carries (RFC 7644 §3.7).
    pub fn if_match(tag: Option<&str>) -> Preconditions<'_> {
        Preconditions {
            if_match: tag,
            if_none_match: None,
        }
    }

    /// For PUT, PATCH and DELETE: a stale `If-Match`, or an `If-None-Match` naming the current
    /// version, is 412 Precondition Failed (RFC 7232 §3.1, §3.2).
    pub fn check_write(&self, version: u32) -> Result<(), ScimError> {
        if let Some(h) = self.if_match
            && !tag_list_matches(h, version)
        {
            return Err(ScimError::precondition_failed(format!(
                "If-Match: the resource is at version {}",
                etag(version)
            )));
        }
        if let Some(h) = self.if_none_match
            && tag_list_matches(h, version)
        {
            return Err(ScimError::precondition_failed(format!(
                "If-None-Match: the resource is at version {}",
                etag(version)
            )));
        }
        Ok(())
    }

    /// For GET: a stale `If-Match` is 412; an `If-None-Match` naming the current version is
    /// 304 (RFC 7232 §3.2).
    pub fn check_read(&self, version: u32) -> Result<ReadCheck, ScimError> {
        if let Some(h) = self.if_match
            && !tag_list_matches(h, version)
        {
            return Err(ScimError::precondition_failed(format!(
                "If-Match: the resource is at version {}",
                etag(version)
            )));
        }
        match self.if_none_match {
            Some(h) if tag_list_matches(h, version) => Ok(ReadCheck::NotModified),
            _ => Ok(ReadCheck::Proceed),
        }
    }
}

/// `meta` of a resource.
pub fn meta(res: Resource, location: &str, created: u32, modified: u32, version: u32) -> Value {
    serde_json::json!({
        "resourceType": res.name(),
        "created": datetime(created),
        "lastModified": datetime(modified),
        "location": location,
        "version": etag(version),
    })
}

/// One entry of an attribute list: (schema URN or None, attribute name, sub-attribute).
pub type AttrRef = (Option<String>, String, Option<String>);

/// `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    /// Requested attributes: empty means the default set.
    pub attributes: Vec<AttrRef>,
    /// Excluded attributes.
    pub excluded: Vec<AttrRef>,
}

impl Projection {
    /// Parses the comma-separated query parameters.
    pub fn parse(
        res: Resource,
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> Result<Self, ScimError> {
        Ok(Self {
            attributes: parse_list(res, attributes)?,
            excluded: parse_list(res, excluded)?,
        })
    }

    /// True when `name` (a top-level core attribute) would be returned: lets callers skip
    /// loading it (Entra's `excludedAttributes=members`).
    pub fn wants(&self, name: &str) -> bool {
        if self
            .excluded
            .iter()
            .any(|(u, n, s)| u.is_none() && s.is_none() && n.eq_ignore_ascii_case(name))
        {
            return false;
        }
        self.attributes.is_empty()
            || self
                .attributes
                .iter()
                .any(|(_, n, _)| n.eq_ignore_ascii_case(name))
    }

    /// No `attributes` and no `excludedAttributes`: `apply` changes nothing.
    pub fn is_default(&self) -> bool {
        self.attributes.is_empty() && self.excluded.is_empty()
    }

    /// Applies the projection to a rendered resource.
    pub fn apply(&self, res: Resource, doc: Value) -> Value {
        let Value::Object(mut obj) = doc else {
            return doc;
        };
        if !self.attributes.is_empty() {
            obj = self.keep_attributes(res, &obj);
        }
        self.drop_excluded(res, &mut obj);
        Value::Object(obj)
    }

    /// `attributes`: the named attributes (and sub-attributes) of `obj`, with `schemas` and
    /// `id`.
    fn keep_attributes(&self, res: Resource, obj: &Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::new();
        for (k, v) in obj {
            if k == "schemas" || k == "id" {
                out.insert(k.clone(), v.clone());
                continue;
            }
            if let Some(ext) = schema::extension_urn(res, k) {
                let picked: Map<String, Value> = v
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .filter(|(ik, _)| {
                                self.attributes.iter().any(|(u, n, _)| {
                                    (u.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(ext))
                                        && n.eq_ignore_ascii_case(ik))
                                        || (u.is_none() && n.eq_ignore_ascii_case(ext))
                                })
                            })
                            .map(|(a, b)| (a.clone(), b.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                if !picked.is_empty() {
                    out.insert(k.clone(), Value::Object(picked));
                }
                continue;
            }
            let subs: Vec<&Option<String>> = self
                .attributes
                .iter()
                .filter(|(u, n, _)| {
                    u.as_deref()
                        .is_none_or(|u| u.eq_ignore_ascii_case(res.core_urn()))
                        && n.eq_ignore_ascii_case(k)
                })
                .map(|(_, _, s)| s)
                .collect();
            if subs.is_empty() {
                continue;
            }
            if subs.iter().any(|s| s.is_none()) {
                out.insert(k.clone(), v.clone());
            } else {
                out.insert(k.clone(), pick_subs(v, &subs));
            }
        }
        out
    }

    /// `excludedAttributes`: removes the named attributes (and sub-attributes) but `id`.
    fn drop_excluded(&self, res: Resource, obj: &mut Map<String, Value>) {
        for (u, n, s) in &self.excluded {
            let key = match u {
                Some(u) if schema::extension_urn(res, u).is_some() => {
                    if let Some(Value::Object(m)) = obj.get_mut(u.as_str()) {
                        let names: Vec<String> = m
                            .keys()
                            .filter(|k| k.eq_ignore_ascii_case(n))
                            .cloned()
                            .collect();
                        for k in names {
                            m.remove(&k);
                        }
                    }
                    continue;
                }
                _ => n,
            };
            if key.eq_ignore_ascii_case("id") {
                continue; // `returned: always`
            }
            let names: Vec<String> = obj
                .keys()
                .filter(|k| k.eq_ignore_ascii_case(key))
                .cloned()
                .collect();
            for k in names {
                match s {
                    None => {
                        obj.remove(&k);
                    }
                    Some(sub) => {
                        if let Some(v) = obj.get_mut(&k) {
                            strip_sub(v, sub);
                        }
                    }
                }
            }
        }
    }
}

fn pick_subs(v: &Value, subs: &[&Option<String>]) -> Value {
    let keep = |m: &Map<String, Value>| -> Value {
        Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    subs.iter()
                        .any(|s| s.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(k)))
                })
                .map(|(a, b)| (a.clone(), b.clone()))
                .collect(),
        )
    };
    match v {
        Value::Object(m) => keep(m),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|e| e.as_object().map(keep).unwrap_or_else(|| e.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn strip_sub(v: &mut Value, sub: &str) {
    match v {
        Value::Object(m) => {
            let names: Vec<String> = m
                .keys()
                .filter(|k| k.eq_ignore_ascii_case(sub))
                .cloned()
                .collect();
            for k in names {
                m.remove(&k);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|e| strip_sub(e, sub)),
        _ => {}
    }
}

fn parse_list(res: Resource, list: Option<&str>) -> Result<Vec<AttrRef>, ScimError> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        // A value filter in a projection (`emails[type eq "work"]`) selects the attribute.
        let raw = raw.split('[').next().unwrap_or(raw);
        let (urn, rest) = match schema::split_urn(raw) {
            Some((u, r)) => (Some(u.to_owned()), r),
            None => (None, raw),
        };
        if let Some(u) = &urn {
            if rest.is_empty() || schema::extension_urn(res, raw).is_some() {
                // The bare extension URN selects the whole extension.
                out.push((None, raw.to_owned(), None));
                continue;
            }
            if !u.eq_ignore_ascii_case(res.core_urn()) && schema::extension_urn(res, u).is_none() {
                return Err(ScimError::invalid_value(format!(
                    "unknown schema in attribute list: {u}"
                )));
            }
        }
        let (name, sub) = match rest.split_once('.') {
            Some((n, s)) => (n.to_owned(), Some(s.to_owned())),
            None => (rest.to_owned(), None),
        };
        out.push((urn, name, sub));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_external_id_longer_than_its_column_is_refused_on_both_resources() {
        use crate::scim::group::GroupSpec;
        use crate::scim::user::UserSpec;
        let fits = "é".repeat(MAX_EXTERNAL_ID_CHARS);
        let long = "é".repeat(MAX_EXTERNAL_ID_CHARS + 1);
        let user = |e: &str| {
            UserSpec::from_doc(
                normalize(
                    Resource::User,
                    &json!({"userName": "a@x.com", "externalId": e}),
                )
                .unwrap(),
            )
        };
        let group = |e: &str| GroupSpec::from_body(&json!({"displayName": "G", "externalId": e}));
        assert_eq!(
            user(&fits).unwrap().external_id.as_deref(),
            Some(fits.as_str())
        );
        assert_eq!(
            group(&fits).unwrap().external_id.as_deref(),
            Some(fits.as_str())
        );
        for e in [user(&long).unwrap_err(), group(&long).unwrap_err()] {
            assert_eq!(e.detail, "externalId is longer than 128 characters");
        }
    }

    #[test]
    fn normalises_entra_and_microsoft_shapes() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "UserName": "Bob@x.com",
            "Active": "True",
            "addresses": null,
            "roles": [],
            "emails": [{"Primary": true, "type": "work", "Value": "bob@x.com"}],
            "meta": {"resourceType": "User"},
            "id": "ignored",
            "password": "secret",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": 42,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"Manager": "271"},
        });
        let doc = normalize(Resource::User, &body).unwrap();
        assert_eq!(
            Value::Object(doc),
            json!({
                "userName": "Bob@x.com",
                "active": true,
                "emails": [{"primary": true, "type": "work", "value": "bob@x.com"}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "42", "manager": {"value": "271"}},
            })
        );
    }

    #[test]
    fn rejects_wrong_types() {
        assert!(normalize(Resource::User, &json!({"userName": "a", "active": "maybe"})).is_err());
        assert!(normalize(Resource::User, &json!([1])).is_err());
        assert!(normalize(Resource::User, &json!({"userName": true})).is_err());
    }

    #[test]
    fn preconditions_follow_rfc_7232() {
        let p = |m: Option<&'static str>, n: Option<&'static str>| Preconditions {
            if_match: m,
            if_none_match: n,
        };
        assert!(p(None, None).check_write(3).is_ok());
        assert!(p(Some("W/\"3\""), None).check_write(3).is_ok());
        assert!(p(Some("\"3\""), None).check_write(3).is_ok());
        assert!(p(Some("W/\"1\", W/\"3\""), None).check_write(3).is_ok());
        assert!(p(Some("*"), None).check_write(3).is_ok());
        assert_eq!(
            p(Some("W/\"2\""), None).check_write(3).unwrap_err().status,
            412
        );
        assert_eq!(p(None, Some("*")).check_write(3).unwrap_err().status, 412);
        assert_eq!(
            p(None, Some("W/\"3\"")).check_write(3).unwrap_err().status,
            412
        );
        assert!(p(None, Some("W/\"2\"")).check_write(3).is_ok());
        assert_eq!(
            p(None, Some("W/\"3\"")).check_read(3).unwrap(),
            ReadCheck::NotModified
        );
        assert_eq!(
            p(None, Some("W/\"2\"")).check_read(3).unwrap(),
            ReadCheck::Proceed
        );
        assert_eq!(
            p(Some("W/\"2\""), Some("W/\"3\""))
                .check_read(3)
                .unwrap_err()
                .status,
            412
        );
        assert_eq!(
            p(Some("W/\"3\""), Some("W/\"3\"")).check_read(3).unwrap(),
            ReadCheck::NotModified
        );
    }

    #[test]
    fn projection_keeps_id_and_selects() {
        let doc = json!({"schemas": ["x"], "id": "1", "userName": "a", "emails": [{"value": "e", "type": "work"}], "meta": {}});
        let p = Projection::parse(Resource::User, Some("userName,emails.value"), None).unwrap();
        assert_eq!(
            p.apply(Resource::User, doc.clone()),
            json!({"schemas": ["x"], "id": "1", "userName": "a", "emails": [{"value": "e"}]})
        );
        let p = Projection::parse(Resource::User, None, Some("emails,id")).unwrap();
        assert_eq!(
            p.apply(Resource::User, doc),
            json!({"schemas": ["x"], "id": "1", "userName": "a", "meta": {}})
        );
    }
}
