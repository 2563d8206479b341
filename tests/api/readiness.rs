//! `/readyz` (issue 11, finding 8): it needs no token, so it must cost little and say little.

use std::time::Instant;

use futures_util::future::join_all;

use crate::helpers::TestApp;

/// Sends `n` concurrent unauthenticated GET /readyz; returns their statuses and bodies.
async fn readyz_burst(app: &TestApp, n: usize) -> Vec<(u16, String)> {
    let url = format!("{}/readyz", app.base.trim_end_matches("/scim/v2"));
    join_all((0..n).map(|_| {
        let (client, url) = (app.client.clone(), url.clone());
        async move {
            let r = client.get(url).send().await.expect("readyz");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    }))
    .await
}

#[tokio::test]
async fn readyz_checks_the_schema_at_most_once_a_second_and_names_nothing() {
    let app = TestApp::spawn().await;
    app.exec("DROP TABLE {worker}.lisk_counter").await;

    let before = app.db.readiness.checks();
    let started = Instant::now();
    let answers = readyz_burst(&app, 50).await;
    let mut rounds = readyz_burst(&app, 50).await;
    rounds.extend(answers);
    let elapsed = started.elapsed().as_secs();
    let checks = app.db.readiness.checks() - before;
    // One check per started second of the burst: 100 callers share them.
    assert!(
        checks <= elapsed + 1,
        "{checks} schema checks for 100 calls in {elapsed} s"
    );
    for (status, body) in &rounds {
        assert_eq!(*status, 503, "{body}");
        assert!(
            !body.contains(app.ns.as_str()) && !body.contains("lisk_counter"),
            "an unauthenticated /readyz names the namespace or a table: {body}"
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn readyz_is_ready_with_the_whole_schema() {
    let app = TestApp::spawn().await;
    for (status, body) in readyz_burst(&app, 5).await {
        assert_eq!(status, 200, "{body}");
    }
    app.cleanup().await;
}
