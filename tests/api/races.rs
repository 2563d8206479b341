//! Races (issue 6, point 3): identical POSTs in parallel, 8 clients patching one group,
//! duplicate deprovisions, and two service processes on one namespace.
//!
//! Every request of a pair or burst is sent at once; half of them go to a second
//! `Application` on the same namespace, which is what a second replica is (they share
//! nothing but the database). `PHAB_SCIM_RACE_PAIRS` raises the number of pairs
//! (`scripts/race-test` runs 1,000).

use std::collections::BTreeSet;

use futures_util::future::join_all;
use phab_scim::app::Application;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::helpers::{TestApp, user_body};
use crate::invariants;

const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A second replica: another `Application` on the same namespace and configuration.
struct Replica {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Replica {
    async fn start(app: &TestApp) -> Self {
        let built = Application::build(app.cfg.clone(), None)
            .await
            .expect("second replica");
        let base = format!("http://{}/scim/v2", built.addr());
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = built
                .run_with_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            base,
            stop: Some(tx),
            server,
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.server).await;
    }
}

/// Sends to `base` (either replica) with the app's token.
async fn send(
    app: &TestApp,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (s, _, b) = app.send(method, &format!("{base}{path}"), body).await;
    (s.as_u16(), b)
}

fn pairs() -> usize {
    std::env::var("PHAB_SCIM_RACE_PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

async fn assert_invariants(app: &TestApp) {
    let v = invariants::check(
        &crate::invariants::Servers::new(&app.pool, app.placement()),
        app.t(),
    )
    .await
    .unwrap();
    assert!(
        v.is_empty(),
        "{} violations: {:?}",
        v.len(),
        &v[..v.len().min(20)]
    );
}

/// Pairs of identical POSTs (users, then groups), each pair split across two replicas and
/// sent at once: exactly one resource per pair, one 201 and one 409 `uniqueness`.
#[tokio::test]
async fn identical_posts_in_parallel_make_one_resource_each() {
    let app = TestApp::spawn().await;
    let other = Replica::start(&app).await;
    let n = pairs();
    let bases = [app.base.clone(), other.base.clone()];
    // Pairs run 8 at a time: 16 requests in flight, more than the pool would serialize away.
    for chunk in (0..n).collect::<Vec<_>>().chunks(8) {
        let reqs = chunk.iter().flat_map(|i| {
            let name = format!("race{i}@corp.com");
            let body = user_body(&name, &name, &format!("Race {i}"));
            [0usize, 1].map(|side| {
                let body = body.clone();
                let base = bases[side].clone();
                let app = &app;
                async move { send(app, &base, reqwest::Method::POST, "/Users", Some(body)).await }
            })
        });
        let results = join_all(reqs).await;
        for pair in results.chunks(2) {
            let mut s: Vec<u16> = pair.iter().map(|r| r.0).collect();
            s.sort();
            assert_eq!(s, vec![201, 409], "{pair:?}");
            let loser = pair.iter().find(|r| r.0 == 409).unwrap();
            assert_eq!(loser.1["scimType"], "uniqueness", "{loser:?}");
        }
    }
    for chunk in (0..n).collect::<Vec<_>>().chunks(8) {
        let reqs = chunk.iter().flat_map(|i| {
            [0usize, 1].map(|side| {
                let body = json!({"displayName": format!("Race Group {i}")});
                let base = bases[side].clone();
                let app = &app;
                async move { send(app, &base, reqwest::Method::POST, "/Groups", Some(body)).await }
            })
        });
        let results = join_all(reqs).await;
        for pair in results.chunks(2) {
            let mut s: Vec<u16> = pair.iter().map(|r| r.0).collect();
            s.sort();
            assert_eq!(s, vec![201, 409], "{pair:?}");
        }
    }
    let n = n as i64;
    assert_eq!(app.count("SELECT COUNT(*) FROM {scim}.scim_user").await, n);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {user}.user WHERE isSystemAgent = 0")
            .await,
        n
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {user}.user_email").await,
        n + 1
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM {scim}.scim_group").await, n);
    assert_eq!(app.count("SELECT COUNT(*) FROM {project}.project").await, n);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {project}.project_slug")
            .await,
        n
    );
    // Each winner logged once; each loser wrote nothing but its error row.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {scim}.scim_event WHERE outcome = 'ok'")
            .await,
        2 * n
    );
    assert_invariants(&app).await;
    other.stop().await;
    app.cleanup().await;
}

async fn members(app: &TestApp, group: &str) -> BTreeSet<String> {
    app.rows(&format!(
        "SELECT CAST(dst AS CHAR) AS d FROM {{project}}.edge WHERE src = '{group}' AND type = 13"
    ))
    .await
    .into_iter()
    .map(|r| r["d"].as_str().unwrap().to_owned())
    .collect()
}

/// 8 clients (4 per replica) PATCH one group at once, each adding and removing its own
/// members one operation at a time, plus adds and removes that every client repeats: the
/// result is the membership any serial order gives.
#[tokio::test]
async fn eight_clients_patching_one_group_converge() {
    let app = TestApp::spawn().await;
    let other = Replica::start(&app).await;
    let mut users = Vec::new();
    for i in 0..90 {
        let name = format!("m{i}@corp.com");
        let (s, r) = app.post("/Users", user_body(&name, &name, "M")).await;
        assert_eq!(s, 201);
        users.push(r["id"].as_str().unwrap().to_owned());
    }
    let initial: Vec<Value> = users[..40].iter().map(|u| json!({"value": u})).collect();
    let (s, g) = app
        .post(
            "/Groups",
            json!({"displayName": "Contended", "members": initial}),
        )
        .await;
    assert_eq!(s, 201);
    let group = g["id"].as_str().unwrap().to_owned();
    // Client k removes users[5k..5k+5] and adds users[40+5k..40+5k+5]; every client also adds
    // users[80..85] and removes users[85..90] (never members): idempotent in any order.
    let clients = (0..8).map(|k| {
        let base = if k % 2 == 0 { app.base.clone() } else { other.base.clone() };
        let mut ops = Vec::new();
        for j in 0..5 {
            ops.push(json!({"op": "remove", "path": format!("members[value eq \"{}\"]", users[5 * k + j])}));
            ops.push(json!({"op": "add", "path": "members", "value": [{"value": users[40 + 5 * k + j]}]}));
        }
        ops.push(json!({"op": "add", "path": "members", "value": users[80..85].iter().map(|u| json!({"value": u})).collect::<Vec<_>>()}));
        ops.push(json!({"op": "remove", "path": "members", "value": users[85..90].iter().map(|u| json!({"value": u})).collect::<Vec<_>>()}));
        let app = &app;
        let group = group.clone();
        async move {
            let mut statuses = Vec::new();
            for op in ops {
                let body = json!({"schemas": [PATCH], "Operations": [op]});
                statuses.push(send(app, &base, reqwest::Method::PATCH, &format!("/Groups/{group}"), Some(body)).await);
            }
            statuses
        }
    });
    for statuses in join_all(clients).await {
        for (s, b) in statuses {
            assert!(s == 204 || s == 200, "{s} {b}");
        }
    }
    let want: BTreeSet<String> = users[40..85].iter().cloned().collect();
    assert_eq!(members(&app, &group).await, want);
    let (s, body) = app.get(&format!("/Groups/{group}")).await;
    assert_eq!(s, StatusCode::OK);
    let listed: BTreeSet<String> = body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, want);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM {{project}}.edge WHERE src = '{group}' AND type = 60"
        ))
        .await,
        45
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM {{user}}.edge WHERE dst = '{group}' AND type = 14"
        ))
        .await,
        45
    );
    assert_invariants(&app).await;
    other.stop().await;
    app.cleanup().await;
}

/// The checker the races rely on can fail: a membership with its inverse edge deleted by hand
/// (in the `user` database, on the other server in a partitioned run), a managed user with no
/// primary address and a managed project without its slug row are each named.
#[tokio::test]
async fn the_invariant_checker_names_a_one_sided_membership() {
    let app = TestApp::spawn().await;
    let (s, u) = app
        .post("/Users", user_body("lone@corp.com", "lone@corp.com", "L"))
        .await;
    assert_eq!(s, 201);
    let user = u["id"].as_str().unwrap().to_owned();
    let (s, g) = app
        .post(
            "/Groups",
            json!({"displayName": "Halved", "members": [{"value": user}]}),
        )
        .await;
    assert_eq!(s, 201);
    let group = g["id"].as_str().unwrap().to_owned();
    assert_invariants(&app).await;

    app.exec(&format!(
        "DELETE FROM {{user}}.edge WHERE src = '{user}' AND type = 14"
    ))
    .await;
    app.exec(&format!(
        "UPDATE {{user}}.user_email SET isPrimary = 0 WHERE userPHID = '{user}'"
    ))
    .await;
    app.exec(&format!(
        "DELETE FROM {{project}}.project_slug WHERE projectPHID = '{group}'"
    ))
    .await;
    let v = invariants::check(
        &invariants::Servers::new(&app.pool, app.placement()),
        app.t(),
    )
    .await
    .unwrap();
    assert!(
        v.contains(&format!("edge 13 {group} -> {user} lacks its 14")),
        "{v:?}"
    );
    assert!(
        v.contains(&format!("{user} has 0 primary addresses")),
        "{v:?}"
    );
    assert!(
        v.contains(&format!("project {group} lacks its primary slug row")),
        "{v:?}"
    );
    assert_eq!(v.len(), 3, "{v:?}");
    app.cleanup().await;
}

/// Duplicate deprovisions sent at once (an IdP retrying after a timeout, or two replicas
/// each receiving one): PATCH active=false and PUT active=false both succeed; of two
/// DELETEs one is 204 and the other 204 or 404 (RFC 7644 §3.6: the resource is gone); the
/// account is disabled once, with one `user.disable` transaction.
#[tokio::test]
async fn duplicate_deprovisions_both_succeed() {
    let app = TestApp::spawn().await;
    let other = Replica::start(&app).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let name = format!("d{i}@corp.com");
        let (s, r) = app.post("/Users", user_body(&name, &name, "D")).await;
        assert_eq!(s, 201);
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    let off = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let path = format!("/Users/{}", ids[0]);
    let (a, b) = tokio::join!(
        send(
            &app,
            &app.base,
            reqwest::Method::PATCH,
            &path,
            Some(off.clone())
        ),
        send(
            &app,
            &other.base,
            reqwest::Method::PATCH,
            &path,
            Some(off.clone())
        ),
    );
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    assert_eq!(
        (a.1["active"].clone(), b.1["active"].clone()),
        (json!(false), json!(false))
    );
    let mut put = user_body("d1@corp.com", "d1@corp.com", "D");
    put["active"] = json!(false);
    let path = format!("/Users/{}", ids[1]);
    let (a, b) = tokio::join!(
        send(
            &app,
            &app.base,
            reqwest::Method::PUT,
            &path,
            Some(put.clone())
        ),
        send(
            &app,
            &other.base,
            reqwest::Method::PUT,
            &path,
            Some(put.clone())
        ),
    );
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    let path = format!("/Users/{}", ids[2]);
    let (a, b) = tokio::join!(
        send(&app, &app.base, reqwest::Method::DELETE, &path, None),
        send(&app, &other.base, reqwest::Method::DELETE, &path, None),
    );
    let mut s = [a.0, b.0];
    s.sort();
    assert!(s == [204, 204] || s == [204, 404], "{a:?} {b:?}");
    for id in &ids {
        assert_eq!(
            app.count(&format!(
                "SELECT isDisabled FROM {{user}}.user WHERE phid = '{id}'"
            ))
            .await,
            1
        );
        assert_eq!(
            app.count(&format!("SELECT COUNT(*) FROM {{user}}.user_transaction WHERE objectPHID = '{id}' AND transactionType = 'user.disable'")).await,
            1,
            "{id} disabled once"
        );
    }
    assert_invariants(&app).await;
    other.stop().await;
    app.cleanup().await;
}
