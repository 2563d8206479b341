//! Username derivation, adoption, rehire, bots, login linking, and concurrent creators.

use serde_json::json;

use crate::helpers::{TestApp, user_body};

#[tokio::test]
async fn derived_usernames_never_merge_people() {
    let app = TestApp::spawn().await;
    let mut names = Vec::new();
    for (u, e) in [
        ("jane@a.com", "jane@a.com"),
        ("jane@b.com", "jane@b.com"),
        ("JANE@c.com", "jane@c.com"),
        ("José Ruiz@d.com", "jose@d.com"),
    ] {
        let (s, r) = app.post("/Users", user_body(u, e, "Jane")).await;
        assert_eq!(s, 201, "{r}");
        let id = r["id"].as_str().unwrap().to_owned();
        let row = app
            .rows(&format!(
                "SELECT userName FROM {{user}}.user WHERE phid = '{id}'"
            ))
            .await;
        names.push(row[0]["userName"].as_str().unwrap().to_owned());
    }
    assert_eq!(names, vec!["jane", "jane2", "JANE3", "Jos_Ruiz"]);
    app.cleanup().await;
}

async fn insert_unmanaged(app: &TestApp, username: &str, address: &str, verified: bool) -> String {
    let phid = phab_scim::db::phabricator::new_phid("USER");
    let now = phab_scim::db::now();
    app.exec(&format!(
        "INSERT INTO {{user}}.user (phid, userName, realName, dateCreated, dateModified, conduitCertificate, isSystemAgent, isDisabled, isAdmin, isEmailVerified, isApproved, accountSecret, isEnrolledInMultiFactor, isMailingList) \
         VALUES ('{phid}', '{username}', 'Old Name', {now}, {now}, 'c', 0, 0, 0, {v}, 1, 's', 0, 0)",
        v = u8::from(verified)
    )).await;
    app.exec(&format!(
        "INSERT INTO {{user}}.user_email (phid, userPHID, address, isVerified, isPrimary, verificationCode, dateCreated, dateModified) \
         VALUES ('{}', '{phid}', '{address}', {v}, 1, 'x', {now}, {now})",
        phab_scim::db::phabricator::new_phid("EADR"),
        v = u8::from(verified)
    )).await;
    phid
}

#[tokio::test]
async fn adoption_by_verified_primary_email() {
    let app = TestApp::spawn().await;
    let existing = insert_unmanaged(&app, "mary", "mary@corp.com", true).await;
    let unverified = insert_unmanaged(&app, "fred", "fred@corp.com", false).await;
    let (s, r) = app
        .post(
            "/Users",
            user_body("mary.smith@corp.com", "Mary@corp.com", "Mary Smith"),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["id"], existing.as_str(), "adopted, not duplicated");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {user}.user WHERE userName LIKE 'mary%'")
            .await,
        1
    );
    let row = app
        .rows(&format!(
            "SELECT userName, realName FROM {{user}}.user WHERE phid = '{existing}'"
        ))
        .await;
    assert_eq!(
        row[0],
        json!({"userName": "mary", "realName": "Mary Smith"})
    );
    let (s, e) = app
        .post(
            "/Users",
            user_body("fred@corp.com", "fred@corp.com", "Fred"),
        )
        .await;
    assert_eq!(
        (s.as_u16(), e["scimType"].clone()),
        (409, json!("uniqueness")),
        "an unverified address is not proof: {e}"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM {{scim}}.scim_user WHERE userPHID = '{unverified}'"
        ))
        .await,
        0
    );
    app.cleanup().await;

    let app = TestApp::spawn_with(|c| c.adoption = phab_scim::config::AdoptionPolicy::Never).await;
    insert_unmanaged(&app, "mary", "mary@corp.com", true).await;
    let (s, e) = app
        .post(
            "/Users",
            user_body("mary@corp.com", "mary@corp.com", "Mary"),
        )
        .await;
    assert_eq!(
        (s.as_u16(), e["scimType"].clone()),
        (409, json!("uniqueness"))
    );
    app.cleanup().await;
}

#[tokio::test]
async fn rehire_reactivates_the_same_account() {
    let app = TestApp::spawn().await;
    let (_, r) = app
        .post(
            "/Users",
            user_body("leaver@x.com", "leaver@x.com", "Leaver"),
        )
        .await;
    let id = r["id"].as_str().unwrap().to_owned();
    assert_eq!(app.delete(&format!("/Users/{id}")).await.0, 204);
    let (s, back) = app
        .post(
            "/Users",
            user_body("leaver@x.com", "leaver@x.com", "Leaver Again"),
        )
        .await;
    assert_eq!(s, 201, "{back}");
    assert_eq!(back["id"], id.as_str());
    assert_eq!(back["active"], true);
    let row = app
        .rows(&format!(
            "SELECT isDisabled, realName FROM {{user}}.user WHERE phid = '{id}'"
        ))
        .await;
    assert_eq!(row[0], json!({"isDisabled": 0, "realName": "Leaver Again"}));
    assert_eq!(app.get(&format!("/Users/{id}")).await.0, 200);
    app.cleanup().await;
}

#[tokio::test]
async fn bot_user_types_make_bots() {
    let app = TestApp::spawn().await;
    let mut b = user_body("ci-agent@x.com", "ci-agent@x.com", "CI Agent");
    b["userType"] = json!("agent");
    let (s, r) = app.post("/Users", b).await;
    assert_eq!(s, 201);
    let id = r["id"].as_str().unwrap();
    assert_eq!(
        app.count(&format!(
            "SELECT isSystemAgent FROM {{user}}.user WHERE phid = '{id}'"
        ))
        .await,
        1
    );
    let (_, _) = app
        .patch(
            &format!("/Users/{id}"),
            json!({"Operations": [{"op": "replace", "path": "userType", "value": "Employee"}]}),
        )
        .await;
    assert_eq!(
        app.count(&format!(
            "SELECT isSystemAgent FROM {{user}}.user WHERE phid = '{id}'"
        ))
        .await,
        0
    );
    app.cleanup().await;
}

#[tokio::test]
async fn login_provider_linking() {
    let app = TestApp::spawn_with(|c| {
        c.login_provider = Some("ldap:self".into());
        c.login_identifier = "{userNameLocalPart}".into();
    })
    .await;
    let now = phab_scim::db::now();
    let provider = "PHID-AUTH-aaaaaaaaaaaaaaaaaaaa";
    app.exec(&format!(
        "INSERT INTO {{auth}}.auth_providerconfig (phid, providerClass, providerType, providerDomain, isEnabled, shouldAllowLogin, shouldAllowRegistration, shouldAllowLink, shouldAllowUnlink, shouldTrustEmails, properties, dateCreated, dateModified, shouldAutoLogin) \
         VALUES ('{provider}', 'PhabricatorLDAPAuthProvider', 'ldap', 'self', 1, 1, 0, 1, 0, 0, '{{}}', {now}, {now}, 0)"
    )).await;
    let (s, r) = app
        .post("/Users", user_body("fox@x.com", "fox@x.com", "Fox Mulder"))
        .await;
    assert_eq!(s, 201, "{r}");
    let id = r["id"].as_str().unwrap();
    let acct = app.rows(&format!("SELECT phid, userPHID, accountType, accountDomain, accountID, properties, providerConfigPHID, emailVerified FROM {{user}}.user_externalaccount WHERE userPHID = '{id}'")).await;
    assert_eq!(acct.len(), 1);
    assert_eq!(acct[0]["accountType"], "ldap");
    assert_eq!(acct[0]["accountDomain"], "self");
    assert_eq!(acct[0]["accountID"], "");
    assert_eq!(acct[0]["properties"], "[]");
    assert_eq!(acct[0]["providerConfigPHID"], provider);
    let ident = app.rows(&format!("SELECT identifierRaw, identifierHash, providerConfigPHID FROM {{user}}.user_externalaccountidentifier WHERE externalAccountPHID = '{}'", acct[0]["phid"].as_str().unwrap())).await;
    assert_eq!(
        ident,
        vec![
            json!({"identifierRaw": "fox", "identifierHash": phab_scim::db::phabricator::digest_for_index("fox"), "providerConfigPHID": provider})
        ]
    );
    // A pending account that already owns an identifier is relinked, never duplicated.
    let pending = "PHID-XUSR-bbbbbbbbbbbbbbbbbbbb";
    app.exec(&format!(
        "INSERT INTO {{user}}.user_externalaccount (phid, userPHID, accountType, accountDomain, accountSecret, accountID, dateCreated, dateModified, emailVerified, properties, providerConfigPHID) VALUES ('{pending}', NULL, 'ldap', 'self', 's', '', {now}, {now}, 0, '[]', '{provider}')"
    )).await;
    app.exec(&format!(
        "INSERT INTO {{user}}.user_externalaccountidentifier (phid, externalAccountPHID, providerConfigPHID, identifierHash, identifierRaw, dateCreated, dateModified) VALUES ('PHID-XIDT-bbbbbbbbbbbbbbbbbbbb', '{pending}', '{provider}', '{}', 'dana', {now}, {now})",
        phab_scim::db::phabricator::digest_for_index("dana")
    )).await;
    let (s, r) = app
        .post(
            "/Users",
            user_body("dana@x.com", "dana@x.com", "Dana Scully"),
        )
        .await;
    assert_eq!(s, 201);
    let owner = app
        .rows(&format!(
            "SELECT userPHID FROM {{user}}.user_externalaccount WHERE phid = '{pending}'"
        ))
        .await;
    assert_eq!(owner[0]["userPHID"], r["id"]);
    assert_eq!(app.count("SELECT COUNT(*) FROM {user}.user_externalaccountidentifier WHERE identifierRaw = 'dana'").await, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn concurrent_creators_never_fail_and_duplicates_lose_cleanly() {
    let app = TestApp::spawn().await;
    // Eight concurrent creators of distinct users: all succeed (Phorge's own path deadlocks).
    let mut handles = Vec::new();
    for w in 0..8 {
        let client = app.client.clone();
        let base = app.base.clone();
        let token = app.token.clone();
        handles.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..10 {
                let u = format!("w{w}u{i}@x.com");
                let r = client
                    .post(format!("{base}/Users"))
                    .bearer_auth(&token)
                    .json(&user_body(&u, &u, "Worker"))
                    .send()
                    .await
                    .unwrap();
                statuses.push(r.status().as_u16());
            }
            statuses
        }));
    }
    for h in handles {
        assert!(h.await.unwrap().iter().all(|s| *s == 201));
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM {scim}.scim_user").await, 80);
    // Pairs of identical POSTs: exactly one account each, the loser gets 409.
    for round in 0..10 {
        let u = format!("twin{round}@x.com");
        let (a, b) = tokio::join!(
            app.post("/Users", user_body(&u, &u, "Twin")),
            app.post("/Users", user_body(&u, &u, "Twin"))
        );
        let mut statuses = [a.0.as_u16(), b.0.as_u16()];
        statuses.sort();
        assert_eq!(statuses, [201, 409], "{a:?} {b:?}");
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) FROM {{user}}.user_email WHERE address = '{u}'"
            ))
            .await,
            1
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {user}.user WHERE userName LIKE 'twin%'")
            .await,
        10
    );
    // Every user has exactly one primary address and its name tokens.
    assert_eq!(app.count("SELECT COUNT(*) FROM {user}.user u WHERE (SELECT COUNT(*) FROM {user}.user_email e WHERE e.userPHID = u.phid AND e.isPrimary = 1) <> 1").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM {user}.user u WHERE NOT EXISTS (SELECT 1 FROM {user}.user_nametoken t WHERE t.userID = u.id)").await, 0);
    // Each creation's two task-data rows were written by one multi-row INSERT while the other
    // creators wrote theirs: every task still points at its own data (the search task at its
    // user, the identity task at that user's address), and no data row is shared or orphaned.
    // (The token's bot account was created with its own two tasks.)
    let tasks = app
        .count("SELECT COUNT(*) FROM {worker}.worker_activetask")
        .await;
    assert!(tasks >= 180, "{tasks} tasks");
    assert_eq!(
        app.count("SELECT COUNT(DISTINCT dataID) FROM {worker}.worker_activetask")
            .await,
        tasks
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {worker}.worker_taskdata")
            .await,
        tasks
    );
    let search = app
        .count("SELECT COUNT(*) FROM {worker}.worker_activetask WHERE taskClass = 'PhabricatorSearchWorker'")
        .await;
    assert!(search >= 90, "{search} search tasks");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM {worker}.worker_activetask a JOIN {worker}.worker_taskdata d ON d.id = a.dataID \
             WHERE a.taskClass = 'PhabricatorSearchWorker' \
             AND JSON_VALUE(d.data, '$.documentPHID') = CAST(a.objectPHID AS CHAR)"
        )
        .await,
        search
    );
    let identity = app
        .count("SELECT COUNT(*) FROM {worker}.worker_activetask WHERE taskClass = 'PhabricatorRepositoryIdentityChangeWorker'")
        .await;
    assert!(identity >= 90, "{identity} identity tasks");
    // Each identity task names an address a user holds (read apart: `worker` and `user` may
    // be on different masters).
    let addresses: std::collections::BTreeSet<String> = app
        .rows("SELECT address FROM {user}.user_email")
        .await
        .iter()
        .filter_map(|r| r["address"].as_str().map(str::to_owned))
        .collect();
    let named = app
        .rows(
            "SELECT JSON_VALUE(d.data, '$.emailAddresses[0]') AS address FROM {worker}.worker_activetask a \
             JOIN {worker}.worker_taskdata d ON d.id = a.dataID \
             WHERE a.taskClass = 'PhabricatorRepositoryIdentityChangeWorker'",
        )
        .await;
    let held = named
        .iter()
        .filter(|r| r["address"].as_str().is_some_and(|a| addresses.contains(a)))
        .count();
    assert_eq!(i64::try_from(held).unwrap(), identity);
    app.cleanup().await;
}
