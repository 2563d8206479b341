//! Hostile input (issue 6, point 4) through the HTTP service: oversize bodies, deep nesting
//! of JSON and filters, and SQL metacharacters in every string field and filter.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

async fn raw(app: &TestApp, method: Method, path: &str, body: String) -> (u16, Value) {
    let r = app
        .client
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(&app.token)
        .header("content-type", "application/scim+json")
        .body(body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        s,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A body over `max_body_bytes` is 413 on every endpoint that reads one, before parsing.
#[tokio::test]
async fn oversize_bodies_answer_413() {
    let app = TestApp::spawn_with(|c| c.max_body_bytes = 64 * 1024).await;
    let big =
        json!({"schemas": [USER], "userName": "big@x.com", "displayName": "x".repeat(70 * 1024)})
            .to_string();
    for (m, p) in [
        (Method::POST, "/Users"),
        (Method::POST, "/Groups"),
        (Method::POST, "/Users/.search"),
        (Method::PUT, "/Users/PHID-USER-x"),
        (Method::PATCH, "/Groups/PHID-PROJ-x"),
    ] {
        let (s, e) = raw(&app, m.clone(), p, big.clone()).await;
        assert_eq!(s, 413, "{m} {p}: {e}");
        assert_eq!(e["status"], "413");
    }
    // Just under the limit is read (and refused for what it says, not for its size).
    let fits = json!({"schemas": [USER], "userName": "fits@x.com", "displayName": "x".repeat(60 * 1024), "emails": [{"value": "fits@x.com"}]}).to_string();
    let (s, _) = raw(&app, Method::POST, "/Users", fits).await;
    assert_ne!(s, 413);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {scim}.scim_user WHERE userName = 'big@x.com'")
            .await,
        0
    );
    app.cleanup().await;
}

/// JSON nested far beyond serde_json's recursion limit (128) is 400 `invalidSyntax`, not a
/// stack overflow; filters nested beyond the parser's limit (64) are 400 `invalidFilter`.
#[tokio::test]
async fn deep_nesting_is_refused_early() {
    let app = TestApp::spawn().await;
    for depth in [200, 100_000] {
        let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let (s, e) = raw(&app, Method::POST, "/Users", body).await;
        assert_eq!(
            (s, e["scimType"].clone()),
            (400, json!("invalidSyntax")),
            "{depth}: {e}"
        );
        let body = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        let (s, _) = raw(&app, Method::PATCH, "/Groups/PHID-PROJ-x", body).await;
        assert_eq!(s, 400, "{depth}");
    }
    for f in [
        format!("{}userName eq \"a\"{}", "(".repeat(5000), ")".repeat(5000)),
        format!("{}userName eq \"a\"", "not (".repeat(5000)),
        format!(
            "emails[{}value eq \"a\"{}]",
            "(".repeat(500),
            ")".repeat(500)
        ),
        "userName eq \"a\" and ".repeat(20_000) + "active eq true",
    ] {
        let (s, e) = raw(
            &app,
            Method::POST,
            "/Users/.search",
            json!({"filter": f}).to_string(),
        )
        .await;
        assert_eq!(
            (s, e["scimType"].clone()),
            (400, json!("invalidFilter")),
            "{}: {e}",
            &f[..40]
        );
        let path = format!(
            "/Users?filter={}",
            urlencoding::encode(&f[..f.len().min(6000)])
        );
        let (s, _) = app.get(&path).await;
        assert_eq!(s, 400);
    }
    let deep_path = format!(
        "members[{}value eq \"a\"{}]",
        "(".repeat(500),
        ")".repeat(500)
    );
    let (s, e) = raw(
        &app,
        Method::PATCH,
        "/Groups/PHID-PROJ-x",
        json!({"schemas": [PATCH], "Operations": [{"op": "remove", "path": deep_path}]})
            .to_string(),
    )
    .await;
    assert!(s == 400 || s == 404, "{s} {e}");
    app.cleanup().await;
}

/// The strings that break SQL built by concatenation.
fn nasty(tag: &str) -> String {
    format!("{tag} o'brien\"; DROP TABLE user; -- \\' \\\" % _ ` ) OR 1=1 # /* \u{1f600}")
}

/// Every string field (and every filter value) reaches SQL as a bound parameter: the rows
/// hold the values byte for byte, filters match them literally (`%` and `_` included), and
/// no other row or table changed.
#[tokio::test]
async fn sql_metacharacters_are_stored_verbatim_and_match_literally() {
    let app = TestApp::spawn().await;
    let tables_before = app
        .count(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE '{ns}\\_%'"
                .replace("{ns}", app.ns.as_str())
                .as_str(),
        )
        .await;
    let user_name = nasty("un");
    let display = nasty("dn");
    let external = nasty("ext");
    let body = json!({
        "schemas": [USER, ENTERPRISE],
        "userName": user_name,
        "externalId": external,
        "displayName": display,
        "name": {"givenName": nasty("gn"), "familyName": nasty("fn")},
        "title": nasty("title"),
        "emails": [{"value": "o.brien+x_1@corp.com", "primary": true, "type": "work"}, {"value": "second@corp.com", "type": nasty("type")}],
        ENTERPRISE: {"department": nasty("dept"), "manager": {"value": nasty("mgr")}},
    });
    let (s, r) = app.post("/Users", body).await;
    assert_eq!(s, 201, "{r}");
    let id = r["id"].as_str().unwrap().to_owned();
    assert_eq!(r["userName"], user_name.as_str());
    // A decoy whose display name would match a `%` or `_` taken as a wildcard.
    let (s, _) = app.post("/Users", json!({"schemas": [USER], "userName": "decoy@corp.com", "displayName": "dn o'brienX; DROP", "emails": [{"value": "decoy@corp.com"}]})).await;
    assert_eq!(s, 201);

    let row = &app.rows(&format!(
        "SELECT s.userName, s.externalID, u.realName, s.attributes FROM {{scim}}.scim_user s JOIN {{user}}.user u ON u.phid = s.userPHID WHERE s.userPHID = '{id}'"
    )).await[0];
    assert_eq!(row["userName"], user_name.as_str());
    assert_eq!(row["externalID"], external.as_str());
    assert_eq!(row["realName"], display.as_str());
    let attrs: Value = serde_json::from_str(row["attributes"].as_str().unwrap()).unwrap();
    let attrs_text = attrs.to_string();
    for tag in ["gn", "fn", "title", "dept", "mgr", "type"] {
        assert!(
            attrs_text.contains(&serde_json::to_string(&nasty(tag)).unwrap()[1..20]),
            "{tag} in {attrs_text}"
        );
    }
    let (s, got) = app.get(&format!("/Users/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(got["name"]["givenName"], nasty("gn").as_str());
    assert_eq!(got[ENTERPRISE]["department"], nasty("dept").as_str());
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {user}.user_email WHERE address = 'o.brien+x_1@corp.com'")
            .await,
        1
    );

    // Filters with the same values, through GET and .search, match exactly the one user.
    let esc = |s: &str| serde_json::to_string(s).unwrap();
    let filters = [
        format!("userName eq {}", esc(&user_name)),
        format!("externalId eq {}", esc(&external)),
        format!("displayName eq {}", esc(&display)),
        format!(
            "displayName co {}",
            esc("o'brien\"; DROP TABLE user; -- \\' \\\" % _")
        ),
        format!("displayName sw {}", esc("dn o'brien\"")),
        format!("userName ew {}", esc("/* \u{1f600}")),
        format!("emails.value eq {}", esc("o.brien+x_1@corp.com")),
        format!("displayName co {}", esc("% _")),
    ];
    for f in &filters {
        let (s, r) = app.post("/Users/.search", json!({"filter": f})).await;
        assert_eq!(s, 200, "{f}: {r}");
        assert_eq!(r["totalResults"], 1, "{f}: {r}");
        assert_eq!(r["Resources"][0]["id"], id.as_str(), "{f}");
        let (s, r) = app
            .get(&format!("/Users?filter={}", urlencoding::encode(f)))
            .await;
        assert_eq!(
            (s.as_u16(), r["totalResults"].clone()),
            (200, json!(1)),
            "{f}"
        );
    }
    for f in [
        format!("displayName co {}", esc("%")),
        format!("displayName co {}", esc("_")),
        format!("userName sw {}", esc("%")),
    ] {
        let (_, r) = app.post("/Users/.search", json!({"filter": f})).await;
        let n = r["totalResults"].as_u64().unwrap();
        assert!(
            n <= 1,
            "a LIKE wildcard matched more than the literal: {f} -> {n}"
        );
    }

    // PATCH with the values, groups with them, and a group filter.
    let (s, r) = app.patch(&format!("/Users/{id}"), json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "displayName", "value": nasty("patched")}]})).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        app.rows(&format!(
            "SELECT realName FROM {{user}}.user WHERE phid = '{id}'"
        ))
        .await[0]["realName"],
        nasty("patched").as_str()
    );
    let group_name = "Grp o'brien\"; DROP TABLE project; -- % _ `";
    let (s, g) = app.post("/Groups", json!({"displayName": group_name, "externalId": nasty("gext"), "members": [{"value": id}]})).await;
    assert_eq!(s, 201, "{g}");
    let gid = g["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.rows(&format!(
            "SELECT name FROM {{project}}.project WHERE phid = '{gid}'"
        ))
        .await[0]["name"],
        group_name
    );
    for f in [
        format!("displayName eq {}", esc(group_name)),
        format!("externalId eq {}", esc(&nasty("gext"))),
    ] {
        let (s, r) = app.post("/Groups/.search", json!({"filter": f})).await;
        assert_eq!(
            (s.as_u16(), r["totalResults"].clone()),
            (200, json!(1)),
            "{f}: {r}"
        );
    }
    let member_path = format!("members[value eq {}]", esc(&format!("{id}' OR '1'='1")));
    let (s, r) = app
        .patch(
            &format!("/Groups/{gid}"),
            json!({"schemas": [PATCH], "Operations": [{"op": "remove", "path": member_path}]}),
        )
        .await;
    assert!(s.is_success() || s.is_client_error(), "{s} {r}");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM {{project}}.edge WHERE src = '{gid}' AND type = 13"
        ))
        .await,
        1,
        "the injected OR removed nobody"
    );
    // A path id with metacharacters is just an unknown id.
    let (s, _) = app
        .get(&format!("/Users/{}", urlencoding::encode("x' OR '1'='1")))
        .await;
    assert_eq!(s, 404);

    // Nothing else changed: same tables, two users plus the bot, one project.
    let tables_after = app
        .count(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE '{ns}\\_%'"
                .replace("{ns}", app.ns.as_str())
                .as_str(),
        )
        .await;
    assert_eq!(tables_after, tables_before);
    assert_eq!(app.count("SELECT COUNT(*) FROM {user}.user").await, 3);
    assert_eq!(app.count("SELECT COUNT(*) FROM {project}.project").await, 1);
    let v = crate::invariants::check(
        &crate::invariants::Servers::new(&app.pool, app.placement()),
        app.t(),
    )
    .await
    .unwrap();
    assert!(v.is_empty(), "{v:?}");
    app.cleanup().await;
}
