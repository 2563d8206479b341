//! Drift findings: what changed in Phabricator behind the IdP's back.

use serde_json::json;

use crate::helpers::{TestApp, user_body};

#[tokio::test]
async fn drift_finds_renames_hand_edits_reenables_and_phantoms() {
    let app = TestApp::spawn_with(|c| c.drift_interval_secs = 0).await;
    let (_, kept) = app
        .post("/Users", user_body("kept@x.com", "kept@x.com", "Kept"))
        .await;
    let (_, gone) = app
        .post("/Users", user_body("gone@x.com", "gone@x.com", "Gone"))
        .await;
    let (_, off) = app
        .post("/Users", user_body("off@x.com", "off@x.com", "Off"))
        .await;
    let (kept, gone, off) = (
        kept["id"].as_str().unwrap().to_owned(),
        gone["id"].as_str().unwrap().to_owned(),
        off["id"].as_str().unwrap().to_owned(),
    );
    let (s, g) = app
        .post(
            "/Groups",
            json!({"displayName": "Backend", "members": [{"value": kept}]}),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    let project = g["id"].as_str().unwrap().to_owned();
    app.delete(&format!("/Users/{gone}")).await;
    app.patch(
        &format!("/Users/{off}"),
        json!({"Operations": [{"op": "replace", "path": "active", "value": false}]}),
    )
    .await;
    // Nothing has drifted yet, except the bot (a bot is no phantom) and no one else exists.
    let db = &app.db;
    let first = phab_scim::db::drift::compute(db).await.unwrap();
    assert!(first.is_empty(), "{first:?}");
    // By hand in Phabricator: rename the project, add a member as a person, re-enable both users,
    // and create an account outside SCIM.
    let admin = "PHID-USER-adminadminadminadmin";
    let now = phab_scim::db::now();
    for sql in [
        format!("UPDATE {{project}}.project SET name = 'Backend Team' WHERE phid = '{project}'"),
        format!(
            "INSERT INTO {{project}}.project_transaction (phid, authorPHID, objectPHID, viewPolicy, editPolicy, commentPHID, commentVersion, transactionType, oldValue, newValue, metadata, contentSource, dateCreated, dateModified) VALUES ('PHID-XACT-PROJ-aaaaaaaaaaaaaaa', '{admin}', '{project}', 'public', '{admin}', NULL, 0, 'core:edge', '[]', '[\"{off}\"]', '{{\"edge:type\":13,\"core.groupID\":\"x\"}}', '{{\"source\":\"web\",\"params\":[]}}', {now}, {now})"
        ),
        // Before SCIM managed the project: not drift.
        format!(
            "INSERT INTO {{project}}.project_transaction (phid, authorPHID, objectPHID, viewPolicy, editPolicy, commentPHID, commentVersion, transactionType, oldValue, newValue, metadata, contentSource, dateCreated, dateModified) VALUES ('PHID-XACT-PROJ-bbbbbbbbbbbbbbb', '{admin}', '{project}', 'public', '{admin}', NULL, 0, 'core:edge', '[]', '[\"{kept}\"]', '{{\"edge:type\":13,\"core.groupID\":\"y\"}}', '{{\"source\":\"web\",\"params\":[]}}', 1, 1)"
        ),
        format!("UPDATE {{user}}.user SET isDisabled = 0 WHERE phid IN ('{gone}', '{off}')"),
        format!(
            "INSERT INTO {{user}}.user (phid, userName, realName, dateCreated, dateModified, conduitCertificate, isSystemAgent, isDisabled, isAdmin, isEmailVerified, isApproved, accountSecret, isEnrolledInMultiFactor, isMailingList) VALUES ('{admin}', 'root', 'Root', {now}, {now}, 'c', 0, 0, 1, 1, 1, 's', 0, 0)"
        ),
    ] {
        app.exec(&sql).await;
    }
    let found = phab_scim::db::drift::compute(db).await.unwrap();
    assert_eq!(
        phab_scim::db::drift::run_once(db).await.unwrap(),
        Some(5),
        "{found:?}"
    );
    let members = found
        .iter()
        .find(|f| f.kind == "project-members")
        .expect("a project-members finding");
    assert_eq!(members.details["changes"], 1, "{members:?}");
    assert_eq!(members.details["authors"], json!([admin]), "{members:?}");
    let rows = app
        .rows("SELECT driftType, objectPHID FROM {scim}.scim_drift ORDER BY driftType, objectPHID")
        .await;
    let mut reenabled = [gone.clone(), off.clone()];
    reenabled.sort();
    assert_eq!(
        rows,
        vec![
            json!({"driftType": "phantom-account", "objectPHID": admin}),
            json!({"driftType": "project-members", "objectPHID": project}),
            json!({"driftType": "project-renamed", "objectPHID": project}),
            json!({"driftType": "user-reenabled", "objectPHID": reenabled[0]}),
            json!({"driftType": "user-reenabled", "objectPHID": reenabled[1]}),
        ]
    );
    // Re-running replaces, never accumulates; SCIM putting things right clears findings.
    app.patch(
        &format!("/Users/{off}"),
        json!({"Operations": [{"op": "replace", "path": "active", "value": true}]}),
    )
    .await;
    assert_eq!(phab_scim::db::drift::run_once(db).await.unwrap(), Some(4));
    app.cleanup().await;
}
