//! /Groups end to end: responses, and the rows behind them in both databases (edges 13 and
//! 60 in `<ns>_project.edge`, 14 in `<ns>_user.edge`, the project tables, transactions,
//! worker tasks, `scim_group`, `scim_event`).

use phab_scim::db::phabricator::{new_phid, project::path_key};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::AssertSqlSafe;

use crate::helpers::{TestApp, user_body};

const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn ops(ops: Value) -> Value {
    json!({"schemas": [PATCH], "Operations": ops})
}

async fn create_user(app: &TestApp, name: &str) -> String {
    let (status, body) = app
        .post(
            "/Users",
            user_body(
                &format!("{name}@example.com"),
                &format!("{name}@example.com"),
                name,
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn create_group(app: &TestApp, name: &str) -> String {
    let (status, body) = app
        .post("/Groups", json!({"schemas": [GROUP], "displayName": name}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn exec(app: &TestApp, template: &str) {
    sqlx::query(AssertSqlSafe(app.sql(template)))
        .execute(app.pool_for(template))
        .await
        .expect(template);
}

/// `dst` of edges of one type from `src`, sorted.
async fn edge_dsts(app: &TestApp, db: &str, src: &str, ty: u32) -> Vec<String> {
    let rows = app
        .rows(&format!(
            "SELECT dst FROM {{{db}}}.edge WHERE src = '{src}' AND type = {ty} ORDER BY dst"
        ))
        .await;
    rows.iter()
        .map(|r| r["dst"].as_str().unwrap().to_owned())
        .collect()
}

/// Users that have `project` through a 14-edge.
async fn inverse_srcs(app: &TestApp, project: &str) -> Vec<String> {
    let rows = app
        .rows(&format!(
            "SELECT src FROM {{user}}.edge WHERE dst = '{project}' AND type = 14 ORDER BY src"
        ))
        .await;
    rows.iter()
        .map(|r| r["src"].as_str().unwrap().to_owned())
        .collect()
}

/// Members as Phorge's `PhabricatorProjectQuery` sees them: type 60 only
/// (docs/phabricator-tables.md#materialized-members).
async fn phorge_members(app: &TestApp, project: &str) -> Vec<String> {
    edge_dsts(app, "project", project, 60).await
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn xactions(app: &TestApp, project: &str) -> Vec<Value> {
    app.rows(&format!(
        "SELECT transactionType, oldValue, newValue, metadata, authorPHID, editPolicy, viewPolicy, contentSource \
         FROM {{project}}.project_transaction WHERE objectPHID = '{project}' ORDER BY id"
    ))
    .await
}

async fn publish_tasks(app: &TestApp, project: &str) -> Vec<Value> {
    app.rows(&format!(
        "SELECT a.taskClass, a.priority, d.data FROM {{worker}}.worker_activetask a JOIN {{worker}}.worker_taskdata d \
         ON d.id = a.dataID WHERE a.objectPHID = '{project}' ORDER BY a.id"
    ))
    .await
}

async fn tokens(app: &TestApp, project: &str) -> Vec<String> {
    let rows = app
        .rows(&format!(
            "SELECT t.token FROM {{project}}.project_datasourcetoken t JOIN {{project}}.project p ON p.id = t.projectID \
             WHERE p.phid = '{project}' ORDER BY t.token"
        ))
        .await;
    rows.iter()
        .map(|r| r["token"].as_str().unwrap().to_owned())
        .collect()
}

async fn slugs(app: &TestApp, project: &str) -> Vec<String> {
    let rows = app
        .rows(&format!(
            "SELECT slug FROM {{project}}.project_slug WHERE projectPHID = '{project}' ORDER BY id"
        ))
        .await;
    rows.iter()
        .map(|r| r["slug"].as_str().unwrap().to_owned())
        .collect()
}

fn member_ids(group: &Value) -> Vec<String> {
    sorted(
        group["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| m["value"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default(),
    )
}

/// A project written by SQL the way `PhabricatorProjectTransactionEditor` leaves it (a root
/// project or a subproject, docs/write-paths.md#create-a-group), not managed by SCIM.
async fn sql_project(
    app: &TestApp,
    name: &str,
    slug: &str,
    parent: Option<(&str, &str)>,
) -> (String, String) {
    let phid = new_phid("PROJ");
    let key = path_key(&phid);
    let (parent_phid, path, depth) = match parent {
        Some((p, ppath)) => (format!("'{p}'"), format!("{ppath}{key}"), 1),
        None => ("NULL".to_owned(), key.clone(), 0),
    };
    exec(
        app,
        &format!(
            "INSERT INTO {{project}}.project (name, phid, authorPHID, dateCreated, dateModified, status, viewPolicy, editPolicy, \
             joinPolicy, isMembershipLocked, profileImagePHID, icon, color, mailKey, primarySlug, parentProjectPHID, hasWorkboard, \
             hasMilestones, hasSubprojects, milestoneNumber, projectPath, projectDepth, projectPathKey, properties, spacePHID, subtype) \
             VALUES ('{name}', '{phid}', 'PHID-USER-someoneelse0000000', 1, 1, '0', 'users', 'users', 'users', 0, NULL, 'project', 'blue', \
             'aaaaaaaaaaaaaaaaaaaa', '{slug}', {parent_phid}, 0, 0, 0, NULL, '{path}', {depth}, '{key}', '[]', NULL, 'default')"
        ),
    )
    .await;
    exec(app, &format!("INSERT INTO {{project}}.project_slug (projectPHID, slug, dateCreated, dateModified) VALUES ('{phid}', '{slug}', 1, 1)")).await;
    if let Some((p, _)) = parent {
        exec(
            app,
            &format!("UPDATE {{project}}.project SET hasSubprojects = 1 WHERE phid = '{p}'"),
        )
        .await;
    }
    (phid, path)
}

#[tokio::test]
async fn create_group_writes_what_phorge_writes() {
    let app = TestApp::spawn().await;
    let (status, headers, body) = app
        .send(Method::POST, "/Groups", Some(json!({"schemas": [GROUP], "displayName": "Oracle Lab", "externalId": "ext-1", "members": []})))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("PHID-PROJ-"));
    assert_eq!(
        headers["location"],
        format!("{}/Groups/{id}", app.base).as_str()
    );
    assert_eq!(headers["etag"], "W/\"1\"");
    assert_eq!(body["displayName"], "Oracle Lab");
    assert_eq!(body["externalId"], "ext-1");
    assert_eq!(body["schemas"], json!([GROUP]));
    assert_eq!(body["meta"]["resourceType"], "Group");
    assert_eq!(body.get("members"), None);

    // docs/write-paths.md#create-a-group: join policy no-one and the bot as author.
    let p = &app
        .rows(&format!(
            "SELECT * FROM {{project}}.project WHERE phid = '{id}'"
        ))
        .await[0];
    let key = path_key(&id);
    let expect = json!({
        "name": "Oracle Lab", "authorPHID": app.bot_phid, "status": "0", "viewPolicy": "users", "editPolicy": "users",
        "joinPolicy": "no-one", "isMembershipLocked": 0, "profileImagePHID": null, "icon": "project", "color": "blue",
        "primarySlug": "oracle_lab", "parentProjectPHID": null, "hasWorkboard": 0, "hasMilestones": 0, "hasSubprojects": 0,
        "milestoneNumber": null, "projectPath": key, "projectDepth": 0, "projectPathKey": key, "properties": "[]",
        "spacePHID": null, "subtype": "default",
    });
    for (k, v) in expect.as_object().unwrap() {
        assert_eq!(&p[k], v, "project.{k}");
    }
    assert_eq!(p["mailKey"].as_str().unwrap().len(), 20);
    assert_eq!(p["dateCreated"], p["dateModified"]);
    assert_eq!(slugs(&app, &id).await, vec!["oracle_lab"]);
    // The one-save lag of docs/phabricator-tables.md#datasource-tokens: tokens from the name only.
    assert_eq!(tokens(&app, &id).await, vec!["lab", "oracle"]);

    let xs = xactions(&app, &id).await;
    assert_eq!(xs.len(), 2);
    assert_eq!(
        (
            xs[0]["transactionType"].as_str(),
            xs[0]["oldValue"].as_str(),
            xs[0]["newValue"].as_str()
        ),
        (Some("core:create"), Some("null"), Some("null"))
    );
    assert_eq!(
        (
            xs[1]["transactionType"].as_str(),
            xs[1]["oldValue"].as_str(),
            xs[1]["newValue"].as_str()
        ),
        (Some("project:name"), Some("null"), Some("\"Oracle Lab\""))
    );
    for x in &xs {
        assert_eq!(x["authorPHID"], app.bot_phid.as_str());
        assert_eq!(x["editPolicy"], app.bot_phid.as_str());
        assert_eq!(x["viewPolicy"], "public");
        let meta: Value = serde_json::from_str(x["metadata"].as_str().unwrap()).unwrap();
        assert_eq!(meta["core.create"], true);
        assert_eq!(meta["core.groupID"].as_str().unwrap().len(), 32);
    }
    assert!(
        xs[0]["metadata"]
            .as_str()
            .unwrap()
            .starts_with("{\"core.create\":true,\"core.groupID\"")
    );

    // The publish worker only, no search task (docs/write-paths.md#daemon-tasks).
    let tasks = publish_tasks(&app, &id).await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(
        tasks[0]["taskClass"],
        "PhabricatorApplicationTransactionPublishWorker"
    );
    assert_eq!(tasks[0]["priority"], 1000);
    let data: Value = serde_json::from_str(tasks[0]["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["objectPHID"], id.as_str());
    assert_eq!(data["actorPHID"], app.bot_phid.as_str());
    assert_eq!(data["xactionPHIDs"].as_array().unwrap().len(), 2);
    assert_eq!(data["state"]["isNewObject"], true);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM {{project}}.edge WHERE src = '{id}'"
        ))
        .await,
        0
    );

    let scim = app.rows(&format!("SELECT displayName, externalID, version FROM {{scim}}.scim_group WHERE projectPHID = '{id}'")).await;
    assert_eq!(
        scim,
        vec![json!({"displayName": "Oracle Lab", "externalID": "ext-1", "version": 1})]
    );
    let events = app.rows(&format!("SELECT method, status, outcome, resourceType FROM {{scim}}.scim_event WHERE objectPHID = '{id}'")).await;
    assert_eq!(
        events,
        vec![json!({"method": "POST", "status": 201, "outcome": "ok", "resourceType": "Group"})]
    );

    let (status, got) = app.get(&format!("/Groups/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got, body);
    let (status, _) = app.get("/Groups/PHID-PROJ-doesnotexist00000000").await;
    assert_eq!(status, 404);
    app.cleanup().await;
}

#[tokio::test]
async fn create_with_members_and_list_filters() {
    let app = TestApp::spawn().await;
    let sam = create_user(&app, "sam").await;
    let gene = create_user(&app, "gene").await;
    let (status, body) = app
        .post("/Groups", json!({"displayName": "Backend", "externalId": "okta-7", "members": [{"value": sam}, {"value": gene, "display": "gene"}]}))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(member_ids(&body), sorted(vec![sam.clone(), gene.clone()]));
    let m = body["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["value"] == sam.as_str())
        .unwrap()
        .clone();
    // `display` is returned on request only (RFC 7643 §2.4 read-only; schema.rs).
    assert_eq!(
        m,
        json!({"value": sam, "$ref": format!("{}/Users/{sam}", app.base), "type": "User"})
    );
    let (_, named) = app
        .get(&format!(
            "/Groups/{id}?attributes=members.value,members.display"
        ))
        .await;
    let m = named["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["value"] == sam.as_str())
        .unwrap()
        .clone();
    assert_eq!(m, json!({"value": sam, "display": "sam@example.com"}));
    assert_eq!(
        phorge_members(&app, &id).await,
        sorted(vec![sam.clone(), gene.clone()])
    );
    assert_eq!(
        inverse_srcs(&app, &id).await,
        sorted(vec![sam.clone(), gene.clone()])
    );
    let xs = xactions(&app, &id).await;
    assert_eq!(
        xs.iter()
            .map(|x| x["transactionType"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["core:create", "project:name", "core:edge"]
    );
    assert!(
        xs[2]["metadata"]
            .as_str()
            .unwrap()
            .starts_with("{\"edge:type\":13,\"core.create\":true,")
    );
    assert_eq!(xs[2]["newValue"], json!([sam, gene]).to_string().as_str());
    create_group(&app, "Frontend").await;

    // Filters: displayName is case-insensitive, externalId exact, members by id.
    let (status, list) = app
        .get("/Groups?filter=displayName%20eq%20%22backend%22&excludedAttributes=members")
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["totalResults"], 1);
    assert_eq!(list["Resources"][0]["id"], id.as_str());
    assert_eq!(list["Resources"][0].get("members"), None);
    let (_, list) = app
        .get("/Groups?filter=externalId%20eq%20%22okta-7%22")
        .await;
    assert_eq!(list["totalResults"], 1);
    assert_eq!(
        member_ids(&list["Resources"][0]),
        sorted(vec![sam.clone(), gene.clone()])
    );
    let (_, list) = app
        .get("/Groups?filter=externalId%20eq%20%22OKTA-7%22")
        .await;
    assert_eq!(list["totalResults"], 0);
    let (_, list) = app
        .get(&format!("/Groups?filter=members.value%20eq%20%22{gene}%22"))
        .await;
    assert_eq!(list["totalResults"], 1);
    let (_, list) = app
        .get("/Groups?filter=displayName%20eq%20%22nothing%22")
        .await;
    assert_eq!(
        list,
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 0, "startIndex": 1, "itemsPerPage": 0, "Resources": []})
    );
    let (_, list) = app
        .get("/Groups?startIndex=2&count=1&sortBy=displayName")
        .await;
    assert_eq!(
        (list["totalResults"].as_u64(), list["itemsPerPage"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(list["Resources"][0]["displayName"], "Frontend");
    let (status, list) = app.post("/Groups/.search", json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "displayName sw \"Back\"", "attributes": ["displayName"]})).await;
    assert_eq!(status, 200);
    assert_eq!(
        list["Resources"][0],
        json!({"schemas": [GROUP], "id": id, "displayName": "Backend"})
    );
    let (_, one) = app
        .get(&format!("/Groups/{id}?attributes=members.value"))
        .await;
    assert_eq!(
        one["members"].as_array().unwrap()[0]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["value"]
    );
    let (status, _) = app.get("/Groups?filter=nickName%20eq%20%22x%22").await;
    assert_eq!(status, 400);

    // The user resource shows its groups (edge 14 + scim_group).
    let (_, user) = app.get(&format!("/Users/{sam}")).await;
    assert_eq!(
        user["groups"],
        json!([{"value": id, "$ref": format!("{}/Groups/{id}", app.base), "display": "Backend", "type": "direct"}])
    );
    app.cleanup().await;
}

#[tokio::test]
async fn members_add_and_remove_as_deltas() {
    let app = TestApp::spawn().await;
    let sam = create_user(&app, "sam").await;
    let gene = create_user(&app, "gene").await;
    let id = create_group(&app, "Oracle Lab").await;
    exec(
        &app,
        &format!("UPDATE {{project}}.project SET dateModified = 5 WHERE phid = '{id}'"),
    )
    .await;

    let (status, headers, body) = app
        .send(Method::PATCH, &format!("/Groups/{id}"), Some(ops(json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": sam}, {"value": gene}]}]))))
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(headers["etag"], "W/\"2\"");
    // docs/write-paths.md#add-members: 13 with seq 0, 1 for the one source; 60 copies it; 14
    // has seq 0 per user.
    let e13 = app.rows(&format!("SELECT dst, seq, dataID, dateCreated FROM {{project}}.edge WHERE src = '{id}' AND type = 13 ORDER BY seq")).await;
    assert_eq!(
        e13.iter()
            .map(|r| (
                r["dst"].as_str().unwrap().to_owned(),
                r["seq"].as_i64().unwrap()
            ))
            .collect::<Vec<_>>(),
        vec![(sam.clone(), 0), (gene.clone(), 1)]
    );
    assert!(e13.iter().all(|r| r["dataID"].is_null()));
    let e60 = app.rows(&format!("SELECT dst, seq, dataID, dateCreated FROM {{project}}.edge WHERE src = '{id}' AND type = 60 ORDER BY seq")).await;
    assert_eq!(e60, e13);
    let e14 = app.rows(&format!("SELECT src, seq, dataID FROM {{user}}.edge WHERE dst = '{id}' AND type = 14 ORDER BY src")).await;
    assert_eq!(
        e14,
        sorted(vec![sam.clone(), gene.clone()])
            .iter()
            .map(|u| json!({"src": u, "seq": 0, "dataID": null}))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM {{project}}.edge WHERE src = '{id}' AND type NOT IN (13, 60)"
        ))
        .await,
        0
    );
    // The project row is re-saved and the tokens rewritten (docs/write-paths.md#add-members).
    assert!(
        app.count(&format!(
            "SELECT dateModified FROM {{project}}.project WHERE phid = '{id}'"
        ))
        .await
            > 5
    );
    assert_eq!(tokens(&app, &id).await, vec!["lab", "oracle", "oracle_lab"]);
    let xs = xactions(&app, &id).await;
    let x = xs.last().unwrap();
    assert_eq!(x["transactionType"], "core:edge");
    assert_eq!(x["oldValue"], "[]");
    assert_eq!(x["newValue"], json!([sam, gene]).to_string().as_str());
    assert!(
        x["metadata"]
            .as_str()
            .unwrap()
            .starts_with("{\"edge:type\":13,\"core.groupID\":\""),
        "{x}"
    );
    assert_eq!(publish_tasks(&app, &id).await.len(), 2);

    // Adding present members and removing absent ones succeed and change nothing.
    let nx = xs.len();
    let (status, body) = app
        .patch(&format!("/Groups/{id}"), ops(json!([{"op": "add", "path": "members", "value": [{"value": sam}]}, {"op": "remove", "path": "members[value eq \"PHID-USER-notamember0000000\"]"}])))
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(xactions(&app, &id).await.len(), nx);
    assert_eq!(publish_tasks(&app, &id).await.len(), 2);
    let (_, g) = app.get(&format!("/Groups/{id}")).await;
    assert_eq!(g["meta"]["version"], "W/\"2\"");

    // Remove (RFC filter): 13, 14 and 60 go; transaction old [sam] new [].
    let (status, body) = app
        .patch(
            &format!("/Groups/{id}"),
            ops(json!([{"op": "remove", "path": format!("members[value eq \"{sam}\"]")}])),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        edge_dsts(&app, "project", &id, 13).await,
        vec![gene.clone()]
    );
    assert_eq!(phorge_members(&app, &id).await, vec![gene.clone()]);
    assert_eq!(inverse_srcs(&app, &id).await, vec![gene.clone()]);
    let x = xactions(&app, &id).await.pop().unwrap();
    assert_eq!(
        (
            x["oldValue"].as_str().unwrap(),
            x["newValue"].as_str().unwrap()
        ),
        (json!([sam]).to_string().as_str(), "[]")
    );
    let (_, user) = app.get(&format!("/Users/{sam}")).await;
    assert_eq!(user.get("groups"), None);
    let (_, user) = app.get(&format!("/Users/{gene}")).await;
    assert_eq!(user["groups"][0]["value"], id.as_str());

    // PATCH with attributes answers 200 with the resource.
    let (status, g) = app
        .patch(
            &format!("/Groups/{id}?attributes=members"),
            ops(json!([{"op": "add", "path": "members", "value": [{"value": sam}]}])),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(member_ids(&g), sorted(vec![sam.clone(), gene.clone()]));
    let events = app.count(&format!("SELECT COUNT(*) FROM {{scim}}.scim_event WHERE objectPHID = '{id}' AND resourceType = 'Group' AND outcome = 'ok'")).await;
    assert_eq!(events, 5);
    app.cleanup().await;
}

#[tokio::test]
async fn refusals_write_nothing() {
    let app = TestApp::spawn().await;
    let sam = create_user(&app, "sam").await;
    let unknown = "PHID-USER-nosuchuser0000000000";
    let (status, body) = app
        .post(
            "/Groups",
            json!({"displayName": "Team", "members": [{"value": sam}, {"value": unknown}]}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["scimType"].as_str()),
        (400, Some("invalidValue")),
        "{body}"
    );
    assert!(body["detail"].as_str().unwrap().contains(unknown), "{body}");
    assert_eq!(app.count("SELECT COUNT(*) FROM {project}.project").await, 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {project}.project_slug")
            .await,
        0
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM {project}.edge").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM {user}.edge").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM {scim}.scim_group").await, 0);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM {scim}.scim_event WHERE resourceType = 'Group' AND outcome = 'ok'"
        )
        .await,
        0
    );

    let (status, body) = app.post("/Groups", json!({"displayName": "Team", "members": [{"value": "PHID-PROJ-other", "type": "Group"}]})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("nested"),
        "{body}"
    );

    let id = create_group(&app, "Team").await;
    let before = app
        .count("SELECT COUNT(*) FROM {project}.project_transaction")
        .await;
    for bad in [
        json!([{"op": "add", "path": "members", "value": [{"value": sam}, {"value": unknown}]}]),
        json!([{"op": "add", "path": "members", "value": [{"value": "x", "type": "Group"}]}]),
        json!([{"op": "remove", "path": "members[display eq \"x\"]"}]),
        json!([{"op": "replace", "path": "id", "value": "x"}]),
    ] {
        let (status, body) = app.patch(&format!("/Groups/{id}"), ops(bad.clone())).await;
        assert_eq!(status, 400, "{bad} -> {body}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM {project}.edge").await, 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {project}.project_transaction")
            .await,
        before
    );
    let (status, body) = app.post("/Groups", json!({"displayName": "??"})).await;
    assert_eq!(
        (status.as_u16(), body["scimType"].as_str()),
        (400, Some("invalidValue"))
    );
    let (status, _) = app
        .patch(
            "/Groups/PHID-PROJ-nope",
            ops(json!([{"op": "add", "path": "members", "value": [{"value": sam}]}])),
        )
        .await;
    assert_eq!(status, 404);
    app.cleanup().await;
}

#[tokio::test]
async fn adoption_and_conflicts() {
    let app = TestApp::spawn().await;
    let sam = create_user(&app, "sam").await;
    let (phid, _) = sql_project(&app, "Security", "security", None).await;
    exec(&app, &format!("INSERT INTO {{project}}.edge VALUES ('{phid}', 13, 'PHID-USER-localmember000000000', 1, 0, NULL)")).await;

    // A POST whose slug matches an unmanaged project adopts it (default policy).
    let (status, body) = app
        .post(
            "/Groups",
            json!({"displayName": "SECURITY", "externalId": "e1"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["id"], phid.as_str());
    assert_eq!(body["displayName"], "SECURITY");
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM {{project}}.project WHERE phid = '{phid}' AND name = 'SECURITY' AND primarySlug = 'security'")).await, 1);
    // Members it had stay (the POST named none); the rename is a project:name transaction.
    assert_eq!(
        edge_dsts(&app, "project", &phid, 13).await,
        vec!["PHID-USER-localmember000000000"]
    );
    let xs = xactions(&app, &phid).await;
    assert_eq!(xs.len(), 1);
    assert_eq!(
        (xs[0]["oldValue"].as_str(), xs[0]["newValue"].as_str()),
        (Some("\"Security\""), Some("\"SECURITY\""))
    );
    assert_eq!(slugs(&app, &phid).await, vec!["security"]);

    // Same displayName (any case) or same hashtag as a managed group: 409.
    for name in ["security", "Security!"] {
        let (status, body) = app.post("/Groups", json!({"displayName": name})).await;
        assert_eq!(
            (status.as_u16(), body["scimType"].as_str()),
            (409, Some("uniqueness")),
            "{name}: {body}"
        );
    }
    // Adoption with members replaces the local ones.
    let (other, _) = sql_project(&app, "Ops", "ops", None).await;
    let (status, body) = app
        .post(
            "/Groups",
            json!({"displayName": "Ops", "members": [{"value": sam}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["id"], other.as_str());
    assert_eq!(phorge_members(&app, &other).await, vec![sam.clone()]);
    app.cleanup().await;

    let app = TestApp::spawn_with(|c| c.group_adoption = false).await;
    sql_project(&app, "Security", "security", None).await;
    let (status, body) = app
        .post("/Groups", json!({"displayName": "Security"}))
        .await;
    assert_eq!(
        (status.as_u16(), body["scimType"].as_str()),
        (409, Some("uniqueness")),
        "{body}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM {scim}.scim_group").await, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn subprojects_materialize_to_ancestors() {
    let app = TestApp::spawn().await;
    let sam = create_user(&app, "sam").await;
    let gene = create_user(&app, "gene").await;
    let (parent, ppath) = sql_project(&app, "Oracle Parent", "oracle_parent", None).await;
    let (child, _) = sql_project(
        &app,
        "Oracle Child",
        "oracle_child",
        Some((&parent, &ppath)),
    )
    .await;
    let (sibling, _) = sql_project(
        &app,
        "Oracle Sibling",
        "oracle_sibling",
        Some((&parent, &ppath)),
    )
    .await;
    // gene is also a member through the sibling (the edges a new subproject copies from its
    // parent, docs/phabricator-tables.md#subprojects-and-milestones).
    exec(&app, &format!("INSERT INTO {{project}}.edge VALUES ('{sibling}', 13, '{gene}', 1, 0, NULL), ('{sibling}', 60, '{gene}', 1, 0, NULL), ('{parent}', 60, '{gene}', 1, 0, NULL)")).await;

    // A parent with subprojects cannot be managed; the child can (adoption).
    let (status, body) = app
        .post("/Groups", json!({"displayName": "Oracle Parent"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("subprojects"),
        "{body}"
    );
    let (status, body) = app
        .post("/Groups", json!({"displayName": "Oracle Child"}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["id"], child.as_str());

    let (status, body) = app.patch(&format!("/Groups/{child}"), ops(json!([{"op": "add", "path": "members", "value": [{"value": sam}, {"value": gene}]}]))).await;
    assert_eq!(status, 204, "{body}");
    // docs/write-paths.md#add-members: child 13 + 60, parent 60 with the same dateCreated/seq,
    // 14 to the child only.
    assert_eq!(
        edge_dsts(&app, "project", &child, 13).await,
        sorted(vec![sam.clone(), gene.clone()])
    );
    assert_eq!(
        phorge_members(&app, &child).await,
        sorted(vec![sam.clone(), gene.clone()])
    );
    assert_eq!(
        phorge_members(&app, &parent).await,
        sorted(vec![sam.clone(), gene.clone()])
    );
    let c = app.rows(&format!("SELECT dateCreated, seq FROM {{project}}.edge WHERE src = '{child}' AND type = 13 AND dst = '{sam}'")).await;
    let p = app.rows(&format!("SELECT dateCreated, seq FROM {{project}}.edge WHERE src = '{parent}' AND type = 60 AND dst = '{sam}'")).await;
    assert_eq!(c, p);
    assert_eq!(
        edge_dsts(&app, "project", &parent, 13).await,
        Vec::<String>::new()
    );
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM {{user}}.edge WHERE src = '{sam}' AND type = 14 AND dst = '{parent}'")).await, 0);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM {{project}}.project_transaction WHERE objectPHID = '{parent}'"
        ))
        .await,
        0
    );

    // Removing both: sam leaves the parent, gene stays there through the sibling.
    let (status, _) = app
        .patch(
            &format!("/Groups/{child}"),
            ops(json!([{"op": "remove", "path": "members"}])),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(phorge_members(&app, &child).await, Vec::<String>::new());
    assert_eq!(phorge_members(&app, &parent).await, vec![gene.clone()]);
    assert_eq!(inverse_srcs(&app, &child).await, Vec::<String>::new());
    app.cleanup().await;
}

#[tokio::test]
async fn put_renames_and_replaces_members_then_delete_archives() {
    let app = TestApp::spawn().await;
    let sam = create_user(&app, "sam").await;
    let gene = create_user(&app, "gene").await;
    let alex = create_user(&app, "alex").await;
    let (status, body) = app
        .post(
            "/Groups",
            json!({"displayName": "Oracle Lab", "members": [{"value": sam}, {"value": gene}]}),
        )
        .await;
    assert_eq!(status, 201);
    let id = body["id"].as_str().unwrap().to_owned();

    let (status, body) = app.put(&format!("/Groups/{id}"), json!({"schemas": [GROUP], "id": id, "displayName": "Oracle Lab Renamed", "members": [{"value": gene}, {"value": alex}]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["displayName"], "Oracle Lab Renamed");
    assert_eq!(member_ids(&body), sorted(vec![gene.clone(), alex.clone()]));
    assert_eq!(body["meta"]["version"], "W/\"2\"");
    // docs/write-paths.md#rename-a-group: new primary slug, old slug kept; tokens lag one save
    // (old slug, new words).
    assert_eq!(
        slugs(&app, &id).await,
        vec!["oracle_lab", "oracle_lab_renamed"]
    );
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM {{project}}.project WHERE phid = '{id}' AND name = 'Oracle Lab Renamed' AND primarySlug = 'oracle_lab_renamed'")).await, 1);
    assert_eq!(
        tokens(&app, &id).await,
        vec!["lab", "oracle", "oracle_lab", "renamed"]
    );
    let xs = xactions(&app, &id).await;
    let last: Vec<(&str, &str, &str)> = xs[xs.len() - 2..]
        .iter()
        .map(|x| {
            (
                x["transactionType"].as_str().unwrap(),
                x["oldValue"].as_str().unwrap(),
                x["newValue"].as_str().unwrap(),
            )
        })
        .collect();
    let removed = json!([sam]).to_string();
    let added = json!([alex]).to_string();
    assert_eq!(
        last,
        vec![
            ("project:name", "\"Oracle Lab\"", "\"Oracle Lab Renamed\""),
            ("core:edge", removed.as_str(), added.as_str())
        ]
    );
    // One edit, one group id, one publish task.
    let meta: Vec<Value> = xs[xs.len() - 2..]
        .iter()
        .map(|x| serde_json::from_str(x["metadata"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(meta[0]["core.groupID"], meta[1]["core.groupID"]);
    assert_eq!(publish_tasks(&app, &id).await.len(), 2);
    assert_eq!(
        phorge_members(&app, &id).await,
        sorted(vec![gene.clone(), alex.clone()])
    );

    // A rename onto another project's hashtag is a conflict.
    sql_project(&app, "Taken", "taken", None).await;
    let (status, body) = app
        .put(&format!("/Groups/{id}"), json!({"displayName": "Taken"}))
        .await;
    assert_eq!(
        (status.as_u16(), body["scimType"].as_str()),
        (409, Some("uniqueness")),
        "{body}"
    );

    let (status, body) = app.delete(&format!("/Groups/{id}")).await;
    assert_eq!(status, 204, "{body}");
    let p = &app
        .rows(&format!(
            "SELECT status FROM {{project}}.project WHERE phid = '{id}'"
        ))
        .await[0];
    assert_eq!(p["status"], "100");
    let x = xactions(&app, &id).await.pop().unwrap();
    assert_eq!(
        (
            x["transactionType"].as_str(),
            x["oldValue"].as_str(),
            x["newValue"].as_str()
        ),
        (Some("project:status"), Some("\"0\""), Some("100"))
    );
    assert_eq!(publish_tasks(&app, &id).await.len(), 3);
    // docs/write-paths.md#archive-a-group-delete: the archive save catches the tokens up with
    // the new slug.
    assert_eq!(
        tokens(&app, &id).await,
        vec![
            "lab",
            "oracle",
            "oracle_lab",
            "oracle_lab_renamed",
            "renamed"
        ]
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM {{scim}}.scim_group WHERE projectPHID = '{id}'"
        ))
        .await,
        0
    );
    // Members and hashtags stay with the archived project (`PhabricatorProjectArchiveController`
    // keeps them).
    assert_eq!(
        phorge_members(&app, &id).await,
        sorted(vec![gene.clone(), alex.clone()])
    );
    let (status, _) = app.get(&format!("/Groups/{id}")).await;
    assert_eq!(status, 404);
    let (status, _) = app.delete(&format!("/Groups/{id}")).await;
    assert_eq!(status, 404);
    let (_, user) = app.get(&format!("/Users/{gene}")).await;
    assert_eq!(user.get("groups"), None);
    app.cleanup().await;
}

/// Entra ID's group lifecycle (docs/scim-clients.md#entra-id-groups), request by request.
#[tokio::test]
async fn entra_group_sequence() {
    let app = TestApp::spawn().await;
    let u1 = create_user(&app, "u1").await;
    let u2 = create_user(&app, "u2").await;
    let u3 = create_user(&app, "u3").await;

    // 1. Match.
    let (status, list) = app
        .get("/Groups?excludedAttributes=members&filter=displayName+eq+%22displayName%22")
        .await;
    assert_eq!(
        (status.as_u16(), list["totalResults"].as_u64()),
        (200, Some(0))
    );
    // 2. Create, without members.
    let (status, created) = app
        .post(
            "/Groups",
            json!({"schemas": [GROUP, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                   "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "displayName": "displayName", "meta": {"resourceType": "Group"}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    // 3. Read.
    let (status, got) = app
        .get(&format!("/Groups/{id}?excludedAttributes=members"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(got["externalId"], "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159");
    let (_, list) = app
        .get("/Groups?excludedAttributes=members&filter=displayName+eq+%22displayName%22")
        .await;
    assert_eq!(list["Resources"][0]["id"], id.as_str());
    // 4. Add members, several values and several operations.
    let (status, body) = app
        .patch(
            &format!("/Groups/{id}"),
            ops(json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": u1}, {"$ref": null, "value": u2}]},
                       {"op": "Add", "path": "members", "value": [{"$ref": null, "value": u3}], "name": "addMember"}])),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        phorge_members(&app, &id).await,
        sorted(vec![u1.clone(), u2.clone(), u3.clone()])
    );
    // 5. Remove, default dialect (value list), then the flag dialect (filter).
    let (status, _) = app
        .patch(
            &format!("/Groups/{id}"),
            ops(json!([{"op": "Remove", "path": "members", "value": [{"value": u1}]}])),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        phorge_members(&app, &id).await,
        sorted(vec![u2.clone(), u3.clone()])
    );
    let (status, _) = app
        .patch(
            &format!("/Groups/{id}"),
            ops(json!([{"op": "remove", "path": format!("members[value eq \"{u2}\"]")}])),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(phorge_members(&app, &id).await, vec![u3.clone()]);
    assert_eq!(inverse_srcs(&app, &id).await, vec![u3.clone()]);
    // Entra retries removes: no-op success.
    let (status, _) = app
        .patch(
            &format!("/Groups/{id}"),
            ops(json!([{"op": "Remove", "path": "members", "value": [{"value": u1}]}])),
        )
        .await;
    assert_eq!(status, 204);
    // 6. Rename.
    let (status, _) = app.patch(&format!("/Groups/{id}"), ops(json!([{"op": "Replace", "path": "displayName", "value": "displayName updatedDisplayName"}]))).await;
    assert_eq!(status, 204);
    let (_, got) = app
        .get(&format!("/Groups/{id}?excludedAttributes=members"))
        .await;
    assert_eq!(got["displayName"], "displayName updatedDisplayName");
    assert_eq!(got.get("members"), None);
    assert_eq!(
        slugs(&app, &id).await,
        vec!["displayname", "displayname_updateddisplayname"]
    );
    let (_, list) = app.get("/Groups?excludedAttributes=members&filter=displayName+eq+%22displayname+UPDATEDdisplayname%22").await;
    assert_eq!(list["totalResults"], 1);
    // 7. Delete.
    let (status, _) = app.delete(&format!("/Groups/{id}")).await;
    assert_eq!(status, 204);
    let (status, _) = app.get(&format!("/Groups/{id}")).await;
    assert_eq!(status, 404);
    let (_, list) = app.get("/Groups?excludedAttributes=members&filter=displayName+eq+%22displayName+updatedDisplayName%22").await;
    assert_eq!(list["totalResults"], 0);
    let types: Vec<String> = xactions(&app, &id)
        .await
        .iter()
        .map(|x| x["transactionType"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        vec![
            "core:create",
            "project:name",
            "core:edge",
            "core:edge",
            "core:edge",
            "project:name",
            "project:status"
        ]
    );
    app.cleanup().await;
}

/// Okta's group push (docs/scim-clients.md#okta-groups), request by request.
#[tokio::test]
async fn okta_group_sequence() {
    let app = TestApp::spawn().await;
    let a = create_user(&app, "a").await;
    let b = create_user(&app, "b").await;
    let c = create_user(&app, "c").await;

    // 1. Create (empty members).
    let (status, created) = app
        .post(
            "/Groups",
            json!({"schemas": [GROUP], "displayName": "Test SCIMv2", "members": []}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    // 2. Read and import.
    let (status, _) = app.get(&format!("/Groups/{id}")).await;
    assert_eq!(status, 200);
    let (_, list) = app.get("/Groups?startIndex=1&count=100").await;
    assert_eq!(list["totalResults"], 1);
    // 3. Rename by no-path replace with the read-only id inside.
    let (status, body) = app.patch(&format!("/Groups/{id}"), ops(json!([{"op": "replace", "value": {"id": id, "displayName": "Test SCIMv2 Renamed"}}]))).await;
    assert_eq!(status, 204, "{body}");
    let (_, got) = app.get(&format!("/Groups/{id}")).await;
    assert_eq!(got["displayName"], "Test SCIMv2 Renamed");
    // Re-sent before every membership change: no change, no transaction.
    let n = xactions(&app, &id).await.len();
    let (status, _) = app.patch(&format!("/Groups/{id}"), ops(json!([{"op": "replace", "value": {"id": id, "displayName": "Test SCIMv2 Renamed"}}]))).await;
    assert_eq!(status, 204);
    assert_eq!(xactions(&app, &id).await.len(), n);
    // 4. Membership delta: remove then add, one request.
    app.patch(&format!("/Groups/{id}"), ops(json!([{"op": "add", "path": "members", "value": [{"value": a, "display": "a@example.com"}]}]))).await;
    let (status, body) = app
        .patch(
            &format!("/Groups/{id}"),
            ops(json!([{"op": "remove", "path": format!("members[value eq \"{a}\"]")}, {"op": "add", "path": "members", "value": [{"value": b, "display": "b@example.com"}]}])),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(phorge_members(&app, &id).await, vec![b.clone()]);
    let x = xactions(&app, &id).await.pop().unwrap();
    assert_eq!(
        (
            x["oldValue"].as_str().unwrap(),
            x["newValue"].as_str().unwrap()
        ),
        (
            json!([a]).to_string().as_str(),
            json!([b]).to_string().as_str()
        )
    );
    // 5. Full membership push.
    let (status, _) = app.patch(&format!("/Groups/{id}"), ops(json!([{"op": "replace", "path": "members", "value": [{"value": a}, {"value": c}]}]))).await;
    assert_eq!(status, 204);
    assert_eq!(
        phorge_members(&app, &id).await,
        sorted(vec![a.clone(), c.clone()])
    );
    assert_eq!(
        inverse_srcs(&app, &id).await,
        sorted(vec![a.clone(), c.clone()])
    );
    let (_, got) = app.get(&format!("/Groups/{id}")).await;
    assert_eq!(member_ids(&got), sorted(vec![a.clone(), c.clone()]));
    // 6. Delete.
    let (status, _) = app.delete(&format!("/Groups/{id}")).await;
    assert_eq!(status, 204);
    let (status, _) = app.get(&format!("/Groups/{id}")).await;
    assert_eq!(status, 404);
    app.cleanup().await;
}

/// Managed users made by SQL in bulk (scim_user + user rows), for size tests.
pub async fn bulk_users(app: &TestApp, n: u32, prefix: &str) -> Vec<String> {
    exec(
        app,
        &format!(
            "INSERT INTO {{user}}.user (phid, userName, realName, dateCreated, dateModified, profileImagePHID, conduitCertificate, \
             isSystemAgent, isDisabled, isAdmin, isEmailVerified, isApproved, accountSecret, isEnrolledInMultiFactor, availabilityCache, \
             availabilityCacheTTL, isMailingList, defaultProfileImagePHID, defaultProfileImageVersion) \
             SELECT CONCAT('PHID-USER-{prefix}', LPAD(seq, 12, '0')), CONCAT('{prefix}', seq), '', 1, 1, NULL, '', 0, 0, 0, 1, 1, '', 0, NULL, NULL, 0, NULL, NULL \
             FROM {{user}}.seq_1_to_{n}"
        ),
    )
    .await;
    exec(
        app,
        &format!(
            "INSERT INTO {{scim}}.scim_user (userPHID, userName, externalID, attributes, version, isDeprovisioned, dateCreated, dateModified) \
             SELECT CONCAT('PHID-USER-{prefix}', LPAD(seq, 12, '0')), CONCAT('{prefix}', seq, '@example.com'), NULL, '{{}}', 1, 0, 1, 1 FROM {{user}}.seq_1_to_{n}"
        ),
    )
    .await;
    (1..=n)
        .map(|i| format!("PHID-USER-{prefix}{i:012}"))
        .collect()
}

#[tokio::test]
async fn large_membership_changes_cross_chunks() {
    let app = TestApp::spawn().await;
    let users = bulk_users(&app, 1200, "bulk").await;
    let id = create_group(&app, "Everyone").await;
    let value: Vec<Value> = users.iter().map(|u| json!({"value": u})).collect();
    let (status, body) = app
        .patch(
            &format!("/Groups/{id}"),
            ops(json!([{"op": "add", "path": "members", "value": value}])),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    // seq runs 0..n over the one source across chunks of 500.
    let seqs = app.rows(&format!("SELECT MIN(seq) AS lo, MAX(seq) AS hi, COUNT(DISTINCT seq) AS n FROM {{project}}.edge WHERE src = '{id}' AND type = 13")).await;
    assert_eq!(seqs[0], json!({"lo": 0, "hi": 1199, "n": 1200}));
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM {{project}}.edge WHERE src = '{id}' AND type = 60"
        ))
        .await,
        1200
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM {{user}}.edge WHERE dst = '{id}' AND type = 14 AND seq = 0"
        ))
        .await,
        1200
    );
    let x = xactions(&app, &id).await.pop().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(x["newValue"].as_str().unwrap())
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1200
    );

    let (_, got) = app
        .get(&format!("/Groups/{id}?attributes=members,members.display"))
        .await;
    assert_eq!(got["members"].as_array().unwrap().len(), 1200);
    assert_eq!(got["members"][0]["value"], users[0].as_str());
    assert_eq!(got["members"][0]["display"], "bulk1@example.com");
    let (_, got) = app
        .get(&format!("/Groups/{id}?excludedAttributes=members"))
        .await;
    assert_eq!(got.get("members"), None);

    let value: Vec<Value> = users[..700].iter().map(|u| json!({"value": u})).collect();
    let (status, _) = app
        .patch(
            &format!("/Groups/{id}"),
            ops(json!([{"op": "Remove", "path": "members", "value": value}])),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(phorge_members(&app, &id).await.len(), 500);
    assert_eq!(inverse_srcs(&app, &id).await.len(), 500);
    app.cleanup().await;
}

#[tokio::test]
async fn concurrent_identical_posts_make_one_group() {
    let app = TestApp::spawn().await;
    let body = json!({"schemas": [GROUP], "displayName": "Race"});
    let (a, b, c, d) = tokio::join!(
        app.post("/Groups", body.clone()),
        app.post("/Groups", body.clone()),
        app.post("/Groups", json!({"displayName": "RACE"})),
        app.post("/Groups", body.clone()),
    );
    let mut statuses: Vec<u16> = [&a, &b, &c, &d].iter().map(|(s, _)| s.as_u16()).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        vec![201, 409, 409, 409],
        "{a:?} {b:?} {c:?} {d:?}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM {project}.project").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {project}.project_slug")
            .await,
        1
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM {scim}.scim_group").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM {worker}.worker_activetask WHERE taskClass = 'PhabricatorApplicationTransactionPublishWorker'").await, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn etags_guard_group_writes() {
    let app = TestApp::spawn().await;
    let sam = create_user(&app, "sam").await;
    let id = create_group(&app, "Versioned").await;
    let add = ops(json!([{"op": "add", "path": "members", "value": [{"value": sam}]}]));
    let (status, _, _) = app
        .send_with(
            Method::PATCH,
            &format!("/Groups/{id}"),
            Some(add.clone()),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, _) = app
        .send_with(
            Method::PATCH,
            &format!("/Groups/{id}"),
            Some(add),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(status, 412);
    let (status, _, _) = app
        .send_with(
            Method::GET,
            &format!("/Groups/{id}"),
            None,
            &[("if-none-match", "W/\"2\"")],
        )
        .await;
    assert_eq!(status, 304);
    let (status, _, _) = app
        .send_with(
            Method::DELETE,
            &format!("/Groups/{id}"),
            None,
            &[("if-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(status, 412);
    assert_eq!(app.count("SELECT COUNT(*) FROM {scim}.scim_group").await, 1);
    app.cleanup().await;
}

/// DELETE /Users takes the user out of every group SCIM manages in the same transaction, with
/// the rows a member removal writes (13, 14 and 60 edges, a `core:edge` transaction, a publish
/// task, a new group version, a sync-log row with the status the DELETE answered), so no
/// member `$ref` answers 404. `active: false` keeps the memberships, as Phabricator's disable
/// does (issue 15).
#[tokio::test]
async fn a_deleted_user_leaves_every_group() {
    let app = TestApp::spawn().await;
    let sam = create_user(&app, "sam").await;
    let gene = create_user(&app, "gene").await;
    let lab = create_group(&app, "Oracle Lab").await;
    let night = create_group(&app, "Night Ops").await;
    for g in [&lab, &night] {
        let (s, b) = app
            .patch(&format!("/Groups/{g}"), ops(json!([{"op": "add", "path": "members", "value": [{"value": sam}, {"value": gene}]}])))
            .await;
        assert_eq!(s, 204, "{b}");
    }
    // A disabled user stays a member.
    let (s, b) = app
        .patch(
            &format!("/Users/{gene}"),
            ops(json!([{"op": "replace", "path": "active", "value": false}])),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let before: Vec<(usize, usize)> = {
        let mut v = Vec::new();
        for g in [&lab, &night] {
            v.push((
                xactions(&app, g).await.len(),
                publish_tasks(&app, g).await.len(),
            ));
        }
        v
    };
    let (s, b) = app.delete(&format!("/Users/{sam}")).await;
    assert_eq!(s, 204, "{b}");
    for (g, (nx, nt)) in [&lab, &night].into_iter().zip(before) {
        let (s, group) = app.get(&format!("/Groups/{g}")).await;
        assert_eq!(s, 200);
        assert_eq!(member_ids(&group), vec![gene.clone()], "{group}");
        assert_eq!(group["meta"]["version"], "W/\"3\"");
        for m in group["members"].as_array().unwrap() {
            let r = app
                .client
                .get(m["$ref"].as_str().unwrap())
                .bearer_auth(&app.token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{m}");
        }
        assert_eq!(edge_dsts(&app, "project", g, 13).await, vec![gene.clone()]);
        assert_eq!(phorge_members(&app, g).await, vec![gene.clone()]);
        assert_eq!(inverse_srcs(&app, g).await, vec![gene.clone()]);
        let xs = xactions(&app, g).await;
        assert_eq!(xs.len(), nx + 1);
        let x = xs.last().unwrap();
        assert_eq!(x["transactionType"], "core:edge");
        assert_eq!(
            (
                x["oldValue"].as_str().unwrap(),
                x["newValue"].as_str().unwrap()
            ),
            (json!([sam]).to_string().as_str(), "[]")
        );
        assert_eq!(x["authorPHID"], app.bot_phid.as_str());
        assert_eq!(publish_tasks(&app, g).await.len(), nt + 1);
        let ev = app
            .rows(&format!(
                "SELECT method, status, outcome FROM {{scim}}.scim_event WHERE objectPHID = '{g}' ORDER BY id DESC LIMIT 1"
            ))
            .await;
        assert_eq!(
            ev[0],
            json!({"method": "DELETE", "status": 204, "outcome": "ok"})
        );
    }
    assert_eq!(
        edge_dsts(&app, "user", &sam, 14).await,
        Vec::<String>::new()
    );
    assert_eq!(
        edge_dsts(&app, "user", &gene, 14).await,
        sorted(vec![lab.clone(), night.clone()])
    );
    app.cleanup().await;
}

/// The sync log records the status a PATCH /Groups answered (204 without attributes, 200
/// with them) and the token of every write, Bulk operations included (issue 15).
#[tokio::test]
async fn the_sync_log_records_the_status_sent_and_the_token() {
    let app = TestApp::spawn().await;
    let token_id: i64 = app
        .count("SELECT id FROM {scim}.scim_token WHERE label = 'test'")
        .await;
    let sam = create_user(&app, "sam").await;
    let id = create_group(&app, "Oracle Lab").await;
    let (s, b) = app
        .patch(
            &format!("/Groups/{id}"),
            ops(json!([{"op": "add", "path": "members", "value": [{"value": sam}]}])),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, _) = app
        .patch(
            &format!("/Groups/{id}?attributes=displayName"),
            ops(json!([{"op": "replace", "path": "displayName", "value": "Oracle Lab 2"}])),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = app
        .put(
            &format!("/Groups/{id}"),
            json!({"schemas": [GROUP], "displayName": "Oracle Lab 3", "members": [{"value": sam}]}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = app
        .put(
            &format!("/Users/{sam}"),
            user_body("sam@example.com", "sam@example.com", "Sam S"),
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = app
        .post(
            "/Bulk",
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "u", "data": user_body("kim@example.com", "kim@example.com", "Kim")},
                {"method": "PATCH", "path": format!("/Groups/{id}"), "data": ops(json!([{"op": "add", "path": "members", "value": [{"value": "bulkId:u"}]}]))},
                {"method": "DELETE", "path": format!("/Users/{sam}")}
            ]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = app.delete(&format!("/Groups/{id}")).await;
    assert_eq!(s, 204);
    let rows = app
        .rows("SELECT method, path, status, tokenID FROM {scim}.scim_event ORDER BY id")
        .await;
    let statuses: Vec<(String, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_owned(),
                r["status"].as_i64().unwrap(),
            )
        })
        .collect();
    let want = |m: &str, s: i64| (m.to_owned(), s);
    assert_eq!(
        statuses,
        vec![
            want("POST", 201),
            want("POST", 201),
            want("PATCH", 204),
            want("PATCH", 200),
            want("PUT", 200),
            want("PUT", 200),
            want("POST", 201),
            // Bulk answers each operation with its own status: 200 for a PATCH.
            want("PATCH", 200),
            // The deleted user leaves the group, then the user row.
            want("DELETE", 204),
            want("DELETE", 204),
            want("DELETE", 204),
        ],
        "{rows:?}"
    );
    assert!(
        rows.iter().all(|r| r["tokenID"].as_i64() == Some(token_id)),
        "{rows:?}"
    );
    app.cleanup().await;
}
