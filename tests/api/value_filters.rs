//! Value-path and sub-attribute filters on the multi-valued complex User attributes kept in the
//! JSON document (`phoneNumbers`, `ims`, `photos`, `addresses`, `entitlements`, `roles`,
//! `x509Certificates`), RFC 7644 §3.4.2.2: `attr[filter]` matches when ONE value satisfies the
//! whole inner filter, `attr.sub op x` when any value does.

use serde_json::{Value, json};

use crate::helpers::TestApp;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

fn enc(s: &str) -> String {
    urlencoding::encode(s).into_owned()
}

async fn create(app: &TestApp, user_name: &str, extra: Value) -> String {
    let mut body = json!({
        "schemas": [USER],
        "userName": user_name,
        "emails": [{"value": user_name, "type": "work", "primary": true}],
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (s, b) = app.post("/Users", body).await;
    assert_eq!(s, 201, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

async fn filtered(app: &TestApp, filter: &str) -> Vec<String> {
    let (s, b) = app.get(&format!("/Users?filter={}", enc(filter))).await;
    assert_eq!(s, 200, "{filter} -> {b}");
    let mut names: Vec<String> = b["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// ann, ben, cat and dan (dan has no multi-valued attribute besides emails).
async fn people(app: &TestApp) -> String {
    let ann = create(
        app,
        "ann@x.test",
        json!({
            "phoneNumbers": [
                {"value": "+1 555 0100", "type": "work", "primary": true},
                {"value": "+1 777 0199", "type": "mobile"},
            ],
            "roles": [{"value": "admin"}],
            "addresses": [
                {"type": "work", "postalCode": "98052", "locality": "Redmond"},
                {"type": "home", "postalCode": "10001"},
            ],
        }),
    )
    .await;
    create(
        app,
        "ben@x.test",
        json!({
            // A home number with 555 and a work number without it: no single value has both.
            "phoneNumbers": [
                {"value": "+1 555 0200", "type": "home"},
                {"value": "+1 888 0200", "type": "Work", "primary": false},
            ],
            "roles": [{"value": "Admin-Lite"}, {"value": "dev", "primary": true}],
            "addresses": [{"type": "home", "postalCode": "98052"}],
            "ims": [{"value": "catxim", "type": "aim"}],
        }),
    )
    .await;
    create(
        app,
        "cat@x.test",
        json!({
            "roles": [{"value": "50%_off!"}],
            "entitlements": [{"value": "Lic'; DROP TABLE x; --"}],
            "ims": [{"value": "cat_im", "type": "xmpp"}],
            "photos": [{"value": "https://x.test/Cat.png", "type": "photo"}],
            "x509Certificates": [{"value": "TUlJQ0FC"}],
        }),
    )
    .await;
    create(app, "dan@x.test", json!({})).await;
    ann
}

#[tokio::test]
async fn value_filters_match_one_value_per_filter() {
    let app = TestApp::spawn().await;
    people(&app).await;
    let (a, b, c, d) = ("ann@x.test", "ben@x.test", "cat@x.test", "dan@x.test");
    let cases: Vec<(&str, Vec<&str>)> = vec![
        // One value must satisfy the whole value filter; `.sub` terms may use different values.
        (
            r#"phoneNumbers[type eq "work" and value co "555"]"#,
            vec![a],
        ),
        (
            r#"phoneNumbers.type eq "work" and phoneNumbers.value co "555""#,
            vec![a, b],
        ),
        (
            r#"phoneNumbers[type eq "WORK" and value co "888"]"#,
            vec![b],
        ),
        (r#"PHONENUMBERS[TYPE eq "work"]"#, vec![a, b]),
        // Entra's trailing sub-attribute form.
        (
            r#"phoneNumbers[type eq "work"].value eq "+1 555 0100""#,
            vec![a],
        ),
        (
            r#"phoneNumbers[type eq "home"].value eq "+1 555 0100""#,
            vec![],
        ),
        (
            r#"addresses[type eq "work"].postalCode eq "98052""#,
            vec![a],
        ),
        (r#"addresses.postalCode eq "98052""#, vec![a, b]),
        (r#"addresses[locality co "REDMOND"]"#, vec![a]),
        // Every operator on a string sub-attribute.
        (r#"phoneNumbers.value eq "+1 555 0100""#, vec![a]),
        (r#"phoneNumbers.value ne "+1 555 0100""#, vec![a, b]),
        (r#"phoneNumbers.value sw "+1 777""#, vec![a]),
        (r#"phoneNumbers.value ew "0200""#, vec![b]),
        (r#"phoneNumbers.value co "555""#, vec![a, b]),
        (r#"phoneNumbers.value gt "+1 8""#, vec![b]),
        (r#"phoneNumbers.value ge "+1 888 0200""#, vec![b]),
        (r#"phoneNumbers.value lt "+1 555 0201""#, vec![a, b]),
        (r#"phoneNumbers.value lt "+1 555 0200""#, vec![a]),
        (r#"phoneNumbers.value le "+1 555 0100""#, vec![a]),
        (r#"phoneNumbers.type lt "i""#, vec![b]),
        // Presence.
        (r#"phoneNumbers pr"#, vec![a, b]),
        (r#"not (phoneNumbers pr)"#, vec![c, d]),
        (r#"phoneNumbers.value pr"#, vec![a, b]),
        (r#"phoneNumbers[primary pr]"#, vec![a, b]),
        (r#"ims.type pr"#, vec![b, c]),
        (r#"addresses[locality pr]"#, vec![a]),
        // primary: eq/ne; an unassigned primary is false.
        (r#"phoneNumbers[primary eq true]"#, vec![a]),
        (r#"phoneNumbers[primary eq false]"#, vec![a, b]),
        (
            r#"phoneNumbers[primary eq true and type eq "mobile"]"#,
            vec![],
        ),
        (
            r#"phoneNumbers[primary ne true and value sw "+1 777"]"#,
            vec![a],
        ),
        (r#"roles[value eq "dev" and primary eq "true"]"#, vec![b]),
        (r#"roles.primary eq true"#, vec![b]),
        // Case rules: caseExact=false sub-attributes compare case-insensitively.
        (r#"roles.value eq "admin""#, vec![a]),
        (r#"roles.value eq "ADMIN""#, vec![a]),
        (r#"roles eq "Admin""#, vec![a]),
        (r#"roles.value sw "ADMIN""#, vec![a, b]),
        (r#"photos[type eq "photo" and value ew ".PNG"]"#, vec![c]),
        // x509Certificates.value is binary: exact.
        (r#"x509Certificates.value eq "TUlJQ0FC""#, vec![c]),
        (r#"x509Certificates.value eq "tuljq0fc""#, vec![]),
        (r#"x509Certificates[value pr]"#, vec![c]),
        (r#"x509Certificates pr"#, vec![c]),
        // not, or and and across value filters and core attributes.
        (r#"not (roles[value eq "admin"])"#, vec![b, c, d]),
        (
            r#"not (phoneNumbers[value eq "+1 555 0100"])"#,
            vec![b, c, d],
        ),
        (r#"roles[not (value eq "admin")]"#, vec![b, c]),
        (
            r#"roles[value eq "admin"] or ims[type eq "XMPP"]"#,
            vec![a, c],
        ),
        (r#"roles[value eq "admin"] and ims[type eq "XMPP"]"#, vec![]),
        (r#"roles[value eq "admin" or value eq "dev"]"#, vec![a, b]),
        (r#"userName sw "a" and roles pr"#, vec![a]),
        (r#"emails[type eq "work"] and entitlements pr"#, vec![c]),
        (
            r#"urn:ietf:params:scim:schemas:core:2.0:User:roles.value eq "dev""#,
            vec![b],
        ),
        // SQL and LIKE metacharacters are stored and matched literally.
        (r#"roles.value eq "50%_off!""#, vec![c]),
        (r#"roles.value eq "50%xoff!""#, vec![]),
        (r#"roles.value co "%""#, vec![c]),
        (r#"roles.value co "%_o""#, vec![c]),
        (r#"roles.value sw "50%""#, vec![c]),
        (r#"roles.value ew "!""#, vec![c]),
        (r#"ims.value co "t_i""#, vec![c]),
        (r#"entitlements.value eq "Lic'; DROP TABLE x; --""#, vec![c]),
        (r#"entitlements[value co "'; drop table"]"#, vec![c]),
    ];
    for (f, want) in cases {
        assert_eq!(filtered(&app, f).await, want, "{f}");
    }

    // The same through POST .search.
    let (s, body) = app
        .post(
            "/Users/.search",
            json!({"schemas": [SEARCH], "filter": r#"roles[value eq "dev"]"#}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["totalResults"], 1, "{body}");
    app.cleanup().await;
}

#[tokio::test]
async fn value_filters_follow_patches() {
    let app = TestApp::spawn().await;
    let ann = people(&app).await;
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "add", "path": "roles", "value": [{"value": "ops"}]},
            {"op": "replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "+1 999 0100"},
        ],
    });
    let (s, b) = app.patch(&format!("/Users/{ann}"), patch).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        filtered(&app, r#"roles.value eq "ops""#).await,
        vec!["ann@x.test"]
    );
    assert_eq!(
        filtered(&app, r#"roles[value eq "admin"] and roles[value eq "ops"]"#).await,
        vec!["ann@x.test"]
    );
    assert_eq!(
        filtered(&app, r#"phoneNumbers[type eq "work" and value co "555"]"#).await,
        Vec::<String>::new()
    );
    assert_eq!(
        filtered(&app, r#"phoneNumbers[type eq "work"].value sw "+1 999""#).await,
        vec!["ann@x.test"]
    );
    app.cleanup().await;
}

#[tokio::test]
async fn bad_value_filters_are_invalid_filter() {
    let app = TestApp::spawn().await;
    for f in [
        r#"phoneNumbers[nope eq "1"]"#,
        r#"phoneNumbers.nope eq "1""#,
        r#"addresses[type eq "work"].zip eq "1""#,
        r#"roles[primary gt true]"#,
        r#"roles.primary co "t""#,
        r#"x509Certificates.value co "M""#,
        r#"addresses eq "x""#,
        r#"roles[value eq "a" and emails[value eq "x"]]"#,
    ] {
        let (s, b) = app.get(&format!("/Users?filter={}", enc(f))).await;
        assert_eq!(s.as_u16(), 400, "{f} -> {b}");
        assert_eq!(b["scimType"], "invalidFilter", "{f} -> {b}");
    }
    app.cleanup().await;
}
