//! The Group resource: from a canonical document to what Phabricator needs (`GroupSpec`),
//! PATCH operations split into attribute operations and a membership plan, and rendering.
//!
//! Members are never applied to a JSON copy of the membership: a group may have 50,000 of
//! them. Member operations fold into a [`MemberPlan`] (ids to add, ids to remove, or "replace
//! the whole set"), which provisioning turns into edge deltas against the current edges, and
//! reads the whole membership only for a whole-set replace.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::filter::{AttrPath, CompValue, CompareOp, Filter, parse_path};
use super::patch::{OpKind, PatchOp};
use super::resource::{Projection, meta, normalize, take_external_id};
use super::schema::{Resource, urn};

/// `project.name` is `sort128`; Phorge validates 128 bytes.
pub const MAX_DISPLAY_NAME_BYTES: usize = 128;

/// What a Group document asks of Phabricator.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    /// The project name (trimmed, as Phorge trims it, docs/phabricator-tables.md#projects).
    pub display_name: String,
    /// SCIM `externalId`.
    pub external_id: Option<String>,
    /// Member user ids, when the document has `members`.
    pub members: Option<Vec<String>>,
    /// The document without `displayName`, `externalId` and `members`.
    pub attributes: Map<String, Value>,
}

impl GroupSpec {
    /// Reads a POST or PUT body. `members` is taken out before normalisation and read with
    /// [`member_ids`] (Entra sends `"$ref": null`, which the generic coercion refuses, and a
    /// membership of thousands is not worth copying into a canonical tree).
    pub fn from_body(body: &Value) -> Result<Self, ScimError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("the request body must be a JSON object"))?;
        let mut rest = Map::new();
        let mut members = None;
        for (k, v) in obj {
            let name = match super::schema::split_urn(k) {
                Some((u, n)) if u.eq_ignore_ascii_case(urn::GROUP) => n,
                _ => k.as_str(),
            };
            if name.eq_ignore_ascii_case("members") {
                members = Some(v);
            } else {
                rest.insert(k.clone(), v.clone());
            }
        }
        let mut spec = Self::from_doc(normalize(Resource::Group, &Value::Object(rest))?)?;
        spec.members = members
            .filter(|m| !m.is_null())
            .map(member_ids)
            .transpose()?;
        Ok(spec)
    }

    /// Reads a canonical document without members (see `resource::normalize`).
    pub fn from_doc(mut doc: Map<String, Value>) -> Result<Self, ScimError> {
        let display_name = match doc.remove("displayName") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            _ => return Err(ScimError::invalid_value("displayName is required")),
        };
        if display_name.len() > MAX_DISPLAY_NAME_BYTES {
            return Err(ScimError::invalid_value(format!(
                "displayName is longer than {MAX_DISPLAY_NAME_BYTES} bytes (the limit of a Phabricator project name)"
            )));
        }
        if display_name.chars().any(char::is_control) {
            return Err(ScimError::invalid_value(
                "displayName contains control characters",
            ));
        }
        let external_id = take_external_id(&mut doc)?;
        doc.remove("members");
        Ok(Self {
            display_name,
            external_id,
            members: None,
            attributes: doc,
        })
    }
}

/// Reads the member ids of a `members` value: an array (or one value) of `{"value": id, ...}`
/// objects (keys case-insensitive; `$ref: null` and `display` are ignored) or bare id
/// strings. Members of `type` `Group`, and project ids, are refused: Phabricator projects have
/// no nested membership (docs/scim-clients.md#entra-id-groups).
pub fn member_ids(value: &Value) -> Result<Vec<String>, ScimError> {
    let items: Vec<&Value> = match value {
        Value::Array(a) => a.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let (id, ty) = match item {
            Value::String(s) => (s.trim().to_owned(), None),
            Value::Object(o) => {
                let get = |name: &str| {
                    o.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v)
                };
                let id = match get("value") {
                    Some(Value::String(s)) => s.trim().to_owned(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => {
                        return Err(ScimError::invalid_value(
                            "every member needs a value (the user's id)",
                        ));
                    }
                };
                (id, get("type").and_then(Value::as_str))
            }
            Value::Null => continue,
            _ => {
                return Err(ScimError::invalid_value(
                    "members must be objects with a value",
                ));
            }
        };
        if id.is_empty() {
            return Err(ScimError::invalid_value(
                "every member needs a value (the user's id)",
            ));
        }
        if ty.is_some_and(|t| t.eq_ignore_ascii_case("Group")) || id.starts_with("PHID-PROJ-") {
            return Err(ScimError::invalid_value(format!(
                "member {id} is a group: Phabricator projects cannot contain other projects (nested groups are not supported)"
            )));
        }
        out.push(id);
    }
    Ok(out)
}

/// The membership change a PATCH (or PUT) asks for, folded in operation order. The last
/// operation naming an id decides whether it is added or removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemberPlan {
    /// True: the membership becomes exactly [`MemberPlan::adds`]. False: a delta.
    pub replace_all: bool,
    order: Vec<String>,
    state: HashMap<String, bool>,
}

impl MemberPlan {
    /// A whole-set replacement by `ids`.
    pub fn replace(ids: Vec<String>) -> Self {
        let mut plan = Self {
            replace_all: true,
            ..Self::default()
        };
        for id in ids {
            plan.add(id);
        }
        plan
    }

    fn add(&mut self, id: String) {
        if self.state.insert(id.clone(), true).is_none() {
            self.order.push(id);
        }
    }

    fn remove(&mut self, id: String) {
        if self.state.insert(id.clone(), false).is_none() {
            self.order.push(id);
        }
    }

    fn clear(&mut self) {
        self.replace_all = true;
        self.order.clear();
        self.state.clear();
    }

    /// Ids to add (for a replace: the whole new set), in the order they were sent.
    pub fn adds(&self) -> Vec<String> {
        self.order
            .iter()
            .filter(|id| self.state.get(*id) == Some(&true))
            .cloned()
            .collect()
    }

    /// Ids to remove (a delta only; a replace removes whatever is not in [`Self::adds`]).
    pub fn removes(&self) -> Vec<String> {
        if self.replace_all {
            return Vec::new();
        }
        self.order
            .iter()
            .filter(|id| self.state.get(*id) == Some(&false))
            .cloned()
            .collect()
    }
}

/// A group PATCH, split: operations on the other attributes (for `scim::patch::apply`) and
/// the membership plan, if any operation touched `members`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupPatch {
    /// Operations on displayName, externalId (for `scim::patch::apply`).
    pub attribute_ops: Vec<PatchOp>,
    /// The member plan, when any operation touched `members`.
    pub members: Option<MemberPlan>,
}

fn is_members(p: &AttrPath) -> bool {
    p.name.eq_ignore_ascii_case("members")
        && p.urn
            .as_deref()
            .is_none_or(|u| u.eq_ignore_ascii_case(urn::GROUP))
}

/// Ids selected by a members value filter: `value eq "id"` and `or`s of them (what Entra,
/// Okta and the RFC examples send). Other filters would need every member's attributes.
fn filter_ids(f: &Filter) -> Result<Vec<String>, ScimError> {
    match f {
        Filter::Compare(p, CompareOp::Eq, CompValue::Str(s))
            if p.urn.is_none()
                && ((p.name.eq_ignore_ascii_case("value") && p.sub.is_none())
                    || (p.name.eq_ignore_ascii_case("members")
                        && p.sub
                            .as_deref()
                            .is_some_and(|s| s.eq_ignore_ascii_case("value")))) =>
        {
            Ok(vec![s.clone()])
        }
        Filter::Or(a, b) => {
            let mut ids = filter_ids(a)?;
            ids.extend(filter_ids(b)?);
            Ok(ids)
        }
        _ => Err(ScimError::invalid_filter(
            "a members filter must select members by id: members[value eq \"<id>\"] (or several joined with or)",
        )),
    }
}

/// Splits PATCH operations (RFC 7644 §3.5.2) into attribute operations and a member plan,
/// accepting every dialect of docs/scim-clients.md (item 7 of its first list): `add` of a
/// members array; `remove` with `members[value eq "id"]`; Entra's `Remove` with
/// `path: members` and a value list; `remove` of `members` without value (empties the group);
/// `replace` of the whole list; and no-path `add`/`replace` maps that carry `members` next to
/// `displayName` (Okta's `{id, displayName}` carries none and goes to the attribute engine,
/// which ignores `id`).
pub fn split_patch(ops: &[PatchOp]) -> Result<GroupPatch, ScimError> {
    let mut out = GroupPatch::default();
    for op in ops {
        match &op.path {
            Some(p) => {
                let path = parse_path(p)
                    .map_err(|e| ScimError::invalid_path(format!("path {p:?}: {e}")))?;
                if !is_members(&path.attr) {
                    out.attribute_ops.push(op.clone());
                    continue;
                }
                if path.attr.sub.is_some() || path.sub.is_some() {
                    return Err(ScimError::invalid_path(format!(
                        "{p}: a member is changed as a whole value (add or remove its id)"
                    )));
                }
                let plan = out.members.get_or_insert_with(MemberPlan::default);
                let values = || {
                    op.value
                        .as_ref()
                        .map(member_ids)
                        .transpose()
                        .map(Option::unwrap_or_default)
                };
                match (op.op, &path.filter) {
                    (OpKind::Add, _) => values()?.into_iter().for_each(|id| plan.add(id)),
                    (OpKind::Remove, Some(f)) => {
                        filter_ids(f)?.into_iter().for_each(|id| plan.remove(id))
                    }
                    // Entra's default dialect: `Remove`, path `members`, value `[{"value": id}]`.
                    (OpKind::Remove, None) => match &op.value {
                        Some(v) if !v.is_null() => member_ids_lenient(v)
                            .into_iter()
                            .for_each(|id| plan.remove(id)),
                        // RFC 7644 §3.5.2.2: no filter and no value removes every member.
                        _ => plan.clear(),
                    },
                    (OpKind::Replace, None) => {
                        let ids = values()?;
                        plan.clear();
                        ids.into_iter().for_each(|id| plan.add(id));
                    }
                    (OpKind::Replace, Some(f)) => {
                        let ids = values()?;
                        filter_ids(f)?.into_iter().for_each(|id| plan.remove(id));
                        ids.into_iter().for_each(|id| plan.add(id));
                    }
                }
            }
            None => {
                let Some(Value::Object(map)) = &op.value else {
                    out.attribute_ops.push(op.clone());
                    continue;
                };
                let mut rest = Map::new();
                let mut members = None;
                for (k, v) in map {
                    let name = match super::schema::split_urn(k) {
                        Some((u, n)) if u.eq_ignore_ascii_case(urn::GROUP) => n,
                        _ => k.as_str(),
                    };
                    if name.eq_ignore_ascii_case("members") {
                        members = Some(v);
                    } else {
                        rest.insert(k.clone(), v.clone());
                    }
                }
                if let (Some(v), OpKind::Add | OpKind::Replace) = (members, op.op) {
                    let ids = member_ids(v)?;
                    let plan = out.members.get_or_insert_with(MemberPlan::default);
                    if op.op == OpKind::Replace {
                        plan.clear();
                    }
                    ids.into_iter().for_each(|id| plan.add(id));
                }
                if !rest.is_empty() || op.op == OpKind::Remove {
                    out.attribute_ops.push(PatchOp {
                        op: op.op,
                        path: None,
                        value: Some(Value::Object(rest)),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Ids of a removal value list; a nested group named there is simply not a member, so
/// removing it is the no-op success IdPs expect.
fn member_ids_lenient(value: &Value) -> Vec<String> {
    let items: Vec<&Value> = match value {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .filter_map(|item| match item {
            Value::String(s) => Some(s.trim().to_owned()),
            Value::Object(o) => o
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("value"))
                .and_then(|(_, v)| match v {
                    Value::String(s) => Some(s.trim().to_owned()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                }),
            _ => None,
        })
        .filter(|id| !id.is_empty())
        .collect()
}

/// What a rendered group is made of (members are written separately, see [`write_member`]).
#[derive(Debug, Clone)]
pub struct GroupParts<'a> {
    /// The project PHID.
    pub id: &'a str,
    /// `displayName`.
    pub display_name: &'a str,
    /// `externalId`.
    pub external_id: Option<&'a str>,
    /// Other stored attributes.
    pub attributes: &'a Map<String, Value>,
    /// Base URL for `$ref` and `meta.location`.
    pub base_url: &'a str,
    /// Epoch seconds.
    pub created: u32,
    /// Epoch seconds.
    pub modified: u32,
    /// ETag version.
    pub version: u32,
}

/// Renders a Group without its members.
pub fn render_group(p: &GroupParts<'_>) -> Value {
    let mut out = Map::new();
    out.insert("schemas".into(), json!([urn::GROUP]));
    out.insert("id".into(), Value::String(p.id.into()));
    if let Some(e) = p.external_id {
        out.insert("externalId".into(), Value::String(e.into()));
    }
    out.insert("displayName".into(), Value::String(p.display_name.into()));
    for (k, v) in p.attributes {
        if !out.contains_key(k) && k != "members" {
            out.insert(k.clone(), v.clone());
        }
    }
    let location = format!("{}/Groups/{}", p.base_url, p.id);
    out.insert(
        "meta".into(),
        meta(Resource::Group, &location, p.created, p.modified, p.version),
    );
    Value::Object(out)
}

/// The canonical document of a stored group, without members (what PATCH starts from).
pub fn stored_doc(
    display_name: &str,
    external_id: Option<&str>,
    attributes: &Map<String, Value>,
) -> Map<String, Value> {
    let mut doc = attributes.clone();
    doc.insert("displayName".into(), Value::String(display_name.into()));
    if let Some(e) = external_id {
        doc.insert("externalId".into(), Value::String(e.into()));
    }
    doc
}

/// Which sub-attributes of a member value a projection returns: `value`, `$ref`, `display`,
/// `type` (RFC 7644 §3.4.2.5, e.g. `attributes=members.value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberFields {
    /// `value`.
    pub value: bool,
    /// `$ref`.
    pub reference: bool,
    /// `display`.
    pub display: bool,
    /// `type`.
    pub kind: bool,
}

impl MemberFields {
    /// From a projection that wants `members`.
    pub fn of(p: &Projection) -> Self {
        let is_members = |n: &str, u: &Option<String>| {
            n.eq_ignore_ascii_case("members")
                && u.as_deref()
                    .is_none_or(|u| u.eq_ignore_ascii_case(urn::GROUP))
        };
        let picked: Vec<&str> = p
            .attributes
            .iter()
            .filter(|(u, n, _)| is_members(n, u))
            .map(|(_, _, s)| s.as_deref().unwrap_or("*"))
            .collect();
        let all = picked.is_empty() || picked.contains(&"*");
        let has = |name: &str| {
            let chosen = all || picked.iter().any(|s| s.eq_ignore_ascii_case(name));
            let dropped = p.excluded.iter().any(|(u, n, s)| {
                is_members(n, u) && s.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(name))
            });
            chosen && !dropped
        };
        // `display` is `returned: request` (schema.rs): only when named.
        let display = picked.iter().any(|s| s.eq_ignore_ascii_case("display")) && has("display");
        Self {
            value: has("value"),
            reference: has("$ref"),
            display,
            kind: has("type"),
        }
    }

    /// Every sub-attribute.
    pub fn all() -> Self {
        Self {
            value: true,
            reference: true,
            display: true,
            kind: true,
        }
    }
}

/// Appends one member value, `{"value", "$ref", "display", "type": "User"}`, as JSON to
/// `buf`: the membership is written row by row into the response body, never held as a
/// JSON tree.
pub fn write_member(
    buf: &mut Vec<u8>,
    fields: MemberFields,
    base_url: &str,
    id: &str,
    display: &str,
) {
    let mut first = true;
    let mut key = |buf: &mut Vec<u8>, k: &str| {
        buf.extend_from_slice(if first { b"{\"" } else { b",\"" });
        buf.extend_from_slice(k.as_bytes());
        buf.extend_from_slice(b"\":");
        first = false;
    };
    // Serialising a &str into a Vec cannot fail.
    let string = |buf: &mut Vec<u8>, s: &str| {
        let _ = serde_json::to_writer(&mut *buf, s);
    };
    if fields.value {
        key(buf, "value");
        string(buf, id);
    }
    if fields.reference {
        key(buf, "$ref");
        string(buf, &format!("{base_url}/Users/{id}"));
    }
    if fields.display {
        key(buf, "display");
        string(buf, display);
    }
    if fields.kind {
        key(buf, "type");
        buf.extend_from_slice(b"\"User\"");
    }
    if first {
        buf.push(b'{');
    }
    buf.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::patch::parse_request;

    fn split(ops: Value) -> Result<GroupPatch, ScimError> {
        split_patch(&parse_request(
            &json!({"schemas": [urn::PATCH_OP], "Operations": ops}),
        )?)
    }

    fn spec(v: Value) -> Result<GroupSpec, ScimError> {
        GroupSpec::from_body(&v)
    }

    #[test]
    fn spec_reads_entra_and_okta_bodies() {
        let s = spec(json!({"schemas": [urn::GROUP, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
            "externalId": "8aa1", "displayName": " Eng ", "meta": {"resourceType": "Group"}}))
        .unwrap();
        assert_eq!(
            (
                s.display_name.as_str(),
                s.external_id.as_deref(),
                s.members.as_ref()
            ),
            ("Eng", Some("8aa1"), None)
        );
        assert!(s.attributes.is_empty());
        let s = spec(json!({"DisplayName": "Test SCIMv2", "members": [{"value": "PHID-USER-a", "display": "a@x"}, {"$ref": null, "Value": "PHID-USER-b"}]})).unwrap();
        assert_eq!(
            s.members,
            Some(vec!["PHID-USER-a".to_owned(), "PHID-USER-b".to_owned()])
        );
        assert!(spec(json!({"displayName": "  "})).is_err());
        assert!(spec(json!({"displayName": "x".repeat(129)})).is_err());
        let e = spec(json!({"displayName": "x", "members": [{"value": "g1", "type": "Group"}]}))
            .unwrap_err();
        assert!(e.detail.contains("g1"), "{e}");
    }

    #[test]
    fn every_member_dialect_folds_into_a_plan() {
        // Entra add, Entra legacy remove, RFC/Okta filtered remove.
        let p = split(json!([
            {"op": "Add", "path": "members", "value": [{"$ref": null, "value": "u1"}, {"value": "u2"}]},
            {"op": "Remove", "path": "members", "value": [{"value": "u2"}]},
            {"op": "remove", "path": "members[value eq \"u3\"]"},
            {"op": "add", "path": "members", "value": [{"value": "u4", "display": "x@okta.local"}]},
        ]))
        .unwrap();
        let plan = p.members.unwrap();
        assert!(!plan.replace_all);
        assert_eq!(plan.adds(), vec!["u1", "u4"]);
        assert_eq!(plan.removes(), vec!["u2", "u3"]);
        assert!(p.attribute_ops.is_empty());
    }

    #[test]
    fn replace_and_clear_are_whole_set() {
        let plan = split(json!([{"op": "replace", "path": "members", "value": [{"value": "a"}, {"value": "b"}]}])).unwrap().members.unwrap();
        assert!(plan.replace_all);
        assert_eq!(plan.adds(), vec!["a", "b"]);
        let plan = split(json!([{"op": "remove", "path": "members"}, {"op": "add", "path": "members", "value": [{"value": "c"}]}]))
            .unwrap()
            .members
            .unwrap();
        assert!(plan.replace_all);
        assert_eq!(plan.adds(), vec!["c"]);
        assert!(plan.removes().is_empty());
    }

    #[test]
    fn okta_no_path_replace_goes_to_attributes() {
        let p =
            split(json!([{"op": "replace", "value": {"id": "PHID-PROJ-x", "displayName": "New"}}]))
                .unwrap();
        assert_eq!(p.members, None);
        assert_eq!(p.attribute_ops.len(), 1);
        let p = split(json!([{"op": "replace", "value": {"displayName": "New", "members": [{"value": "a"}]}}])).unwrap();
        assert_eq!(p.members.unwrap().adds(), vec!["a"]);
        assert_eq!(
            p.attribute_ops[0].value,
            Some(json!({"displayName": "New"}))
        );
        let p = split(json!([{"op": "Replace", "path": "displayName", "value": "R"}])).unwrap();
        assert_eq!(p.members, None);
        assert_eq!(p.attribute_ops.len(), 1);
    }

    #[test]
    fn odd_member_paths_are_refused_clearly() {
        let e = split(json!([{"op": "remove", "path": "members[display eq \"x\"]"}])).unwrap_err();
        assert_eq!(e.scim_type, Some(crate::scim::ScimType::InvalidFilter));
        let e =
            split(json!([{"op": "replace", "path": "members.value", "value": "x"}])).unwrap_err();
        assert_eq!(e.scim_type, Some(crate::scim::ScimType::InvalidPath));
        let e =
            split(json!([{"op": "add", "path": "members", "value": [{"value": "PHID-PROJ-abc"}]}]))
                .unwrap_err();
        assert_eq!(e.scim_type, Some(crate::scim::ScimType::InvalidValue));
        // Removing a nested group that cannot be a member is a no-op, not an error.
        let p = split(json!([{"op": "Remove", "path": "members", "value": [{"value": "g", "type": "Group"}]}])).unwrap();
        assert_eq!(p.members.unwrap().removes(), vec!["g"]);
        let p =
            split(json!([{"op": "remove", "path": "members[value eq \"a\" or value eq \"b\"]"}]))
                .unwrap();
        assert_eq!(p.members.unwrap().removes(), vec!["a", "b"]);
    }

    #[test]
    fn members_are_written_as_json() {
        let mut buf = Vec::new();
        write_member(
            &mut buf,
            MemberFields::all(),
            "https://x/scim/v2",
            "PHID-USER-a",
            "a\"b",
        );
        let v: Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(
            v,
            json!({"value": "PHID-USER-a", "$ref": "https://x/scim/v2/Users/PHID-USER-a", "display": "a\"b", "type": "User"})
        );
        let p = Projection::parse(Resource::Group, Some("members.value"), None).unwrap();
        let mut buf = Vec::new();
        write_member(&mut buf, MemberFields::of(&p), "b", "id", "d");
        assert_eq!(String::from_utf8(buf).unwrap(), r#"{"value":"id"}"#);
    }
}
