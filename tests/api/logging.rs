//! What the service logs at its default level, read from the real binary's stderr (issue 15):
//! one INFO line per change with the request id, the resource id and the outcome, never a
//! request body.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestApp, database_url, user_body};

const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// `phab-scim serve` on a free port of `app`'s namespace, logging at its default level into
/// `log`. Killed on drop.
struct Service {
    child: Child,
    base: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(app: &TestApp, log: &std::path::Path, env: &[(&str, &str)]) -> Service {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_phab-scim"))
        .arg("serve")
        .env("PHAB_SCIM_DATABASE_URL", database_url())
        .env("PHAB_SCIM_NAMESPACE", app.ns.as_str())
        .env("PHAB_SCIM_LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("PHAB_SCIM_LOG")
        .env_remove("PHAB_SCIM_TEST_DATABASE_URL")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start phab-scim serve");
    let service = Service {
        child,
        base: format!("http://127.0.0.1:{port}/scim/v2"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = app
            .client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            && r.status() == 200
        {
            return service;
        }
        assert!(Instant::now() < deadline, "the service did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn call(
    app: &TestApp,
    s: &Service,
    method: reqwest::Method,
    path: &str,
    request_id: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .client
        .request(method, format!("{}{path}", s.base))
        .bearer_auth(&app.token)
        .header("x-request-id", request_id)
        .header("content-type", "application/scim+json");
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn ops(ops: Value) -> Value {
    json!({"schemas": [PATCH], "Operations": ops})
}

#[tokio::test]
async fn every_change_is_one_info_line_with_request_resource_and_outcome() {
    use reqwest::Method as M;
    let app = TestApp::spawn().await;
    let log = std::env::temp_dir().join(format!("phab-scim-log-{}.txt", app.ns.as_str()));
    let s = serve(&app, &log, &[]).await;
    // A value only the bodies hold: it must not reach the log.
    let marker = "Body-Only-Marker-7Q";
    let mut ann = user_body("ann@corp.com", "ann@corp.com", "Ann");
    ann["title"] = json!(marker);
    let (st, u) = call(
        &app,
        &s,
        M::POST,
        "/Users",
        "rq-user-create",
        Some(ann.clone()),
    )
    .await;
    assert_eq!(st, 201, "{u}");
    let ann_id = u["id"].as_str().unwrap().to_owned();
    let (st, b) = call(&app, &s, M::POST, "/Users", "rq-user-dup", Some(ann)).await;
    assert_eq!(st, 409, "{b}");
    let (st, _) = call(
        &app,
        &s,
        M::PATCH,
        &format!("/Users/{ann_id}"),
        "rq-user-update",
        Some(ops(
            json!([{"op": "replace", "path": "displayName", "value": "Ann Lee"}]),
        )),
    )
    .await;
    assert_eq!(st, 200);
    let (st, _) = call(
        &app,
        &s,
        M::PATCH,
        &format!("/Users/{ann_id}"),
        "rq-user-deactivate",
        Some(ops(
            json!([{"op": "replace", "path": "active", "value": false}]),
        )),
    )
    .await;
    assert_eq!(st, 200);
    let (st, g) = call(
        &app,
        &s,
        M::POST,
        "/Groups",
        "rq-group-create",
        Some(json!({"schemas": [GROUP], "displayName": "Night Ops"})),
    )
    .await;
    assert_eq!(st, 201, "{g}");
    let gid = g["id"].as_str().unwrap().to_owned();
    let (st, _) = call(
        &app,
        &s,
        M::PATCH,
        &format!("/Groups/{gid}"),
        "rq-group-members",
        Some(ops(
            json!([{"op": "add", "path": "members", "value": [{"value": ann_id}]}]),
        )),
    )
    .await;
    assert_eq!(st, 204);
    let (st, _) = call(
        &app,
        &s,
        M::PUT,
        &format!("/Groups/{gid}"),
        "rq-group-rename",
        Some(json!({"schemas": [GROUP], "displayName": "Day Ops", "members": [{"value": ann_id}]})),
    )
    .await;
    assert_eq!(st, 200);
    let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "PATCH", "path": format!("/Users/{ann_id}"), "data": ops(json!([{"op": "replace", "path": "active", "value": true}]))}]});
    let (st, b) = call(&app, &s, M::POST, "/Bulk", "rq-bulk", Some(bulk)).await;
    assert_eq!(st, 200, "{b}");
    let (st, _) = call(
        &app,
        &s,
        M::DELETE,
        &format!("/Users/{ann_id}"),
        "rq-user-delete",
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (st, _) = call(
        &app,
        &s,
        M::DELETE,
        &format!("/Groups/{gid}"),
        "rq-group-delete",
        None,
    )
    .await;
    assert_eq!(st, 204);
    drop(s);

    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let info_lines = |rid: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains(" INFO ") && l.contains(&format!("request_id={rid} ")))
            .map(str::to_owned)
            .collect()
    };
    for (rid, expected) in [
        (
            "rq-user-create",
            vec![(ann_id.as_str(), "outcome=\"created\"")],
        ),
        ("rq-user-dup", vec![("-", "outcome=\"refused\" status=409")]),
        (
            "rq-user-update",
            vec![(ann_id.as_str(), "outcome=\"updated\"")],
        ),
        (
            "rq-user-deactivate",
            vec![(ann_id.as_str(), "outcome=\"deactivated\"")],
        ),
        (
            "rq-group-create",
            vec![(gid.as_str(), "outcome=\"created\"")],
        ),
        (
            "rq-group-members",
            vec![(gid.as_str(), "outcome=\"members changed\"")],
        ),
        (
            "rq-group-rename",
            vec![(gid.as_str(), "outcome=\"renamed\"")],
        ),
        (
            "rq-bulk",
            vec![(ann_id.as_str(), "outcome=\"reactivated\"")],
        ),
        (
            "rq-user-delete",
            vec![
                (ann_id.as_str(), "outcome=\"deleted\""),
                (gid.as_str(), "outcome=\"member removed (user deleted)\""),
            ],
        ),
        (
            "rq-group-delete",
            vec![(gid.as_str(), "outcome=\"deleted (project archived)\"")],
        ),
    ] {
        let lines = info_lines(rid);
        assert_eq!(lines.len(), expected.len(), "{rid}: {lines:#?}\n{text}");
        for (line, (id, outcome)) in lines.iter().zip(expected) {
            assert!(
                line.contains(&format!("id=\"{id}\"")) && line.contains(outcome),
                "{rid}: {line}"
            );
        }
    }
    assert!(!text.contains(marker), "a request body reached the log");
    assert!(!text.contains(&app.token), "the token reached the log");
    app.cleanup().await;
}

/// Once an address trips the failed-authentication limit, its refused requests are logged as
/// refused for the address, not as failed authentications (their tokens were not the cause),
/// and a valid token from it is served and logged as the change it made (issue 15).
#[tokio::test]
async fn the_failed_authentication_limit_is_logged_as_what_happened() {
    let app = TestApp::spawn().await;
    let log = std::env::temp_dir().join(format!("phab-scim-log-{}.txt", app.ns.as_str()));
    let s = serve(
        &app,
        &log,
        &[
            ("PHAB_SCIM_AUTH_FAILURES_PER_MINUTE", "3"),
            ("PHAB_SCIM_LOG", "info,phab_scim::http::auth=debug"),
        ],
    )
    .await;
    let (mut n401, mut n429) = (0, 0);
    for i in 0..6 {
        let wrong = format!("phscim-{}-{}", 900 + i, "a".repeat(40));
        let r = app
            .client
            .get(format!("{}/Users", s.base))
            .bearer_auth(&wrong)
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            401 => n401 += 1,
            429 => n429 += 1,
            other => panic!("a wrong token answered {other}"),
        }
    }
    assert!(
        n401 > 0 && n429 > 0,
        "{n401} refused as invalid, {n429} as over the limit"
    );
    let (st, u) = call(
        &app,
        &s,
        reqwest::Method::POST,
        "/Users",
        "rq-valid-after-limit",
        Some(user_body("bo@corp.com", "bo@corp.com", "Bo")),
    )
    .await;
    assert_eq!(st, 201, "a valid token from the same address: {u}");
    drop(s);
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let count = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(count("authentication failed"), n401, "{text}");
    assert_eq!(
        count("request refused: too many failed authentications from this address"),
        n429,
        "{text}"
    );
    let valid: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("request_id=rq-valid-after-limit "))
        .collect();
    assert_eq!(valid.len(), 1, "{text}");
    assert!(
        valid[0].contains("outcome=\"created\"") && valid[0].contains("token_id=1 "),
        "{}",
        valid[0]
    );
    app.cleanup().await;
}

/// A refused write is one INFO line with the status the client got, on its own route and as
/// an operation of a Bulk request (each operation its own line, with the operation's method);
/// an operation refused before it reached a write (a POST to an item) has none.
#[tokio::test]
async fn every_refused_write_is_one_info_line_with_the_status_the_client_got() {
    use reqwest::Method as M;
    let app = TestApp::spawn().await;
    let log = std::env::temp_dir().join(format!("phab-scim-log-{}.txt", app.ns.as_str()));
    let s = serve(&app, &log, &[]).await;
    let missing = "PHID-USER-nosuchuserxxxxxxxxxxx";
    let (st, b) = call(
        &app,
        &s,
        M::PATCH,
        &format!("/Users/{missing}"),
        "rq-patch-missing",
        Some(ops(
            json!([{"op": "replace", "path": "displayName", "value": "X"}]),
        )),
    )
    .await;
    assert_eq!(st, 404, "{b}");
    let (st, b) = call(
        &app,
        &s,
        M::DELETE,
        &format!("/Groups/{missing}"),
        "rq-delete-missing",
        None,
    )
    .await;
    assert_eq!(st, 404, "{b}");
    let ann = user_body("ann@corp.com", "ann@corp.com", "Ann");
    let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "a", "data": ann.clone()},
        {"method": "POST", "path": "/Users", "bulkId": "b", "data": ann},
        {"method": "PATCH", "path": format!("/Users/{missing}"), "data": ops(json!([{"op": "replace", "path": "active", "value": false}]))},
        {"method": "POST", "path": format!("/Users/{missing}"), "bulkId": "c", "data": {}}]});
    let (st, b) = call(&app, &s, M::POST, "/Bulk", "rq-bulk-refused", Some(bulk)).await;
    assert_eq!(st, 200, "{b}");
    let statuses: Vec<&str> = b["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(&statuses[..3], ["201", "409", "404"], "{b}");
    drop(s);

    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let info_lines = |rid: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains(" INFO ") && l.contains(&format!("request_id={rid} ")))
            .map(str::to_owned)
            .collect()
    };
    for (rid, expected) in [
        (
            "rq-patch-missing",
            vec![("PATCH", missing, "outcome=\"refused\" status=404")],
        ),
        (
            "rq-delete-missing",
            vec![("DELETE", missing, "outcome=\"refused\" status=404")],
        ),
        (
            "rq-bulk-refused",
            vec![
                ("POST", "", "outcome=\"created\""),
                ("POST", "-", "outcome=\"refused\" status=409"),
                ("PATCH", missing, "outcome=\"refused\" status=404"),
            ],
        ),
    ] {
        let lines = info_lines(rid);
        assert_eq!(lines.len(), expected.len(), "{rid}: {lines:#?}\n{text}");
        for (line, (method, id, outcome)) in lines.iter().zip(expected) {
            assert!(
                line.contains(&format!("method={method} "))
                    && (id.is_empty() || line.contains(&format!("id=\"{id}\"")))
                    && line.contains(outcome),
                "{rid}: {line}"
            );
        }
    }
    app.cleanup().await;
}
