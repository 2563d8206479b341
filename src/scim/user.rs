//! The User resource: from a canonical document to what Phabricator needs (`UserSpec`), and
//! back to the wire.

use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::resource::{self, meta};
use super::schema::{self, Resource, urn};

/// Largest SCIM userName we store: `scim_user.userName` is Phorge's `sort128` (a unique key
/// over 767 bytes would be a "long key" on Config > Database Status; UPNs and email addresses
/// fit).
pub const MAX_USER_NAME_CHARS: usize = 128;
/// `user.realName` is `varchar(128)`; Phorge validates 128 bytes.
pub const MAX_REAL_NAME_BYTES: usize = 128;
/// `user_email.address` is `sort128`.
pub const MAX_EMAIL_BYTES: usize = 128;

/// Key, in a stored user's attribute document, recording that a client removed `active`
/// (RFC 7644 §3.5.2.2: the attribute "SHALL be considered unassigned"). The account keeps its
/// state (an unassignment is no instruction to enable or disable it), and `active` is left out
/// of the representation until a client sets it again. Not an ATTRNAME (RFC 7643 §2.1), so
/// no client document can carry it.
pub const ACTIVE_UNASSIGNED: &str = "$activeUnassigned";

/// One email value of the resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailValue {
    pub value: String,
    /// Lower-cased `type`.
    pub kind: Option<String>,
    pub primary: bool,
}

/// What a User document asks of Phabricator.
#[derive(Debug, Clone, PartialEq)]
pub struct UserSpec {
    /// SCIM `userName`, verbatim.
    pub user_name: String,
    pub external_id: Option<String>,
    /// `active`, when the document says.
    pub active: Option<bool>,
    /// The Phabricator real name (displayName, else name.formatted, else given + family).
    pub real_name: String,
    pub emails: Vec<EmailValue>,
    pub user_type: Option<String>,
    /// The document without `userName`, `externalId` and `active` (kept in columns).
    pub attributes: Map<String, Value>,
}

impl UserSpec {
    /// Reads a canonical document (see `resource::normalize`).
    pub fn from_doc(mut doc: Map<String, Value>) -> Result<Self, ScimError> {
        let user_name = take_user_name(&mut doc)?;
        let external_id = take_external_id(&mut doc)?;
        let active = match doc.remove("active") {
            Some(Value::Bool(b)) => Some(b),
            _ => None,
        };
        clean_names(&mut doc);
        let real_name = real_name(&mut doc);
        let emails = email_values(&doc);
        let user_type = str_at(&doc, "userType", None);
        Ok(Self {
            user_name,
            external_id,
            active,
            real_name,
            emails,
            user_type,
            attributes: doc,
        })
    }

    /// The address Phabricator gets (docs/design.md#email-addresses): the primary email, else
    /// the first work email, else the first email, else an email-shaped userName.
    pub fn phabricator_email(&self) -> Option<String> {
        self.emails
            .iter()
            .find(|e| e.primary)
            .or_else(|| {
                self.emails
                    .iter()
                    .find(|e| e.kind.as_deref() == Some("work"))
            })
            .or_else(|| self.emails.first())
            .map(|e| e.value.clone())
            .or_else(|| is_valid_email(&self.user_name).then(|| self.user_name.clone()))
    }
}

/// Removes and checks `userName`: required, at most `MAX_USER_NAME_CHARS`, no control
/// characters.
fn take_user_name(doc: &mut Map<String, Value>) -> Result<String, ScimError> {
    let user_name = match doc.remove("userName") {
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        _ => return Err(ScimError::invalid_value("userName is required")),
    };
    if user_name.chars().count() > MAX_USER_NAME_CHARS {
        return Err(ScimError::invalid_value(format!(
            "userName is longer than {MAX_USER_NAME_CHARS} characters"
        )));
    }
    if user_name.chars().any(char::is_control) {
        return Err(ScimError::invalid_value(
            "userName contains control characters",
        ));
    }
    Ok(user_name)
}

/// Removes and checks `externalId`: at most `MAX_EXTERNAL_ID_CHARS`, no control characters.
fn take_external_id(doc: &mut Map<String, Value>) -> Result<Option<String>, ScimError> {
    let external_id = resource::take_external_id(doc)?;
    // It may become a login identifier (`login_identifier`), like userName.
    if external_id
        .as_ref()
        .is_some_and(|e| e.chars().any(char::is_control))
    {
        return Err(ScimError::invalid_value(
            "externalId contains control characters",
        ));
    }
    Ok(external_id)
}

/// A trimmed, non-empty string at `a` (or `a.b`).
fn str_at(d: &Map<String, Value>, a: &str, b: Option<&str>) -> Option<String> {
    let v = d.get(a)?;
    let v = match b {
        Some(b) => v.get(b)?,
        None => v,
    };
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The Phabricator real name (displayName, else name.formatted, else given + family), cut to
/// `MAX_REAL_NAME_BYTES`; the attribute it comes from is rewritten to what is stored.
fn real_name(doc: &mut Map<String, Value>) -> String {
    let display = str_at(doc, "displayName", None);
    let formatted = str_at(doc, "name", Some("formatted"));
    let from_display = display.is_some();
    let from_formatted = !from_display && formatted.is_some();
    let real_name = display
        .or(formatted)
        .or_else(|| {
            let parts: Vec<String> = [
                str_at(doc, "name", Some("givenName")),
                str_at(doc, "name", Some("familyName")),
            ]
            .into_iter()
            .flatten()
            .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
        .unwrap_or_default();
    let real_name = truncate_bytes(&real_name, MAX_REAL_NAME_BYTES)
        .trim_end()
        .to_owned();
    // The attribute the real name comes from says what was stored, not what was sent:
    // RFC 7644 §3.3 lets the service provider alter what it stores and answers with the
    // result. Cutting to what Phabricator holds, rather than refusing, keeps the person
    // provisioned (a 400 would leave them without an account until someone shortens the
    // name in the IdP); the IdP sees the stored value in the answer.
    if from_display {
        doc.insert("displayName".into(), Value::String(real_name.clone()));
    } else if from_formatted && let Some(Value::Object(name)) = doc.get_mut("name") {
        name.insert("formatted".into(), Value::String(real_name.clone()));
    }
    real_name
}

/// The document's email values with a non-empty address.
fn email_values(doc: &Map<String, Value>) -> Vec<EmailValue> {
    doc.get("emails")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    Some(EmailValue {
                        value: e.get("value")?.as_str()?.trim().to_owned(),
                        kind: e.get("type").and_then(Value::as_str).map(str::to_lowercase),
                        primary: e.get("primary").and_then(Value::as_bool).unwrap_or(false),
                    })
                })
                .filter(|e| !e.value.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The name attributes (`displayName`, `name`'s strings) without control characters, which
/// have no place in a name and which Phabricator would store and render as they are (a NUL,
/// an escape sequence). A run of them holding a line break or tab becomes one space; a value
/// left empty is removed (the attribute was, in effect, not sent).
fn clean_names(doc: &mut Map<String, Value>) {
    fn clean(v: &mut Value) -> bool {
        match v {
            Value::String(s) if s.chars().any(char::is_control) => {
                *s = without_controls(s);
                !s.trim().is_empty()
            }
            Value::String(s) => !s.trim().is_empty(),
            _ => true,
        }
    }
    if let Some(v) = doc.get_mut("displayName")
        && !clean(v)
    {
        doc.remove("displayName");
    }
    if let Some(Value::Object(name)) = doc.get_mut("name") {
        name.retain(|_, v| clean(v));
    }
}

/// `s` with control characters removed; a run of them that holds whitespace (a line break, a
/// tab) becomes one space.
pub fn without_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut run_has_space = false;
    let mut in_run = false;
    for c in s.chars() {
        if c.is_control() {
            in_run = true;
            run_has_space |= c.is_whitespace();
            continue;
        }
        if in_run && run_has_space {
            out.push(' ');
        }
        in_run = false;
        run_has_space = false;
        out.push(c);
    }
    out
}

/// Phabricator's address rule (`PhabricatorUserEmail::isValidAddress`): at most 128 bytes,
/// `^[a-z0-9_+.!-]+@[a-z0-9_+:.-]+$`, case-insensitive.
pub fn is_valid_email(address: &str) -> bool {
    if address.len() > MAX_EMAIL_BYTES {
        return false;
    }
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'.' | b'!' | b'-'));
    let domain_ok = !domain.is_empty()
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b':' | b'.' | b'-'));
    local_ok && domain_ok
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// What a rendered user is made of. `A` is the stored document: its values, moved into the
/// rendering (a copy of each value cost a page of 100 users a tenth of its instructions), or
/// its JSON text as stored ([`RawUserParts`], for [`write_user`]).
#[derive(Debug, Clone)]
pub struct UserParts<'a, A = Map<String, Value>> {
    pub id: &'a str,
    pub user_name: &'a str,
    pub external_id: Option<&'a str>,
    pub active: bool,
    pub attributes: A,
    /// (group id, displayName)
    pub groups: &'a [(String, String)],
    pub base_url: &'a str,
    pub created: u32,
    pub modified: u32,
    pub version: u32,
}

/// The stored document's attributes in schema order, with what rendering treats apart: the
/// enterprise extension and the "active was unassigned" marker. Attributes outside the schema,
/// and those the service renders itself, are left out. One pass over the document (a handful of
/// keys): a lookup per schema attribute hashed each name (SipHash, in serde_json's IndexMap),
/// a tenth of a list page's instructions.
struct Ordered<K, V> {
    attributes: Vec<(usize, K, V)>,
    enterprise: Option<V>,
    active_unassigned: bool,
}

fn schema_order<K: AsRef<str>, V>(doc: impl IntoIterator<Item = (K, V)>) -> Ordered<K, V> {
    let mut out = Ordered {
        attributes: Vec::new(),
        enterprise: None,
        active_unassigned: false,
    };
    for (name, value) in doc {
        match name.as_ref() {
            "userName" | "active" | "groups" | "password" => {}
            urn::ENTERPRISE_USER => out.enterprise = Some(value),
            ACTIVE_UNASSIGNED => out.active_unassigned = true,
            other => {
                if let Some(i) = schema::USER.iter().position(|d| d.name == other) {
                    out.attributes.push((i, name, value));
                }
            }
        }
    }
    out.attributes.sort_unstable_by_key(|(i, _, _)| *i);
    out
}

/// The `groups` attribute: read-only, from Phabricator's membership edges.
fn groups_value(groups: &[(String, String)], base_url: &str) -> Value {
    Value::Array(
        groups
            .iter()
            .map(|(id, name)| {
                json!({"value": id, "$ref": format!("{base_url}/Groups/{id}"), "display": name, "type": "direct"})
            })
            .collect(),
    )
}

/// Renders a User in schema order.
pub fn render_user(p: UserParts<'_>) -> Value {
    let ordered = schema_order(p.attributes);
    let mut out = Map::with_capacity(ordered.attributes.len() + 8);
    let mut schemas = vec![Value::String(urn::USER.into())];
    if ordered.enterprise.is_some() {
        schemas.push(Value::String(urn::ENTERPRISE_USER.into()));
    }
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert("id".into(), Value::String(p.id.into()));
    if let Some(e) = p.external_id {
        out.insert("externalId".into(), Value::String(e.into()));
    }
    out.insert("userName".into(), Value::String(p.user_name.into()));
    for (_, name, value) in ordered.attributes {
        out.insert(name, value);
    }
    if !ordered.active_unassigned {
        out.insert("active".into(), Value::Bool(p.active));
    }
    if !p.groups.is_empty() {
        out.insert("groups".into(), groups_value(p.groups, p.base_url));
    }
    if let Some(ext) = ordered.enterprise {
        out.insert(urn::ENTERPRISE_USER.into(), ext);
    }
    let location = format!("{}/Users/{}", p.base_url, p.id);
    out.insert(
        "meta".into(),
        meta(Resource::User, &location, p.created, p.modified, p.version),
    );
    Value::Object(out)
}

/// [`UserParts`] with the stored document (`scim_user.attributes`) as the JSON text it is
/// stored as.
pub type RawUserParts<'a> = UserParts<'a, &'a str>;

/// Writes what [`render_user`] renders, as JSON, into `out`, copying the stored document's
/// values as they are stored: no `Value`s built, copied and written back (a page of 100 users
/// spent two fifths of its instructions on those). `Err`, with `out` untouched, when the
/// document is not an object with plain keys: the caller renders through `render_user`.
pub fn write_user(out: &mut Vec<u8>, p: &RawUserParts<'_>) -> Result<(), serde_json::Error> {
    let doc: std::collections::BTreeMap<&str, &serde_json::value::RawValue> =
        serde_json::from_str(p.attributes)?;
    let ordered = schema_order(doc);
    let start = out.len();
    let written = (|| {
        out.extend_from_slice(b"{\"schemas\":[");
        serde_json::to_writer(&mut *out, urn::USER)?;
        if ordered.enterprise.is_some() {
            out.push(b',');
            serde_json::to_writer(&mut *out, urn::ENTERPRISE_USER)?;
        }
        out.extend_from_slice(b"],\"id\":");
        serde_json::to_writer(&mut *out, p.id)?;
        if let Some(e) = p.external_id {
            out.extend_from_slice(b",\"externalId\":");
            serde_json::to_writer(&mut *out, e)?;
        }
        out.extend_from_slice(b",\"userName\":");
        serde_json::to_writer(&mut *out, p.user_name)?;
        for (_, name, raw) in &ordered.attributes {
            out.push(b',');
            serde_json::to_writer(&mut *out, name)?;
            out.push(b':');
            out.extend_from_slice(raw.get().as_bytes());
        }
        if !ordered.active_unassigned {
            out.extend_from_slice(if p.active {
                b",\"active\":true"
            } else {
                b",\"active\":false"
            });
        }
        if !p.groups.is_empty() {
            out.extend_from_slice(b",\"groups\":");
            serde_json::to_writer(&mut *out, &groups_value(p.groups, p.base_url))?;
        }
        if let Some(ext) = ordered.enterprise {
            out.push(b',');
            serde_json::to_writer(&mut *out, urn::ENTERPRISE_USER)?;
            out.push(b':');
            out.extend_from_slice(ext.get().as_bytes());
        }
        let location = format!("{}/Users/{}", p.base_url, p.id);
        out.extend_from_slice(b",\"meta\":");
        serde_json::to_writer(
            &mut *out,
            &meta(Resource::User, &location, p.created, p.modified, p.version),
        )?;
        out.push(b'}');
        Ok(())
    })();
    if written.is_err() {
        out.truncate(start);
    }
    written
}

/// The canonical document of a stored user (what PATCH starts from); `active` is absent when
/// a client unassigned it ([`ACTIVE_UNASSIGNED`]).
pub fn stored_doc(
    user_name: &str,
    external_id: Option<&str>,
    active: bool,
    attributes: &Map<String, Value>,
) -> Map<String, Value> {
    let mut doc = attributes.clone();
    doc.insert("userName".into(), Value::String(user_name.into()));
    if let Some(e) = external_id {
        doc.insert("externalId".into(), Value::String(e.into()));
    }
    // The stored document may also hold the `active` last asked for (for drift checks).
    if doc.remove(ACTIVE_UNASSIGNED).is_some() {
        doc.remove("active");
    } else {
        doc.insert("active".into(), Value::Bool(active));
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::resource::normalize;

    fn spec(v: Value) -> Result<UserSpec, ScimError> {
        UserSpec::from_doc(normalize(Resource::User, &v)?)
    }

    /// The stored document of a user as the service stores it (`scim_user.attributes`).
    fn stored(v: Value) -> String {
        Value::Object(spec(v).unwrap().attributes).to_string()
    }

    fn both_ways(
        doc: &str,
        external_id: Option<&str>,
        groups: &[(String, String)],
    ) -> (String, String) {
        let attributes = match serde_json::from_str::<Value>(doc).unwrap() {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let rendered = render_user(UserParts {
            id: "PHID-USER-x",
            user_name: "u@corp.example",
            external_id,
            active: false,
            attributes,
            groups,
            base_url: "https://p.example/scim/v2",
            created: 1,
            modified: 2,
            version: 3,
        });
        let mut out = b"prefix".to_vec();
        write_user(
            &mut out,
            &RawUserParts {
                id: "PHID-USER-x",
                user_name: "u@corp.example",
                external_id,
                active: false,
                attributes: doc,
                groups,
                base_url: "https://p.example/scim/v2",
                created: 1,
                modified: 2,
                version: 3,
            },
        )
        .unwrap();
        (
            rendered.to_string(),
            String::from_utf8(out[b"prefix".len()..].to_vec()).unwrap(),
        )
    }

    /// The raw writer (reads with the default projection) writes the very bytes that rendering
    /// to `Value`s and serializing them writes, for every shape a stored document takes.
    #[test]
    fn raw_writer_matches_render() {
        let groups = vec![
            ("PHID-PROJ-a".to_owned(), "Eng \"Core\"".to_owned()),
            ("PHID-PROJ-b".to_owned(), "Ops".to_owned()),
        ];
        let full = stored(json!({
            "userName": "u@corp.example",
            "name": {"givenName": "Zoë", "familyName": "O'Brien", "formatted": "Zoë O'Brien"},
            "displayName": "Zoë \u{1F600} \"Z\"",
            "title": "Engineer",
            "userType": "Employee",
            "emails": [{"value": "u@corp.example", "type": "work", "primary": true}, {"value": "x@y.example", "type": "home"}],
            "phoneNumbers": [{"value": "+1 555", "type": "work"}],
            urn::ENTERPRISE_USER: {"employeeNumber": "42", "manager": {"value": "m"}},
            "active": false,
        }));
        for (doc, ext, g) in [
            (full.as_str(), Some("ext-1"), groups.as_slice()),
            ("{}", None, &[][..]),
            (
                r#"{"displayName":"D","$activeUnassigned":true}"#,
                None,
                &[][..],
            ),
            (
                r#"{"x-custom":[1,2],"emails":[{"value":"a@b.c"}],"password":"p","groups":[]}"#,
                Some("e"),
                &[][..],
            ),
        ] {
            let (rendered, written) = both_ways(doc, ext, g);
            assert_eq!(rendered, written, "stored document {doc}");
        }
    }

    /// A document the raw writer cannot take as it is leaves `out` untouched and says so; the
    /// caller renders it through `Value`s.
    #[test]
    fn raw_writer_refuses_what_it_cannot_copy() {
        for doc in ["[]", r#"{"na\u006de":{"givenName":"G"}}"#, "not json"] {
            let mut out = b"prefix".to_vec();
            let parts = RawUserParts {
                id: "i",
                user_name: "u",
                external_id: None,
                active: true,
                attributes: doc,
                groups: &[],
                base_url: "b",
                created: 0,
                modified: 0,
                version: 1,
            };
            assert!(write_user(&mut out, &parts).is_err(), "{doc}");
            assert_eq!(out, b"prefix");
        }
    }

    #[test]
    fn real_name_falls_back_through_name_parts() {
        assert_eq!(
            spec(json!({"userName": "a", "displayName": "D"}))
                .unwrap()
                .real_name,
            "D"
        );
        assert_eq!(
            spec(json!({"userName": "a", "name": {"formatted": "F G"}}))
                .unwrap()
                .real_name,
            "F G"
        );
        assert_eq!(
            spec(json!({"userName": "a", "name": {"givenName": "G", "familyName": "F"}}))
                .unwrap()
                .real_name,
            "G F"
        );
        assert_eq!(spec(json!({"userName": "a"})).unwrap().real_name, "");
    }

    #[test]
    fn email_choice_follows_design() {
        let s = spec(json!({"userName": "u@x.com", "emails": [{"value": "o@x.com", "type": "other"}, {"value": "w@x.com", "type": "Work"}]})).unwrap();
        assert_eq!(s.phabricator_email().as_deref(), Some("w@x.com"));
        let s = spec(json!({"userName": "u@x.com", "emails": [{"value": "o@x.com"}, {"value": "p@x.com", "primary": "true"}]})).unwrap();
        assert_eq!(s.phabricator_email().as_deref(), Some("p@x.com"));
        assert_eq!(
            spec(json!({"userName": "u@x.com"}))
                .unwrap()
                .phabricator_email()
                .as_deref(),
            Some("u@x.com")
        );
        assert_eq!(
            spec(json!({"userName": "u"})).unwrap().phabricator_email(),
            None
        );
    }

    #[test]
    fn user_name_is_required_and_bounded() {
        assert!(spec(json!({"displayName": "x"})).is_err());
        assert!(spec(json!({"userName": "  "})).is_err());
        assert!(spec(json!({"userName": "a".repeat(129)})).is_err());
        assert!(spec(json!({"userName": "a".repeat(128)})).is_ok());
        assert!(spec(json!({"userName": "a\u{0}"})).is_err());
        assert!(spec(json!({"userName": "a", "externalId": "e\u{0}"})).is_err());
        assert!(spec(json!({"userName": "a", "externalId": "e"})).is_ok());
    }

    #[test]
    fn email_rule_matches_phabricator() {
        assert!(is_valid_email("Jane.Doe+x@Example.COM"));
        assert!(!is_valid_email("jane doe@x.com"));
        assert!(!is_valid_email("@x.com"));
        assert!(!is_valid_email("a@"));
        assert!(!is_valid_email(&format!("{}@x.com", "a".repeat(130))));
    }

    #[test]
    fn names_lose_control_characters_and_keep_what_phabricator_holds() {
        assert_eq!(without_controls("Ann\u{0}a\u{7}\tLee\u{1b}"), "Anna Lee");
        assert_eq!(without_controls("A\r\nB\u{9f}C"), "A BC");
        let s = spec(json!({"userName": "a", "displayName": "\u{0}", "name": {"formatted": "F\u{0}G", "givenName": "\u{7}"}})).unwrap();
        assert_eq!(s.real_name, "FG");
        assert!(!s.attributes.contains_key("displayName"));
        assert_eq!(s.attributes["name"], json!({"formatted": "FG"}));
        let long = format!("é{}", "x".repeat(300));
        let s = spec(json!({"userName": "a", "displayName": long})).unwrap();
        assert_eq!(s.real_name.len(), MAX_REAL_NAME_BYTES);
        assert_eq!(s.attributes["displayName"], s.real_name.as_str());
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_bytes("ééé", 3), "é");
    }
}
