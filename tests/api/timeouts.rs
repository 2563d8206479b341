//! Time limits of database work (issue 11, finding 6): a write that cannot finish answers the
//! service's 503 (SCIM error body, Retry-After, the request id) within its limit, changes
//! nothing, and leaves the service working. A row lock held by another session stands in for a
//! hung database here; `scripts/outage-test` stops a private server with SIGSTOP.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection};

use crate::helpers::TestApp;

const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

async fn create(app: &TestApp, name: &str) -> String {
    let (s, u) = app
        .post(
            "/Users",
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": format!("{name}@timeouts.example"),
                "displayName": "Before",
                "emails": [{"primary": true, "value": format!("{name}@timeouts.example")}],
            }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    u["id"].as_str().unwrap().to_owned()
}

fn rename(to: &str) -> Value {
    json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "displayName", "value": to}]})
}

/// PATCHes the user while another session holds its `scim_user` row; checks the 503.
async fn patch_while_locked(app: &TestApp, id: &str, request_id: &str) {
    let mut holder = sqlx::MySqlConnection::connect_with(
        &phab_scim::db::connect_options(&app.cfg.database_url).unwrap(),
    )
    .await
    .unwrap();
    let mut tx = holder.begin().await.unwrap();
    sqlx::query(AssertSqlSafe(app.sql(
        "SELECT id FROM {scim}.scim_user WHERE userPHID = ? FOR UPDATE",
    )))
    .bind(id)
    .fetch_all(&mut *tx)
    .await
    .unwrap();

    let (status, headers, body) = app
        .send_with(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(rename("During")),
            &[("x-request-id", request_id)],
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    assert_eq!(headers["x-request-id"], request_id);
    assert_eq!(
        body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{body}"
    );
    assert_eq!(body["status"], "503", "{body}");
    tx.rollback().await.unwrap();
    holder.close().await.ok();

    // Nothing was written, and the service goes on.
    let (s, u) = app.get(&format!("/Users/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["displayName"], "Before");
    let (s, u) = app.patch(&format!("/Users/{id}"), rename("After")).await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["displayName"], "After");
}

#[tokio::test]
async fn a_transaction_that_runs_out_of_time_answers_503_and_writes_nothing() {
    // The lock wait (statement_timeout_secs) outlasts the transaction's limit.
    let app = TestApp::spawn_with(|c| {
        c.statement_timeout_secs = 20;
        c.transaction_timeout_secs = 1;
    })
    .await;
    let id = create(&app, "txn").await;
    patch_while_locked(&app, &id, "timeout-transaction-1").await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_request_that_runs_out_of_time_answers_503_with_its_request_id() {
    let app = TestApp::spawn_with(|c| {
        c.statement_timeout_secs = 20;
        c.transaction_timeout_secs = 20;
        c.request_timeout_secs = 1;
    })
    .await;
    let id = create(&app, "req").await;
    patch_while_locked(&app, &id, "timeout-request-1").await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_lock_wait_ends_within_the_statement_timeout() {
    let app = TestApp::spawn_with(|c| {
        c.statement_timeout_secs = 1;
        c.transaction_timeout_secs = 20;
    })
    .await;
    let id = create(&app, "lock").await;
    patch_while_locked(&app, &id, "timeout-lock-1").await;
    app.cleanup().await;
}
