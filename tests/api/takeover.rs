//! What a leaked token cannot take over (issue 11, findings 1, 2 and 9): administrators,
//! mailing lists and the service's own bot are not adopted; an administrator's addresses, bot
//! flag, login links and userName are never changed; the bot is never touched; a person made a
//! bot counts as a deprovision for the blast-radius guard; names are stored as Phabricator
//! holds them and answered as stored.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, user_body};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

async fn exec(app: &TestApp, template: &str) {
    app.exec(template).await;
}

/// What kind of account [`insert_account`] makes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Person,
    Admin,
    MailingList,
    Bot,
}

/// An account made outside SCIM, as Phorge's own editors leave it: verified primary `address`,
/// real name "Hand Made", one web session.
pub(crate) async fn insert_account(
    app: &TestApp,
    username: &str,
    address: &str,
    kind: Kind,
) -> String {
    let phid = phab_scim::db::phabricator::new_phid("USER");
    let now = phab_scim::db::now();
    exec(app, &format!(
        "INSERT INTO {{user}}.user (phid, userName, realName, dateCreated, dateModified, conduitCertificate, isSystemAgent, isDisabled, isAdmin, isEmailVerified, isApproved, accountSecret, isEnrolledInMultiFactor, isMailingList) \
         VALUES ('{phid}', '{username}', 'Hand Made', {now}, {now}, 'c', {b}, 0, {a}, 1, 1, 's', 0, {m})",
        b = u8::from(kind == Kind::Bot),
        a = u8::from(kind == Kind::Admin),
        m = u8::from(kind == Kind::MailingList),
    ))
    .await;
    exec(app, &format!(
        "INSERT INTO {{user}}.user_email (phid, userPHID, address, isVerified, isPrimary, verificationCode, dateCreated, dateModified) \
         VALUES ('{}', '{phid}', '{address}', 1, 1, 'x', {now}, {now})",
        phab_scim::db::phabricator::new_phid("EADR")
    ))
    .await;
    exec(app, &format!(
        "INSERT INTO {{user}}.phabricator_session (userPHID, type, sessionKey, sessionStart, sessionExpires, isPartial, signedLegalpadDocuments, phid) VALUES ('{phid}', 'web', '{}', {now}, {}, 0, 0, '{}')",
        phab_scim::db::phabricator::random_chars(40),
        now + 3600,
        phab_scim::db::phabricator::new_phid("SSSN")
    ))
    .await;
    phid
}

/// Every Phabricator row of an account SCIM could change.
async fn phabricator_rows(app: &TestApp, phid: &str) -> Value {
    json!({
        "user": app.rows(&format!("SELECT * FROM {{user}}.user WHERE phid = '{phid}'")).await,
        "emails": app.rows(&format!("SELECT * FROM {{user}}.user_email WHERE userPHID = '{phid}' ORDER BY id")).await,
        "tokens": app.rows(&format!("SELECT * FROM {{user}}.user_nametoken WHERE userID = (SELECT id FROM {{user}}.user WHERE phid = '{phid}') ORDER BY token")).await,
        "links": app.rows(&format!("SELECT * FROM {{user}}.user_externalaccount WHERE userPHID = '{phid}' ORDER BY id")).await,
        "log": app.count(&format!("SELECT COUNT(*) FROM {{user}}.user_log WHERE userPHID = '{phid}'")).await,
        "xactions": app.count(&format!("SELECT COUNT(*) FROM {{user}}.user_transaction WHERE objectPHID = '{phid}'")).await,
        "sessions": app.count(&format!("SELECT COUNT(*) FROM {{user}}.phabricator_session WHERE userPHID = '{phid}'")).await,
        "temporary": app.rows(&format!("SELECT * FROM {{auth}}.auth_temporarytoken WHERE userPHID = '{phid}' ORDER BY id")).await,
    })
}

/// The account's rows plus its SCIM record.
async fn snapshot(app: &TestApp, phid: &str) -> Value {
    json!({
        "phabricator": phabricator_rows(app, phid).await,
        "scim": app.rows(&format!("SELECT userName, externalID, attributes, version, isDeprovisioned FROM {{scim}}.scim_user WHERE userPHID = '{phid}'")).await,
    })
}

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH], "Operations": ops})
}

/// The refusal is a SCIM error naming the account and the reason.
fn assert_refused(status: reqwest::StatusCode, e: &Value, code: u16, account: &str, why: &str) {
    assert_eq!(status.as_u16(), code, "{e}");
    assert_eq!(e["status"], json!(code.to_string()), "{e}");
    let detail = e["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!("@{account}")) && detail.contains(why),
        "detail should name @{account} and say {why:?}: {detail}"
    );
}

/// Finding 1: the takeover as found. By default an administrator's verified primary address
/// does not adopt it (409, naming the account and why), by userName or by email, and no row
/// changes.
#[tokio::test]
async fn administrators_are_not_adopted_by_default() {
    let app = TestApp::spawn().await;
    let admin = insert_account(&app, "admin", "admin@corp.example", Kind::Admin).await;
    let before = snapshot(&app, &admin).await;
    let (s, e) = app
        .post(
            "/Users",
            user_body("admin@corp.example", "admin@corp.example", "Mallory"),
        )
        .await;
    assert_refused(s, &e, 409, "admin", "administrator");
    assert_eq!(e["scimType"], "uniqueness", "{e}");
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains("adopt_administrators"),
        "{e}"
    );
    // The userName alone (email-shaped, no `emails`) names the same address.
    let (s, e) = app
        .post(
            "/Users",
            json!({"schemas": [USER], "userName": "ADMIN@corp.example", "userType": "Bot"}),
        )
        .await;
    assert_refused(s, &e, 409, "admin", "administrator");
    assert_eq!(snapshot(&app, &admin).await, before);
    app.cleanup().await;
}

/// Finding 1, whatever the settings: with `adopt_administrators` an administrator may be
/// adopted, but a PATCH or PUT that would change its addresses, bot flag, login link or
/// userName is 403 naming the account and the reason, and changes nothing, not even the parts
/// of the same request that were allowed. Its name may still change.
#[tokio::test]
async fn an_administrators_identity_is_never_changed() {
    let app = TestApp::spawn_with(|c| {
        c.adopt_administrators = true;
        c.login_provider = Some("ldap:self".into());
        c.login_identifier = "{userNameLocalPart}".into();
    })
    .await;
    let now = phab_scim::db::now();
    exec(&app, &format!(
        "INSERT INTO {{auth}}.auth_providerconfig (phid, providerClass, providerType, providerDomain, isEnabled, shouldAllowLogin, shouldAllowRegistration, shouldAllowLink, shouldAllowUnlink, shouldTrustEmails, properties, dateCreated, dateModified, shouldAutoLogin) \
         VALUES ('PHID-AUTH-aaaaaaaaaaaaaaaaaaaa', 'PhabricatorLDAPAuthProvider', 'ldap', 'self', 1, 1, 0, 1, 0, 0, '{{}}', {now}, {now}, 0)"
    ))
    .await;
    let admin = insert_account(&app, "admin", "admin@corp.example", Kind::Admin).await;
    let untouched = phabricator_rows(&app, &admin).await;
    let (s, r) = app
        .post(
            "/Users",
            user_body("admin@corp.example", "admin@corp.example", "Hand Made"),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["id"], admin.as_str(), "adopted");
    // Adoption linked no login: a link would let whoever holds that directory identity in.
    assert_eq!(phabricator_rows(&app, &admin).await, untouched);
    let before = snapshot(&app, &admin).await;
    let path = format!("/Users/{admin}");
    for (ops, why) in [
        (
            json!([{"op": "replace", "path": "emails", "value": [{"value": "mallory@evil.example", "primary": true}]}]),
            "address",
        ),
        (
            json!([{"op": "add", "path": "emails", "value": [{"value": "admin.alt@corp.example", "type": "home"}]}]),
            "address",
        ),
        (
            json!([{"op": "replace", "path": "userType", "value": "Bot"}]),
            "bot",
        ),
        (
            json!([{"op": "replace", "path": "userType", "value": "agent"}]),
            "bot",
        ),
        (
            json!([{"op": "replace", "path": "userName", "value": "mallory@corp.example"}]),
            "userName",
        ),
        // An allowed change bundled with a forbidden one: all of it is refused.
        (
            json!([{"op": "replace", "path": "displayName", "value": "Renamed"}, {"op": "replace", "path": "emails", "value": [{"value": "admin2@corp.example", "primary": true}]}]),
            "address",
        ),
    ] {
        let (s, e) = app.patch(&path, patch(ops.clone())).await;
        assert_refused(s, &e, 403, "admin", "administrator");
        assert!(e["detail"].as_str().unwrap().contains(why), "{ops}: {e}");
        assert_eq!(
            phabricator_rows(&app, &admin).await,
            before["phabricator"],
            "{ops}"
        );
    }
    let mut put = user_body("admin@corp.example", "evil@evil.example", "Hand Made");
    let (s, e) = app.put(&path, put.clone()).await;
    assert_refused(s, &e, 403, "admin", "address");
    put["emails"] = json!([{"value": "admin@corp.example", "primary": true}]);
    put["userType"] = json!("Bot");
    let (s, e) = app.put(&path, put).await;
    assert_refused(s, &e, 403, "admin", "bot");
    assert_eq!(phabricator_rows(&app, &admin).await, before["phabricator"]);
    // No login link was made for the administrator at any point.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM {{user}}.user_externalaccount WHERE userPHID = '{admin}'"
        ))
        .await,
        0
    );
    // What remains allowed: the name.
    let (s, e) = app
        .patch(
            &path,
            patch(json!([{"op": "replace", "path": "displayName", "value": "Ada Admin"}])),
        )
        .await;
    assert_eq!(s, 200, "{e}");
    let row = app
        .rows(&format!(
            "SELECT realName, isAdmin, isSystemAgent FROM {{user}}.user WHERE phid = '{admin}'"
        ))
        .await;
    assert_eq!(
        row[0],
        json!({"realName": "Ada Admin", "isAdmin": 1, "isSystemAgent": 0})
    );
    assert_eq!(
        app.rows(&format!(
            "SELECT address, isPrimary, isVerified FROM {{user}}.user_email WHERE userPHID = '{admin}'"
        ))
        .await,
        vec![json!({"address": "admin@corp.example", "isPrimary": 1, "isVerified": 1})]
    );
    app.cleanup().await;
}

/// Finding 1: with a login identifier the IdP controls apart from addresses and userName
/// (`{externalId}`), a write that would move an administrator's login link is refused too.
#[tokio::test]
async fn an_administrators_login_link_is_never_moved() {
    let app = TestApp::spawn_with(|c| {
        c.adopt_administrators = true;
        c.login_provider = Some("ldap:self".into());
        c.login_identifier = "{externalId}".into();
    })
    .await;
    let now = phab_scim::db::now();
    exec(&app, &format!(
        "INSERT INTO {{auth}}.auth_providerconfig (phid, providerClass, providerType, providerDomain, isEnabled, shouldAllowLogin, shouldAllowRegistration, shouldAllowLink, shouldAllowUnlink, shouldTrustEmails, properties, dateCreated, dateModified, shouldAutoLogin) \
         VALUES ('PHID-AUTH-aaaaaaaaaaaaaaaaaaaa', 'PhabricatorLDAPAuthProvider', 'ldap', 'self', 1, 1, 0, 1, 0, 0, '{{}}', {now}, {now}, 0)"
    ))
    .await;
    let admin = insert_account(&app, "admin", "admin@corp.example", Kind::Admin).await;
    let mut body = user_body("admin@corp.example", "admin@corp.example", "Hand Made");
    body["externalId"] = json!("admin-1");
    let (s, r) = app.post("/Users", body).await;
    assert_eq!(s, 201, "{r}");
    let before = phabricator_rows(&app, &admin).await;
    let (s, e) = app
        .patch(
            &format!("/Users/{admin}"),
            patch(json!([{"op": "replace", "path": "externalId", "value": "mallory"}])),
        )
        .await;
    assert_refused(s, &e, 403, "admin", "login links");
    assert_eq!(phabricator_rows(&app, &admin).await, before);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {user}.user_externalaccount")
            .await,
        0
    );
    app.cleanup().await;
}

/// Finding 1, the flag is read live: a managed user made administrator in Phabricator later is
/// protected from the next request on (the check reads the locked `user` row, no cache).
#[tokio::test]
async fn a_user_made_administrator_later_is_protected_at_once() {
    let app = TestApp::spawn().await;
    let (s, r) = app
        .post(
            "/Users",
            user_body("boss@corp.example", "boss@corp.example", "Boss"),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let boss = r["id"].as_str().unwrap().to_owned();
    let path = format!("/Users/{boss}");
    // One write before the promotion, so nothing of the user is cached cold.
    let (s, _) = app
        .patch(
            &path,
            patch(json!([{"op": "replace", "path": "title", "value": "CEO"}])),
        )
        .await;
    assert_eq!(s, 200);
    exec(
        &app,
        &format!("UPDATE {{user}}.user SET isAdmin = 1 WHERE phid = '{boss}'"),
    )
    .await;
    let before = phabricator_rows(&app, &boss).await;
    let (s, e) = app
        .patch(
            &path,
            patch(json!([{"op": "replace", "path": "emails", "value": [{"value": "mallory@evil.example", "primary": true}]}])),
        )
        .await;
    assert_refused(s, &e, 403, "boss", "address");
    let (s, e) = app
        .patch(
            &path,
            patch(json!([{"op": "replace", "path": "userType", "value": "Bot"}])),
        )
        .await;
    assert_refused(s, &e, 403, "boss", "bot");
    assert_eq!(phabricator_rows(&app, &boss).await, before);
    app.cleanup().await;
}

/// Finding 1: mailing lists are never adopted, whatever the settings.
#[tokio::test]
async fn mailing_lists_are_never_adopted() {
    let app = TestApp::spawn_with(|c| c.adopt_administrators = true).await;
    let list = insert_account(&app, "announce", "announce@corp.example", Kind::MailingList).await;
    let before = snapshot(&app, &list).await;
    let (s, e) = app
        .post(
            "/Users",
            user_body("announce@corp.example", "announce@corp.example", "Announce"),
        )
        .await;
    assert_refused(s, &e, 409, "announce", "mailing list");
    assert_eq!(snapshot(&app, &list).await, before);
    app.cleanup().await;
}

/// An existing bot (a CI or automation account made in Phabricator) is never adopted: a
/// token could otherwise adopt it, make it a person (`userType` away from Bot) and move its
/// address, then reset its password and log in with whatever the automation may do.
#[tokio::test]
async fn existing_bots_are_never_adopted() {
    let app = TestApp::spawn_with(|c| c.adopt_administrators = true).await;
    let bot = insert_account(&app, "ci-bot", "ci-bot@corp.example", Kind::Bot).await;
    let before = snapshot(&app, &bot).await;
    let (s, e) = app
        .post(
            "/Users",
            user_body("ci-bot@corp.example", "ci-bot@corp.example", "CI"),
        )
        .await;
    assert_refused(s, &e, 409, "ci-bot", "bot");
    assert_eq!(snapshot(&app, &bot).await, before);
    app.cleanup().await;
}

/// Finding 1: the service's own bot (any account a SCIM token speaks for) is never adopted,
/// by its address, by a placeholder address derived from a colliding userName, or as another
/// token's bot; a bot that an older version adopted is refused every write; and
/// `phab-scim token create` keeps working.
#[tokio::test]
async fn the_services_own_bot_is_never_touched() {
    let app = TestApp::spawn_with(|c| {
        c.adopt_administrators = true;
        c.placeholder_email_domain = Some("corp.example".into());
    })
    .await;
    let prov = phab_scim::provisioning::Provisioner {
        db: app.db.clone(),
        cfg: std::sync::Arc::new(app.cfg.clone()),
    };
    let other_bot = prov.ensure_bot("okta-bot").await.unwrap();
    phab_scim::token::issue(&app.db, &other_bot, "okta", None)
        .await
        .unwrap();
    let bots = [app.bot_phid.clone(), other_bot.clone()];
    let mut before = Vec::new();
    for b in &bots {
        before.push(phabricator_rows(&app, b).await);
    }
    for (body, account) in [
        (
            user_body(
                "scim-bot@corp.example",
                "scim-bot@corp.example",
                "Not A Bot",
            ),
            "scim-bot",
        ),
        (
            json!({"schemas": [USER], "userName": "okta-bot@corp.example", "active": true}),
            "okta-bot",
        ),
        // No address: the placeholder `scim-bot@corp.example` is the bot's.
        (
            json!({"schemas": [USER], "userName": "scim-bot", "displayName": "Not A Bot"}),
            "scim-bot",
        ),
    ] {
        let (s, e) = app.post("/Users", body.clone()).await;
        assert_refused(s, &e, 409, account, "bot");
    }
    // A userName whose derived username is the bot's gets another username, never the bot.
    let (s, r) = app
        .post(
            "/Users",
            user_body("scim-bot@elsewhere.example", "sb@elsewhere.example", "SB"),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    assert_ne!(r["id"], app.bot_phid.as_str());
    for (b, snap) in bots.iter().zip(&before) {
        assert_eq!(&phabricator_rows(&app, b).await, snap, "{b}");
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {scim}.scim_user WHERE userName LIKE '%bot%' AND userName <> 'scim-bot@elsewhere.example'")
            .await,
        0
    );
    // A bot adopted before this fix: every write is refused, and nothing changes.
    let now = phab_scim::db::now();
    exec(&app, &format!(
        "INSERT INTO {{scim}}.scim_user (userPHID, userName, externalID, attributes, version, isDeprovisioned, dateCreated, dateModified) \
         VALUES ('{}', 'scim-bot@corp.example', NULL, '{{}}', 1, 0, {now}, {now})",
        app.bot_phid
    ))
    .await;
    let path = format!("/Users/{}", app.bot_phid);
    let (s, e) = app
        .patch(
            &path,
            patch(json!([{"op": "replace", "path": "displayName", "value": "Taken"}])),
        )
        .await;
    assert_refused(s, &e, 403, "scim-bot", "bot");
    let (s, e) = app
        .put(
            &path,
            user_body("scim-bot@corp.example", "scim-bot@corp.example", "Taken"),
        )
        .await;
    assert_refused(s, &e, 403, "scim-bot", "bot");
    let (s, e) = app.delete(&path).await;
    assert_refused(s, &e, 403, "scim-bot", "bot");
    let (s, e) = app
        .post(
            "/Groups",
            json!({"displayName": "Bots", "members": [{"value": app.bot_phid}]}),
        )
        .await;
    assert_eq!(s, 400, "not a member candidate either: {e}");
    for (b, snap) in bots.iter().zip(&before) {
        assert_eq!(&phabricator_rows(&app, b).await, snap, "{b}");
    }
    assert_eq!(
        prov.ensure_bot("scim-bot").await.unwrap(),
        app.bot_phid,
        "token create still finds its bot"
    );
    let (s, _) = app.get("/Users").await;
    assert_eq!(s, 200, "the token still works");
    app.cleanup().await;
}

async fn managed_users(app: &TestApp, n: usize, prefix: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let name = format!("{prefix}{i}@corp.example");
        let (s, r) = app
            .post("/Users", user_body(&name, &name, &format!("User {i}")))
            .await;
        assert_eq!(s, 201, "{r}");
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    ids
}

fn to_bot(kind: &str) -> Value {
    patch(json!([{"op": "replace", "path": "userType", "value": kind}]))
}

/// Finding 2: making a person a bot or agent ends their web access as surely as
/// `active: false`, so the guard counts it: a burst of conversions is stopped like a burst of
/// deactivations, the two count together, and each conversion stamps `dateDeprovisioned`.
#[tokio::test]
async fn bot_conversions_trip_the_deprovision_guard() {
    // 12 users, 25 %: three deprovisions in the window pass, the fourth is refused.
    let app = TestApp::spawn_with(|c| {
        c.deprovision_guard_share = 0.25;
        c.deprovision_guard_min = 2;
        c.deprovision_guard_window_secs = 3600;
    })
    .await;
    let ids = managed_users(&app, 12, "b").await;
    app.establish_users().await;
    for (id, kind) in ids.iter().take(2).zip(["Bot", "agent"]) {
        let (s, e) = app.patch(&format!("/Users/{id}"), to_bot(kind)).await;
        assert_eq!(s, 200, "{e}");
    }
    let (s, e) = app
        .patch(
            &format!("/Users/{}", ids[2]),
            patch(json!([{"op": "replace", "path": "active", "value": false}])),
        )
        .await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {scim}.scim_user WHERE dateDeprovisioned IS NOT NULL")
            .await,
        3
    );
    let (s, h, e) = app
        .send(
            Method::PATCH,
            &format!("/Users/{}", ids[3]),
            Some(to_bot("Bot")),
        )
        .await;
    assert_eq!(s, 429, "{e}");
    assert!(h.contains_key("retry-after"));
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains("refusing to deprovision"),
        "{e}"
    );
    let mut put = user_body("b4@corp.example", "b4@corp.example", "User 4");
    put["userType"] = json!("Agent");
    let (s, _) = app.put(&format!("/Users/{}", ids[4]), put).await;
    assert_eq!(s, 429);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {user}.user WHERE isSystemAgent = 1")
            .await,
        3,
        "the service's bot and two conversions"
    );
    // A bot becoming a person again gains web access: not a deprovision.
    let (s, e) = app
        .patch(
            &format!("/Users/{}", ids[0]),
            patch(json!([{"op": "remove", "path": "userType"}])),
        )
        .await;
    assert_eq!(s, 200, "{e}");
    app.cleanup().await;
}

/// Finding 9: a real name is stored as Phabricator holds it (128 bytes, like Phorge's
/// `PhabricatorUser::validateRealName`), without control characters, and answered as stored;
/// an adoption that sends no name keeps the account's.
#[tokio::test]
async fn names_are_stored_as_phabricator_holds_them() {
    let app = TestApp::spawn().await;
    let real_name = |id: String| {
        let app = &app;
        async move {
            app.rows(&format!(
                "SELECT realName FROM {{user}}.user WHERE phid = '{id}'"
            ))
            .await[0]["realName"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let long = format!("Zoë {}", "x".repeat(296));
    let (s, r) = app
        .post(
            "/Users",
            user_body("long@corp.example", "long@corp.example", &long),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let id = r["id"].as_str().unwrap().to_owned();
    let stored = real_name(id.clone()).await;
    assert_eq!(stored.len(), 128);
    assert!(long.starts_with(&stored));
    assert_eq!(r["displayName"], stored.as_str(), "answered as stored");
    assert_eq!(
        app.get(&format!("/Users/{id}")).await.1["displayName"],
        stored.as_str()
    );

    let (s, r) = app
        .post(
            "/Users",
            user_body(
                "ctl@corp.example",
                "ctl@corp.example",
                "Ann\u{0}a\u{7}\tLee\u{1b}",
            ),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let id = r["id"].as_str().unwrap().to_owned();
    assert_eq!(real_name(id.clone()).await, "Anna Lee");
    assert_eq!(r["displayName"], "Anna Lee");
    let (s, r) = app
        .patch(
            &format!("/Users/{id}"),
            patch(json!([{"op": "replace", "path": "displayName", "value": "\u{0}\u{0}"}, {"op": "replace", "path": "name", "value": {"formatted": "Ann\u{9f}a\r\nLee"}}])),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(real_name(id.clone()).await, "Anna Lee");
    assert_eq!(r["name"]["formatted"], "Anna Lee");
    assert!(r.get("displayName").is_none(), "{r}");

    // Adoption without a name keeps the account's; so does a later write without one.
    let hand = insert_account(&app, "hand", "hand@corp.example", Kind::Person).await;
    let (s, r) = app
        .post(
            "/Users",
            json!({"schemas": [USER], "userName": "hand@corp.example", "emails": [{"value": "hand@corp.example", "primary": true}]}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["id"], hand.as_str());
    assert_eq!(real_name(hand.clone()).await, "Hand Made");
    let (s, _) = app
        .patch(
            &format!("/Users/{hand}"),
            patch(json!([{"op": "replace", "path": "title", "value": "Builder"}])),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(real_name(hand.clone()).await, "Hand Made");
    // Once the IdP sends a name, it is the IdP's.
    let (s, _) = app
        .patch(
            &format!("/Users/{hand}"),
            patch(json!([{"op": "replace", "path": "displayName", "value": "Hand Maker"}])),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(real_name(hand.clone()).await, "Hand Maker");
    app.cleanup().await;
}

/// An adoption refused part-way (here: an administrator, adoptable by setting, whose addresses
/// the POST would change) is a POST that conflicts with the existing account: 409, like an
/// adoption refused outright, not the 403 of a refused PATCH; and nothing is written.
#[tokio::test]
async fn an_adoption_refused_part_way_is_a_conflict() {
    let app = TestApp::spawn_with(|c| c.adopt_administrators = true).await;
    let admin = insert_account(&app, "boss", "boss@corp.example", Kind::Admin).await;
    let before = snapshot(&app, &admin).await;
    let mut body = user_body("boss@corp.example", "boss@corp.example", "Boss");
    body["emails"] = json!([
        {"value": "boss@corp.example", "primary": true},
        {"value": "attacker@elsewhere.example"}
    ]);
    let (s, e) = app.post("/Users", body).await;
    assert_refused(s, &e, 409, "boss", "administrator");
    assert_eq!(snapshot(&app, &admin).await, before);
    app.cleanup().await;
}
