//! What `phab-scim status` (and the extension's Status page, over the same tables) reports.

use std::process::Command;

use phab_scim::db::{now, sidecar, status};
use serde_json::json;

use crate::helpers::{TestApp, database_url, user_body};

/// Users are counted as Phabricator shows them: `active: false` is disabled, not active; a
/// DELETEd user is deleted.
#[tokio::test]
async fn users_are_counted_as_phabricator_shows_them() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for name in ["ann", "bob", "cy", "dee"] {
        let (code, body) = app
            .post(
                "/Users",
                user_body(
                    &format!("{name}@example.com"),
                    &format!("{name}@example.com"),
                    name,
                ),
            )
            .await;
        assert_eq!(code, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let off = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}]});
    assert_eq!(app.patch(&format!("/Users/{}", ids[0]), off).await.0, 200);
    assert_eq!(app.delete(&format!("/Users/{}", ids[1])).await.0, 204);

    let out = Command::new(env!("CARGO_BIN_EXE_phab-scim"))
        .args(["status", "--json"])
        .env("PHAB_SCIM_DATABASE_URL", database_url())
        .env("PHAB_SCIM_NAMESPACE", app.ns.as_str())
        .output()
        .expect("run phab-scim");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The four, and the bot is not a managed user.
    assert_eq!(
        (
            &s["active_users"],
            &s["disabled_users"],
            &s["deleted_users"]
        ),
        (&json!(2), &json!(1), &json!(1)),
        "{s}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_phab-scim"))
        .arg("status")
        .env("PHAB_SCIM_DATABASE_URL", database_url())
        .env("PHAB_SCIM_NAMESPACE", app.ns.as_str())
        .output()
        .expect("run phab-scim");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("managed users:    2 active, 1 disabled, 1 deleted"),
        "{text}"
    );
    app.cleanup().await;
}

/// A replica that stopped cleanly is shown stopped at once, not running for another minute;
/// rows of replicas gone for a day are pruned, so restarts do not pile them up.
#[tokio::test]
async fn stopped_replicas_show_stopped_and_old_ones_are_pruned() {
    let mut app = TestApp::spawn().await;
    // The service's own background work prunes too: stopped, it cannot race the rows below.
    app.stop_server().await;
    app.exec("DELETE FROM {scim}.scim_instance").await;
    let guard = status::GuardSettings::of(&app.cfg);
    let mut conn = app.pool.acquire().await.unwrap();
    let t = app.t();
    let ts = now();
    for key in ["k-running", "k-stopped", "k-gone"] {
        let instance = sidecar::Instance {
            key,
            hostname: "host",
            version: "1",
            started: ts,
        };
        sidecar::heartbeat(
            &mut phab_scim::db::Conns::of(&app.db, &mut conn),
            t,
            &instance,
            &guard,
        )
        .await
        .unwrap();
    }
    sidecar::mark_stopped(
        &mut phab_scim::db::Conns::of(&app.db, &mut conn),
        t,
        "k-stopped",
    )
    .await
    .unwrap();
    let two_days_ago = ts - 2 * 86_400;
    sqlx::query(sqlx::AssertSqlSafe(app.sql(
        "UPDATE {scim}.scim_instance SET dateModified = ? WHERE instanceKey = 'k-gone'",
    )))
    .bind(two_days_ago)
    .execute(&mut *conn)
    .await
    .unwrap();

    let s = status::load(&app.db, guard).await.unwrap();
    let state = |key: &str| {
        s.replicas
            .iter()
            .find(|r| r.key == key)
            .map(|r| r.state(now()))
    };
    assert_eq!(state("k-running"), Some("running"));
    assert_eq!(state("k-stopped"), Some("stopped"));
    assert_eq!(state("k-gone"), Some("not seen"));

    let pruned = sidecar::prune_instances(
        &mut phab_scim::db::Conns::of(&app.db, &mut conn),
        t,
        ts - status::INSTANCE_RETENTION_SECS,
    )
    .await
    .unwrap();
    assert_eq!(pruned, 1);
    // A heartbeat under a stopped key means the replica runs again.
    let instance = sidecar::Instance {
        key: "k-stopped",
        hostname: "host",
        version: "1",
        started: ts,
    };
    sidecar::heartbeat(
        &mut phab_scim::db::Conns::of(&app.db, &mut conn),
        t,
        &instance,
        &guard,
    )
    .await
    .unwrap();
    let s = status::load(&app.db, guard).await.unwrap();
    assert!(s.replicas.iter().all(|r| r.key != "k-gone"));
    assert!(
        s.replicas.iter().all(|r| r.state(now()) == "running"),
        "{:?}",
        s.replicas
    );
    drop(conn);
    app.cleanup().await;
}

/// A clean shutdown marks the replica's heartbeat row stopped at once.
#[tokio::test]
async fn a_clean_shutdown_marks_the_replica_stopped() {
    let mut app = TestApp::spawn().await;
    // The first heartbeat is written as the server starts.
    let mut rows = 0;
    for _ in 0..50 {
        rows = app.count("SELECT COUNT(*) FROM {scim}.scim_instance").await;
        if rows > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(rows, 1, "no heartbeat row");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {scim}.scim_instance WHERE dateStopped IS NULL")
            .await,
        1
    );
    app.stop_server().await;
    let s = status::load(&app.db, status::GuardSettings::of(&app.cfg))
        .await
        .unwrap();
    assert_eq!(s.replicas.len(), 1);
    assert_eq!(s.replicas[0].state(now()), "stopped");
    assert_eq!(s.live_replicas, 0);
    app.cleanup().await;
}
