//! Authentication and blast radius (issue 6, points 5 and 6): every route behind the token,
//! token lifetimes, the argon2 path for unknown ids, secrets kept out of logs and `Debug`, and
//! the limits on what SCIM may change in Phabricator.

use std::path::{Path, PathBuf};
use std::time::Duration;

use phab_scim::token::TokenVerifier;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, user_body};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

// ---------------------------------------------------------------------------------------------
// Point 5: authentication.

/// The route table of `src/http/mod.rs`, read from the source at test time: `(path, nested)`
/// where `nested` means under `/scim/v2`. A route whose path is not a string literal fails the
/// test, so the enumeration cannot silently miss one.
fn declared_routes() -> Vec<(String, bool)> {
    let src = include_str!("../../src/http/mod.rs");
    let split = src
        .find("pub fn router(")
        .expect("src/http/mod.rs has `pub fn router(`");
    let mut routes = Vec::new();
    for (part, nested) in [(&src[..split], true), (&src[split..], false)] {
        for (i, _) in part.match_indices(".route(") {
            let rest = part[i + ".route(".len()..].trim_start();
            let lit = rest.strip_prefix('"').unwrap_or_else(|| {
                panic!(
                    "a route path is not a string literal: {}",
                    &rest[..rest.len().min(60)]
                )
            });
            let end = lit.find('"').expect("closing quote");
            routes.push((lit[..end].to_owned(), nested));
        }
    }
    routes
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Routes are declared only in `src/http/mod.rs`: a router built elsewhere would escape the
/// enumeration below.
#[test]
fn routes_are_declared_in_one_place() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    for f in files {
        if f.ends_with("http/mod.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        if !text.contains("Router") {
            continue; // `.merge(` and friends of other APIs (figment)
        }
        for needle in [
            ".route(",
            ".nest(",
            ".merge(",
            ".route_service(",
            ".nest_service(",
            ".fallback_service(",
        ] {
            assert!(
                !text.contains(needle),
                "{} declares routes ({needle}); declare them in src/http/mod.rs",
                f.display()
            );
        }
    }
    let routes = declared_routes();
    assert!(routes.len() >= 10, "{routes:?}");
    assert!(routes.iter().any(|(p, n)| p == "/Users" && *n));
    assert!(routes.iter().any(|(p, n)| p == "/readyz" && !*n));
}

/// Every declared route, with every method, answers 401 without a valid token, except the
/// two probes. A new route in `src/http/mod.rs` is covered without editing this test.
#[tokio::test]
async fn every_declared_route_and_method_needs_a_token() {
    // The failure limit would answer 429 (also a refusal) before this test is through.
    let app = TestApp::spawn_with(|c| c.auth_failures_per_minute = 1_000_000).await;
    let root = app.base.trim_end_matches("/scim/v2").to_owned();
    let mut paths: Vec<String> = declared_routes()
        .into_iter()
        .map(|(p, nested)| {
            let p = p
                .replace("{id}", "PHID-USER-aaaaaaaaaaaaaaaaaaaa")
                .replace("{name}", "User");
            assert!(
                !p.contains('{'),
                "a path parameter this test does not know: {p}"
            );
            if nested {
                format!("{}{p}", app.base)
            } else {
                format!("{root}{p}")
            }
        })
        .collect();
    // The SCIM fallback (unknown paths under /scim/v2) is behind the token too.
    paths.push(format!("{}/NoSuchEndpoint", app.base));
    let methods = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ];
    let bad_tokens: [Option<String>; 4] = [
        None,
        Some("phscim-1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into()),
        Some("not-a-token".into()),
        Some(format!("{}x", app.token)),
    ];
    let mut checked = 0;
    for url in &paths {
        let open = url.ends_with("/healthz") || url.ends_with("/readyz");
        for m in &methods {
            for tok in &bad_tokens {
                let mut req = app
                    .client
                    .request(m.clone(), url)
                    .header("content-type", "application/scim+json")
                    .body("{}");
                if let Some(t) = tok {
                    req = req.bearer_auth(t);
                }
                let r = req.send().await.unwrap();
                let status = r.status().as_u16();
                if open {
                    assert_ne!(status, 401, "{m} {url}");
                    assert!(
                        status != 200 || *m == Method::GET || *m == Method::HEAD,
                        "{m} {url}: {status}"
                    );
                } else {
                    assert_eq!(status, 401, "{m} {url} with {tok:?}");
                    assert!(r.headers().contains_key("www-authenticate"), "{m} {url}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 300, "{checked}");
    app.cleanup().await;
}

/// Rotation (README.md, Rotating a token): the new token works at once; the old one keeps
/// working until its `dateExpires`, then fails within the recheck interval.
#[tokio::test]
async fn rotation_grace_keeps_the_old_token_until_it_expires() {
    let app = TestApp::spawn().await;
    let get = |t: String| {
        let c = app.client.clone();
        let url = format!("{}/Users?count=1", app.base);
        async move {
            c.get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let expires = phab_scim::db::now() + 3;
    let (_, old) = phab_scim::token::issue(&app.db, &app.bot_phid, "old (rotating)", Some(expires))
        .await
        .unwrap();
    let (_, new) = phab_scim::token::issue(
        &app.db,
        &app.bot_phid,
        "new",
        Some(phab_scim::db::now() + 86_400),
    )
    .await
    .unwrap();
    assert_eq!(get(old.clone()).await, 200, "in its grace period");
    assert_eq!(get(new.clone()).await, 200);
    // Past dateExpires plus the recheck interval (1 s here), the cached old token is refused.
    while phab_scim::db::now() <= expires {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(get(old).await, 401);
    assert_eq!(get(new).await, 200);
    app.cleanup().await;
}

/// Unknown ids, revoked rows and wrong secrets all run one argon2 verification, so the answer
/// time does not tell which ids exist; the comparison inside argon2 is the password-hash
/// crate's constant-time `Output` equality. Only a token that cannot be one (wrong shape)
/// skips it, and its shape is public anyway.
#[tokio::test]
async fn unknown_ids_cost_one_verification_like_known_ones() {
    let app = TestApp::spawn().await;
    let v = TokenVerifier::new(app.db.clone(), Duration::from_secs(60), 1000);
    let client = "127.0.0.9".parse().unwrap();
    let secret = "a".repeat(phab_scim::token::SECRET_LEN);
    assert_eq!(v.verifications(), 0);
    assert!(
        v.verify(&format!("phscim-999999-{secret}"), client)
            .await
            .is_err()
    );
    assert_eq!(
        v.verifications(),
        1,
        "an unknown id is verified against a dummy hash"
    );
    let (id, token) = app.issue_token().await;
    let mut conn = app.pool.acquire().await.unwrap();
    let (rid, revoked) = app.issue_token().await;
    assert!(
        phab_scim::db::sidecar::revoke_token(
            &mut phab_scim::db::Conns::of(&app.db, &mut conn),
            app.t(),
            rid
        )
        .await
        .unwrap()
    );
    drop(conn);
    assert!(v.verify(&revoked, client).await.is_err());
    assert_eq!(
        v.verifications(),
        2,
        "a revoked token is verified against the dummy hash"
    );
    assert!(
        v.verify(&format!("phscim-{id}-{secret}"), client)
            .await
            .is_err()
    );
    assert_eq!(v.verifications(), 3, "a wrong secret for a real id");
    assert!(v.verify("phscim-1-short", client).await.is_err());
    assert_eq!(
        v.verifications(),
        3,
        "a malformed token never reaches the database"
    );
    assert_eq!(v.verify(&token, client).await.unwrap().token_id, id);
    assert!(v.verify(&token, client).await.is_ok());
    assert_eq!(
        v.verifications(),
        4,
        "a valid token is verified once, then cached"
    );
    app.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// Point 6: blast radius.

async fn exec(app: &TestApp, template: &str) {
    app.exec(template).await;
}

/// Every row of a user that SCIM could touch, for before/after comparisons.
async fn user_snapshot(app: &TestApp, phid: &str) -> Value {
    json!({
        "user": app.rows(&format!("SELECT * FROM {{user}}.user WHERE phid = '{phid}'")).await,
        "emails": app.rows(&format!("SELECT * FROM {{user}}.user_email WHERE userPHID = '{phid}' ORDER BY id")).await,
        "tokens": app.rows(&format!("SELECT * FROM {{user}}.user_nametoken WHERE userID = (SELECT id FROM {{user}}.user WHERE phid = '{phid}') ORDER BY token")).await,
        "edges": app.rows(&format!("SELECT * FROM {{user}}.edge WHERE src = '{phid}' ORDER BY type, dst")).await,
        "xactions": app.count(&format!("SELECT COUNT(*) FROM {{user}}.user_transaction WHERE objectPHID = '{phid}'")).await,
        "scim": app.count(&format!("SELECT COUNT(*) FROM {{scim}}.scim_user WHERE userPHID = '{phid}'")).await,
        "sessions": app.count(&format!("SELECT COUNT(*) FROM {{user}}.phabricator_session WHERE userPHID = '{phid}'")).await,
    })
}

async fn project_snapshot(app: &TestApp, phid: &str) -> Value {
    json!({
        "project": app.rows(&format!("SELECT * FROM {{project}}.project WHERE phid = '{phid}'")).await,
        "slugs": app.rows(&format!("SELECT slug FROM {{project}}.project_slug WHERE projectPHID = '{phid}' ORDER BY slug")).await,
        "edges": app.rows(&format!("SELECT * FROM {{project}}.edge WHERE src = '{phid}' ORDER BY type, dst")).await,
        "xactions": app.count(&format!("SELECT COUNT(*) FROM {{project}}.project_transaction WHERE objectPHID = '{phid}'")).await,
    })
}

/// An account created outside SCIM (as Phorge's own editor would leave it).
async fn insert_unmanaged_user(app: &TestApp, username: &str, admin: bool) -> String {
    let phid = phab_scim::db::phabricator::new_phid("USER");
    let now = phab_scim::db::now();
    exec(app, &format!(
        "INSERT INTO {{user}}.user (phid, userName, realName, dateCreated, dateModified, conduitCertificate, isSystemAgent, isDisabled, isAdmin, isEmailVerified, isApproved, accountSecret, isEnrolledInMultiFactor, isMailingList) \
         VALUES ('{phid}', '{username}', 'Hand Made', {now}, {now}, 'c', 0, 0, {a}, 1, 1, 's', 0, 0)", a = u8::from(admin))).await;
    exec(app, &format!(
        "INSERT INTO {{user}}.user_email (phid, userPHID, address, isVerified, isPrimary, verificationCode, dateCreated, dateModified) \
         VALUES ('{}', '{phid}', '{username}@hand.example', 1, 1, 'x', {now}, {now})", phab_scim::db::phabricator::new_phid("EADR"))).await;
    exec(app, &format!("INSERT INTO {{user}}.phabricator_session (userPHID, type, sessionKey, sessionStart, sessionExpires, isPartial, signedLegalpadDocuments, phid) VALUES ('{phid}', 'web', '{}', {now}, {}, 0, 0, '{}')", phab_scim::db::phabricator::random_chars(40), now + 3600, phab_scim::db::phabricator::new_phid("SSSN"))).await;
    phid
}

/// PATCH, PUT and DELETE on a user or project SCIM does not manage are 404 and change no row.
#[tokio::test]
async fn unmanaged_accounts_and_projects_are_out_of_reach() {
    let app = TestApp::spawn().await;
    let person = insert_unmanaged_user(&app, "handmade", false).await;
    let admin = insert_unmanaged_user(&app, "root", true).await;
    let (s, managed) = app
        .post("/Users", user_body("m@corp.com", "m@corp.com", "M"))
        .await;
    assert_eq!(s, 201);
    let managed = managed["id"].as_str().unwrap().to_owned();
    let (s, g) = app.post("/Groups", json!({"displayName": "Managed"})).await;
    assert_eq!(s, 201);
    let group = g["id"].as_str().unwrap().to_owned();
    // An unmanaged project, as Phorge would have it, with the unmanaged person as member.
    let (s, other) = app
        .post(
            "/Groups",
            json!({"displayName": "Will Be Unmanaged", "members": [{"value": managed}]}),
        )
        .await;
    assert_eq!(s, 201);
    let project = other["id"].as_str().unwrap().to_owned();
    exec(
        &app,
        &format!("DELETE FROM {{scim}}.scim_group WHERE projectPHID = '{project}'"),
    )
    .await;

    let targets = [person.clone(), admin.clone(), app.bot_phid.clone()];
    let mut before = Vec::new();
    for p in &targets {
        before.push(user_snapshot(&app, p).await);
    }
    let project_before = project_snapshot(&app, &project).await;
    for p in &targets {
        let path = format!("/Users/{p}");
        let (s, _) = app.get(&path).await;
        assert_eq!(s, 404);
        let (s, e) = app.patch(&path, json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": false, "displayName": "Taken"}}]})).await;
        assert_eq!(s, 404, "{e}");
        let (s, _) = app
            .put(&path, user_body("x@corp.com", "x@corp.com", "Taken"))
            .await;
        assert_eq!(s, 404);
        let (s, _) = app.delete(&path).await;
        assert_eq!(s, 404);
    }
    let path = format!("/Groups/{project}");
    let (s, _) = app.patch(&path, json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "displayName", "value": "Taken"}, {"op": "remove", "path": "members"}]})).await;
    assert_eq!(s, 404);
    let (s, _) = app
        .put(&path, json!({"displayName": "Taken", "members": []}))
        .await;
    assert_eq!(s, 404);
    let (s, _) = app.delete(&path).await;
    assert_eq!(s, 404);
    // Nor can a managed group pull in an unmanaged account as a member.
    let (s, _) = app.patch(&format!("/Groups/{group}"), json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": person}, {"value": admin}]}]})).await;
    assert_eq!(s, 400);
    for (p, b) in targets.iter().zip(&before) {
        assert_eq!(&user_snapshot(&app, p).await, b, "{p} changed");
    }
    assert_eq!(project_snapshot(&app, &project).await, project_before);
    app.cleanup().await;
}

/// No body, through any verb and any attribute (`roles`, `entitlements`, extension attributes,
/// raw `isAdmin`), grants or removes Phabricator administrator rights.
#[tokio::test]
async fn scim_never_grants_or_removes_admin_rights() {
    let app = TestApp::spawn().await;
    let admin_bodies = |name: &str| -> Vec<Value> {
        vec![
            json!({"schemas": [USER], "userName": name, "emails": [{"value": name, "primary": true}], "roles": [{"value": "admin", "primary": true}], "entitlements": [{"value": "admin"}], "isAdmin": true}),
            json!({"schemas": [USER], "userName": name, "emails": [{"value": name}], "roles": ["Administrator"], "userType": "admin", "title": "admin"}),
            json!({"schemas": [USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"], "userName": name, "emails": [{"value": name}], "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"isAdmin": true, "department": "admin"}}),
        ]
    };
    let mut ids = Vec::new();
    for (i, body) in admin_bodies("new@corp.com").into_iter().enumerate() {
        let mut body = body;
        let name = format!("new{i}@corp.com");
        body["userName"] = json!(name);
        body["emails"] = json!([{"value": name, "primary": true}]);
        let (s, r) = app.post("/Users", body).await;
        assert!(s == 201 || s == 400, "{s} {r}");
        if s == 201 {
            ids.push(r["id"].as_str().unwrap().to_owned());
        }
    }
    assert!(!ids.is_empty());
    let (s, r) = app
        .post(
            "/Users",
            user_body("boss@corp.com", "boss@corp.com", "Boss"),
        )
        .await;
    assert_eq!(s, 201);
    let boss = r["id"].as_str().unwrap().to_owned();
    exec(
        &app,
        &format!("UPDATE {{user}}.user SET isAdmin = 1 WHERE phid = '{boss}'"),
    )
    .await;
    for id in &ids {
        for body in admin_bodies("new0@corp.com") {
            let mut body = body;
            body["userName"] = app.get(&format!("/Users/{id}")).await.1["userName"].clone();
            body["emails"] = json!([{"value": body["userName"], "primary": true}]);
            let _ = app.put(&format!("/Users/{id}"), body).await;
        }
        for ops in [
            json!([{"op": "add", "path": "roles", "value": [{"value": "admin"}]}]),
            json!([{"op": "replace", "value": {"roles": [{"value": "admin"}], "entitlements": [{"value": "admin"}]}}]),
            json!([{"op": "replace", "path": "isAdmin", "value": true}]),
            json!([{"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:isAdmin", "value": true}]),
        ] {
            let _ = app
                .patch(
                    &format!("/Users/{id}"),
                    json!({"schemas": [PATCH], "Operations": ops}),
                )
                .await;
        }
    }
    for ops in [
        json!([{"op": "remove", "path": "roles"}]),
        json!([{"op": "replace", "value": {"roles": [], "isAdmin": false}}]),
    ] {
        let _ = app
            .patch(
                &format!("/Users/{boss}"),
                json!({"schemas": [PATCH], "Operations": ops}),
            )
            .await;
    }
    let _ = app.put(&format!("/Users/{boss}"), json!({"schemas": [USER], "userName": "boss@corp.com", "emails": [{"value": "boss@corp.com"}], "roles": [], "active": true})).await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {user}.user WHERE isAdmin = 1")
            .await,
        1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT isAdmin FROM {{user}}.user WHERE phid = '{boss}'"
        ))
        .await,
        1
    );
    app.cleanup().await;
}

/// An administrator SCIM manages cannot be disabled by PATCH, PUT or DELETE (403, nothing
/// written, the refusal in the sync log); nor can the token's own bot, even once a POST
/// names its address.
#[tokio::test]
async fn administrators_and_the_own_bot_are_never_disabled() {
    let app = TestApp::spawn().await;
    let (s, r) = app
        .post(
            "/Users",
            user_body("chief@corp.com", "chief@corp.com", "Chief"),
        )
        .await;
    assert_eq!(s, 201);
    let chief = r["id"].as_str().unwrap().to_owned();
    exec(
        &app,
        &format!("UPDATE {{user}}.user SET isAdmin = 1 WHERE phid = '{chief}'"),
    )
    .await;
    let before = user_snapshot(&app, &chief).await;
    let path = format!("/Users/{chief}");
    let (s, e) = app.patch(&path, json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": false}]})).await;
    assert_eq!(
        (s.as_u16(), e["status"].clone()),
        (403, json!("403")),
        "{e}"
    );
    assert!(
        e["detail"].as_str().unwrap().contains("administrator"),
        "{e}"
    );
    let mut put = user_body("chief@corp.com", "chief@corp.com", "Chief");
    put["active"] = json!(false);
    let (s, _) = app.put(&path, put).await;
    assert_eq!(s, 403);
    let (s, _) = app.delete(&path).await;
    assert_eq!(s, 403);
    assert_eq!(user_snapshot(&app, &chief).await, before);
    let (s, r) = app.get(&path).await;
    assert_eq!((s.as_u16(), r["active"].clone()), (200, json!(true)));
    wait_for_events(&app, "403", 3).await;

    // The bot's own address, posted as a user: it must not become a managed (and so
    // disable-able, renamable) SCIM user.
    let address: String = sqlx::query_scalar(sqlx::AssertSqlSafe(app.sql(&format!(
        "SELECT address FROM {{user}}.user_email WHERE userPHID = '{}'",
        app.bot_phid
    ))))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let bot_before = user_snapshot(&app, &app.bot_phid).await;
    let mut body = user_body(&address, &address, "Not A Bot");
    body["active"] = json!(false);
    let (s, r) = app.post("/Users", body).await;
    assert!(s == 403 || s == 409 || s == 400, "{s} {r}");
    let (s, _) = app.delete(&format!("/Users/{}", app.bot_phid)).await;
    assert_eq!(s, 404);
    assert_eq!(user_snapshot(&app, &app.bot_phid).await, bot_before);
    let (s, _) = app.get("/Users").await;
    assert_eq!(s, 200, "the token still works");
    app.cleanup().await;
}

/// Waits (bounded) until `n` error rows with `status` are in the sync log; they are written
/// off the response path.
async fn wait_for_events(app: &TestApp, status: &str, n: i64) -> Vec<Value> {
    let q = format!(
        "SELECT status, outcome, summary, method FROM {{scim}}.scim_event WHERE status = {status} ORDER BY id"
    );
    for _ in 0..50 {
        let rows = app.rows(&q).await;
        if rows.len() as i64 >= n {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "fewer than {n} sync-log rows with status {status}: {:?}",
        app.rows(&q).await
    );
}

fn deactivate() -> Value {
    json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": false}]})
}

async fn managed_users(app: &TestApp, n: usize, prefix: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let name = format!("{prefix}{i}@corp.com");
        let (s, r) = app
            .post("/Users", user_body(&name, &name, &format!("User {i}")))
            .await;
        assert_eq!(s, 201, "{r}");
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// The deprovision guard counts PATCH active=false, PUT active=false and DELETE alike, counts a
/// user deprovisioned twice (PATCH, then DELETE: Entra's and Okta's sequence) once, refuses the
/// next one with 429 and a message that says why, and writes the refusal to the sync log.
#[tokio::test]
async fn deprovision_guard_counts_every_verb_once_per_user() {
    // 12 users, 25 %: three deprovisions in the window are allowed, the fourth is refused.
    let app = TestApp::spawn_with(|c| {
        c.deprovision_guard_share = 0.25;
        c.deprovision_guard_min = 2;
        c.deprovision_guard_window_secs = 3600;
    })
    .await;
    let ids = managed_users(&app, 12, "g").await;
    app.establish_users().await;
    let (s, e) = app.patch(&format!("/Users/{}", ids[0]), deactivate()).await;
    assert_eq!(s, 200, "{e}");
    let (s, e) = app.delete(&format!("/Users/{}", ids[0])).await;
    assert_eq!(s, 204, "the same user again: {e}");
    let mut put = user_body("g1@corp.com", "g1@corp.com", "User 1");
    put["active"] = json!(false);
    let (s, e) = app.put(&format!("/Users/{}", ids[1]), put).await;
    assert_eq!(s, 200, "{e}");
    let (s, e) = app.delete(&format!("/Users/{}", ids[2])).await;
    assert_eq!(s, 204, "{e}");
    // Three users deprovisioned (four requests): every verb is now refused.
    let (s, h, e) = app
        .send(
            Method::PATCH,
            &format!("/Users/{}", ids[3]),
            Some(deactivate()),
        )
        .await;
    assert_eq!(s, 429, "{e}");
    assert!(h.contains_key("retry-after"));
    let detail = e["detail"].as_str().unwrap();
    assert!(
        detail.contains("refusing to deprovision") && detail.contains("deprovision_guard_share"),
        "{detail}"
    );
    let mut put = user_body("g4@corp.com", "g4@corp.com", "User 4");
    put["active"] = json!(false);
    let (s, _) = app.put(&format!("/Users/{}", ids[4]), put).await;
    assert_eq!(s, 429);
    let (s, _) = app.delete(&format!("/Users/{}", ids[5])).await;
    assert_eq!(s, 429);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {user}.user WHERE isDisabled = 1")
            .await,
        3
    );
    let rows = wait_for_events(&app, "429", 3).await;
    assert!(
        rows.iter().all(|r| r["outcome"] == "error"
            && r["summary"]
                .as_str()
                .unwrap()
                .starts_with("refusing to deprovision")),
        "{rows:?}"
    );
    // Other writes still go through.
    let (s, _) = app.patch(&format!("/Users/{}", ids[3]), json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "displayName", "value": "Renamed"}]})).await;
    assert_eq!(s, 200);
    app.cleanup().await;
}

/// An IdP that unassigns everyone sends its deprovisions in parallel: the guard holds under
/// concurrency (the count and the write are serialized), so exactly the allowed number pass.
#[tokio::test]
async fn deprovision_guard_holds_under_parallel_requests() {
    let app = TestApp::spawn_with(|c| {
        c.deprovision_guard_share = 0.25;
        c.deprovision_guard_min = 2;
        c.deprovision_guard_window_secs = 3600;
    })
    .await;
    let ids = managed_users(&app, 12, "p").await;
    app.establish_users().await;
    let futures = ids.iter().map(|id| {
        let app = &app;
        async move {
            app.patch(&format!("/Users/{id}"), deactivate())
                .await
                .0
                .as_u16()
        }
    });
    let mut statuses = futures_util::future::join_all(futures).await;
    statuses.sort();
    assert_eq!(statuses, [vec![200; 3], vec![429; 9]].concat());
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {user}.user WHERE isDisabled = 1")
            .await,
        3
    );
    app.cleanup().await;
}
