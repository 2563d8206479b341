//! Every address the IdP sends reaches Phabricator's `user_email` (issue 12, item 5), each step
//! with the rows `PhabricatorUserEditor` writes for it: `addEmail` (the row, an `email-add`
//! user-log row, an identity task), `changePrimaryEmail` (the old primary demoted and kept, an
//! `email-primary` row, reset links revoked) and `removeEmail` (a destruction-log row, the
//! delete, an `email-remove` row, an identity task).

use serde_json::{Value, json};

use crate::helpers::TestApp;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

async fn exec(app: &TestApp, template: &str) {
    app.exec(template).await;
}

/// `(address, isPrimary, isVerified)` of a user, in id order.
async fn addresses(app: &TestApp, phid: &str) -> Vec<Value> {
    app.rows(&format!(
        "SELECT address, isPrimary, isVerified FROM {{user}}.user_email WHERE userPHID = '{phid}' ORDER BY id"
    ))
    .await
}

/// `(action, oldValue, newValue)` of the user's log rows, each by the bot, in order.
async fn log(app: &TestApp, phid: &str) -> Vec<Value> {
    let rows = app
        .rows(&format!(
            "SELECT action, oldValue, newValue, actorPHID FROM {{user}}.user_log WHERE userPHID = '{phid}' ORDER BY id"
        ))
        .await;
    assert!(
        rows.iter().all(|r| r["actorPHID"] == app.bot_phid.as_str()),
        "{rows:?}"
    );
    rows.iter()
        .map(|r| json!([r["action"], r["oldValue"], r["newValue"]]))
        .collect()
}

/// The identity-change tasks queued so far, as their data.
async fn identity_tasks(app: &TestApp) -> Vec<String> {
    app.rows(
        "SELECT d.data FROM {worker}.worker_activetask a JOIN {worker}.worker_taskdata d ON d.id = a.dataID \
         WHERE a.taskClass = 'PhabricatorRepositoryIdentityChangeWorker' ORDER BY a.id",
    )
    .await
    .iter()
    .map(|r| r["data"].as_str().unwrap().to_owned())
    .collect()
}

fn replace_emails(emails: Value) -> Value {
    json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "emails", "value": emails}]})
}

/// Creation mirrors every address Phabricator accepts (an odd one stays SCIM data); moving
/// the primary demotes the old one and keeps it; dropping an address removes it; each step
/// writes Phorge's rows.
#[tokio::test]
async fn every_address_the_idp_sends_is_mirrored() {
    let app = TestApp::spawn().await;
    let (s, r) = app
        .post(
            "/Users",
            json!({"schemas": [USER], "userName": "ann@corp.example", "displayName": "Ann",
                   "emails": [{"value": "ann@corp.example", "type": "work", "primary": true},
                              {"value": "Ann@Home.example", "type": "home"},
                              {"value": "ann at nowhere", "type": "other"},
                              {"value": "ANN@corp.example", "type": "other"}]}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let id = r["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r["emails"].as_array().unwrap().len(),
        4,
        "SCIM keeps all: {r}"
    );
    assert_eq!(
        addresses(&app, &id).await,
        vec![
            json!({"address": "ann@corp.example", "isPrimary": 1, "isVerified": 1}),
            json!({"address": "Ann@Home.example", "isPrimary": 0, "isVerified": 1}),
        ]
    );
    assert_eq!(
        log(&app, &id).await,
        vec![json!(["email-add", "null", "\"Ann@Home.example\""])]
    );
    assert_eq!(
        identity_tasks(&app).await,
        vec![
            r#"{"emailAddresses":["scim-bot@phab-scim.invalid"]}"#,
            r#"{"emailAddresses":["ann@corp.example"]}"#,
            r#"{"emailAddresses":["Ann@Home.example"]}"#,
        ]
    );

    // The home address becomes primary: the work address is demoted and kept; reset links go.
    let now = phab_scim::db::now();
    exec(&app, &format!(
        "INSERT INTO {{auth}}.auth_temporarytoken (tokenResource, tokenType, tokenExpires, tokenCode, userPHID, properties) \
         VALUES ('{id}', 'login:onetime', {}, 'code1', '{id}', '{{}}')", now + 86400
    ))
    .await;
    let (s, r) = app
        .patch(
            &format!("/Users/{id}"),
            replace_emails(json!([
                {"value": "ann@corp.example", "type": "work"},
                {"value": "Ann@Home.example", "type": "home", "primary": true},
            ])),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        addresses(&app, &id).await,
        vec![
            json!({"address": "ann@corp.example", "isPrimary": 0, "isVerified": 1}),
            json!({"address": "Ann@Home.example", "isPrimary": 1, "isVerified": 1}),
        ]
    );
    assert_eq!(
        log(&app, &id).await[1..],
        [json!([
            "email-primary",
            "\"ann@corp.example\"",
            "\"Ann@Home.example\""
        ])]
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM {{auth}}.auth_temporarytoken WHERE tokenResource = '{id}' AND tokenExpires > {now}"
        ))
        .await,
        0,
        "reset links revoked"
    );
    assert_eq!(identity_tasks(&app).await.len(), 3, "no task for a move");

    // The IdP drops the work address and sends a new one: removed, and added.
    let (s, r) = app
        .patch(
            &format!("/Users/{id}"),
            replace_emails(json!([
                {"value": "Ann@Home.example", "type": "home", "primary": true},
                {"value": "ann.lee@corp.example", "type": "work"},
            ])),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        addresses(&app, &id).await,
        vec![
            json!({"address": "Ann@Home.example", "isPrimary": 1, "isVerified": 1}),
            json!({"address": "ann.lee@corp.example", "isPrimary": 0, "isVerified": 1}),
        ]
    );
    assert_eq!(
        log(&app, &id).await[2..],
        [
            json!(["email-add", "null", "\"ann.lee@corp.example\""]),
            json!(["email-remove", "\"ann@corp.example\"", "null"]),
        ]
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {system}.system_destructionlog WHERE objectClass = 'PhabricatorUserEmail'")
            .await,
        1
    );
    assert_eq!(
        identity_tasks(&app).await[3..],
        [
            r#"{"emailAddresses":["ann.lee@corp.example"]}"#.to_owned(),
            r#"{"relatedPHIDs":[],"emailAddresses":["ann@corp.example"]}"#.to_owned(),
        ]
    );
    // The same document again changes nothing.
    let before = log(&app, &id).await.len();
    let (s, _) = app
        .patch(
            &format!("/Users/{id}"),
            replace_emails(json!([
                {"value": "Ann@Home.example", "type": "home", "primary": true},
                {"value": "ann.lee@corp.example", "type": "work"},
            ])),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(log(&app, &id).await.len(), before);
    app.cleanup().await;
}

/// Only what the IdP sent is the IdP's to remove: an adopted account keeps the addresses it
/// had, an address added in Phabricator stays; an address another account holds is 409 and
/// nothing is written.
#[tokio::test]
async fn addresses_the_idp_never_sent_stay_and_others_are_not_taken() {
    let app = TestApp::spawn().await;
    let phid = phab_scim::db::phabricator::new_phid("USER");
    let now = phab_scim::db::now();
    exec(&app, &format!(
        "INSERT INTO {{user}}.user (phid, userName, realName, dateCreated, dateModified, conduitCertificate, isSystemAgent, isDisabled, isAdmin, isEmailVerified, isApproved, accountSecret, isEnrolledInMultiFactor, isMailingList) \
         VALUES ('{phid}', 'bo', 'Bo', {now}, {now}, 'c', 0, 0, 0, 1, 1, 's', 0, 0)"
    ))
    .await;
    for (address, primary) in [("bo@corp.example", 1), ("bo@old.example", 0)] {
        exec(&app, &format!(
            "INSERT INTO {{user}}.user_email (phid, userPHID, address, isVerified, isPrimary, verificationCode, dateCreated, dateModified) \
             VALUES ('{}', '{phid}', '{address}', 1, {primary}, 'x', {now}, {now})",
            phab_scim::db::phabricator::new_phid("EADR")
        ))
        .await;
    }
    let (s, r) = app
        .post(
            "/Users",
            json!({"schemas": [USER], "userName": "bo@corp.example",
                   "emails": [{"value": "bo@corp.example", "primary": true}, {"value": "bo@new.example"}]}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["id"], phid.as_str(), "adopted");
    assert_eq!(
        addresses(&app, &phid).await,
        vec![
            json!({"address": "bo@corp.example", "isPrimary": 1, "isVerified": 1}),
            json!({"address": "bo@old.example", "isPrimary": 0, "isVerified": 1}),
            json!({"address": "bo@new.example", "isPrimary": 0, "isVerified": 1}),
        ]
    );
    // The IdP drops its second address: that one goes, the account's own stays.
    let (s, r) = app
        .patch(
            &format!("/Users/{phid}"),
            replace_emails(json!([{"value": "bo@corp.example", "primary": true}])),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        addresses(&app, &phid).await,
        vec![
            json!({"address": "bo@corp.example", "isPrimary": 1, "isVerified": 1}),
            json!({"address": "bo@old.example", "isPrimary": 0, "isVerified": 1}),
        ]
    );

    // Another person's address, as a secondary: 409, and neither account changes.
    let before = (
        addresses(&app, &phid).await,
        app.count("SELECT COUNT(*) FROM {user}.user").await,
        app.count("SELECT COUNT(*) FROM {user}.user_log").await,
    );
    let (s, e) = app
        .post(
            "/Users",
            json!({"schemas": [USER], "userName": "cy@corp.example",
                   "emails": [{"value": "cy@corp.example", "primary": true}, {"value": "bo@old.example"}]}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), e["scimType"].clone()),
        (409, json!("uniqueness")),
        "{e}"
    );
    let (s, e) = app
        .patch(
            &format!("/Users/{phid}"),
            replace_emails(json!([{"value": "bo@corp.example", "primary": true}, {"value": "scim-bot@phab-scim.invalid"}])),
        )
        .await;
    assert_eq!(s, 409, "{e}");
    // More addresses than one person has: 400, nothing written.
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"value": format!("bo{i}@corp.example"), "primary": i == 0}))
        .collect();
    let (s, e) = app
        .patch(&format!("/Users/{phid}"), replace_emails(json!(many)))
        .await;
    assert_eq!(
        (s.as_u16(), e["scimType"].clone()),
        (400, json!("invalidValue")),
        "{e}"
    );
    assert_eq!(
        (
            addresses(&app, &phid).await,
            app.count("SELECT COUNT(*) FROM {user}.user").await,
            app.count("SELECT COUNT(*) FROM {user}.user_log").await,
        ),
        before
    );
    app.cleanup().await;
}
