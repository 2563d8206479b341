//! Bearer tokens: 401s, revocation within seconds, rate limiting, PHP interop.

use std::time::Duration;

use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn every_scim_route_needs_a_token() {
    // Missing tokens count as failures: the limit would answer 429 before this test is through.
    let app = TestApp::spawn_with(|c| c.auth_failures_per_minute = 1000).await;
    let paths = [
        "/Users",
        "/Users/x",
        "/Users/.search",
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/Schemas",
        "/Me",
        "/Bulk",
        "/nope",
        "/Schemas/urn:x",
    ];
    for p in paths {
        for m in [
            reqwest::Method::GET,
            reqwest::Method::POST,
            reqwest::Method::DELETE,
        ] {
            let r = app
                .client
                .request(m.clone(), format!("{}{p}", app.base))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{m} {p}");
            assert_eq!(
                r.headers()["www-authenticate"].to_str().unwrap(),
                "Bearer realm=\"phab-scim\""
            );
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["status"], "401");
        }
    }
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base.trim_end_matches("/scim/v2")))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 401);
    for open in ["/healthz", "/readyz"] {
        let r = app
            .client
            .get(format!("{}{open}", app.base.trim_end_matches("/scim/v2")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{open}");
    }
    let bad = app
        .client
        .get(format!("{}/Users", app.base))
        .bearer_auth("phscim-1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let (s, _) = app.get("/Users").await;
    assert_eq!(s, 200);
    app.cleanup().await;
}

#[tokio::test]
async fn revoked_and_expired_tokens_stop_within_seconds() {
    let app = TestApp::spawn().await;
    let (id, token) = app.issue_token().await;
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
    assert_eq!(get(token.clone()).await, 200);
    let mut conn = app.pool.acquire().await.unwrap();
    assert!(
        phab_scim::db::sidecar::revoke_token(
            &mut phab_scim::db::Conns::of(&app.db, &mut conn),
            app.t(),
            id
        )
        .await
        .unwrap()
    );
    drop(conn); // cleanup() closes the pool, which waits for every connection
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(get(token).await, 401);
    let (id2, token2) = app.issue_token().await;
    assert_eq!(get(token2.clone()).await, 200);
    app.exec(&format!(
        "UPDATE {{scim}}.scim_token SET dateExpires = 1 WHERE id = {id2}"
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(get(token2).await, 401);
    // A disabled bot's tokens stop too.
    let (_, token3) = app.issue_token().await;
    app.exec(&format!(
        "UPDATE {{user}}.user SET isDisabled = 1 WHERE phid = '{}'",
        app.bot_phid
    ))
    .await;
    assert_eq!(get(token3).await, 401);
    app.cleanup().await;
}

#[tokio::test]
async fn failed_attempts_are_rate_limited() {
    let app = TestApp::spawn_with(|c| c.auth_failures_per_minute = 3).await;
    let mut last = None;
    for i in 0..5 {
        let r = app
            .client
            .get(format!("{}/Users", app.base))
            .bearer_auth(format!("phscim-9-{}", "a".repeat(40)))
            .send()
            .await
            .unwrap();
        last = Some((
            i,
            r.status().as_u16(),
            r.headers().get("retry-after").is_some(),
        ));
    }
    assert_eq!(last, Some((4, 429, true)));
    app.cleanup().await;
}

/// Sends `GET /Users` with `token`, as if forwarded for `forwarded_for`; returns the status.
async fn get_users_as(app: &TestApp, token: &str, forwarded_for: Option<&str>) -> u16 {
    let mut req = app
        .client
        .get(format!("{}/Users?count=1", app.base))
        .bearer_auth(token);
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    req.send().await.unwrap().status().as_u16()
}

const BAD_TOKEN: &str = "phscim-9-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

#[tokio::test]
async fn clients_behind_a_trusted_proxy_are_limited_separately() {
    let app = TestApp::spawn_with(|c| {
        c.auth_failures_per_minute = 3;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let a = "203.0.113.10";
    for i in 0..3 {
        assert_eq!(
            get_users_as(&app, BAD_TOKEN, Some(a)).await,
            401,
            "attempt {i}"
        );
    }
    assert_eq!(get_users_as(&app, BAD_TOKEN, Some(a)).await, 429);
    // A spoofed leftmost entry does not move client A to a fresh bucket: the proxy appended A.
    let spoofed = format!("198.51.100.77, {a}");
    assert_eq!(get_users_as(&app, BAD_TOKEN, Some(&spoofed)).await, 429);
    // Client B, through the same proxy, has its own bucket; so has the IdP.
    let b = "2001:db8::b";
    assert_eq!(get_users_as(&app, BAD_TOKEN, Some(b)).await, 401);
    assert_eq!(get_users_as(&app, &app.token, Some(b)).await, 200);
    assert_eq!(get_users_as(&app, &app.token, Some("192.0.2.1")).await, 200);
    // The client address reaches Phabricator's user log.
    let (s, body) = app
        .post(
            "/Users",
            crate::helpers::user_body("xff@x.com", "xff@x.com", "X F"),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let phid = body["id"].as_str().unwrap().to_owned();
    let change_email = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "emails",
                        "value": [{"value": "xff2@x.com", "primary": true}]}],
    });
    let (s, _, body) = app
        .send_with(
            reqwest::Method::PATCH,
            &format!("/Users/{phid}"),
            Some(change_email),
            &[("x-forwarded-for", "192.0.2.44")],
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let addrs = app
        .rows(&format!(
            "SELECT DISTINCT remoteAddr FROM {{user}}.user_log WHERE userPHID = '{phid}'"
        ))
        .await;
    assert_eq!(addrs, vec![json!({"remoteAddr": "192.0.2.44"})]);
    app.cleanup().await;
}

#[tokio::test]
async fn an_untrusted_peer_cannot_pick_its_bucket_with_x_forwarded_for() {
    // No proxy trusted, then only a network the test client is not in.
    for trusted in [vec![], vec!["10.0.0.0/8".parse().unwrap()]] {
        let app = TestApp::spawn_with(|c| {
            c.auth_failures_per_minute = 3;
            c.trusted_proxies = trusted;
        })
        .await;
        for i in 0..3 {
            let xff = format!("198.51.100.{i}");
            assert_eq!(get_users_as(&app, BAD_TOKEN, Some(&xff)).await, 401);
        }
        for xff in ["198.51.100.200", "10.0.0.1", "2001:db8::1"] {
            assert_eq!(get_users_as(&app, BAD_TOKEN, Some(xff)).await, 429, "{xff}");
        }
        assert_eq!(get_users_as(&app, BAD_TOKEN, None).await, 429);
        app.cleanup().await;
    }
}

#[tokio::test]
async fn secrets_never_reach_the_sync_log() {
    let app = TestApp::spawn().await;
    let (s, _) = app.post("/Users", json!({"userName": "p@x.com", "password": "hunter2hunter2", "emails": [{"value": "p@x.com"}]})).await;
    assert_eq!(s, 201);
    let _ = app
        .client
        .get(format!("{}/Users", app.base))
        .bearer_auth(format!("{}x", app.token))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dump = app.rows("SELECT * FROM {scim}.scim_event").await;
    let text = serde_json::to_string(&dump).unwrap();
    assert!(!text.contains("hunter2"));
    assert!(!text.contains(&app.token[10..]));
    let attrs = app.rows("SELECT attributes FROM {scim}.scim_user").await;
    assert!(!serde_json::to_string(&attrs).unwrap().contains("hunter2"));
    app.cleanup().await;
}

/// A PHP `password_hash(..., PASSWORD_ARGON2ID)` verifies in Rust and a Rust hash verifies
/// with PHP's `password_verify` (when PHP is installed; CI installs php-cli), and both sides
/// write the same parameters.
#[test]
fn token_hashes_interoperate_with_php() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/php/token_interop.php");
    let php = std::process::Command::new("php")
        .arg(script)
        .arg("hash")
        .arg("s3cretFromPhp")
        .output();
    let Ok(out) = php else {
        eprintln!("php not installed: interop not checked here");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let php_hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(php_hash.starts_with("$argon2id$"));
    assert!(phab_scim::token::verify_secret("s3cretFromPhp", &php_hash));
    assert!(!phab_scim::token::verify_secret("wrong", &php_hash));
    let rust_hash = phab_scim::token::hash_secret("s3cretFromRust").unwrap();
    // `$argon2id$v=19$m=...,t=...,p=...`: all but the salt and the output.
    let params = |h: &str| h.rsplitn(3, '$').nth(2).map(str::to_owned);
    assert_eq!(params(&php_hash), params(&rust_hash));
    assert_eq!(
        params(&rust_hash).as_deref(),
        Some("$argon2id$v=19$m=19456,t=2,p=1")
    );
    let ok = std::process::Command::new("php")
        .arg(script)
        .args(["verify", "s3cretFromRust", &rust_hash])
        .status()
        .unwrap();
    assert!(ok.success());
    let bad = std::process::Command::new("php")
        .arg(script)
        .args(["verify", "nope", &rust_hash])
        .status()
        .unwrap();
    assert_eq!(bad.code(), Some(1));
}
