//! The SCIM protocol beyond the resource lifecycles (RFC 7643, RFC 7644): discovery, the
//! filter grammar on Users and Groups, sorting, projection on reads and writes, paging, ETags,
//! the root search, error bodies and bad input.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

fn enc(s: &str) -> String {
    urlencoding::encode(s).into_owned()
}

fn ops(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

fn assert_error(status: reqwest::StatusCode, body: &Value, want: u16, scim_type: Option<&str>) {
    assert_eq!(status.as_u16(), want, "{body}");
    assert_eq!(
        body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"]),
        "{body}"
    );
    assert_eq!(
        body["status"],
        json!(want.to_string()),
        "status is a string: {body}"
    );
    assert_eq!(
        body.get("scimType").and_then(Value::as_str),
        scim_type,
        "{body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

/// Three users with distinct names, titles and enterprise data; returns their ids.
async fn people(app: &TestApp) -> (String, String, String) {
    let mut ids = Vec::new();
    for (user_name, given, family, title, dept, emp, nick, ext) in [
        (
            "Alice@Example.com",
            "Alice",
            "Zephyr",
            "Engineer",
            "R&D",
            "100",
            Some("Al"),
            "EXT-a",
        ),
        (
            "bob@example.com",
            "Bob",
            "Young",
            "Senior Engineer",
            "Sales",
            "200",
            None,
            "ext-b",
        ),
        (
            "carol@example.org",
            "Carol",
            "Xu",
            "Manager",
            "R&D",
            "300",
            None,
            "EXT-c",
        ),
    ] {
        let mut body = json!({
            "schemas": [USER, ENTERPRISE],
            "userName": user_name,
            "externalId": ext,
            "name": {"givenName": given, "familyName": family},
            "displayName": format!("{given} {family}"),
            "title": title,
            "emails": [{"value": user_name.to_lowercase(), "type": "work", "primary": true}, {"value": format!("{}@home.test", given.to_lowercase()), "type": "home"}],
            ENTERPRISE: {"department": dept, "employeeNumber": emp},
        });
        if let Some(n) = nick {
            body["nickName"] = json!(n);
        }
        let (s, b) = app.post("/Users", body).await;
        assert_eq!(s, 201, "{b}");
        ids.push(b["id"].as_str().unwrap().to_owned());
        // meta.created has one-second resolution: keep creation times apart.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    (ids[0].clone(), ids[1].clone(), ids[2].clone())
}

async fn user_names(app: &TestApp, query: &str) -> Vec<String> {
    let (s, b) = app.get(&format!("/Users?{query}")).await;
    assert_eq!(s, 200, "{query} -> {b}");
    b["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap().to_owned())
        .collect()
}

async fn filtered(app: &TestApp, filter: &str) -> Vec<String> {
    let mut names = user_names(app, &format!("filter={}", enc(filter))).await;
    names.sort();
    names
}

#[tokio::test]
async fn service_provider_config_states_what_is_supported() {
    let app = TestApp::spawn().await;
    let (s, h, spc) = app.send(Method::GET, "/ServiceProviderConfig", None).await;
    assert_eq!(s, 200);
    assert_eq!(h["content-type"], "application/scim+json");
    assert_eq!(
        spc["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"])
    );
    assert_eq!(spc["patch"], json!({"supported": true}));
    assert_eq!(
        spc["bulk"],
        json!({"supported": true, "maxOperations": 1000, "maxPayloadSize": app.cfg.max_body_bytes})
    );
    assert_eq!(
        spc["filter"],
        json!({"supported": true, "maxResults": app.cfg.max_results})
    );
    assert_eq!(spc["sort"], json!({"supported": true}));
    assert_eq!(spc["etag"], json!({"supported": true}));
    assert_eq!(spc["changePassword"], json!({"supported": false}));
    assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");
    app.cleanup().await;
}

#[tokio::test]
async fn resource_types_and_schemas_describe_the_resources() {
    let app = TestApp::spawn().await;
    let (s, rts) = app.get("/ResourceTypes").await;
    assert_eq!(s, 200);
    assert_eq!(rts["totalResults"], 2);
    let user_rt = &rts["Resources"][0];
    assert_eq!(
        (
            user_rt["name"].clone(),
            user_rt["endpoint"].clone(),
            user_rt["schema"].clone()
        ),
        (json!("User"), json!("/Users"), json!(USER))
    );
    assert_eq!(
        user_rt["schemaExtensions"],
        json!([{"schema": ENTERPRISE, "required": false}])
    );
    let (s, g) = app.get("/ResourceTypes/Group").await;
    assert_eq!((s.as_u16(), g["endpoint"].clone()), (200, json!("/Groups")));

    let (s, schemas) = app.get("/Schemas").await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = schemas["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![USER, ENTERPRISE, GROUP]);
    let (s, user) = app.get(&format!("/Schemas/{USER}")).await;
    assert_eq!(s, 200);
    let attr = |doc: &Value, name: &str| {
        doc["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .cloned()
            .unwrap()
    };
    let sub = |a: &Value, name: &str| {
        a["subAttributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap()
    };
    let user_name = attr(&user, "userName");
    assert_eq!(
        (
            user_name["required"].clone(),
            user_name["uniqueness"].clone(),
            user_name["caseExact"].clone(),
            user_name["mutability"].clone()
        ),
        (
            json!(true),
            json!("server"),
            json!(false),
            json!("readWrite")
        )
    );
    let password = attr(&user, "password");
    assert_eq!(
        (password["mutability"].clone(), password["returned"].clone()),
        (json!("writeOnly"), json!("never"))
    );
    assert_eq!(attr(&user, "groups")["mutability"], "readOnly");
    // Attributes filters cannot query are still described (phoneNumbers, x509Certificates).
    assert_eq!(attr(&user, "phoneNumbers")["multiValued"], true);
    assert_eq!(
        attr(&user, "x509Certificates")["subAttributes"][0]["type"],
        "binary"
    );
    // No nulls anywhere (Entra's schema discovery dislikes them).
    assert!(!schemas.to_string().contains("null"));
    let (_, group) = app.get(&format!("/Schemas/{GROUP}")).await;
    let members = attr(&group, "members");
    let display = sub(&members, "display");
    assert_eq!(
        (display["mutability"].clone(), display["returned"].clone()),
        (json!("readOnly"), json!("request"))
    );
    assert_eq!(sub(&members, "value")["mutability"], "immutable");
    let (_, ent) = app.get(&format!("/Schemas/{ENTERPRISE}")).await;
    assert_eq!(
        sub(&attr(&ent, "manager"), "displayName")["mutability"],
        "readOnly"
    );
    // Common attributes (id, externalId, meta) are not part of a schema (RFC 7643 §3.1, §8.7.1).
    assert!(
        user["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["name"] != "id")
    );
    let (s, b) = app.get("/Schemas/urn:nope").await;
    assert_error(s, &b, 404, None);
    app.cleanup().await;
}

#[tokio::test]
async fn discovery_refuses_other_methods_filters_and_me() {
    let app = TestApp::spawn().await;
    // Other methods: 405 with a SCIM error (Okta spec test step 2).
    for path in [
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/Schemas",
        "/Schemas/x",
        "/ResourceTypes/User",
    ] {
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let (s, _, b) = app.send(m.clone(), path, Some(json!("test"))).await;
            assert_error(s, &b, 405, None);
        }
    }
    for (m, path) in [
        (Method::PUT, "/Users"),
        (Method::DELETE, "/Groups"),
        (Method::GET, "/Users/.search"),
        (Method::GET, "/.search"),
        (Method::GET, "/Bulk"),
        (Method::POST, "/Users/x"),
    ] {
        let (s, _, b) = app.send(m.clone(), path, None).await;
        assert_error(s, &b, 405, None);
    }
    // A filter on discovery: 403 (RFC 7644 §4).
    for path in [
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/Schemas",
        "/Schemas/x",
        "/ResourceTypes/User",
    ] {
        let (s, b) = app
            .get(&format!("{path}?filter={}", enc("id eq \"x\"")))
            .await;
        assert_error(s, &b, 403, None);
    }
    // /Me: the caller is a token, not a person.
    for m in [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ] {
        let (s, _, b) = app.send(m, "/Me", None).await;
        assert_error(s, &b, 501, None);
    }
    let (s, b) = app.get("/Nope").await;
    assert_error(s, &b, 404, None);
    app.cleanup().await;
}

#[tokio::test]
async fn endpoint_names_are_case_insensitive() {
    let app = TestApp::spawn().await;
    // Endpoint names are case-insensitive (docs/scim-clients.md#other-clients).
    let (s, b) = app.get("/users?count=0").await;
    assert_eq!((s.as_u16(), b["totalResults"].clone()), (200, json!(0)));
    let (s, b) = app.get("/serviceproviderconfig").await;
    assert_eq!(
        (s.as_u16(), b["etag"]["supported"].clone()),
        (200, json!(true))
    );
    let (s, b) = app
        .post("/GROUPS/.Search", json!({"schemas": [SEARCH]}))
        .await;
    assert_eq!(s, 200, "{b}");
    app.cleanup().await;
}

#[tokio::test]
async fn user_filters_cover_every_operator_and_attribute() {
    let app = TestApp::spawn().await;
    let (alice, bob, _carol) = people(&app).await;
    let a = "Alice@Example.com".to_owned();
    let b = "bob@example.com".to_owned();
    let c = "carol@example.org".to_owned();
    let all = vec![a.clone(), b.clone(), c.clone()];
    let cases: Vec<(String, Vec<String>)> = vec![
        // userName: caseExact=false, every operator.
        (r#"userName eq "alice@example.COM""#.into(), vec![a.clone()]),
        (r#"USERNAME EQ "BOB@EXAMPLE.COM""#.into(), vec![b.clone()]),
        (
            r#"userName ne "bob@example.com""#.into(),
            vec![a.clone(), c.clone()],
        ),
        (r#"userName co "EXAMPLE""#.into(), all.clone()),
        (r#"userName sw "car""#.into(), vec![c.clone()]),
        (r#"userName ew ".ORG""#.into(), vec![c.clone()]),
        (r#"userName gt "bob@example.com""#.into(), vec![c.clone()]),
        (
            r#"userName ge "bob@example.com""#.into(),
            vec![b.clone(), c.clone()],
        ),
        (r#"userName lt "bob@example.com""#.into(), vec![a.clone()]),
        (
            r#"userName le "BOB@example.com""#.into(),
            vec![a.clone(), b.clone()],
        ),
        (r#"userName pr"#.into(), all.clone()),
        // URN-qualified core attribute.
        (
            format!(r#"{USER}:userName eq "bob@example.com""#),
            vec![b.clone()],
        ),
        // externalId and id: caseExact=true.
        (r#"externalId eq "EXT-a""#.into(), vec![a.clone()]),
        (r#"externalId eq "ext-a""#.into(), vec![]),
        (r#"externalId sw "EXT""#.into(), vec![a.clone(), c.clone()]),
        (r#"externalId pr"#.into(), all.clone()),
        (format!(r#"id eq "{alice}""#), vec![a.clone()]),
        (format!(r#"id eq "{}""#, alice.to_lowercase()), vec![]),
        // displayName (indexed column, case-insensitive).
        (r#"displayName eq "bob young""#.into(), vec![b.clone()]),
        (r#"displayName co "x""#.into(), vec![c.clone()]),
        // active: booleans take eq/ne only.
        (r#"active eq true"#.into(), all.clone()),
        (r#"active ne true"#.into(), vec![]),
        (r#"active eq "False""#.into(), vec![]),
        // emails: any value matches; value paths; Entra's trailing sub-attribute form.
        (r#"emails co "home.test""#.into(), all.clone()),
        (
            r#"emails.value eq "ALICE@home.test""#.into(),
            vec![a.clone()],
        ),
        (
            r#"emails[type eq "work" and value ew "example.com"]"#.into(),
            vec![a.clone(), b.clone()],
        ),
        (
            r#"emails[type eq "home" and value sw "carol"]"#.into(),
            vec![c.clone()],
        ),
        (
            r#"emails[type eq "work"].value eq "carol@example.org""#.into(),
            vec![c.clone()],
        ),
        (
            r#"emails[not (primary eq true) and value co "bob"]"#.into(),
            vec![b.clone()],
        ),
        (r#"emails.type eq "HOME""#.into(), all.clone()),
        // Attributes of the JSON document (not indexed).
        (r#"name.givenName eq "alice""#.into(), vec![a.clone()]),
        (
            r#"name.familyName gt "Xz""#.into(),
            vec![a.clone(), b.clone()],
        ),
        (r#"title co "engineer""#.into(), vec![a.clone(), b.clone()]),
        (r#"title ew "ER""#.into(), all.clone()),
        (r#"nickName pr"#.into(), vec![a.clone()]),
        (r#"not (nickName pr)"#.into(), vec![b.clone(), c.clone()]),
        (r#"nickName ne "Al""#.into(), vec![b.clone(), c.clone()]),
        (r#"name pr"#.into(), all.clone()),
        (r#"phoneNumbers pr"#.into(), vec![]),
        (r#"userType pr"#.into(), vec![]),
        // The enterprise extension, URN-qualified.
        (
            format!(r#"{ENTERPRISE}:department eq "r&d""#),
            vec![a.clone(), c.clone()],
        ),
        (
            format!(r#"{ENTERPRISE}:employeeNumber ge "200""#),
            vec![b.clone(), c.clone()],
        ),
        (format!(r#"{ENTERPRISE}:manager.value pr"#), vec![]),
        // Logic: not, precedence (and binds tighter than or), parentheses.
        (
            r#"userName sw "a" or userName sw "b" and title eq "Manager""#.into(),
            vec![a.clone()],
        ),
        (
            r#"(userName sw "a" or userName sw "b") and title co "engineer""#.into(),
            vec![a.clone(), b.clone()],
        ),
        (
            r#"not (userName sw "a" or userName sw "b")"#.into(),
            vec![c.clone()],
        ),
        (r#"not(not(title eq "Manager"))"#.into(), vec![c.clone()]),
        // meta.
        (r#"meta.resourceType eq "User""#.into(), all.clone()),
        (r#"meta.resourceType eq "Group""#.into(), vec![]),
        (r#"groups pr"#.into(), vec![]),
    ];
    for (f, want) in cases {
        let mut want = want;
        want.sort();
        assert_eq!(filtered(&app, &f).await, want, "{f}");
    }

    // meta.created / meta.lastModified compare chronologically.
    let (_, bob_doc) = app.get(&format!("/Users/{bob}")).await;
    let created = bob_doc["meta"]["created"].as_str().unwrap().to_owned();
    assert_eq!(
        filtered(&app, &format!(r#"meta.created ge "{created}""#)).await,
        vec![b.clone(), c.clone()]
    );
    assert_eq!(
        filtered(&app, &format!(r#"meta.created lt "{created}""#)).await,
        vec![a.clone()]
    );
    assert_eq!(
        filtered(&app, &format!(r#"meta.lastModified gt "{created}""#)).await,
        vec![c.clone()]
    );
    assert_eq!(
        filtered(&app, r#"meta.created gt "2000-01-01T00:00:00+01:00""#).await,
        all.clone()
    );
    app.cleanup().await;
}

#[tokio::test]
async fn bad_user_filters_are_refused_with_their_position() {
    let app = TestApp::spawn().await;
    // Refused: unknown attributes, wrong types, bad syntax; the position is in the detail.
    for (f, pos) in [
        (r#"nickname2 eq "x""#, None),
        (r#"active gt true"#, None),
        (r#"active co "t""#, None),
        (r#"emails.primary ge true"#, None),
        (r#"meta.created gt "yesterday""#, None),
        (r#"userName eq true"#, None),
        (r#"name eq "x""#, None),
        (r#"phoneNumbers.nope eq "1""#, None),
        (r#"password eq "x""#, None),
        (
            r#"urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "x""#,
            None,
        ),
        (r#"userName zz "x""#, Some("position 9")),
        (r#"userName eq "x" and"#, Some("position")),
        (r#"(userName eq "x""#, Some("position")),
        (r#"userName eq "x"]"#, Some("position 15")),
    ] {
        let (s, body) = app.get(&format!("/Users?filter={}", enc(f))).await;
        assert_error(s, &body, 400, Some("invalidFilter"));
        if let Some(p) = pos {
            assert!(
                body["detail"].as_str().unwrap().contains(p),
                "{f} -> {body}"
            );
        }
    }
    app.cleanup().await;
}

#[tokio::test]
async fn group_filters_and_sorting() {
    let app = TestApp::spawn().await;
    let (alice, bob, _) = people(&app).await;
    let mut ids = Vec::new();
    for (name, ext, members) in [
        ("Backend", "g-1", vec![alice.clone()]),
        ("frontend", "G-2", vec![alice.clone(), bob.clone()]),
        ("Empty", "g-3", vec![]),
    ] {
        let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
        let (s, b) = app.post("/Groups", json!({"schemas": [GROUP], "displayName": name, "externalId": ext, "members": members})).await;
        assert_eq!(s, 201, "{b}");
        ids.push(b["id"].as_str().unwrap().to_owned());
    }
    let names = |q: String| {
        let app = &app;
        async move {
            let (s, b) = app.get(&format!("/Groups?{q}")).await;
            assert_eq!(s, 200, "{q} -> {b}");
            let mut n: Vec<String> = b["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["displayName"].as_str().unwrap().to_owned())
                .collect();
            if !q.contains("sortBy") {
                n.sort();
            }
            n
        }
    };
    for (f, want) in [
        (r#"displayName eq "BACKEND""#.to_owned(), vec!["Backend"]),
        (
            r#"displayName co "END""#.to_owned(),
            vec!["Backend", "frontend"],
        ),
        (
            r#"displayName sw "f" or displayName ew "y""#.to_owned(),
            vec!["Empty", "frontend"],
        ),
        (
            r#"displayName gt "c""#.to_owned(),
            vec!["Empty", "frontend"],
        ),
        (r#"externalId eq "G-2""#.to_owned(), vec!["frontend"]),
        (r#"externalId eq "g-2""#.to_owned(), vec![]),
        (r#"members pr"#.to_owned(), vec!["Backend", "frontend"]),
        (r#"not (members pr)"#.to_owned(), vec!["Empty"]),
        (format!(r#"members[value eq "{bob}"]"#), vec!["frontend"]),
        (
            format!(r#"members.value eq "{alice}" and not (displayName eq "frontend")"#),
            vec!["Backend"],
        ),
        (format!(r#"{GROUP}:displayName eq "empty""#), vec!["Empty"]),
        (
            r#"meta.created pr and meta.resourceType eq "Group""#.to_owned(),
            vec!["Backend", "Empty", "frontend"],
        ),
        (
            r#"meta.lastModified lt "2000-01-01T00:00:00Z""#.to_owned(),
            vec![],
        ),
    ] {
        let mut want: Vec<String> = want.into_iter().map(str::to_owned).collect();
        want.sort();
        assert_eq!(names(format!("filter={}", enc(&f))).await, want, "{f}");
    }
    for f in [
        r#"displayName gt 3"#,
        r#"members co "x""#,
        r#"userName eq "x""#,
        r#"members.display eq "x""#,
    ] {
        let (s, b) = app.get(&format!("/Groups?filter={}", enc(f))).await;
        assert_error(s, &b, 400, Some("invalidFilter"));
    }

    // Sorting: case-insensitive displayName, both orders, ids break ties; bad sortBy is 400.
    assert_eq!(
        names("sortBy=displayName".into()).await,
        vec!["Backend", "Empty", "frontend"]
    );
    assert_eq!(
        names("sortBy=DISPLAYNAME&sortOrder=descending".into()).await,
        vec!["frontend", "Empty", "Backend"]
    );
    assert_eq!(
        names("sortBy=externalId&sortOrder=ascending".into()).await,
        vec!["frontend", "Backend", "Empty"]
    );
    assert_eq!(
        names("sortBy=meta.created&sortOrder=descending".into()).await,
        vec!["Empty", "frontend", "Backend"]
    );
    let (s, b) = app.get("/Groups?sortBy=members").await;
    assert_error(s, &b, 400, Some("invalidValue"));
    let (s, b) = app
        .get("/Groups?sortBy=displayName&sortOrder=sideways")
        .await;
    assert_error(s, &b, 400, Some("invalidValue"));
    app.cleanup().await;
}

#[tokio::test]
async fn users_sort_by_columns_and_document_attributes() {
    let app = TestApp::spawn().await;
    let _ = people(&app).await;
    // Users sort by indexed columns and by document attributes.
    assert_eq!(
        user_names(&app, "sortBy=userName").await,
        vec!["Alice@Example.com", "bob@example.com", "carol@example.org"]
    );
    assert_eq!(
        user_names(&app, "sortBy=userName&sortOrder=descending").await,
        vec!["carol@example.org", "bob@example.com", "Alice@Example.com"]
    );
    assert_eq!(
        user_names(&app, "sortBy=name.familyName").await,
        vec!["carol@example.org", "bob@example.com", "Alice@Example.com"]
    );
    assert_eq!(
        user_names(
            &app,
            &format!(
                "sortBy={}:employeeNumber&sortOrder=descending",
                enc(ENTERPRISE)
            )
        )
        .await,
        vec!["carol@example.org", "bob@example.com", "Alice@Example.com"]
    );
    assert_eq!(
        user_names(&app, "sortBy=meta.created&sortOrder=descending").await,
        vec!["carol@example.org", "bob@example.com", "Alice@Example.com"]
    );
    // nickName is unassigned on two users: they sort last ascending.
    assert_eq!(
        user_names(&app, "sortBy=nickName").await[0],
        "Alice@Example.com"
    );
    // A multi-valued attribute sorts by its primary value.
    assert_eq!(
        user_names(&app, "sortBy=emails&sortOrder=descending").await,
        vec!["carol@example.org", "bob@example.com", "Alice@Example.com"]
    );
    assert_eq!(
        user_names(&app, "sortBy=emails.value").await,
        vec!["Alice@Example.com", "bob@example.com", "carol@example.org"]
    );
    for bad in ["phoneNumbers", "password", "name", "nope", "emails.type"] {
        let (s, b) = app.get(&format!("/Users?sortBy={bad}")).await;
        assert_error(s, &b, 400, Some("invalidValue"));
    }
    app.cleanup().await;
}

#[tokio::test]
async fn user_paging_is_clamped_stable_and_disjoint() {
    let app = TestApp::spawn().await;
    let _ = people(&app).await;
    // Paging (RFC 7644 §3.4.2.4).
    let page = |q: &'static str| {
        let app = &app;
        async move {
            let (s, b) = app.get(&format!("/Users?{q}")).await;
            assert_eq!(s, 200, "{q} -> {b}");
            (
                b["totalResults"].as_u64().unwrap(),
                b["startIndex"].as_u64().unwrap(),
                b["itemsPerPage"].as_u64().unwrap(),
                b["Resources"].as_array().unwrap().len(),
            )
        }
    };
    assert_eq!(page("count=0").await, (3, 1, 0, 0));
    assert_eq!(page("count=-7").await, (3, 1, 0, 0));
    assert_eq!(page("startIndex=0&count=2").await, (3, 1, 2, 2));
    assert_eq!(page("startIndex=-5").await, (3, 1, 3, 3));
    assert_eq!(page("startIndex=3&count=2").await, (3, 3, 1, 1));
    assert_eq!(page("startIndex=4").await, (3, 4, 0, 0));
    assert_eq!(
        page("startIndex=9223372036854775807&count=9223372036854775807").await,
        (3, 9223372036854775807, 0, 0)
    );
    assert_eq!(page("count=99999999").await, (3, 1, 3, 3));
    let (s, b) = app.get("/Users?startIndex=99999999999999999999999").await;
    assert_error(s, &b, 400, Some("invalidValue"));
    let (s, b) = app.get("/Users?count=ten").await;
    assert_error(s, &b, 400, Some("invalidValue"));
    // Pages are stable and disjoint in the default order.
    let first = user_names(&app, "startIndex=1&count=2").await;
    let second = user_names(&app, "startIndex=3&count=2").await;
    assert_eq!(
        [first, second].concat(),
        vec!["Alice@Example.com", "bob@example.com", "carol@example.org"]
    );
    app.cleanup().await;
}

#[tokio::test]
async fn projection_applies_to_reads_and_writes() {
    let app = TestApp::spawn().await;
    let body = json!({"schemas": [USER, ENTERPRISE], "userName": "p@x.com", "displayName": "P", "title": "T",
        "emails": [{"value": "p@x.com", "type": "work"}], ENTERPRISE: {"department": "D", "costCenter": "C"}});
    let (s, created) = app
        .post("/Users?attributes=userName,emails.value", body.clone())
        .await;
    assert_eq!(s, 201);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created,
        json!({"schemas": [USER, ENTERPRISE], "id": id, "userName": "p@x.com", "emails": [{"value": "p@x.com"}]})
    );

    let (_, got) = app
        .get(&format!(
            "/Users/{id}?attributes={}:department,displayName",
            enc(ENTERPRISE)
        ))
        .await;
    assert_eq!(
        got,
        json!({"schemas": [USER, ENTERPRISE], "id": id, "displayName": "P", ENTERPRISE: {"department": "D"}})
    );
    let (_, got) = app
        .get(&format!(
            "/Users/{id}?excludedAttributes=emails,meta,id,{}",
            enc(ENTERPRISE)
        ))
        .await;
    assert!(
        got.get("emails").is_none() && got.get("meta").is_none() && got.get(ENTERPRISE).is_none(),
        "{got}"
    );
    assert_eq!(got["id"], id.as_str(), "id is returned always");
    assert_eq!(got["title"], "T");

    let mut replaced = body.clone();
    replaced["title"] = json!("T2");
    let (s, put) = app
        .put(
            &format!("/Users/{id}?excludedAttributes=emails,name,title"),
            replaced,
        )
        .await;
    assert_eq!(s, 200);
    assert!(
        put.get("emails").is_none() && put.get("title").is_none() && put["userName"] == "p@x.com",
        "{put}"
    );
    let (s, patched) = app
        .patch(
            &format!("/Users/{id}?attributes=title"),
            ops(json!([{"op": "replace", "path": "title", "value": "T3"}])),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        patched,
        json!({"schemas": [USER, ENTERPRISE], "id": id, "title": "T3"})
    );

    // Lists and searches.
    let (_, list) = app.get("/Users?attributes=userName").await;
    assert_eq!(
        list["Resources"][0],
        json!({"schemas": [USER, ENTERPRISE], "id": id, "userName": "p@x.com"})
    );
    let (_, list) = app.post("/Users/.search", json!({"schemas": [SEARCH], "excludedAttributes": ["emails", "meta", "name", ENTERPRISE]})).await;
    assert!(
        list["Resources"][0].get("emails").is_none()
            && list["Resources"][0].get(ENTERPRISE).is_none(),
        "{list}"
    );

    // Groups: POST, PUT and PATCH honour attributes; PATCH with attributes answers 200.
    let (s, g) = app
        .post(
            "/Groups?attributes=displayName",
            json!({"schemas": [GROUP], "displayName": "G", "members": [{"value": id}]}),
        )
        .await;
    assert_eq!(s, 201);
    let gid = g["id"].as_str().unwrap().to_owned();
    assert_eq!(
        g,
        json!({"schemas": [GROUP], "id": gid, "displayName": "G"})
    );
    let (s, g) = app
        .put(
            &format!("/Groups/{gid}?excludedAttributes=members"),
            json!({"schemas": [GROUP], "displayName": "G2", "members": [{"value": id}]}),
        )
        .await;
    assert_eq!(s, 200);
    assert!(
        g.get("members").is_none() && g["displayName"] == "G2",
        "{g}"
    );
    let (s, g) = app
        .patch(
            &format!("/Groups/{gid}?attributes=members.value"),
            ops(json!([{"op": "replace", "path": "displayName", "value": "G3"}])),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        g,
        json!({"schemas": [GROUP], "id": gid, "members": [{"value": id}]})
    );
    let (s, _) = app
        .patch(
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "replace", "path": "displayName", "value": "G4"}])),
        )
        .await;
    assert_eq!(s, 204);
    let (_, u) = app
        .get(&format!("/Users/{id}?attributes=groups.display"))
        .await;
    assert_eq!(u["groups"], json!([{"display": "G4"}]));
    app.cleanup().await;
}

/// A user and a group to send preconditions to: the app, the user's path and version, the
/// group's path and version.
async fn precondition_targets() -> (TestApp, String, String, String, String) {
    let app = TestApp::spawn().await;
    let (s, h, u) = app
        .send(
            Method::POST,
            "/Users",
            Some(json!({"schemas": [USER], "userName": "e@x.com"})),
        )
        .await;
    assert_eq!(s, 201);
    let id = u["id"].as_str().unwrap().to_owned();
    let path = format!("/Users/{id}");
    assert_eq!(h["etag"], u["meta"]["version"].as_str().unwrap());
    let v1 = u["meta"]["version"].as_str().unwrap().to_owned();
    let (s, g) = app
        .post("/Groups", json!({"schemas": [GROUP], "displayName": "E"}))
        .await;
    assert_eq!(s, 201);
    let gpath = format!("/Groups/{}", g["id"].as_str().unwrap());
    let gv1 = g["meta"]["version"].as_str().unwrap().to_owned();

    (app, path, v1, gpath, gv1)
}

#[tokio::test]
async fn etags_and_if_none_match_on_reads() {
    let (app, path, v1, gpath, gv1) = precondition_targets().await;
    for (p, v) in [(&path, &v1), (&gpath, &gv1)] {
        // GET: ETag header equals meta.version; If-None-Match: 304 on match (weak or strong
        // spelling, in a list, or *), 200 otherwise.
        let (s, h, b) = app.send(Method::GET, p, None).await;
        assert_eq!(
            (s.as_u16(), h["etag"].to_str().unwrap()),
            (200, b["meta"]["version"].as_str().unwrap())
        );
        for inm in [
            v.clone(),
            v.trim_start_matches("W/").to_owned(),
            format!("W/\"zz\", {v}"),
            "*".to_owned(),
        ] {
            let (s, h, b) = app
                .send_with(Method::GET, p, None, &[("if-none-match", &inm)])
                .await;
            assert_eq!((s.as_u16(), b), (304, Value::Null), "{inm}");
            assert_eq!(h["etag"], v.as_str());
        }
        let (s, _, _) = app
            .send_with(Method::GET, p, None, &[("if-none-match", "W/\"999\"")])
            .await;
        assert_eq!(s, 200);
        // If-Match on GET: 412 when stale (RFC 7232 §3.1), evaluated before If-None-Match.
        let (s, _, b) = app
            .send_with(
                Method::GET,
                p,
                None,
                &[("if-match", "W/\"999\""), ("if-none-match", v)],
            )
            .await;
        assert_error(s, &b, 412, None);
        let (s, _, _) = app
            .send_with(Method::GET, p, None, &[("if-match", v)])
            .await;
        assert_eq!(s, 200);
    }

    app.cleanup().await;
}

#[tokio::test]
async fn if_none_match_on_a_write_is_412() {
    let (app, path, v1, gpath, _) = precondition_targets().await;
    // If-None-Match on a write: naming the current version (or *) is 412 (RFC 7232 §3.2).
    for inm in [v1.as_str(), "*"] {
        let (s, _, b) = app
            .send_with(
                Method::PUT,
                &path,
                Some(json!({"userName": "e3@x.com"})),
                &[("if-none-match", inm)],
            )
            .await;
        assert_error(s, &b, 412, None);
        let (s, _, b) = app
            .send_with(
                Method::PATCH,
                &path,
                Some(ops(
                    json!([{"op": "replace", "path": "title", "value": "x"}]),
                )),
                &[("if-none-match", inm)],
            )
            .await;
        assert_error(s, &b, 412, None);
        let (s, _, b) = app
            .send_with(Method::DELETE, &path, None, &[("if-none-match", inm)])
            .await;
        assert_error(s, &b, 412, None);
        let (s, _, b) = app
            .send_with(
                Method::PATCH,
                &gpath,
                Some(ops(
                    json!([{"op": "replace", "path": "displayName", "value": "x"}]),
                )),
                &[("if-none-match", inm)],
            )
            .await;
        assert_error(s, &b, 412, None);
        let (s, _, b) = app
            .send_with(Method::DELETE, &gpath, None, &[("if-none-match", inm)])
            .await;
        assert_error(s, &b, 412, None);
    }

    app.cleanup().await;
}

#[tokio::test]
async fn a_stale_if_match_is_412_and_changes_nothing() {
    let (app, path, v1, gpath, gv1) = precondition_targets().await;
    // PUT, PATCH, DELETE with a stale If-Match: 412, nothing changes.
    let stale = "W/\"999\"";
    let (s, _, b) = app
        .send_with(
            Method::PUT,
            &path,
            Some(json!({"userName": "e2@x.com"})),
            &[("if-match", stale)],
        )
        .await;
    assert_error(s, &b, 412, None);
    let (s, _, b) = app
        .send_with(
            Method::PATCH,
            &path,
            Some(ops(
                json!([{"op": "replace", "path": "title", "value": "x"}]),
            )),
            &[("if-match", stale)],
        )
        .await;
    assert_error(s, &b, 412, None);
    let (s, _, b) = app
        .send_with(Method::DELETE, &path, None, &[("if-match", stale)])
        .await;
    assert_error(s, &b, 412, None);
    let (s, _, b) = app
        .send_with(
            Method::PUT,
            &gpath,
            Some(json!({"displayName": "E2"})),
            &[("if-match", stale)],
        )
        .await;
    assert_error(s, &b, 412, None);
    let (s, _, b) = app
        .send_with(
            Method::PATCH,
            &gpath,
            Some(ops(
                json!([{"op": "replace", "path": "displayName", "value": "E3"}]),
            )),
            &[("if-match", stale)],
        )
        .await;
    assert_error(s, &b, 412, None);
    let (s, _, b) = app
        .send_with(Method::DELETE, &gpath, None, &[("if-match", stale)])
        .await;
    assert_error(s, &b, 412, None);
    let (_, _, now) = app.send(Method::GET, &path, None).await;
    assert_eq!(
        (now["userName"].clone(), now["meta"]["version"].clone()),
        (json!("e@x.com"), json!(v1))
    );
    let (_, _, gnow) = app.send(Method::GET, &gpath, None).await;
    assert_eq!(
        (gnow["displayName"].clone(), gnow["meta"]["version"].clone()),
        (json!("E"), json!(gv1))
    );

    app.cleanup().await;
}

#[tokio::test]
async fn a_matching_if_match_succeeds_and_moves_the_version() {
    let (app, path, v1, gpath, gv1) = precondition_targets().await;
    // Matching If-Match (exact, strong spelling, *) succeeds and moves the version.
    let (s, h, b) = app
        .send_with(
            Method::PUT,
            &path,
            Some(json!({"userName": "e@x.com", "title": "a"})),
            &[("if-match", &v1), ("if-none-match", "W/\"999\"")],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let v2 = b["meta"]["version"].as_str().unwrap().to_owned();
    assert_ne!(v2, v1);
    assert_eq!(h["etag"], v2.as_str());
    let (s, h, b) = app
        .send_with(
            Method::PATCH,
            &path,
            Some(ops(
                json!([{"op": "replace", "path": "title", "value": "b"}]),
            )),
            &[("if-match", v2.trim_start_matches("W/"))],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(h["etag"], b["meta"]["version"].as_str().unwrap());
    let (s, _, _) = app
        .send_with(
            Method::PATCH,
            &path,
            Some(ops(
                json!([{"op": "replace", "path": "title", "value": "c"}]),
            )),
            &[("if-match", "*")],
        )
        .await;
    assert_eq!(s, 200);
    // The old version no longer matches.
    let (s, _, b) = app
        .send_with(
            Method::PATCH,
            &path,
            Some(ops(
                json!([{"op": "replace", "path": "title", "value": "d"}]),
            )),
            &[("if-match", &v2)],
        )
        .await;
    assert_error(s, &b, 412, None);
    let (s, h, _) = app
        .send_with(
            Method::PATCH,
            &gpath,
            Some(ops(
                json!([{"op": "replace", "path": "displayName", "value": "E4"}]),
            )),
            &[("if-match", &gv1)],
        )
        .await;
    assert_eq!(s, 204);
    let gv2 = h["etag"].to_str().unwrap().to_owned();
    assert_ne!(gv2, gv1);
    let (s, _, _) = app
        .send_with(Method::DELETE, &gpath, None, &[("if-match", &gv2)])
        .await;
    assert_eq!(s, 204);
    let (_, _, cur) = app.send(Method::GET, &path, None).await;
    let (s, _, _) = app
        .send_with(
            Method::DELETE,
            &path,
            None,
            &[("if-match", cur["meta"]["version"].as_str().unwrap())],
        )
        .await;
    assert_eq!(s, 204);
    let (s, _, b) = app.send(Method::GET, &path, None).await;
    assert_error(s, &b, 404, None);
    app.cleanup().await;
}

#[tokio::test]
async fn root_search_spans_users_and_groups() {
    let app = TestApp::spawn().await;
    let (alice, _, _) = people(&app).await;
    for name in ["Backend", "Alice's team"] {
        let (s, _) = app
            .post(
                "/Groups",
                json!({"schemas": [GROUP], "displayName": name, "members": [{"value": alice}]}),
            )
            .await;
        assert_eq!(s, 201);
    }
    let search = |body: Value| {
        let app = &app;
        async move {
            let mut b = body;
            b["schemas"] = json!([SEARCH]);
            app.post("/.search", b).await
        }
    };
    let kinds = |b: &Value| -> Vec<String> {
        b["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{}:{}",
                    r["meta"]["resourceType"].as_str().unwrap_or("-"),
                    r["userName"]
                        .as_str()
                        .or(r["displayName"].as_str())
                        .unwrap()
                )
            })
            .collect()
    };
    let (s, all) = search(json!({})).await;
    assert_eq!(s, 200, "{all}");
    assert_eq!(all["totalResults"], 5);
    assert_eq!(
        kinds(&all),
        vec![
            "User:Alice@Example.com",
            "User:bob@example.com",
            "User:carol@example.org",
            "Group:Backend",
            "Group:Alice's team"
        ]
    );
    // Paging runs over the concatenation.
    let (_, p) = search(json!({"startIndex": 3, "count": 2})).await;
    assert_eq!(
        (
            p["totalResults"].clone(),
            p["startIndex"].clone(),
            p["itemsPerPage"].clone()
        ),
        (json!(5), json!(3), json!(2))
    );
    assert_eq!(kinds(&p), vec!["User:carol@example.org", "Group:Backend"]);
    let (_, p) = search(json!({"startIndex": 5, "count": 10})).await;
    assert_eq!(kinds(&p), vec!["Group:Alice's team"]);
    let (_, p) = search(json!({"startIndex": 6})).await;
    assert_eq!(
        (p["totalResults"].clone(), p["Resources"].clone()),
        (json!(5), json!([]))
    );
    let (_, p) = search(json!({"count": 0})).await;
    assert_eq!(
        (p["totalResults"].clone(), p["Resources"].clone()),
        (json!(5), json!([]))
    );
    // A filter resolves per resource type: displayName exists on both, userName on Users only,
    // members on Groups only; meta.resourceType picks one type.
    let (_, p) = search(json!({"filter": "displayName sw \"a\""})).await;
    assert_eq!(
        kinds(&p),
        vec!["User:Alice@Example.com", "Group:Alice's team"]
    );
    let (_, p) = search(json!({"filter": "userName ew \".org\""})).await;
    assert_eq!(kinds(&p), vec!["User:carol@example.org"]);
    let (_, p) = search(
        json!({"filter": format!("members[value eq \"{alice}\"] and displayName co \"end\"")}),
    )
    .await;
    assert_eq!(kinds(&p), vec!["Group:Backend"]);
    let (_, p) =
        search(json!({"filter": "meta.resourceType eq \"Group\"", "attributes": ["displayName"]}))
            .await;
    assert_eq!(p["totalResults"], 2);
    assert!(p["Resources"][0].get("meta").is_none());
    let (_, p) = search(json!({"excludedAttributes": "members,emails"})).await;
    assert!(
        p["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r.get("members").is_none() && r.get("emails").is_none())
    );
    // GET at the root takes the same query (RFC 7644 §3.4.2.1).
    let (s, p) = app
        .get(&format!(
            "{}?filter={}&count=1",
            app.base,
            enc("displayName sw \"b\"")
        ))
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        (p["totalResults"].clone(), kinds(&p)),
        (json!(2), vec!["User:bob@example.com".to_owned()])
    );
    // Errors.
    let (s, b) = search(json!({"filter": "nope eq \"x\""})).await;
    assert_error(s, &b, 400, Some("invalidFilter"));
    let (s, b) = search(json!({"filter": "userName eq"})).await;
    assert_error(s, &b, 400, Some("invalidFilter"));
    let (s, b) = search(json!({"sortBy": "displayName"})).await;
    assert_error(s, &b, 400, Some("invalidValue"));
    let (s, b) = search(json!({"count": "many"})).await;
    assert_error(s, &b, 400, Some("invalidValue"));
    let (s, b) = app.post("/.search", json!(["not", "an", "object"])).await;
    assert_error(s, &b, 400, Some("invalidSyntax"));
    app.cleanup().await;
}

#[tokio::test]
async fn removing_active_unassigns_it_without_touching_the_account() {
    let app = TestApp::spawn().await;
    let (_, b) = app
        .post(
            "/Users",
            json!({"schemas": [USER], "userName": "act@x.com", "active": false}),
        )
        .await;
    let id = b["id"].as_str().unwrap().to_owned();
    let disabled = || async {
        app.count(&format!(
            "SELECT isDisabled FROM {{user}}.user WHERE phid = '{id}'"
        ))
        .await
    };
    assert_eq!(disabled().await, 1);
    let (s, b) = app
        .patch(
            &format!("/Users/{id}?attributes=active,userName"),
            ops(json!([{"op": "remove", "path": "active"}])),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b.get("active"), None, "{b}");
    assert_eq!(
        disabled().await,
        1,
        "an unassignment neither enables nor disables"
    );
    let (_, b) = app.get(&format!("/Users/{id}")).await;
    assert_eq!(b.get("active"), None);
    assert_eq!(filtered(&app, "active pr").await, Vec::<String>::new());
    assert_eq!(
        filtered(&app, "active eq false").await,
        Vec::<String>::new()
    );
    assert_eq!(filtered(&app, "active ne false").await, vec!["act@x.com"]);
    // Other edits keep it unassigned; setting it again assigns it.
    let (_, b) = app
        .patch(
            &format!("/Users/{id}"),
            ops(json!([{"op": "add", "path": "title", "value": "t"}])),
        )
        .await;
    assert_eq!(b.get("active"), None);
    let (_, b) = app
        .patch(
            &format!("/Users/{id}"),
            ops(json!([{"op": "replace", "path": "active", "value": true}])),
        )
        .await;
    assert_eq!(b["active"], true);
    assert_eq!(disabled().await, 0);
    assert_eq!(filtered(&app, "active eq true").await, vec!["act@x.com"]);
    app.cleanup().await;
}

#[tokio::test]
async fn patch_addresses_a_whole_extension() {
    let app = TestApp::spawn().await;
    let (_, b) = app
        .post(
            "/Users",
            json!({"schemas": [USER], "userName": "ext@x.com"}),
        )
        .await;
    let id = b["id"].as_str().unwrap().to_owned();
    let (s, b) = app.patch(&format!("/Users/{id}"), ops(json!([{"op": "add", "path": ENTERPRISE, "value": {"department": "D", "costCenter": "C"}}]))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b[ENTERPRISE], json!({"department": "D", "costCenter": "C"}));
    assert_eq!(b["schemas"], json!([USER, ENTERPRISE]));
    let (_, b) = app
        .patch(
            &format!("/Users/{id}"),
            ops(json!([{"op": "replace", "path": ENTERPRISE, "value": {"department": "E"}}])),
        )
        .await;
    assert_eq!(b[ENTERPRISE], json!({"department": "E", "costCenter": "C"}));
    let (_, b) = app
        .patch(
            &format!("/Users/{id}"),
            ops(json!([{"op": "remove", "path": ENTERPRISE}])),
        )
        .await;
    assert_eq!(
        (b.get(ENTERPRISE), b["schemas"].clone()),
        (None, json!([USER]))
    );
    let (s, b) = app
        .patch(
            &format!("/Users/{id}"),
            ops(json!([{"op": "add", "path": ENTERPRISE, "value": "x"}])),
        )
        .await;
    assert_error(s, &b, 400, Some("invalidValue"));
    app.cleanup().await;
}

#[tokio::test]
async fn bad_input_answers_quickly_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let before = app.count("SELECT COUNT(*) FROM {scim}.scim_user").await;
    let started = std::time::Instant::now();
    // Deep nesting, too many terms, too long: the parser's bounds, as 400 invalidFilter.
    let deep = format!("{}userName eq \"x\"{}", "(".repeat(5000), ")".repeat(5000));
    let terms = vec!["userName eq \"x\""; 300].join(" or ");
    let long = format!("userName eq \"{}\"", "x".repeat(9000));
    let not_deep = format!("{}userName pr{}", "not (".repeat(100), ")".repeat(100));
    let valuepath_deep = format!(
        "emails[{}type eq \"w\"{}]",
        "(".repeat(100),
        ")".repeat(100)
    );
    for f in [
        deep.as_str(),
        terms.as_str(),
        long.as_str(),
        not_deep.as_str(),
        valuepath_deep.as_str(),
    ] {
        let (s, b) = app
            .post("/Users/.search", json!({"schemas": [SEARCH], "filter": f}))
            .await;
        assert_error(s, &b, 400, Some("invalidFilter"));
        let (s, b) = app
            .post("/Groups/.search", json!({"schemas": [SEARCH], "filter": f}))
            .await;
        assert_error(s, &b, 400, Some("invalidFilter"));
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Invalid UTF-8, broken JSON, wrong content type.
    let resp = app
        .client
        .post(format!("{}/Users", app.base))
        .bearer_auth(&app.token)
        .header("content-type", "application/scim+json")
        .body(b"{\"userName\": \"\xff\xfe\"}".to_vec())
        .send()
        .await
        .unwrap();
    let (s, b) = (resp.status(), resp.json::<Value>().await.unwrap());
    assert_error(s, &b, 400, Some("invalidSyntax"));
    let resp = app
        .client
        .post(format!("{}/Users", app.base))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body("{\"userName\": ")
        .send()
        .await
        .unwrap();
    let (s, h, b) = (
        resp.status(),
        resp.headers().clone(),
        resp.json::<Value>().await.unwrap(),
    );
    assert_error(s, &b, 400, Some("invalidSyntax"));
    assert_eq!(h["content-type"], "application/scim+json");
    let resp = app
        .client
        .post(format!("{}/Users", app.base))
        .bearer_auth(&app.token)
        .header("content-type", "application/xml")
        .body("<x/>")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    // application/json is accepted.
    let resp = app
        .client
        .post(format!("{}/Users", app.base))
        .bearer_auth(&app.token)
        .header("content-type", "application/json; charset=utf-8")
        .body(json!({"userName": "json@x.com"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    // Numbers out of range in a search body.
    let (s, b) = app
        .post(
            "/Users/.search",
            json!({"schemas": [SEARCH], "startIndex": 1e300, "count": -1e300}),
        )
        .await;
    assert_error(s, &b, 400, Some("invalidValue"));
    let (s, b) = app
        .post(
            "/Users/.search",
            json!({"schemas": [SEARCH], "startIndex": {"n": 1}}),
        )
        .await;
    assert_error(s, &b, 400, Some("invalidValue"));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {scim}.scim_user").await,
        before + 1
    );
    app.cleanup().await;
}
