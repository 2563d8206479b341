//! Bulk requests (RFC 7644 §3.7), the pure part: reading and checking a `BulkRequest`, the
//! `bulkId` references between its operations, the order they can run in, and the shape of a
//! `BulkResponse`. Running the operations is the HTTP layer's job (`http::bulk`), one
//! provisioning call, and so one transaction, per operation.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::schema::{Resource, urn};
use crate::config::Config;

/// Most operations accepted in one request (advertised as `bulk.maxOperations`).
pub const MAX_OPERATIONS: usize = 1000;
/// The prefix of a reference to a resource created earlier in the same request (§3.7.2).
pub const BULK_ID_PREFIX: &str = "bulkId:";

/// The advertised and enforced limits (RFC 7644 §3.7.4, RFC 7643 §5 `bulk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `maxOperations`.
    pub max_operations: usize,
    /// `maxPayloadSize`, in bytes: the service's request body limit, so the two cannot disagree.
    pub max_payload_bytes: usize,
}

impl Limits {
    /// The limits of a configuration.
    pub fn of(cfg: &Config) -> Self {
        Self {
            max_operations: MAX_OPERATIONS,
            max_payload_bytes: cfg.max_body_bytes,
        }
    }
}

/// The HTTP method of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Create.
    Post,
    /// Replace.
    Put,
    /// Modify.
    Patch,
    /// Delete.
    Delete,
}

impl Method {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// The resource an operation addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/Users` or `/Groups` (POST).
    Collection(Resource),
    /// `/Users/{id}` or `/Groups/{id}`; the id may still be `bulkId:<x>`.
    Item(Resource, String),
}

/// One checked operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// Its position in the request.
    pub index: usize,
    /// `method`.
    pub method: Method,
    /// `bulkId`, required for POST.
    pub bulk_id: Option<String>,
    /// `version`: an `If-Match` for PUT, PATCH and DELETE (§3.7, §3.14).
    pub version: Option<String>,
    /// `path` as sent, for the sync log.
    pub path: String,
    /// The resolved `path`.
    pub target: Target,
    /// `data`: the resource (POST, PUT) or the PatchOp body (PATCH).
    pub data: Option<Value>,
    /// The bulkIds this operation refers to, in its path or its data.
    pub refs: HashSet<String>,
}

/// An operation that cannot run, answered in its slot of the response.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Its position in the request.
    pub index: usize,
    /// `method`, when readable.
    pub method: Option<String>,
    /// `bulkId`, when readable.
    pub bulk_id: Option<String>,
    /// Why.
    pub error: ScimError,
}

/// A read `BulkRequest`.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkRequest {
    /// `failOnErrors`: stop after this many errors (§3.7.3); None runs everything.
    pub fail_on_errors: Option<u64>,
    /// The operations that can be attempted.
    pub operations: Vec<Operation>,
    /// The operations refused while reading; they count as errors.
    pub rejected: Vec<Rejected>,
}

fn get<'a>(o: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    o.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Reads a BulkRequest body (RFC 7644 §3.7). The request as a whole is refused with
/// 400 invalidSyntax when it is not a BulkRequest, 400 invalidValue for a bad `failOnErrors`,
/// and 413 when it has more than `limits.max_operations` operations (§3.7.4), before any of
/// them runs. A malformed single operation is answered in its own slot instead.
///
/// # Errors
///
/// The request-level errors above.
pub fn parse_request(body: &Value, limits: Limits) -> Result<BulkRequest, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the Bulk body must be a JSON object"))?;
    if let Some(schemas) = get(obj, "schemas") {
        let ok = schemas.as_array().is_some_and(|a| {
            a.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(urn::BULK_REQUEST))
            })
        });
        if !ok {
            return Err(ScimError::invalid_syntax(format!(
                "schemas must contain {}",
                urn::BULK_REQUEST
            )));
        }
    }
    let ops = get(obj, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("Operations must be an array"))?;
    if ops.len() > limits.max_operations {
        return Err(ScimError::status(
            413,
            format!(
                "{} operations exceed maxOperations ({})",
                ops.len(),
                limits.max_operations
            ),
        ));
    }
    let fail_on_errors = match get(obj, "failOnErrors") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Some(n),
            _ => {
                return Err(ScimError::invalid_value(
                    "failOnErrors must be a positive integer",
                ));
            }
        },
    };
    let mut operations = Vec::with_capacity(ops.len());
    let mut rejected = Vec::new();
    let mut bulk_ids = HashSet::new();
    for (index, op) in ops.iter().enumerate() {
        match parse_operation(index, op) {
            Ok(o) => {
                if let Some(b) = &o.bulk_id
                    && !bulk_ids.insert(b.clone())
                {
                    rejected.push(Rejected {
                        index,
                        method: Some(o.method.as_str().to_owned()),
                        bulk_id: Some(b.clone()),
                        error: ScimError::invalid_value(format!(
                            "bulkId {b:?} is used by an earlier operation"
                        )),
                    });
                    continue;
                }
                operations.push(o);
            }
            Err(r) => rejected.push(r),
        }
    }
    Ok(BulkRequest {
        fail_on_errors,
        operations,
        rejected,
    })
}

fn parse_operation(index: usize, op: &Value) -> Result<Operation, Rejected> {
    let reject = |method: Option<String>, bulk_id: Option<String>, error: ScimError| Rejected {
        index,
        method,
        bulk_id,
        error,
    };
    let Some(o) = op.as_object() else {
        return Err(reject(
            None,
            None,
            ScimError::invalid_syntax(format!("Operations[{index}] must be an object")),
        ));
    };
    let method_text = get(o, "method").and_then(Value::as_str).map(str::to_owned);
    let bulk_id = match get(o, "bulkId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
        Some(_) => {
            return Err(reject(
                method_text,
                None,
                ScimError::invalid_value("bulkId must be a non-empty string"),
            ));
        }
    };
    let err = |e: ScimError| reject(method_text.clone(), bulk_id.clone(), e);
    let method = parse_method(method_text.as_deref()).map_err(&err)?;
    let version = get(o, "version").and_then(Value::as_str).map(str::to_owned);
    let path = get(o, "path")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or("")
        .to_owned();
    let target = parse_target(&path).ok_or_else(|| {
        err(ScimError::invalid_value(format!(
            "path {path:?} is not /Users, /Groups or one of their resources"
        )))
    })?;
    check_target(method, &target, bulk_id.is_some()).map_err(&err)?;
    let data = match get(o, "data") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.clone()),
    };
    if method != Method::Delete && !data.as_ref().is_some_and(Value::is_object) {
        return Err(err(ScimError::invalid_syntax(format!(
            "{} needs a data object",
            method.as_str()
        ))));
    }
    let refs = operation_refs(&target, data.as_ref(), bulk_id.as_deref()).map_err(&err)?;
    Ok(Operation {
        index,
        method,
        bulk_id,
        version,
        path,
        target,
        data,
        refs,
    })
}

/// The operation's `method`, case-insensitively.
fn parse_method(text: Option<&str>) -> Result<Method, ScimError> {
    match text.map(str::to_ascii_uppercase).as_deref() {
        Some("POST") => Ok(Method::Post),
        Some("PUT") => Ok(Method::Put),
        Some("PATCH") => Ok(Method::Patch),
        Some("DELETE") => Ok(Method::Delete),
        Some(other) => Err(ScimError::invalid_value(format!(
            "method {other:?} is not POST, PUT, PATCH or DELETE"
        ))),
        None => Err(ScimError::invalid_syntax("method is required")),
    }
}

/// POST goes to a collection with a bulkId, every other method to one resource.
fn check_target(method: Method, target: &Target, has_bulk_id: bool) -> Result<(), ScimError> {
    match (method, target) {
        // RFC 7644 §3.7: bulkId is REQUIRED for POST.
        (Method::Post, Target::Collection(_)) if !has_bulk_id => {
            Err(ScimError::invalid_value("a POST operation needs a bulkId"))
        }
        (Method::Post, Target::Collection(_)) => Ok(()),
        (Method::Post, Target::Item(..)) => {
            Err(ScimError::invalid_value("POST goes to /Users or /Groups"))
        }
        (_, Target::Collection(_)) => Err(ScimError::invalid_value(format!(
            "{} needs a resource path",
            method.as_str()
        ))),
        _ => Ok(()),
    }
}

/// The bulkIds an operation refers to, in its path and its data; referring to its own bulkId
/// is a conflict.
fn operation_refs(
    target: &Target,
    data: Option<&Value>,
    bulk_id: Option<&str>,
) -> Result<HashSet<String>, ScimError> {
    let mut refs = HashSet::new();
    if let Target::Item(_, id) = target
        && let Some(b) = id.strip_prefix(BULK_ID_PREFIX)
    {
        refs.insert(b.to_owned());
    }
    if let Some(d) = data {
        collect_refs(d, &mut refs);
    }
    if let Some(b) = bulk_id
        && refs.contains(b)
    {
        return Err(ScimError::status(
            409,
            format!("operation {b:?} refers to itself"),
        ));
    }
    Ok(refs)
}

fn parse_target(path: &str) -> Option<Target> {
    let rest = path.strip_prefix('/')?;
    let (collection, id) = match rest.split_once('/') {
        Some((c, id)) => (c, Some(id)),
        None => (rest, None),
    };
    // Endpoint names are matched case-insensitively, as on the HTTP routes' clients expect
    // (docs/scim-clients.md#other-clients: be more lenient than GitHub).
    let res = if collection.eq_ignore_ascii_case("Users") {
        Resource::User
    } else if collection.eq_ignore_ascii_case("Groups") {
        Resource::Group
    } else {
        return None;
    };
    match id {
        None => Some(Target::Collection(res)),
        Some(id) if !id.is_empty() && !id.contains('/') => Some(Target::Item(res, id.to_owned())),
        Some(_) => None,
    }
}

/// Every `"bulkId:<x>"` string value inside `v` (member values, a manager's value, ...).
fn collect_refs(v: &Value, out: &mut HashSet<String>) {
    match v {
        Value::String(s) => {
            if let Some(b) = s.strip_prefix(BULK_ID_PREFIX) {
                out.insert(b.to_owned());
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        Value::Object(m) => m.values().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// Replaces every `"bulkId:<x>"` string value in `v` with the id `x` produced (§3.7.2).
pub fn substitute(v: &mut Value, ids: &HashMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix(BULK_ID_PREFIX).and_then(|b| ids.get(b)) {
                *s = id.clone();
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, ids)),
        Value::Object(m) => m.values_mut().for_each(|x| substitute(x, ids)),
        _ => {}
    }
}

/// The resolved id of an item target, with a `bulkId:` path substituted.
pub fn target_id(id: &str, ids: &HashMap<String, String>) -> Option<String> {
    match id.strip_prefix(BULK_ID_PREFIX) {
        Some(b) => ids.get(b).cloned(),
        None => Some(id.to_owned()),
    }
}

/// Where an operation stands while the request runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Every bulkId it refers to has produced a resource.
    Ready,
    /// Some bulkId it refers to belongs to an operation that has not run yet.
    Waiting,
    /// It refers to a bulkId no operation of the request defines: 400 invalidValue.
    Unknown,
    /// It refers to a bulkId whose operation failed: 409.
    Failed,
}

/// Decides whether `op` can run, given the ids produced so far, the bulkIds of operations that
/// failed and every bulkId the request defines.
pub fn readiness(
    op: &Operation,
    ids: &HashMap<String, String>,
    failed: &HashSet<String>,
    defined: &HashSet<String>,
) -> Readiness {
    if op.refs.iter().any(|r| !defined.contains(r)) {
        return Readiness::Unknown;
    }
    if op.refs.iter().any(|r| failed.contains(r)) {
        return Readiness::Failed;
    }
    if op.refs.iter().all(|r| ids.contains_key(r)) {
        Readiness::Ready
    } else {
        Readiness::Waiting
    }
}

/// The outcome of one operation, in a BulkResponse (RFC 7644 §3.7.3).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Its position in the request (the response lists operations in request order).
    pub index: usize,
    /// `method`.
    pub method: String,
    /// `bulkId`.
    pub bulk_id: Option<String>,
    /// `location` of the resource, on success.
    pub location: Option<String>,
    /// `version` (the ETag) of the resource, on success.
    pub version: Option<String>,
    /// The HTTP status.
    pub status: u16,
    /// The error body, on failure.
    pub error: Option<Value>,
}

/// A BulkResponse body: `status` is a string, as in error bodies (§3.7.3 examples).
pub fn response(mut outcomes: Vec<Outcome>) -> Value {
    outcomes.sort_by_key(|o| o.index);
    let ops: Vec<Value> = outcomes
        .into_iter()
        .map(|o| {
            let mut m = Map::new();
            m.insert("method".into(), Value::String(o.method));
            if let Some(b) = o.bulk_id {
                m.insert("bulkId".into(), Value::String(b));
            }
            if let Some(l) = o.location {
                m.insert("location".into(), Value::String(l));
            }
            if let Some(v) = o.version {
                m.insert("version".into(), Value::String(v));
            }
            m.insert("status".into(), Value::String(o.status.to_string()));
            if let Some(e) = o.error {
                m.insert("response".into(), e);
            }
            Value::Object(m)
        })
        .collect();
    json!({"schemas": [urn::BULK_RESPONSE], "Operations": ops})
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_operations: 3,
        max_payload_bytes: 1024,
    };

    fn req(ops: Value) -> Value {
        json!({"schemas": [urn::BULK_REQUEST], "Operations": ops})
    }

    #[test]
    fn reads_operations_and_references() {
        let r = parse_request(
            &req(json!([
                {"method": "POST", "path": "/Users", "bulkId": "u1", "data": {"userName": "a"}},
                {"method": "post", "path": "/Groups", "bulkId": "g1", "data": {"displayName": "G", "members": [{"value": "bulkId:u1"}]}},
                {"method": "PATCH", "path": "/Groups/bulkId:g1", "version": "W/\"1\"", "data": {"Operations": []}},
            ])),
            LIMITS,
        )
        .unwrap();
        assert!(r.rejected.is_empty());
        assert_eq!(r.operations[1].refs, HashSet::from(["u1".to_owned()]));
        assert_eq!(
            r.operations[2].target,
            Target::Item(Resource::Group, "bulkId:g1".into())
        );
        assert_eq!(r.operations[2].refs, HashSet::from(["g1".to_owned()]));
        assert_eq!(r.operations[2].version.as_deref(), Some("W/\"1\""));
    }

    #[test]
    fn too_many_operations_is_413_before_anything_else() {
        let e = parse_request(&req(json!([{}, {}, {}, {}])), LIMITS).unwrap_err();
        assert_eq!(e.status, 413);
    }

    #[test]
    fn request_level_errors() {
        assert_eq!(parse_request(&json!([]), LIMITS).unwrap_err().status, 400);
        assert_eq!(
            parse_request(&json!({"schemas": ["x"], "Operations": []}), LIMITS)
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            parse_request(&json!({"Operations": [], "failOnErrors": 0}), LIMITS)
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn bad_operations_are_answered_in_their_slot() {
        let r = parse_request(
            &req(json!([
                {"method": "POST", "path": "/Users", "data": {"userName": "a"}},
                {"method": "GET", "path": "/Users/x"},
                {"method": "POST", "path": "/Things", "bulkId": "t", "data": {}},
            ])),
            LIMITS,
        )
        .unwrap();
        assert!(r.operations.is_empty());
        assert_eq!(r.rejected.len(), 3);
        let r = parse_request(&req(json!([{"method": "POST", "path": "/Users", "bulkId": "a", "data": {"manager": "bulkId:a"}}])), LIMITS).unwrap();
        assert_eq!(r.rejected[0].error.status, 409);
    }

    #[test]
    fn substitution_and_readiness() {
        let mut v =
            json!({"members": [{"value": "bulkId:u1"}, {"value": "bulkId:zz"}, {"value": "x"}]});
        let ids = HashMap::from([("u1".to_owned(), "PHID-USER-1".to_owned())]);
        substitute(&mut v, &ids);
        assert_eq!(
            v,
            json!({"members": [{"value": "PHID-USER-1"}, {"value": "bulkId:zz"}, {"value": "x"}]})
        );
        assert_eq!(target_id("bulkId:u1", &ids).as_deref(), Some("PHID-USER-1"));
        assert_eq!(target_id("bulkId:nope", &ids), None);

        let r = parse_request(
            &req(json!([{"method": "DELETE", "path": "/Users/bulkId:u2"}])),
            LIMITS,
        )
        .unwrap();
        let op = &r.operations[0];
        let defined = HashSet::from(["u2".to_owned()]);
        assert_eq!(
            readiness(op, &ids, &HashSet::new(), &defined),
            Readiness::Waiting
        );
        assert_eq!(
            readiness(op, &ids, &HashSet::new(), &HashSet::new()),
            Readiness::Unknown
        );
        assert_eq!(readiness(op, &ids, &defined, &defined), Readiness::Failed);
    }
}
