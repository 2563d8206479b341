//! /Users end to end: responses and the Phabricator rows behind them.

use serde_json::json;

use crate::helpers::{TestApp, user_body};

#[tokio::test]
async fn create_user_writes_what_phorge_writes() {
    let app = TestApp::spawn().await;
    let (status, headers, body) = app
        .send(reqwest::Method::POST, "/Users", Some(user_body("sam@example.com", "sam@example.com", "Sam Tyler")))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("PHID-USER-"));
    assert_eq!(headers["location"], format!("{}/Users/{id}", app.base).as_str());
    assert_eq!(headers["etag"], "W/\"1\"");
    assert_eq!(body["userName"], "sam@example.com");
    assert_eq!(body["active"], true);
    assert_eq!(body["meta"]["resourceType"], "User");

    let user = app.rows(&format!("SELECT * FROM {{user}}.user WHERE phid = '{id}'")).await;
    assert_eq!(user.len(), 1);
    let u = &user[0];
    assert_eq!(u["userName"], "sam");
    assert_eq!(u["realName"], "Sam Tyler");
    assert_eq!(u["isSystemAgent"], 0);
    assert_eq!(u["isDisabled"], 0);
    assert_eq!(u["isAdmin"], 0);
    assert_eq!(u["isEmailVerified"], 1);
    assert_eq!(u["isApproved"], 1);
    assert_eq!(u["isMailingList"], 0);
    assert_eq!(u["isEnrolledInMultiFactor"], 0);
    assert_eq!(u["conduitCertificate"].as_str().unwrap().len(), 255);
    assert_eq!(u["accountSecret"].as_str().unwrap().len(), 64);
    assert_eq!(u["profileImagePHID"], json!(null));

    let emails = app.rows(&format!("SELECT * FROM {{user}}.user_email WHERE userPHID = '{id}'")).await;
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0]["address"], "sam@example.com");
    assert_eq!(emails[0]["isPrimary"], 1);
    assert_eq!(emails[0]["isVerified"], 1);
    assert_eq!(emails[0]["verificationCode"].as_str().unwrap().len(), 24);
    assert!(emails[0]["phid"].as_str().unwrap().starts_with("PHID-EADR-"));

    let tokens = app.rows(&format!("SELECT token FROM {{user}}.user_nametoken WHERE userID = {} ORDER BY token", u["id"])).await;
    assert_eq!(tokens, vec![json!({"token": "sam"}), json!({"token": "tyler"})]);

    let tasks = app
        .rows(&format!(
            "SELECT a.taskClass, a.priority, a.objectPHID, a.leaseOwner, a.failureCount, d.data FROM {{worker}}.worker_activetask a \
             JOIN {{worker}}.worker_taskdata d ON d.id = a.dataID WHERE a.objectPHID = '{id}' OR a.objectPHID IS NULL AND d.data LIKE '%sam@example.com%' ORDER BY a.id"
        ))
        .await;
    assert_eq!(
        tasks,
        vec![
            json!({"taskClass": "PhabricatorSearchWorker", "priority": 3500, "objectPHID": id, "leaseOwner": null, "failureCount": 0,
                   "data": format!(r#"{{"documentPHID":"{id}","parameters":[],"strict":false}}"#)}),
            json!({"taskClass": "PhabricatorRepositoryIdentityChangeWorker", "priority": 2000, "objectPHID": null, "leaseOwner": null, "failureCount": 0,
                   "data": r#"{"emailAddresses":["sam@example.com"]}"#}),
        ]
    );
    // Task ids come from the counter, which the bot's creation started.
    let counter = app.count("SELECT counterValue FROM {worker}.lisk_counter WHERE counterName = 'worker_activetask'").await;
    assert_eq!(counter, app.count("SELECT MAX(id) FROM {worker}.worker_activetask").await);
    // Creation writes no log, transaction, session or profile rows (write log W1).
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM {{user}}.user_log WHERE userPHID = '{id}'")).await, 0);
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM {{user}}.user_transaction WHERE objectPHID = '{id}'")).await, 0);

    let scim = app.rows(&format!("SELECT userName, externalID, version, isDeprovisioned FROM {{scim}}.scim_user WHERE userPHID = '{id}'")).await;
    assert_eq!(scim, vec![json!({"userName": "sam@example.com", "externalID": null, "version": 1, "isDeprovisioned": 0})]);
    let events = app.rows(&format!("SELECT method, status, outcome, resourceType FROM {{scim}}.scim_event WHERE objectPHID = '{id}'")).await;
    assert_eq!(events, vec![json!({"method": "POST", "status": 201, "outcome": "ok", "resourceType": "User"})]);

    let (status, got) = app.get(&format!("/Users/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got, body);
    app.cleanup().await;
}
