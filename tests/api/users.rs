//! /Users end to end: responses and the Phabricator rows behind them.

use serde_json::json;

use crate::helpers::{TestApp, user_body};

#[tokio::test]
async fn create_user_writes_what_phorge_writes() {
    let app = TestApp::spawn().await;
    let (status, headers, body) = app
        .send(
            reqwest::Method::POST,
            "/Users",
            Some(user_body("sam@example.com", "sam@example.com", "Sam Tyler")),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("PHID-USER-"));
    assert_eq!(
        headers["location"],
        format!("{}/Users/{id}", app.base).as_str()
    );
    assert_eq!(headers["etag"], "W/\"1\"");
    assert_eq!(body["userName"], "sam@example.com");
    assert_eq!(body["active"], true);
    assert_eq!(body["meta"]["resourceType"], "User");

    let user = app
        .rows(&format!("SELECT * FROM {{user}}.user WHERE phid = '{id}'"))
        .await;
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

    let emails = app
        .rows(&format!(
            "SELECT * FROM {{user}}.user_email WHERE userPHID = '{id}'"
        ))
        .await;
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0]["address"], "sam@example.com");
    assert_eq!(emails[0]["isPrimary"], 1);
    assert_eq!(emails[0]["isVerified"], 1);
    assert_eq!(emails[0]["verificationCode"].as_str().unwrap().len(), 24);
    assert!(
        emails[0]["phid"]
            .as_str()
            .unwrap()
            .starts_with("PHID-EADR-")
    );

    let tokens = app
        .rows(&format!(
            "SELECT token FROM {{user}}.user_nametoken WHERE userID = {} ORDER BY token",
            u["id"]
        ))
        .await;
    assert_eq!(
        tokens,
        vec![json!({"token": "sam"}), json!({"token": "tyler"})]
    );

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
    assert_eq!(
        counter,
        app.count("SELECT MAX(id) FROM {worker}.worker_activetask")
            .await
    );
    // Creation writes no log, transaction, session or profile rows
    // (docs/write-paths.md#create-a-user).
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM {{user}}.user_log WHERE userPHID = '{id}'"
        ))
        .await,
        0
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM {{user}}.user_transaction WHERE objectPHID = '{id}'"
        ))
        .await,
        0
    );

    let scim = app.rows(&format!("SELECT userName, externalID, version, isDeprovisioned FROM {{scim}}.scim_user WHERE userPHID = '{id}'")).await;
    assert_eq!(
        scim,
        vec![
            json!({"userName": "sam@example.com", "externalID": null, "version": 1, "isDeprovisioned": 0})
        ]
    );
    let events = app.rows(&format!("SELECT method, status, outcome, resourceType FROM {{scim}}.scim_event WHERE objectPHID = '{id}'")).await;
    assert_eq!(
        events,
        vec![json!({"method": "POST", "status": 201, "outcome": "ok", "resourceType": "User"})]
    );

    let (status, got) = app.get(&format!("/Users/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got, body);
    app.cleanup().await;
}

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

async fn user_row(app: &TestApp, id: &str) -> serde_json::Value {
    app.rows(&format!("SELECT * FROM {{user}}.user WHERE phid = '{id}'"))
        .await
        .remove(0)
}

/// The whole Entra ID user lifecycle (docs/scim-clients.md#entra-id-users), default dialect.
#[tokio::test]
async fn entra_user_lifecycle() {
    let app = TestApp::spawn().await;
    // 1. Match: nothing yet.
    let (s, list) = app
        .get("/Users?filter=userName+eq+%22adele.vance%40example.com%22")
        .await;
    assert_eq!(s, 200);
    assert_eq!(list["totalResults"], 0);
    assert_eq!(list["Resources"], json!([]));
    // 2. Create, Microsoft's documented body.
    let (s, created) = app
        .post(
            "/Users",
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
                "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
                "userName": "adele.vance@example.com",
                "active": true,
                "addresses": null, "title": null, "manager": null,
                "emails": [{"primary": true, "type": "work", "value": "adele.vance@example.com"}],
                "meta": {"resourceType": "User"},
                "name": {"formatted": "Adele Vance", "familyName": "Vance", "givenName": "Adele"},
                "roles": []
            }),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["name"]["givenName"], "Adele");
    assert!(created.get("roles").is_none() && created.get("title").is_none());
    assert_eq!(user_row(&app, &id).await["realName"], "Adele Vance");
    // 3. Read; the match filter now finds it, in any case.
    let (s, got) = app.get(&format!("/Users/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(got["externalId"], "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef");
    let (_, list) = app
        .get("/Users?filter=userName%20eq%20%22ADELE.VANCE%40EXAMPLE.COM%22")
        .await;
    assert_eq!(list["totalResults"], 1);
    assert_eq!(list["Resources"][0]["id"], id.as_str());
    // A session, an API token and a reset link, to see deprovisioning end them.
    let now = phab_scim::db::now();
    app.exec(&format!(
        "INSERT INTO {{user}}.phabricator_session (userPHID, type, sessionKey, sessionStart, sessionExpires, phid) VALUES ('{id}', 'web', 'k1', {now}, {}, 'PHID-SSSN-aaaaaaaaaaaaaaaaaaaa')",
        now + 86400
    )).await;
    app.exec(&format!(
        "INSERT INTO {{conduit}}.conduit_token (objectPHID, tokenType, token, expires, dateCreated, dateModified, tokenName) VALUES ('{id}', 'api', 'api-aaaaaaaaaaaaaaaaaaaaaaaaaaaa', NULL, {now}, {now}, 'Standard API Token')"
    )).await;
    app.exec(&format!(
        "INSERT INTO {{auth}}.auth_temporarytoken (tokenResource, tokenType, tokenExpires, tokenCode, userPHID, properties) VALUES ('{id}', 'login:onetime', {}, 'c1', NULL, '[]')",
        now + 86400
    )).await;
    // 5. Update, default dialect, several capitalised ops.
    let (s, patched) = app
        .patch(
            &format!("/Users/{id}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                {"op": "Replace", "path": "displayName", "value": "Pvlo"},
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "TestBcwqnm@test.microsoft.com"},
                {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
                {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
                {"op": "Replace", "path": "externalId", "value": "Eqpj"},
                {"op": "Replace", "path": format!("{ENTERPRISE}:employeeNumber"), "value": "Eqpj"},
                {"op": "Add", "path": "nickName", "value": "Babs"},
                {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": "271"}
            ]}),
        )
        .await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["displayName"], "Pvlo");
    assert_eq!(patched["externalId"], "Eqpj");
    assert_eq!(patched["nickName"], "Babs");
    assert_eq!(patched[ENTERPRISE]["employeeNumber"], "Eqpj");
    assert_eq!(patched[ENTERPRISE]["manager"]["value"], "271");
    assert_eq!(patched["meta"]["version"], "W/\"2\"");
    let u = user_row(&app, &id).await;
    assert_eq!(u["realName"], "Pvlo");
    assert_eq!(
        u["userName"], "adele.vance",
        "the Phabricator username never changes"
    );
    // The real-name change is a `core:customfield` transaction by the bot, with its tasks.
    let x = app.rows(&format!("SELECT transactionType, oldValue, newValue, metadata, authorPHID FROM {{user}}.user_transaction WHERE objectPHID = '{id}'")).await;
    assert_eq!(x.len(), 1);
    assert_eq!(x[0]["transactionType"], "core:customfield");
    assert_eq!(x[0]["oldValue"], "\"Adele Vance\"");
    assert_eq!(x[0]["newValue"], "\"Pvlo\"");
    assert_eq!(x[0]["authorPHID"], app.bot_phid.as_str());
    assert!(
        x[0]["metadata"]
            .as_str()
            .unwrap()
            .starts_with(r#"{"customfield:key":"user:realname","core.groupID":""#)
    );
    let toks = app
        .rows(&format!(
            "SELECT token FROM {{user}}.user_nametoken WHERE userID = {} ORDER BY token",
            u["id"]
        ))
        .await;
    assert_eq!(
        toks,
        vec![json!({"token": "adele.vance"}), json!({"token": "pvlo"})]
    );
    // The address moved the way Phorge's editor moves it: add, make primary, remove.
    let emails = app
        .rows(&format!(
            "SELECT address, isPrimary, isVerified FROM {{user}}.user_email WHERE userPHID = '{id}'"
        ))
        .await;
    assert_eq!(
        emails,
        vec![json!({"address": "TestBcwqnm@test.microsoft.com", "isPrimary": 1, "isVerified": 1})]
    );
    let logs = app.rows(&format!("SELECT action, oldValue, newValue, actorPHID FROM {{user}}.user_log WHERE userPHID = '{id}' ORDER BY id")).await;
    let actions: Vec<&str> = logs.iter().map(|l| l["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["email-add", "email-primary", "email-remove"]);
    assert_eq!(logs[2]["oldValue"], "\"adele.vance@example.com\"");
    assert_eq!(logs[0]["actorPHID"], app.bot_phid.as_str());
    assert_eq!(app.count("SELECT COUNT(*) FROM {system}.system_destructionlog WHERE objectClass = 'PhabricatorUserEmail'").await, 1);
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM {{auth}}.auth_temporarytoken WHERE tokenResource = '{id}' AND tokenExpires > {}", now + 10)).await, 0, "reset links revoked");
    let identity = app.rows("SELECT d.data FROM {worker}.worker_activetask a JOIN {worker}.worker_taskdata d ON d.id = a.dataID WHERE a.taskClass = 'PhabricatorRepositoryIdentityChangeWorker' AND d.data LIKE '%adele.vance@%' OR d.data LIKE '%TestBcwqnm%'").await;
    assert_eq!(
        identity.len(),
        3,
        "identity tasks: created, added, removed: {identity:?}"
    );
    // 6. Disable: Entra's string boolean.
    let (s, disabled) = app
        .patch(&format!("/Users/{id}"), json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(disabled["active"], false);
    assert_eq!(user_row(&app, &id).await["isDisabled"], 1);
    let x = app.rows(&format!("SELECT oldValue, newValue FROM {{user}}.user_transaction WHERE objectPHID = '{id}' AND transactionType = 'user.disable'")).await;
    assert_eq!(x, vec![json!({"oldValue": "false", "newValue": "true"})]);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM {{user}}.phabricator_session WHERE userPHID = '{id}'"
        ))
        .await,
        0,
        "sessions ended"
    );
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM {{conduit}}.conduit_token WHERE objectPHID = '{id}' AND expires IS NULL")).await, 0, "API token revoked");
    let publish = app.count(&format!("SELECT COUNT(*) FROM {{worker}}.worker_activetask WHERE objectPHID = '{id}' AND taskClass = 'PhabricatorApplicationTransactionPublishWorker'")).await;
    assert_eq!(publish, 2, "one publish task per edit with transactions");
    // Deactivated users stay visible, to GET and to filters.
    let (s, got) = app.get(&format!("/Users/{id}")).await;
    assert_eq!((s.as_u16(), got["active"].clone()), (200, json!(false)));
    let (_, list) = app.get("/Users?filter=active%20eq%20false").await;
    assert_eq!(list["totalResults"], 1);
    // Re-enable, flag dialect.
    let (s, en) = app.patch(&format!("/Users/{id}"), json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "active", "value": true}]})).await;
    assert_eq!((s.as_u16(), en["active"].clone()), (200, json!(true)));
    assert_eq!(user_row(&app, &id).await["isDisabled"], 0);
    // 7. Delete: 204, then 404 everywhere, and the account is disabled, not destroyed.
    let (s, _) = app.delete(&format!("/Users/{id}")).await;
    assert_eq!(s, 204);
    assert_eq!(app.get(&format!("/Users/{id}")).await.0, 404);
    assert_eq!(
        app.patch(
            &format!("/Users/{id}"),
            json!({"Operations": [{"op": "replace", "path": "active", "value": true}]})
        )
        .await
        .0,
        404
    );
    assert_eq!(app.delete(&format!("/Users/{id}")).await.0, 404);
    let (_, list) = app
        .get("/Users?filter=userName%20eq%20%22adele.vance%40example.com%22")
        .await;
    assert_eq!(list["totalResults"], 0);
    assert_eq!(user_row(&app, &id).await["isDisabled"], 1);
    let events = app
        .count(&format!(
            "SELECT COUNT(*) FROM {{scim}}.scim_event WHERE objectPHID = '{id}' AND outcome = 'ok'"
        ))
        .await;
    assert_eq!(events, 5);
    app.cleanup().await;
}

/// Okta's user flows (docs/scim-clients.md#okta-users): paged exists check, POST without
/// content type and with a password, PUT of the whole object, no-path deactivation.
#[tokio::test]
async fn okta_user_lifecycle() {
    let app = TestApp::spawn().await;
    let (s, list) = app
        .get("/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100")
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            list["totalResults"].clone(),
            list["startIndex"].clone(),
            list["itemsPerPage"].clone()
        ),
        (json!(0), json!(1), json!(0))
    );
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "test.user@okta.local",
        "name": {"givenName": "Test", "familyName": "User"}, "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
        "displayName": "Test User", "locale": "en-US", "externalId": "00ujl29u0le5T6Aj10h7", "groups": [], "password": "1mz050nq", "active": true});
    let resp = app
        .client
        .post(format!("{}/Users", app.base))
        .bearer_auth(&app.token)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: serde_json::Value = resp.json().await.unwrap();
    assert!(created.get("password").is_none());
    let id = created["id"].as_str().unwrap().to_owned();
    // Duplicate: 409 uniqueness, in any case.
    let mut dup = body.clone();
    dup["userName"] = json!("TEST.USER@okta.local");
    let (s, err) = app.post("/Users", dup).await;
    assert_eq!(s, 409);
    assert_eq!(err["scimType"], "uniqueness");
    assert_eq!(err["status"], "409");
    // PUT the object it just read, with a new name.
    let (_, mut got) = app.get(&format!("/Users/{id}")).await;
    got["name"]["familyName"] = json!("Userson");
    got["displayName"] = json!("Test Userson");
    let (s, put) = app.put(&format!("/Users/{id}"), got.clone()).await;
    assert_eq!(s, 200, "{put}");
    assert_eq!(put["name"]["familyName"], "Userson");
    assert_eq!(user_row(&app, &id).await["realName"], "Test Userson");
    // Deactivate: no-path replace.
    let (s, off) = app.patch(&format!("/Users/{id}"), json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "value": {"active": false}}]})).await;
    assert_eq!((s.as_u16(), off["active"].clone()), (200, json!(false)));
    // AIW apps reactivate by PUT with active true; a PUT without `active` keeps it.
    got["active"] = json!(true);
    let (s, on) = app.put(&format!("/Users/{id}"), got.clone()).await;
    assert_eq!((s.as_u16(), on["active"].clone()), (200, json!(true)));
    got.as_object_mut().unwrap().remove("active");
    let (_, kept) = app.put(&format!("/Users/{id}"), got).await;
    assert_eq!(kept["active"], true);
    // Duplicate deprovision requests both succeed.
    for _ in 0..2 {
        let (s, _) = app
            .patch(
                &format!("/Users/{id}"),
                json!({"Operations": [{"op": "replace", "value": {"active": false}}]}),
            )
            .await;
        assert_eq!(s, 200);
    }
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM {{user}}.user_transaction WHERE objectPHID = '{id}' AND transactionType = 'user.disable'")).await, 3);
    app.cleanup().await;
}

/// Every kind of bad input answers its SCIM error and changes nothing.
#[tokio::test]
async fn bad_input_is_refused_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let (_, ok) = app
        .post("/Users", user_body("a@x.com", "a@x.com", "A"))
        .await;
    let id = ok["id"].as_str().unwrap().to_owned();
    let snapshot = || async {
        (
            app.count("SELECT COUNT(*) FROM {user}.user").await,
            app.count("SELECT COUNT(*) FROM {user}.user_email").await,
            app.count("SELECT COUNT(*) FROM {worker}.worker_activetask")
                .await,
            app.count("SELECT COUNT(*) FROM {scim}.scim_user").await,
            app.count("SELECT CAST(SUM(version) AS SIGNED) FROM {scim}.scim_user")
                .await,
            app.count("SELECT COUNT(*) FROM {user}.user_transaction")
                .await,
        )
    };
    let before = snapshot().await;
    let raw = |body: &'static str| {
        let app = &app;
        async move {
            let r = app
                .client
                .post(format!("{}/Users", app.base))
                .bearer_auth(&app.token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let s = r.status();
            (s, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (s, e) = raw("{\"userName\": ").await;
    assert_eq!(
        (s.as_u16(), e["scimType"].clone()),
        (400, json!("invalidSyntax")),
        "{e}"
    );
    assert_eq!(
        e["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    let cases = [
        (
            "/Users",
            json!({"displayName": "no userName"}),
            400,
            "invalidValue",
        ),
        (
            "/Users",
            json!({"userName": "b@x.com", "emails": [{"value": "not an email", "primary": true}]}),
            400,
            "invalidValue",
        ),
        (
            "/Users",
            json!({"userName": "no-email-and-not-an-address"}),
            400,
            "invalidValue",
        ),
        (
            "/Users",
            json!({"userName": "c@x.com", "active": "sometimes"}),
            400,
            "invalidValue",
        ),
        (
            "/Users",
            user_body("A@X.COM", "other@x.com", "dup userName"),
            409,
            "uniqueness",
        ),
        (
            "/Users",
            user_body("d@x.com", "A@x.com", "dup email"),
            409,
            "uniqueness",
        ),
    ];
    for (path, body, status, kind) in cases {
        let (s, e) = app.post(path, body.clone()).await;
        assert_eq!(
            (s.as_u16(), e["scimType"].clone()),
            (status, json!(kind)),
            "{body} -> {e}"
        );
        assert!(!e["detail"].as_str().unwrap_or("").is_empty());
    }
    let patches = [
        (
            json!({"Operations": [{"op": "replace", "path": "nosuch", "value": 1}]}),
            400,
            "invalidPath",
        ),
        (
            json!({"Operations": [{"op": "replace", "path": "emails[type eq", "value": 1}]}),
            400,
            "invalidPath",
        ),
        (
            json!({"Operations": [{"op": "replace", "path": "displayName", "value": "ok"}, {"op": "replace", "path": "id", "value": "x"}]}),
            400,
            "mutability",
        ),
        (json!({"Operations": [{"op": "remove"}]}), 400, "noTarget"),
        (json!({"Operations": "nope"}), 400, "invalidSyntax"),
        (
            json!({"Operations": [{"op": "replace", "path": "emails", "value": [{"value": "b@x.com", "primary": true}]}]}),
            200,
            "",
        ),
    ];
    // A second user whose address the last patch tries to take.
    let (_, _b) = app
        .post("/Users", user_body("b@x.com", "b@x.com", "B"))
        .await;
    let before = (
        before.0 + 1,
        before.1 + 1,
        before.2 + 2,
        before.3 + 1,
        before.4 + 1,
        before.5,
    );
    for (body, status, kind) in patches {
        let (s, e) = app.patch(&format!("/Users/{id}"), body.clone()).await;
        if status == 200 {
            assert_eq!(
                (s.as_u16(), e["scimType"].clone()),
                (409, json!("uniqueness")),
                "{body} -> {e}"
            );
        } else {
            assert_eq!(
                (s.as_u16(), e["scimType"].clone()),
                (status, json!(kind)),
                "{body} -> {e}"
            );
        }
    }
    let (s, _) = app
        .patch(
            "/Users/PHID-USER-doesnotexist00000000",
            json!({"Operations": [{"op": "replace", "path": "displayName", "value": "x"}]}),
        )
        .await;
    assert_eq!(s, 404);
    for f in [
        "nickName2 eq \"x\"",
        "userName eq",
        "userName zz \"x\"",
        "(userName eq \"x\"",
        "active gt true",
    ] {
        let (s, e) = app.get(&format!("/Users?filter={}", urlencode(f))).await;
        assert_eq!(
            (s.as_u16(), e["scimType"].clone()),
            (400, json!("invalidFilter")),
            "{f} -> {e}"
        );
    }
    assert_eq!(snapshot().await, before, "refused requests changed rows");
    // Rejected writes are in the sync log.
    assert!(
        app.count("SELECT COUNT(*) FROM {scim}.scim_event WHERE outcome = 'error'")
            .await
            >= 10
    );
    app.cleanup().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Filters: eq/and/or/pr/not over the closed attribute set, including Entra's forms.
#[tokio::test]
async fn filters_compile_to_the_right_rows() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for (n, ext, display, work, other) in [
        (
            "ann@x.com",
            Some("e1"),
            "Ann Lee",
            "ann@x.com",
            Some("ann@home.org"),
        ),
        ("bob@x.com", Some("e2"), "Bob Stone", "bob@x.com", None),
        ("cy@y.org", None, "Cy Twombly", "cy@y.org", None),
    ] {
        let mut b = user_body(n, work, display);
        if let Some(e) = ext {
            b["externalId"] = json!(e);
        }
        if let Some(o) = other {
            b["emails"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "home", "value": o}));
        }
        let (s, r) = app.post("/Users", b).await;
        assert_eq!(s, 201, "{r}");
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    app.patch(
        &format!("/Users/{}", ids[2]),
        json!({"Operations": [{"op": "replace", "path": "active", "value": false}]}),
    )
    .await;
    let cases: Vec<(&str, Vec<usize>)> = vec![
        (r#"userName eq "BOB@x.com""#, vec![1]),
        (r#"externalId eq "e1""#, vec![0]),
        (r#"externalId eq "E1""#, vec![]),
        (r#"externalId pr"#, vec![0, 1]),
        (r#"displayName eq "ann lee""#, vec![0]),
        (r#"displayName co "o""#, vec![1, 2]),
        (r#"active eq true"#, vec![0, 1]),
        (r#"active eq false or userName sw "ann""#, vec![0, 2]),
        (r#"emails.value eq "ann@home.org""#, vec![0]),
        (r#"emails[type eq "work"].value eq "bob@x.com""#, vec![1]),
        (
            r#"emails[type eq "work" and value ew "@x.com"]"#,
            vec![0, 1],
        ),
        (r#"emails[type eq "home"]"#, vec![0]),
        (
            r#"userName eq "ann@x.com" and not (active eq false)"#,
            vec![0],
        ),
        (r#"id eq "ID1""#, vec![1]),
        (r#"meta.created gt "2000-01-01T00:00:00Z""#, vec![0, 1, 2]),
        (
            r#"userName ne "ann@x.com" and userName ne "bob@x.com""#,
            vec![2],
        ),
    ];
    for (f, want) in cases {
        let f = f.replace("ID1", &ids[1]);
        let (s, list) = app.get(&format!("/Users?filter={}", urlencode(&f))).await;
        assert_eq!(s, 200, "{f}: {list}");
        let mut got: Vec<String> = list["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        got.sort();
        let mut want: Vec<String> = want.iter().map(|i| ids[*i].clone()).collect();
        want.sort();
        assert_eq!(got, want, "{f}");
        assert_eq!(list["totalResults"], want.len(), "{f}");
    }
    // Paging: stable order, count and startIndex, count=0.
    let (_, page) = app.get("/Users?startIndex=2&count=1").await;
    assert_eq!(
        (
            page["totalResults"].clone(),
            page["startIndex"].clone(),
            page["itemsPerPage"].clone()
        ),
        (json!(3), json!(2), json!(1))
    );
    assert_eq!(page["Resources"][0]["id"], ids[1].as_str());
    let (_, none) = app.get("/Users?count=0").await;
    assert_eq!(
        (none["totalResults"].clone(), none["Resources"].clone()),
        (json!(3), json!([]))
    );
    let (_, beyond) = app.get("/Users?startIndex=10").await;
    assert_eq!(beyond["Resources"], json!([]));
    let (_, sorted) = app
        .get("/Users?sortBy=displayName&sortOrder=descending&attributes=displayName")
        .await;
    let names: Vec<&str> = sorted["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Cy Twombly", "Bob Stone", "Ann Lee"]);
    assert!(
        sorted["Resources"][0].get("userName").is_none()
            && sorted["Resources"][0].get("id").is_some()
    );
    // POST .search speaks the same language.
    let (s, found) = app.post("/Users/.search", json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName eq \"cy@y.org\"", "count": 5})).await;
    assert_eq!((s.as_u16(), found["totalResults"].clone()), (200, json!(1)));
    app.cleanup().await;
}

/// Re-POSTing an existing user unchanged is 409 `uniqueness` naming the userName, as a re-POST
/// with another address is; it changes nothing (issue 15).
#[tokio::test]
async fn reposting_an_existing_user_names_the_user_name() {
    let app = TestApp::spawn().await;
    let body = user_body("ann.lee@corp.com", "ann.lee@corp.com", "Ann Lee");
    let (s, created) = app.post("/Users", body.clone()).await;
    assert_eq!(s, 201, "{created}");
    let mut other = body.clone();
    other["emails"] = json!([{"value": "ann.other@corp.com", "primary": true}]);
    for (what, again) in [("unchanged", body.clone()), ("another address", other)] {
        let (s, e) = app.post("/Users", again).await;
        assert_eq!(
            (s.as_u16(), e["scimType"].clone()),
            (409, json!("uniqueness")),
            "{what}: {e}"
        );
        assert_eq!(
            e["detail"], "userName ann.lee@corp.com already exists",
            "{what}: {e}"
        );
    }
    let (_, got) = app
        .get(&format!("/Users/{}", created["id"].as_str().unwrap()))
        .await;
    assert_eq!(got["meta"]["version"], created["meta"]["version"]);
    app.cleanup().await;
}
