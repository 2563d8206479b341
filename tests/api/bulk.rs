//! `/Bulk` (RFC 7644 §3.7): bulkId references, ordering, cycles, failOnErrors, limits.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;

const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn bulk(ops: Value) -> Value {
    json!({"schemas": [BULK], "Operations": ops})
}

fn user(bulk_id: &str, name: &str) -> Value {
    json!({"method": "POST", "path": "/Users", "bulkId": bulk_id, "data": {"schemas": [USER], "userName": format!("{name}@example.com"), "emails": [{"value": format!("{name}@example.com"), "primary": true}]}})
}

async fn run(app: &TestApp, body: Value) -> Vec<Value> {
    let (s, h, b) = app.send(Method::POST, "/Bulk", Some(body)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(h["content-type"], "application/scim+json");
    assert_eq!(
        b["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:BulkResponse"])
    );
    b["Operations"].as_array().unwrap().clone()
}

fn id_of(op: &Value) -> String {
    op["location"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_group_of_users_created_in_the_same_request() {
    let app = TestApp::spawn().await;
    // The group comes first and refers forward to the users: it waits for them.
    let ops = run(
        &app,
        bulk(json!([
            {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"schemas": [GROUP], "displayName": "Bulk team",
                "members": [{"value": "bulkId:u1"}, {"value": "bulkId:u2", "type": "User"}]}},
            user("u1", "ann"),
            user("u2", "ben"),
            {"method": "PATCH", "path": "/Groups/bulkId:g", "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "displayName", "value": "Bulk team 2"}]}},
            {"method": "PUT", "path": "/Users/bulkId:u1", "data": {"schemas": [USER, ENTERPRISE], "userName": "ann@example.com", "title": "Lead",
                ENTERPRISE: {"manager": {"value": "bulkId:u2"}}}},
        ])),
    )
    .await;
    assert_eq!(ops.len(), 5);
    let statuses: Vec<&str> = ops.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["201", "201", "201", "200", "200"], "{ops:?}");
    assert_eq!(
        (ops[0]["method"].clone(), ops[0]["bulkId"].clone()),
        (json!("POST"), json!("g"))
    );
    let (g, u1, u2) = (id_of(&ops[0]), id_of(&ops[1]), id_of(&ops[2]));
    assert_eq!(ops[1]["location"], format!("{}/Users/{u1}", app.base));
    assert!(ops[0].get("response").is_none());

    let (_, group) = app.get(&format!("/Groups/{g}")).await;
    assert_eq!(group["displayName"], "Bulk team 2");
    assert_eq!(ops[3]["version"], group["meta"]["version"]);
    let mut members: Vec<String> = group["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap().to_owned())
        .collect();
    members.sort();
    let mut want = vec![u1.clone(), u2.clone()];
    want.sort();
    assert_eq!(members, want);
    // The Phabricator rows: member edges both ways.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM {{project}}.edge WHERE src = '{g}' AND type = 13"
        ))
        .await,
        2
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM {{user}}.edge WHERE dst = '{g}' AND type = 14"
        ))
        .await,
        2
    );
    let (_, ann) = app.get(&format!("/Users/{u1}")).await;
    assert_eq!(ann[ENTERPRISE]["manager"]["value"], u2.as_str());
    assert_eq!(ann["title"], "Lead");
    // Each operation is its own request in the sync log, under its own path.
    let logged = app
        .rows("SELECT method, path, status FROM {scim}.scim_event WHERE outcome = 'ok' ORDER BY id")
        .await;
    assert_eq!(logged.len(), 5, "{logged:?}");
    assert!(
        logged
            .iter()
            .any(|r| r["path"] == "/scim/v2/Groups/bulkId:g" && r["method"] == "PATCH"),
        "{logged:?}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn errors_references_cycles_and_fail_on_errors() {
    let app = TestApp::spawn().await;
    let (_, existing) = app
        .post(
            "/Users",
            json!({"schemas": [USER], "userName": "taken@example.com"}),
        )
        .await;
    let existing = existing["id"].as_str().unwrap().to_owned();

    let ops = run(
        &app,
        bulk(json!([
            // 409 uniqueness from provisioning.
            {"method": "POST", "path": "/Users", "bulkId": "dup", "data": {"userName": "taken@example.com"}},
            // Refers to the failed one: 409.
            {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"displayName": "G", "members": [{"value": "bulkId:dup"}]}},
            // Refers to a bulkId nobody defines: 400.
            {"method": "DELETE", "path": "/Users/bulkId:ghost"},
            // A cycle through enterprise managers: 409 for both.
            {"method": "POST", "path": "/Users", "bulkId": "c1", "data": {"userName": "c1@example.com", ENTERPRISE: {"manager": {"value": "bulkId:c2"}}}},
            {"method": "POST", "path": "/Users", "bulkId": "c2", "data": {"userName": "c2@example.com", ENTERPRISE: {"manager": {"value": "bulkId:c1"}}}},
            // Malformed operations are answered in their slot.
            {"method": "GET", "path": "/Users"},
            {"method": "POST", "path": "/Users", "data": {"userName": "nobulkid@example.com"}},
            {"method": "PUT", "path": "/Nowhere/1", "data": {}},
            // A stale version: 412.
            {"method": "PATCH", "path": format!("/Users/{existing}"), "version": "W/\"99\"", "data": {"Operations": [{"op": "replace", "path": "title", "value": "x"}]}},
            // 404.
            {"method": "DELETE", "path": "/Groups/PHID-PROJ-nope"},
            // And one that works.
            user("ok", "okay"),
        ])),
    )
    .await;
    let got: Vec<(String, Option<String>)> = ops
        .iter()
        .map(|o| {
            (
                o["status"].as_str().unwrap().to_owned(),
                o["response"]["scimType"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let want: Vec<(String, Option<String>)> = [
        ("409", Some("uniqueness")),
        ("409", None),
        ("400", Some("invalidValue")),
        ("409", None),
        ("409", None),
        ("400", Some("invalidValue")),
        ("400", Some("invalidValue")),
        ("400", Some("invalidValue")),
        ("412", None),
        ("404", None),
        ("201", None),
    ]
    .iter()
    .map(|(s, t)| (s.to_string(), t.map(str::to_owned)))
    .collect();
    assert_eq!(got, want, "{ops:#?}");
    for o in &ops[..10] {
        let r = &o["response"];
        assert_eq!(
            r["schemas"],
            json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
        );
        assert_eq!(
            r["status"], o["status"],
            "status is a string in both places"
        );
        assert!(o.get("location").is_none());
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {scim}.scim_user WHERE userName LIKE 'c_@example.com'")
            .await,
        0
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM {scim}.scim_group").await, 0);

    // failOnErrors: stop after that many errors; later operations do not run.
    let ops = run(
        &app,
        json!({"schemas": [BULK], "failOnErrors": 1, "Operations": [
            user("a", "first"),
            {"method": "POST", "path": "/Users", "bulkId": "b", "data": {"userName": "taken@example.com"}},
            user("c", "never"),
        ]}),
    )
    .await;
    let statuses: Vec<&str> = ops.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["201", "409"]);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {scim}.scim_user WHERE userName = 'never@example.com'")
            .await,
        0
    );
    app.cleanup().await;
}

#[tokio::test]
async fn limits_are_enforced_before_any_work() {
    let app = TestApp::spawn().await;
    let before = app.count("SELECT COUNT(*) FROM {scim}.scim_user").await;
    // 10,000 small operations fit in the body limit but exceed maxOperations: 413.
    let many: Vec<Value> = (0..10_000).map(|i| json!({"method": "POST", "path": "/Users", "bulkId": format!("b{i}"), "data": {"userName": format!("u{i}")}})).collect();
    let started = std::time::Instant::now();
    let (s, _, b) = app
        .send(Method::POST, "/Bulk", Some(bulk(Value::Array(many))))
        .await;
    assert_eq!(s, 413, "{b}");
    assert_eq!(
        (b["status"].clone(), b["schemas"].clone()),
        (
            json!("413"),
            json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
        )
    );
    assert!(b["detail"].as_str().unwrap().contains("maxOperations"));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // 1,001: still over.
    let over: Vec<Value> = (0..1001)
        .map(|i| json!({"method": "DELETE", "path": format!("/Users/x{i}")}))
        .collect();
    let (s, _, _) = app
        .send(Method::POST, "/Bulk", Some(bulk(Value::Array(over))))
        .await;
    assert_eq!(s, 413);
    // Larger than maxPayloadSize: 413 from the body limit, as a SCIM error.
    let big = json!({"method": "POST", "path": "/Users", "bulkId": "big", "data": {"userName": "big", "title": "x".repeat(app.cfg.max_body_bytes)}});
    let (s, _, b) = app
        .send(Method::POST, "/Bulk", Some(bulk(json!([big]))))
        .await;
    assert_eq!(
        (s.as_u16(), b["status"].clone()),
        (413, json!("413")),
        "{b}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {scim}.scim_user").await,
        before
    );

    // Request-level errors.
    let (s, _, b) = app
        .send(Method::POST, "/Bulk", Some(json!({"schemas": [BULK]})))
        .await;
    assert_eq!(
        (s.as_u16(), b["scimType"].clone()),
        (400, json!("invalidSyntax"))
    );
    let (s, _, b) = app
        .send(
            Method::POST,
            "/Bulk",
            Some(json!({"schemas": ["urn:x"], "Operations": []})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), b["scimType"].clone()),
        (400, json!("invalidSyntax"))
    );
    let (s, _, b) = app
        .send(
            Method::POST,
            "/Bulk",
            Some(json!({"schemas": [BULK], "failOnErrors": -1, "Operations": []})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), b["scimType"].clone()),
        (400, json!("invalidValue"))
    );
    let (s, _, b) = app
        .send(
            Method::POST,
            "/Bulk",
            Some(json!({"schemas": [BULK], "Operations": [user("d", "x"), user("d", "y")]})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            b["Operations"][0]["status"].clone(),
            b["Operations"][1]["status"].clone()
        ),
        (json!("201"), json!("400"))
    );
    for m in [Method::GET, Method::PUT, Method::DELETE] {
        let (s, _, b) = app.send(m, "/Bulk", None).await;
        assert_eq!((s.as_u16(), b["status"].clone()), (405, json!("405")));
    }
    app.cleanup().await;
}
