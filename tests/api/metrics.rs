//! The gauges `/metrics` exports of the database's state (issue 15): replicas, drift, tokens
//! and the deprovision guard, which packaging/prometheus/phab-scim.rules.yml alerts on.

use sqlx::AssertSqlSafe;

use phab_scim::db::{now, sidecar};

use crate::helpers::TestApp;
use crate::unauthenticated::metrics_handle;

/// The samples of `/metrics` whose name is `name` exactly: (label set, value).
fn samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => {
                    let end = r.find('}')?;
                    (r[..end].to_owned(), r[end + 1..].trim())
                }
                None if rest.starts_with(' ') => (String::new(), rest.trim()),
                None => return None,
            };
            Some((labels, value.parse().ok()?))
        })
        .collect()
}

/// The one unlabelled sample of `name`.
fn value(text: &str, name: &str) -> f64 {
    match samples(text, name).as_slice() {
        [(l, v)] if l.is_empty() => *v,
        other => panic!("{name}: {other:?}"),
    }
}

/// GET /metrics with the test's token.
async fn scrape(app: &TestApp) -> String {
    let r = app
        .client
        .get(format!("{}/metrics", app.base.trim_end_matches("/scim/v2")))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

#[tokio::test]
async fn metrics_show_replicas_drift_tokens_and_the_guard() {
    let Some(handle) = metrics_handle() else {
        panic!("the Prometheus recorder could not be installed");
    };
    // A guard with no floor refuses as soon as it refused once: nothing is managed yet.
    let app = TestApp::spawn_with_metrics(
        |c| {
            c.deprovision_guard_share = 0.5;
            c.deprovision_guard_min = 0;
        },
        Some(handle),
    )
    .await;
    let t = app.t().clone();
    let ts = now();
    let expires = ts + 10 * 86_400;
    let (expiring, _) = phab_scim::token::issue(&app.db, &app.bot_phid, "expiring", Some(expires))
        .await
        .unwrap();
    let (revoked, _) = phab_scim::token::issue(&app.db, &app.bot_phid, "revoked", Some(expires))
        .await
        .unwrap();
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE {} SET dateRevoked = ? WHERE id = ?",
        t.scim_token
    )))
    .bind(ts)
    .bind(revoked)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (driftType, objectPHID, summary, details, dateCreated, dateModified) \
         VALUES ('project-renamed', 'PHID-PROJ-a', 's', '{{}}', ?, ?), \
                ('project-renamed', 'PHID-PROJ-b', 's', '{{}}', ?, ?), \
                ('user-reenabled', 'PHID-USER-a', 's', '{{}}', ?, ?)",
        t.scim_drift
    )))
    .bind(ts)
    .bind(ts)
    .bind(ts)
    .bind(ts)
    .bind(ts)
    .bind(ts)
    .execute(&app.pool)
    .await
    .unwrap();
    // A replica that died without a clean shutdown five minutes ago.
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (instanceKey, hostname, version, dateStarted, dateCreated, dateModified) \
         VALUES ('gone:1:x', 'gone', '0', ?, ?, ?)",
        t.scim_instance
    )))
    .bind(ts - 900)
    .bind(ts - 900)
    .bind(ts - 300)
    .execute(&app.pool)
    .await
    .unwrap();
    let mut conn = app.pool.acquire().await.unwrap();
    sidecar::insert_event(
        &mut phab_scim::db::Conns::of(&app.db, &mut conn),
        &t,
        &sidecar::Event {
            request_id: "metrics-test".into(),
            token_id: None,
            method: "DELETE".into(),
            path: "/scim/v2/Users/x".into(),
            resource_type: Some(sidecar::ResourceType::User),
            object_phid: None,
            status: 429,
            outcome: sidecar::Outcome::Error,
            summary: format!("{} x", phab_scim::db::status::GUARD_REFUSAL),
            details: serde_json::json!({}),
        },
    )
    .await
    .unwrap();
    // The live replica is the app itself: its first heartbeat is written at start.
    let guard = phab_scim::db::status::GuardSettings::of(&app.cfg);
    let mut text = String::new();
    for _ in 0..100 {
        app.gauges.refresh(&app.db, guard).await.unwrap();
        text = scrape(&app).await;
        if samples(&text, "phab_scim_replicas_live") == [(String::new(), 1.0)]
            && !samples(&text, "phab_scim_heartbeat_timestamp_seconds").is_empty()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(value(&text, "phab_scim_replicas_live"), 1.0, "{text}");
    assert_eq!(value(&text, "phab_scim_replicas_not_seen"), 1.0);
    // Written at start, possibly in the second before `ts`.
    assert!(value(&text, "phab_scim_heartbeat_timestamp_seconds") >= f64::from(ts - 60));
    let mut drift = samples(&text, "phab_scim_drift_findings");
    drift.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        drift,
        [
            ("kind=\"other\"".to_owned(), 0.0),
            ("kind=\"phantom-account\"".to_owned(), 0.0),
            ("kind=\"project-members\"".to_owned(), 0.0),
            ("kind=\"project-renamed\"".to_owned(), 2.0),
            ("kind=\"user-reenabled\"".to_owned(), 1.0),
        ]
    );
    // The test's own token (no expiry) and the expiring one; the revoked one has no series.
    assert_eq!(value(&text, "phab_scim_tokens_active"), 2.0);
    assert_eq!(
        samples(&text, "phab_scim_token_expiry_timestamp_seconds"),
        [(format!("token_id=\"{expiring}\""), f64::from(expires))]
    );
    assert_eq!(value(&text, "phab_scim_deprovision_guard_refusing"), 1.0);
    assert_eq!(value(&text, "phab_scim_deprovision_guard_refusals"), 1.0);
    assert_eq!(
        value(&text, "phab_scim_deprovision_guard_deprovisions"),
        0.0
    );
    assert_eq!(value(&text, "phab_scim_deprovision_guard_limit"), 0.0);

    // Revoking the expiring token removes its series at the next refresh.
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE {} SET dateRevoked = ? WHERE id = ?",
        t.scim_token
    )))
    .bind(ts)
    .bind(expiring)
    .execute(&app.pool)
    .await
    .unwrap();
    app.gauges.refresh(&app.db, guard).await.unwrap();
    let text = scrape(&app).await;
    assert_eq!(
        samples(&text, "phab_scim_token_expiry_timestamp_seconds"),
        []
    );
    assert_eq!(value(&text, "phab_scim_tokens_active"), 1.0);
}
