//! The deprovision guard knows new from established (issue 14, item 5): users the service
//! created within the window come and go without counting (an IdP's test run), established
//! ones (created earlier, or adopted) still count; its state is on the status page and every
//! refusal is a sync-log error naming the settings that would allow it.

use phab_scim::db::status::{self, GuardSettings};
use serde_json::{Value, json};

use crate::helpers::{TestApp, user_body};

const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn deactivate() -> Value {
    json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": false}]})
}

async fn create(app: &TestApp, name: &str) -> String {
    let (s, r) = app.post("/Users", user_body(name, name, name)).await;
    assert_eq!(s, 201, "{r}");
    r["id"].as_str().unwrap().to_owned()
}

/// An account made in Phabricator by hand (verified primary address), for SCIM to adopt.
async fn hand_made(app: &TestApp, username: &str, address: &str) {
    let phid = phab_scim::db::phabricator::new_phid("USER");
    let now = phab_scim::db::now();
    for sql in [
        format!(
            "INSERT INTO {{user}}.user (phid, userName, realName, dateCreated, dateModified, conduitCertificate, isSystemAgent, isDisabled, isAdmin, isEmailVerified, isApproved, accountSecret, isEnrolledInMultiFactor, isMailingList) \
             VALUES ('{phid}', '{username}', 'Hand Made', {now}, {now}, 'c', 0, 0, 0, 1, 1, 's', 0, 0)"
        ),
        format!(
            "INSERT INTO {{user}}.user_email (phid, userPHID, address, isVerified, isPrimary, verificationCode, dateCreated, dateModified) \
             VALUES ('{}', '{phid}', '{address}', 1, 1, 'x', {now}, {now})",
            phab_scim::db::phabricator::new_phid("EADR")
        ),
    ] {
        app.exec(&sql).await;
    }
}

/// 100 users created and deleted within the window pass (with `deprovision_guard_min` 2 the
/// third delete was refused before), while deactivating 30% of established users, adopted
/// ones among them, is still refused at 25%; the status shows the guard refusing, and the
/// refusal's sync-log row names the settings.
#[tokio::test]
async fn created_then_deleted_users_do_not_count_but_established_ones_do() {
    let app = TestApp::spawn_with(|c| {
        c.deprovision_guard_share = 0.25;
        c.deprovision_guard_min = 2;
        c.deprovision_guard_window_secs = 3600;
    })
    .await;
    let guard = GuardSettings::of(&app.cfg);
    // 20 established users: 16 the service created a day ago, 4 adopted just now.
    let mut established = Vec::new();
    for i in 0..4 {
        let address = format!("adopted{i}@corp.com");
        hand_made(&app, &format!("adopted{i}"), &address).await;
        established.push(create(&app, &address).await);
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {scim}.scim_user WHERE dateAccountCreated IS NULL")
            .await,
        4,
        "adoptions are not creations"
    );
    for i in 0..16 {
        established.push(create(&app, &format!("old{i}@corp.com")).await);
    }
    app.establish_users().await;

    // An IdP's test run: create, then deactivate or delete, 100 times within the window.
    for i in 0..100 {
        let id = create(&app, &format!("probe{i}@corp.com")).await;
        if i % 2 == 0 {
            let (s, e) = app.patch(&format!("/Users/{id}"), deactivate()).await;
            assert_eq!(s, 200, "probe {i}: {e}");
        }
        let (s, e) = app.delete(&format!("/Users/{id}")).await;
        assert_eq!(s, 204, "probe {i}: {e}");
    }
    let state = status::guard_state(&app.db, guard).await.unwrap();
    assert_eq!(
        (state.deprovisions, state.refusing()),
        (0, false),
        "{state:?}"
    );

    // 30% of the established: 25% of 20 is 5, the sixth is refused, adopted ones count.
    for (n, id) in established.iter().take(5).enumerate() {
        let (s, e) = app.patch(&format!("/Users/{id}"), deactivate()).await;
        assert_eq!(s, 200, "established {n}: {e}");
    }
    let (s, e) = app
        .patch(&format!("/Users/{}", established[5]), deactivate())
        .await;
    assert_eq!(s, 429, "{e}");
    let (s, _) = app.delete(&format!("/Users/{}", established[6])).await;
    assert_eq!(s, 429);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM {user}.user WHERE isDisabled = 1 AND userName NOT LIKE 'probe%'"
        )
        .await,
        5
    );

    // Each refusal is a sync-log error that names the settings (written off the request path).
    let mut rows = Vec::new();
    for _ in 0..50 {
        rows = app
            .rows("SELECT outcome, summary FROM {scim}.scim_event WHERE status = 429 ORDER BY id")
            .await;
        if rows.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in &rows {
        let summary = r["summary"].as_str().unwrap();
        assert_eq!(r["outcome"], "error");
        for setting in [
            "deprovision_guard_share",
            "deprovision_guard_min",
            "deprovision_guard_window_secs",
        ] {
            assert!(summary.contains(setting), "{setting}: {summary}");
        }
    }

    // The status: five of five in the window, refusing since the first refusal.
    let s = status::load(&app.db, guard).await.unwrap();
    let g = &s.deprovision_guard;
    assert_eq!((g.deprovisions, g.limit, g.refusals), (5, 5, 2), "{g:?}");
    assert!(g.refusing() && g.refusing_since.is_some(), "{g:?}");
    let text = s.to_string();
    assert!(
        text.contains(
            "deprovision guard: 5 of 5 deprovisions of established users in the last 3600s"
        ) && text.contains("REFUSING since"),
        "{text}"
    );
    app.cleanup().await;
}
