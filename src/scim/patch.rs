//! The PATCH engine (RFC 7644 §3.5.2): applies operations, in order, to a canonical resource
//! document. Every dialect of docs/scim-clients.md is accepted: capitalised ops, no-path value
//! maps with dotted and URN-qualified keys, value-filter paths with a sub-attribute, Entra's
//! `remove` with a value list.

use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{AttrPath, CompValue, CompareOp, Filter, PatchPath, parse_path};
use super::resource::coerce;
use super::schema::{self, Attr, Mutability, Resource, Scope, Ty, urn};

/// Largest number of operations in one PATCH.
pub const MAX_OPERATIONS: usize = 10_000;

/// `add`, `remove`, `replace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Remove,
    Replace,
}

/// One operation as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    pub op: OpKind,
    pub path: Option<String>,
    pub value: Option<Value>,
}

/// Reads a PatchOp request body (RFC 7644 §3.5.2).
pub fn parse_request(body: &Value) -> Result<Vec<PatchOp>, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the PATCH body must be a JSON object"))?;
    if let Some(schemas) = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
        .map(|(_, v)| v)
    {
        let ok = schemas.as_array().is_some_and(|a| {
            a.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(urn::PATCH_OP))
            })
        });
        if !ok {
            return Err(ScimError::invalid_syntax(format!(
                "schemas must contain {}",
                urn::PATCH_OP
            )));
        }
    }
    let ops = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
        .map(|(_, v)| v)
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("Operations must be an array"))?;
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::invalid_value(format!(
            "more than {MAX_OPERATIONS} operations"
        )));
    }
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            let o = op.as_object().ok_or_else(|| {
                ScimError::invalid_syntax(format!("Operations[{i}] must be an object"))
            })?;
            let get = |name: &str| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            };
            let kind = match get("op")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("add") => OpKind::Add,
                Some("remove") => OpKind::Remove,
                Some("replace") => OpKind::Replace,
                Some(other) => {
                    return Err(ScimError::invalid_value(format!(
                        "Operations[{i}]: unknown op {other:?}"
                    )));
                }
                None => {
                    return Err(ScimError::invalid_syntax(format!(
                        "Operations[{i}]: op is required"
                    )));
                }
            };
            let path = match get("path") {
                Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                Some(Value::String(_)) | Some(Value::Null) | None => None,
                Some(_) => {
                    return Err(ScimError::invalid_path(format!(
                        "Operations[{i}]: path must be a string"
                    )));
                }
            };
            Ok(PatchOp {
                op: kind,
                path,
                value: get("value").cloned(),
            })
        })
        .collect()
}

/// Applies `ops` to `doc`, in order. On error the caller discards `doc` (PATCH is atomic).
pub fn apply(
    res: Resource,
    doc: &mut Map<String, Value>,
    ops: &[PatchOp],
) -> Result<(), ScimError> {
    for op in ops {
        match &op.path {
            Some(p) if schema::extension_urn(res, p).is_some() => apply_extension(res, doc, op, p)?,
            Some(p) => {
                let path = parse_path(p)
                    .map_err(|e| ScimError::invalid_path(format!("path {p:?}: {e}")))?;
                apply_path(res, doc, op.op, &path, op.value.as_ref(), true)?;
            }
            None => {
                if op.op == OpKind::Remove {
                    return Err(ScimError::no_target("remove requires a path"));
                }
                let Some(Value::Object(map)) = &op.value else {
                    return Err(ScimError::invalid_value(
                        "an operation without path needs an object value",
                    ));
                };
                for (key, value) in map {
                    if let Some(ext) = schema::extension_urn(res, key) {
                        let Some(inner) = value.as_object() else {
                            continue;
                        };
                        for (ik, iv) in inner {
                            let path = AttrPath {
                                urn: Some(ext.to_owned()),
                                name: ik.clone(),
                                sub: None,
                            };
                            let pp = PatchPath {
                                attr: path,
                                filter: None,
                                sub: None,
                            };
                            apply_path(res, doc, op.op, &pp, Some(iv), false)?;
                        }
                        continue;
                    }
                    let pp = match parse_path(key) {
                        Ok(pp) => pp,
                        Err(_) => continue,
                    };
                    apply_path(res, doc, op.op, &pp, Some(value), false)?;
                }
            }
        }
    }
    Ok(())
}

/// A path naming a whole extension schema (`urn:...:enterprise:2.0:User`): its value is an
/// object of the extension's attributes, merged by `add` and `replace` like a complex
/// attribute's sub-attributes (RFC 7644 §3.5.2.1, §3.5.2.3); `remove` unassigns all of them.
fn apply_extension(
    res: Resource,
    doc: &mut Map<String, Value>,
    op: &PatchOp,
    p: &str,
) -> Result<(), ScimError> {
    let Some(ext) = schema::extension_urn(res, p) else {
        return Ok(());
    };
    if op.op == OpKind::Remove {
        doc.remove(ext);
        return Ok(());
    }
    let Some(Value::Object(map)) = &op.value else {
        return Err(ScimError::invalid_value(format!(
            "{ext} takes an object of its attributes"
        )));
    };
    for (key, value) in map {
        let path = AttrPath {
            urn: Some(ext.to_owned()),
            name: key.clone(),
            sub: None,
        };
        let pp = PatchPath {
            attr: path,
            filter: None,
            sub: None,
        };
        apply_path(res, doc, op.op, &pp, Some(value), false)?;
    }
    Ok(())
}

/// Resolves a path's attribute. `explicit` paths naming unknown or read-only attributes are
/// errors; keys of a no-path value map are skipped instead (Okta sends `id` there).
fn resolve(
    res: Resource,
    path: &PatchPath,
    explicit: bool,
) -> Result<Option<(Option<&'static str>, &'static Attr)>, ScimError> {
    let resolved = schema::resolve(res, path.attr.urn.as_deref(), &path.attr.name);
    let Some((scope, def)) = resolved else {
        return if explicit {
            Err(ScimError::invalid_path(format!(
                "unknown attribute {}",
                path.attr
            )))
        } else {
            Ok(None)
        };
    };
    if matches!(def.mutability, Mutability::ReadOnly) {
        return if explicit {
            Err(ScimError::mutability(format!("{} is read-only", def.name)))
        } else {
            Ok(None)
        };
    }
    if def.mutability == Mutability::WriteOnly {
        return Ok(None); // password: accepted and discarded
    }
    let ext = match scope {
        Scope::Core => None,
        Scope::Extension(u) => Some(u),
    };
    Ok(Some((ext, def)))
}

fn container<'a>(
    doc: &'a mut Map<String, Value>,
    ext: Option<&str>,
) -> Option<&'a mut Map<String, Value>> {
    match ext {
        None => Some(doc),
        Some(u) => {
            let e = doc.entry(u).or_insert_with(|| Value::Object(Map::new()));
            if !e.is_object() {
                *e = Value::Object(Map::new());
            }
            e.as_object_mut()
        }
    }
}

fn apply_path(
    res: Resource,
    doc: &mut Map<String, Value>,
    op: OpKind,
    path: &PatchPath,
    value: Option<&Value>,
    explicit: bool,
) -> Result<(), ScimError> {
    let Some((ext, def)) = resolve(res, path, explicit)? else {
        return Ok(());
    };
    // `name.givenName` arrives as attr.sub; `emails[...].value` as path.sub.
    let sub_name = path.sub.as_deref().or(path.attr.sub.as_deref());
    let sub = match sub_name {
        Some(s) => Some(schema::find_in(def.sub, s).ok_or_else(|| {
            ScimError::invalid_path(format!("unknown sub-attribute {}.{s}", def.name))
        })?),
        None => None,
    };
    if op != OpKind::Remove && value.is_none() {
        return Err(ScimError::invalid_value(format!(
            "{} needs a value",
            def.name
        )));
    }
    if path.filter.is_some() && !def.multi {
        return Err(ScimError::invalid_path(format!(
            "{} is not multi-valued",
            def.name
        )));
    }
    let Some(target) = container(doc, ext) else {
        return Ok(());
    };
    if def.multi {
        apply_multi(target, def, op, path.filter.as_ref(), sub, value)?;
    } else {
        apply_single(target, def, op, sub, value)?;
    }
    if let Some(u) = ext
        && doc
            .get(u)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        doc.remove(u);
    }
    Ok(())
}

fn apply_single(
    target: &mut Map<String, Value>,
    def: &'static Attr,
    op: OpKind,
    sub: Option<&'static Attr>,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    match (op, sub) {
        (OpKind::Remove, None) => {
            if def.required {
                return Err(ScimError::mutability(format!("{} is required", def.name)));
            }
            target.remove(def.name);
        }
        (OpKind::Remove, Some(s)) => {
            if let Some(Value::Object(m)) = target.get_mut(def.name) {
                m.remove(s.name);
                if m.is_empty() {
                    target.remove(def.name);
                }
            }
        }
        (_, Some(s)) => {
            let v = coerce(
                s,
                value.unwrap_or(&Value::Null),
                &format!("{}.{}", def.name, s.name),
            )?;
            let entry = target
                .entry(def.name)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(m) = entry.as_object_mut() {
                match v {
                    Some(v) => {
                        m.insert(s.name.to_owned(), v);
                    }
                    None => {
                        m.remove(s.name);
                    }
                }
            }
            if target
                .get(def.name)
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty)
            {
                target.remove(def.name);
            }
        }
        (_, None) => {
            let v = coerce(def, value.unwrap_or(&Value::Null), def.name)?;
            match (v, def.ty) {
                (None, _) => {
                    if def.required {
                        return Err(ScimError::mutability(format!("{} is required", def.name)));
                    }
                    target.remove(def.name);
                }
                // Complex: merge the given sub-attributes (RFC 7644 §3.5.2.1, §3.5.2.3).
                (Some(Value::Object(new)), Ty::Complex) => {
                    let entry = target
                        .entry(def.name)
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Some(m) = entry.as_object_mut() {
                        for (k, v) in new {
                            m.insert(k, v);
                        }
                    }
                }
                (Some(v), _) => {
                    target.insert(def.name.to_owned(), v);
                }
            }
        }
    }
    Ok(())
}

fn apply_multi(
    target: &mut Map<String, Value>,
    def: &'static Attr,
    op: OpKind,
    filter: Option<&Filter>,
    sub: Option<&'static Attr>,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let mut items: Vec<Value> = match target.remove(def.name) {
        Some(Value::Array(a)) => a,
        Some(other) => vec![other],
        None => Vec::new(),
    };
    let matched: Vec<usize> = match filter {
        Some(f) => items
            .iter()
            .enumerate()
            .filter(|(_, it)| matches(def, it, f))
            .map(|(i, _)| i)
            .collect(),
        None => (0..items.len()).collect(),
    };
    let touched = match (op, sub) {
        (OpKind::Remove, None) => {
            remove_values(&mut items, def, filter, &matched, value)?;
            Vec::new()
        }
        (OpKind::Remove, Some(s)) => {
            remove_sub_attribute(&mut items, s, matched);
            Vec::new()
        }
        (_, Some(s)) => set_sub_attribute(&mut items, def, s, filter, matched, value)?,
        (OpKind::Replace, None) if filter.is_none() => {
            let new = coerce(def, value.unwrap_or(&Value::Null), def.name)?;
            items = match new {
                Some(Value::Array(a)) => a,
                _ => Vec::new(),
            };
            (0..items.len()).collect()
        }
        (OpKind::Add, None) if filter.is_none() => add_values(&mut items, def, value)?,
        (_, None) => replace_matched_values(&mut items, def, op, matched, value)?,
    };
    keep_one_primary(&mut items, &touched);
    if !items.is_empty() {
        target.insert(def.name.to_owned(), Value::Array(items));
    }
    Ok(())
}

/// `remove` of whole values: the matched ones, Entra's listed ones, or all of them.
fn remove_values(
    items: &mut Vec<Value>,
    def: &'static Attr,
    filter: Option<&Filter>,
    matched: &[usize],
    value: Option<&Value>,
) -> Result<(), ScimError> {
    if filter.is_none() {
        match value.and_then(|v| coerce(def, v, def.name).transpose()) {
            // Entra's legacy dialect: `Remove` with path `members` and a value list.
            Some(values) => {
                let values = values?;
                let drop: Vec<Value> = values
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.get("value").cloned()).collect())
                    .unwrap_or_default();
                items.retain(|it| !it.get("value").is_some_and(|v| drop.contains(v)));
            }
            None => items.clear(),
        }
    } else {
        let mut i = 0;
        items.retain(|_| {
            let keep = !matched.contains(&i);
            i += 1;
            keep
        });
    }
    Ok(())
}

/// `remove` of one sub-attribute of the matched values; a value left empty goes.
fn remove_sub_attribute(items: &mut Vec<Value>, sub: &'static Attr, matched: Vec<usize>) {
    for i in matched {
        if let Some(Value::Object(m)) = items.get_mut(i) {
            m.remove(sub.name);
        }
    }
    items.retain(|it| it.as_object().is_none_or(|m| !m.is_empty()));
}

/// `add`/`replace` of one sub-attribute of the matched values (or of a value seeded from the
/// filter when none matches). Returns the indices it touched.
fn set_sub_attribute(
    items: &mut Vec<Value>,
    def: &'static Attr,
    sub: &'static Attr,
    filter: Option<&Filter>,
    matched: Vec<usize>,
    value: Option<&Value>,
) -> Result<Vec<usize>, ScimError> {
    let mut touched = Vec::new();
    let v = coerce(
        sub,
        value.unwrap_or(&Value::Null),
        &format!("{}.{}", def.name, sub.name),
    )?;
    if matched.is_empty() {
        // Entra sets `emails[type eq "work"].value` on a user without a work email:
        // create the value from the filter's equalities
        // (docs/scim-clients.md#put-and-patch-semantics).
        let mut m = filter.map(seed_from_filter).unwrap_or_default();
        if let Some(v) = v {
            m.insert(sub.name.to_owned(), v);
            items.push(Value::Object(m));
            touched.push(items.len() - 1);
        }
    } else {
        for i in matched {
            if let Some(Value::Object(m)) = items.get_mut(i) {
                match &v {
                    Some(v) => {
                        m.insert(sub.name.to_owned(), v.clone());
                    }
                    None => {
                        m.remove(sub.name);
                    }
                }
                touched.push(i);
            }
        }
    }
    Ok(touched)
}

/// `add` of a list of values without filter. Returns the indices it touched.
fn add_values(
    items: &mut Vec<Value>,
    def: &'static Attr,
    value: Option<&Value>,
) -> Result<Vec<usize>, ScimError> {
    let mut touched = Vec::new();
    if let Some(Value::Array(new)) = coerce(def, value.unwrap_or(&Value::Null), def.name)? {
        for v in new {
            // Adding a value already present is a success that changes nothing.
            match items.iter().position(|it| same_value(it, &v)) {
                Some(i) => {
                    if items[i] != v {
                        items[i] = v;
                    }
                    touched.push(i);
                }
                None => {
                    items.push(v);
                    touched.push(items.len() - 1);
                }
            }
        }
    }
    Ok(touched)
}

/// A value filter without sub-attribute: replace (or merge into) the matched values. Returns
/// the indices it touched.
fn replace_matched_values(
    items: &mut Vec<Value>,
    def: &'static Attr,
    op: OpKind,
    matched: Vec<usize>,
    value: Option<&Value>,
) -> Result<Vec<usize>, ScimError> {
    let mut touched = Vec::new();
    let new = coerce(
        def,
        &Value::Array(vec![value.cloned().unwrap_or(Value::Null)]),
        def.name,
    )?;
    let Some(new) = new.and_then(|v| v.as_array().and_then(|a| a.first().cloned())) else {
        return Err(ScimError::invalid_value(format!(
            "{} needs a value",
            def.name
        )));
    };
    if matched.is_empty() {
        if op == OpKind::Replace {
            return Err(ScimError::no_target(format!(
                "no {} value matches the filter",
                def.name
            )));
        }
        items.push(new);
        touched.push(items.len() - 1);
    } else {
        for i in matched {
            if op == OpKind::Replace {
                items[i] = new.clone();
            } else if let (Some(m), Some(n)) = (items[i].as_object_mut(), new.as_object()) {
                for (k, v) in n {
                    m.insert(k.clone(), v.clone());
                }
            }
            touched.push(i);
        }
    }
    Ok(touched)
}

/// At most one primary value: the one this operation set wins (RFC 7643 §2.4).
fn keep_one_primary(items: &mut [Value], touched: &[usize]) {
    let new_primary = touched
        .iter()
        .rev()
        .find(|i| items.get(**i).and_then(|v| v.get("primary")) == Some(&Value::Bool(true)));
    if let Some(&keep) = new_primary {
        for (i, it) in items.iter_mut().enumerate() {
            if i != keep
                && let Some(m) = it.as_object_mut()
                && m.get("primary") == Some(&Value::Bool(true))
            {
                m.insert("primary".into(), Value::Bool(false));
            }
        }
    }
}

/// Two values of a multi-valued attribute are the same value when their `value` matches (ids
/// of members), else when they are equal.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => x == y && a.get("type") == b.get("type"),
        _ => a == b,
    }
}

fn seed_from_filter(f: &Filter) -> Map<String, Value> {
    let mut m = Map::new();
    let mut stack = vec![f];
    while let Some(f) = stack.pop() {
        match f {
            Filter::And(a, b) => {
                stack.push(a);
                stack.push(b);
            }
            Filter::Compare(p, CompareOp::Eq, v) if p.urn.is_none() && p.sub.is_none() => {
                let v = match v {
                    CompValue::Str(s) => Value::String(s.clone()),
                    CompValue::Bool(b) => Value::Bool(*b),
                    CompValue::Num(n) => Value::Number(n.clone()),
                    CompValue::Null => continue,
                };
                m.insert(p.name.clone(), v);
            }
            _ => {}
        }
    }
    m
}

/// Evaluates a value filter against one value of a multi-valued attribute.
pub fn matches(def: &Attr, item: &Value, f: &Filter) -> bool {
    match f {
        Filter::And(a, b) => matches(def, item, a) && matches(def, item, b),
        Filter::Or(a, b) => matches(def, item, a) || matches(def, item, b),
        Filter::Not(a) => !matches(def, item, a),
        Filter::ValuePath(..) => false,
        Filter::Present(p) => sub_value(def, item, p).is_some_and(|(_, v)| match v {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            _ => true,
        }),
        Filter::Compare(p, op, cv) => {
            let Some((sdef, v)) = sub_value(def, item, p) else {
                return *op == CompareOp::Ne;
            };
            compare(v, *op, cv, sdef.is_some_and(|s| s.case_exact))
        }
    }
}

fn sub_value<'a>(
    def: &Attr,
    item: &'a Value,
    p: &AttrPath,
) -> Option<(Option<&'static Attr>, &'a Value)> {
    let name = if p.name.eq_ignore_ascii_case(def.name) {
        p.sub.as_deref().unwrap_or("value")
    } else {
        p.name.as_str()
    };
    let sdef = schema::find_in(def.sub, name);
    let obj = item.as_object()?;
    let v = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)?;
    Some((sdef, v))
}

/// Compares a JSON value with a filter literal under SCIM's rules (RFC 7644 §3.4.2.2).
pub fn compare(v: &Value, op: CompareOp, cv: &CompValue, case_exact: bool) -> bool {
    match (v, cv) {
        (Value::String(s), CompValue::Str(t)) => {
            let (s, t) = if case_exact {
                (s.clone(), t.clone())
            } else {
                (s.to_lowercase(), t.to_lowercase())
            };
            match op {
                CompareOp::Eq => s == t,
                CompareOp::Ne => s != t,
                CompareOp::Co => s.contains(&t),
                CompareOp::Sw => s.starts_with(&t),
                CompareOp::Ew => s.ends_with(&t),
                CompareOp::Gt => s > t,
                CompareOp::Ge => s >= t,
                CompareOp::Lt => s < t,
                CompareOp::Le => s <= t,
            }
        }
        (Value::Bool(b), CompValue::Bool(c)) => match op {
            CompareOp::Eq => b == c,
            CompareOp::Ne => b != c,
            _ => false,
        },
        (Value::Number(a), CompValue::Num(b)) => {
            let (Some(a), Some(b)) = (a.as_f64(), b.as_f64()) else {
                return false;
            };
            match op {
                CompareOp::Eq => a == b,
                CompareOp::Ne => a != b,
                CompareOp::Gt => a > b,
                CompareOp::Ge => a >= b,
                CompareOp::Lt => a < b,
                CompareOp::Le => a <= b,
                _ => false,
            }
        }
        (_, CompValue::Null) => matches!(op, CompareOp::Ne),
        _ => op == CompareOp::Ne,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::resource::normalize;
    use serde_json::json;

    fn run(doc: Value, ops: Value) -> Result<Value, ScimError> {
        let mut d = normalize(Resource::User, &doc)?;
        let ops = parse_request(&json!({"schemas": [urn::PATCH_OP], "Operations": ops}))?;
        apply(Resource::User, &mut d, &ops)?;
        Ok(Value::Object(normalize(Resource::User, &Value::Object(d))?))
    }

    #[test]
    fn entra_default_dialect() {
        let out = run(
            json!({"userName": "a", "active": true, "emails": [{"type": "work", "value": "a@x.com", "primary": true}]}),
            json!([
                {"op": "Replace", "path": "displayName", "value": "Pvlo"},
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "b@x.com"},
                {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
                {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "E1"},
                {"op": "Replace", "path": "active", "value": "False"},
            ]),
        )
        .unwrap();
        assert_eq!(out["displayName"], "Pvlo");
        assert_eq!(out["emails"][0]["value"], "b@x.com");
        assert_eq!(out["name"]["givenName"], "Gtfd");
        assert_eq!(out["active"], false);
        assert_eq!(out[urn::ENTERPRISE_USER]["employeeNumber"], "E1");
    }

    #[test]
    fn no_path_maps_with_dotted_and_urn_keys() {
        let out = run(
            json!({"userName": "a"}),
            json!([{"op": "replace", "value": {
                "displayName": "B", "name.givenName": "K", "active": false, "id": "ignored",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "7"}}]),
        )
        .unwrap();
        assert_eq!(out["displayName"], "B");
        assert_eq!(out["name"]["givenName"], "K");
        assert_eq!(out["active"], false);
        assert_eq!(out[urn::ENTERPRISE_USER]["employeeNumber"], "7");
    }

    #[test]
    fn entra_sets_work_email_where_none_exists() {
        let out = run(
            json!({"userName": "a"}),
            json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "w@x.com"}]),
        )
        .unwrap();
        assert_eq!(out["emails"], json!([{"type": "work", "value": "w@x.com"}]));
    }

    #[test]
    fn errors_are_specific() {
        let e = run(
            json!({"userName": "a"}),
            json!([{"op": "replace", "path": "nope", "value": 1}]),
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some(crate::scim::ScimType::InvalidPath));
        let e = run(
            json!({"userName": "a"}),
            json!([{"op": "replace", "path": "id", "value": "1"}]),
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some(crate::scim::ScimType::Mutability));
        let e = run(json!({"userName": "a"}), json!([{"op": "remove"}])).unwrap_err();
        assert_eq!(e.scim_type, Some(crate::scim::ScimType::NoTarget));
        let e = run(
            json!({"userName": "a"}),
            json!([{"op": "jump", "path": "x"}]),
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some(crate::scim::ScimType::InvalidValue));
        let e = run(
            json!({"userName": "a"}),
            json!([{"op": "remove", "path": "userName"}]),
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some(crate::scim::ScimType::Mutability));
    }

    #[test]
    fn primary_moves_to_the_new_value() {
        let out = run(
            json!({"userName": "a", "emails": [{"value": "a@x.com", "primary": true}]}),
            json!([{"op": "add", "path": "emails", "value": [{"value": "b@x.com", "primary": true}]}]),
        )
        .unwrap();
        assert_eq!(
            out["emails"],
            json!([{"value": "a@x.com", "primary": false}, {"value": "b@x.com", "primary": true}])
        );
    }

    #[test]
    fn remove_with_filter_and_idempotent_add() {
        let base = json!({"userName": "a", "phoneNumbers": [{"value": "1", "type": "work"}, {"value": "2", "type": "mobile"}]});
        let out = run(
            base.clone(),
            json!([{"op": "remove", "path": "phoneNumbers[type eq \"work\"]"}]),
        )
        .unwrap();
        assert_eq!(
            out["phoneNumbers"],
            json!([{"value": "2", "type": "mobile"}])
        );
        let out = run(base.clone(), json!([{"op": "add", "path": "phoneNumbers", "value": [{"value": "2", "type": "mobile"}]}])).unwrap();
        assert_eq!(out["phoneNumbers"], base["phoneNumbers"]);
        let out = run(
            base,
            json!([{"op": "remove", "path": "phoneNumbers[type eq \"pager\"]"}]),
        )
        .unwrap();
        assert_eq!(out["phoneNumbers"].as_array().map(Vec::len), Some(2));
    }
}
