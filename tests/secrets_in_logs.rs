//! Secrets in logs (issue 6, point 5): a binary of its own, because it installs the global
//! `tracing` subscriber at TRACE level and greps everything every thread wrote.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "api/helpers.rs"]
mod helpers;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use phab_scim::config::Secret;
use phab_scim::token::TokenVerifier;

use helpers::{TestApp, user_body};

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Tokens, token hashes and database passwords never appear in logs (at TRACE level, every
/// crate), error bodies, the sync log or `Debug` output.
#[tokio::test]
async fn secrets_stay_out_of_logs_errors_and_debug() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Global, so that every thread (runtime workers, spawn_blocking) is captured; this binary
    // holds this one test, so nothing else logs into the buffer.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let password = "Pw-9f3kQz-notInLogs";
    let app = TestApp::spawn_with(|c| c.auth_failures_per_minute = 1000).await;
    let (id, token) = app.issue_token().await;
    let secret = token.rsplit('-').next().unwrap().to_owned();
    let hash: String = sqlx::query_scalar(sqlx::AssertSqlSafe(app.sql(&format!(
        "SELECT tokenHash FROM {{scim}}.scim_token WHERE id = {id}"
    ))))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let hash_tail = hash.rsplit('$').next().unwrap().to_owned();
    let mut bodies = String::new();
    // Successful use, a wrong secret for a real id, the real secret with a typo, and the
    // secret under another id.
    for t in [
        token.clone(),
        format!("phscim-{id}-{}", "b".repeat(40)),
        format!("{token}x"),
        format!("phscim-{}-{secret}", id + 1000),
    ] {
        let r = app
            .client
            .post(format!("{}/Users", app.base))
            .bearer_auth(&t)
            .header("content-type", "application/scim+json")
            .body(
                user_body(
                    &format!("u{}@x.com", t.len()),
                    &format!("u{}@x.com", t.len()),
                    "U",
                )
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        bodies.push_str(&format!("{:?}", r.headers()));
        bodies.push_str(&r.text().await.unwrap());
    }
    // A database that refuses the connection, with a password in its URL: the service's 503,
    // the error's Display and Debug, and the configuration's Debug.
    let dead_url = Secret::new(format!("mysql://root:{password}@127.0.0.1:9"));
    // Connecting names the server and the cause at once (`db::reach`): its error too.
    let refused = phab_scim::db::Db::connect(&dead_url, app.ns.clone(), 1)
        .await
        .unwrap_err();
    bodies.push_str(&format!("{refused} {refused:?}"));
    // A pool made before the server went away: the requests' own errors.
    let dead = phab_scim::db::Db::from_pool(
        sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(1))
            .connect_lazy_with(phab_scim::db::connect_options(&dead_url).unwrap()),
        app.ns.clone(),
    );
    let verifier = TokenVerifier::new(dead.clone(), Duration::from_secs(1), 1000);
    let err = verifier
        .verify(&token, "127.0.0.1".parse().unwrap())
        .await
        .unwrap_err();
    let api = phab_scim::http::error::ApiError::from(err);
    assert_eq!(api.status(), 503);
    bodies.push_str(&format!("{api} {api:?} {}", api.detail()));
    let resp = axum::response::IntoResponse::into_response(api);
    bodies.push_str(&format!("{:?}", resp.headers()));
    let cfg = phab_scim::config::Config {
        database_url: dead_url.clone(),
        ..app.cfg.clone()
    };
    bodies.push_str(&format!("{cfg:?} {dead:?} {dead_url:?} {verifier:?}"));
    // Wrong password for the real server: the startup error chain.
    let mut real = reqwest::Url::parse(&helpers::database_url()).unwrap();
    real.set_password(Some(password)).unwrap();
    let bad_cfg = phab_scim::config::Config {
        database_url: Secret::new(real.to_string()),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..app.cfg.clone()
    };
    match phab_scim::app::Application::build(bad_cfg, None).await {
        Ok(_) => {} // the test server may accept any password for root; nothing to check then
        Err(e) => {
            tracing::error!(error = ?e, "startup failed");
            bodies.push_str(&format!("{e} {e:#} {e:?}"));
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = serde_json::to_string(&app.rows("SELECT * FROM {scim}.scim_event").await).unwrap();
    let logs = capture.text();
    assert!(
        logs.contains("authentication failed"),
        "the capture works: {}",
        &logs[..logs.len().min(2000)]
    );
    for (what, needle) in [
        ("token secret", secret.as_str()),
        ("hash", hash_tail.as_str()),
        ("password", password),
    ] {
        assert!(!logs.contains(needle), "{what} in the logs");
        assert!(
            !bodies.contains(needle),
            "{what} in an error, header or Debug output"
        );
        assert!(!events.contains(needle), "{what} in the sync log");
    }
    dead.pool.close().await;
    app.cleanup().await;
}
