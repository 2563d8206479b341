//! A staged rollout (issue 14): the IdP's writes touch none of Phabricator's tables, read back
//! as live mode would answer them, and become a plan; `phab-scim apply` then writes exactly the
//! rows live mode writes for the same requests, and resumes after a kill.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use phab_scim::config::RolloutMode;
use phab_scim::provisioning::Provisioner;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, database_url, user_body};
use crate::takeover::{Kind, insert_account};

const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// Every table a SCIM write changes, in an order that does not depend on when rows were written
/// relative to other tables: what live and staged-then-applied must hold alike.
const WRITTEN: &[(&str, &str)] = &[
    ("{user}.user", "id"),
    ("{user}.user_email", "id"),
    ("{user}.user_nametoken", "userID, token"),
    ("{user}.user_log", "id"),
    ("{user}.user_transaction", "id"),
    ("{user}.edge", EDGE_ORDER),
    ("{user}.user_externalaccount", "id"),
    ("{user}.phabricator_session", "id"),
    ("{project}.project", "id"),
    ("{project}.project_slug", "id"),
    ("{project}.project_datasourcetoken", "id"),
    ("{project}.project_transaction", "id"),
    ("{project}.edge", EDGE_ORDER),
    ("{worker}.worker_activetask", "id"),
    ("{worker}.worker_taskdata", "id"),
    ("{worker}.lisk_counter", "counterName"),
    ("{auth}.auth_temporarytoken", "id"),
    ("{conduit}.conduit_token", "id"),
    ("{system}.system_destructionlog", "id"),
    ("{scim}.scim_user", "id"),
    ("{scim}.scim_useremail", "id"),
    ("{scim}.scim_group", "id"),
];

/// Edges are read in any order and sorted by [`sort_edges`]: by type, then by the ids of their
/// ends (their PHIDs are random), which are in `<ns>_user` and `<ns>_project`, perhaps on
/// other servers than the edge table.
const EDGE_ORDER: &str = "type";

/// Sorts edge rows by type, then by the account or project ids of `src` and `dst`.
fn sort_edges(rows: &mut [Value], ids: &HashMap<String, i64>) {
    let id = |r: &Value, k: &str| r[k].as_str().and_then(|p| ids.get(p)).copied();
    rows.sort_by_key(|r| (r["type"].as_i64(), id(r, "src"), id(r, "dst")));
}

/// Values that differ between two runs of the same requests: times and random secrets.
fn is_volatile(column: &str) -> bool {
    column.starts_with("date")
        || column.ends_with("Date")
        || column.ends_with("Epoch")
        || matches!(
            column,
            "accountSecret"
                | "conduitCertificate"
                | "verificationCode"
                | "mailKey"
                | "sessionKey"
                | "sessionStart"
                | "sessionExpires"
                | "projectPathKey"
                | "projectPath"
                | "leaseExpires"
                | "dataID"
        )
}

/// The rows of [`WRITTEN`], with volatile values masked and each PHID replaced by its order of
/// first appearance: two runs that wrote the same rows give the same value.
///
/// With `renumber`, ids are compared by their order instead: an interrupted transaction uses
/// up auto-increment values (InnoDB does not give them back), so after a kill the ids of
/// later rows differ by the gap, and only their order and references must match.
async fn written_rows(app: &TestApp, renumber: bool) -> Value {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let ordinals = |rows: Vec<Value>| -> HashMap<i64, usize> {
        rows.iter()
            .enumerate()
            .map(|(n, r)| (r["id"].as_i64().unwrap(), n))
            .collect()
    };
    let users = ordinals(app.rows("SELECT id FROM {user}.user ORDER BY id").await);
    let projects = ordinals(
        app.rows("SELECT id FROM {project}.project ORDER BY id")
            .await,
    );
    let mut ids: HashMap<String, i64> = HashMap::new();
    for table in ["{user}.user", "{project}.project"] {
        for r in app.rows(&format!("SELECT id, phid FROM {table}")).await {
            if let (Some(id), Some(phid)) = (r["id"].as_i64(), r["phid"].as_str()) {
                ids.insert(phid.to_owned(), id);
            }
        }
    }
    let mut out = serde_json::Map::new();
    for (table, order) in WRITTEN {
        let mut rows = app
            .rows(&format!("SELECT * FROM {table} ORDER BY {order}"))
            .await;
        if *order == EDGE_ORDER {
            sort_edges(&mut rows, &ids);
        }
        let masked: Vec<Value> = rows
            .into_iter()
            .map(|row| {
                let Value::Object(cols) = row else {
                    return row;
                };
                let cols = cols
                    .into_iter()
                    .map(|(k, v)| {
                        let v = match v {
                            _ if is_volatile(&k) => json!("*"),
                            _ if renumber && (k == "id" || k == "counterValue") => json!("#"),
                            Value::Number(n) if renumber && k == "userID" => {
                                json!(format!("user#{}", users[&n.as_i64().unwrap()]))
                            }
                            Value::Number(n) if renumber && k == "projectID" => {
                                json!(format!("project#{}", projects[&n.as_i64().unwrap()]))
                            }
                            // A transaction group's id is random: the rest of it is not.
                            Value::String(s) if k == "metadata" => {
                                let mut m: Value = serde_json::from_str(&s).unwrap_or(json!(s));
                                if let Some(o) = m.as_object_mut() {
                                    o.remove("core.groupID");
                                }
                                Value::String(number_phids(&m.to_string(), &mut seen))
                            }
                            Value::String(s) => Value::String(number_phids(&s, &mut seen)),
                            other => other,
                        };
                        (k, v)
                    })
                    .collect();
                Value::Object(cols)
            })
            .collect();
        out.insert((*table).to_owned(), Value::Array(masked));
    }
    Value::Object(out)
}

/// `s` with each PHID (`PHID-` and the letters, digits and dashes after it) replaced by
/// `PHID#<n>`, `n` its order of first appearance in `seen`.
fn number_phids(s: &str, seen: &mut HashMap<String, usize>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("PHID-") {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(tail.len());
        let n = seen.len();
        let n = *seen.entry(tail[..len].to_owned()).or_insert(n);
        out.push_str(&format!("PHID#{n}"));
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

/// Asserts two [`written_rows`] are equal, naming the first table and row that differ.
fn assert_same_rows(staged: &Value, live: &Value) {
    for (table, _) in WRITTEN {
        let (a, b) = (&staged[*table], &live[*table]);
        let (a, b) = (a.as_array().unwrap(), b.as_array().unwrap());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert_eq!(x, y, "{table}, row {i}: staged then applied, then live");
        }
        assert_eq!(
            a.len(),
            b.len(),
            "{table}: rows staged then applied, then live"
        );
    }
}

/// Accounts made by hand before provisioning: a person with a session, an administrator, and
/// an account that has the username a new hire would get.
async fn seed_accounts(app: &TestApp) {
    insert_account(app, "hand", "hand@example.com", Kind::Person).await;
    insert_account(app, "boss", "boss@example.com", Kind::Admin).await;
    insert_account(app, "carol", "c.other@example.com", Kind::Person).await;
}

/// Begins the staged rollout again, after the test seeded Phabricator (nothing was staged yet).
async fn restage(app: &TestApp) {
    let stager = Provisioner {
        db: app.root_db().await,
        cfg: Arc::new(app.cfg.clone()),
    };
    stager.begin_stage(false).await.expect("stage");
}

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH], "Operations": ops})
}

/// An IdP's first push and a few changes: new hires, an adoption, a hire whose username is
/// taken, an administrator it may not adopt, updates, deactivations, groups and members.
/// Returns the ids it was given, by name.
async fn idp_sequence(app: &TestApp) -> HashMap<&'static str, String> {
    let mut ids = HashMap::new();
    for (name, email) in [
        ("alice", "alice@example.com"),
        ("hand", "hand@example.com"),
        ("carol", "carol@example.com"),
        ("dave", "dave@example.com"),
    ] {
        let (s, b) = app
            .post(
                "/Users",
                user_body(email, email, &format!("{name} Example")),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{name}: {b}");
        ids.insert(name, b["id"].as_str().unwrap().to_owned());
    }
    let (s, b) = app
        .post(
            "/Users",
            user_body("boss@example.com", "boss@example.com", "Boss"),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "an administrator is not adopted: {b}"
    );
    let (s, b) = app
        .post(
            "/Users",
            user_body("h.and@example.com", "hand@example.com", "Hand Again"),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "two IdP users cannot claim one account: {b}"
    );
    let (s, b) = app
        .patch(
            &format!("/Users/{}", ids["alice"]),
            patch(json!([{"op": "replace", "path": "displayName", "value": "Alice Renamed"}])),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for name in ["hand", "dave"] {
        let (s, b) = app
            .patch(
                &format!("/Users/{}", ids[name]),
                patch(json!([{"op": "replace", "path": "active", "value": false}])),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{name}: {b}");
    }
    let (s, b) = app
        .post(
            "/Groups",
            json!({"schemas": [GROUP], "displayName": "Engineering",
                   "members": [{"value": ids["alice"]}, {"value": ids["hand"]}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    ids.insert("engineering", b["id"].as_str().unwrap().to_owned());
    let (s, b) = app
        .patch(
            &format!("/Groups/{}", ids["engineering"]),
            patch(json!([
                {"op": "add", "path": "members", "value": [{"value": ids["carol"]}]},
                {"op": "remove", "path": format!("members[value eq \"{}\"]", ids["hand"])},
            ])),
        )
        .await;
    assert!(s.is_success(), "{s} {b}");
    let (s, b) = app
        .post(
            "/Groups",
            json!({"schemas": [GROUP], "displayName": "Short Lived"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let short = b["id"].as_str().unwrap().to_owned();
    let (s, _) = app.delete(&format!("/Groups/{short}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.delete(&format!("/Users/{}", ids["dave"])).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // A Bulk request: each of its operations is one of the plan's, bulkIds resolved.
    let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "f", "data": user_body("frank@example.com", "frank@example.com", "Frank")},
        {"method": "POST", "path": "/Groups", "bulkId": "o", "data": {"schemas": [GROUP], "displayName": "Ops", "members": [{"value": "bulkId:f"}]}},
        {"method": "PATCH", "path": "/Groups/bulkId:o", "data": patch(json!([{"op": "replace", "path": "displayName", "value": "Operations"}]))},
    ]});
    let (s, _, b) = app.send(reqwest::Method::POST, "/Bulk", Some(bulk)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for op in b["Operations"].as_array().unwrap() {
        assert!(op["status"].as_str().unwrap().starts_with('2'), "{b}");
    }
    ids
}

/// Runs `phab-scim apply` on the app's namespace as the migrate account would.
fn apply_command(app: &TestApp) -> Command {
    app.cli("apply")
}

fn staged(cfg: &mut phab_scim::config::Config) {
    cfg.mode = RolloutMode::Staged;
}

/// The tables `stage` copies with their rows, and the columns it replaces (secrets).
const COPIED: &[(&str, &str, &[&str])] = &[
    ("user", "user", &["accountSecret", "conduitCertificate"]),
    ("user", "user_email", &["verificationCode"]),
    ("user", "user_nametoken", &[]),
    ("user", "edge", &[]),
    ("user", "user_externalaccount", &["accountSecret"]),
    ("user", "phabricator_session", &["sessionKey"]),
    ("project", "project", &[]),
    ("project", "project_slug", &[]),
    ("project", "project_datasourcetoken", &[]),
    ("project", "edge", &[]),
    ("auth", "auth_temporarytoken", &["tokenCode"]),
    ("conduit", "conduit_token", &["token"]),
    ("worker", "lisk_counter", &[]),
    ("scim", "scim_user", &[]),
    ("scim", "scim_group", &[]),
];

/// `stage` copies every row as stored, on one server and from other masters alike (in a
/// partitioned run `project`, `auth`, `conduit` and `worker` are elsewhere): text outside
/// ASCII, quotes and backslashes, binary PHIDs, NULLs, JSON and numbers arrive unchanged; only
/// secrets are replaced.
#[tokio::test]
async fn stage_copies_every_row_as_stored_from_every_master() {
    let app = TestApp::spawn_with(staged).await;
    seed_accounts(&app).await;
    let member = app
        .rows("SELECT phid FROM {user}.user WHERE userName = 'hand'")
        .await[0]["phid"]
        .as_str()
        .unwrap()
        .to_owned();
    let phid = phab_scim::db::phabricator::new_phid("PROJ");
    for sql in [
        format!(
            "INSERT INTO {{project}}.project (name, phid, authorPHID, dateCreated, dateModified, status, viewPolicy, editPolicy, \
             joinPolicy, isMembershipLocked, profileImagePHID, icon, color, mailKey, primarySlug, parentProjectPHID, hasWorkboard, \
             hasMilestones, hasSubprojects, milestoneNumber, projectPath, projectDepth, projectPathKey, properties, spacePHID, subtype) \
             VALUES ('Équipe — 東京 \\\\ ''q''', '{phid}', '{member}', 7, 8, '0', 'users', 'users', 'users', 0, NULL, 'project', 'blue', \
             'aaaaaaaaaaaaaaaaaaaa', 'equipe', NULL, 0, 0, 0, NULL, 'abcd', 0, 'abcd', '{{\"x\":[1]}}', NULL, 'default')"
        ),
        format!(
            "INSERT INTO {{project}}.project_slug (projectPHID, slug, dateCreated, dateModified) VALUES ('{phid}', 'equipe', 1, 1)"
        ),
        format!("INSERT INTO {{project}}.edge VALUES ('{phid}', 13, '{member}', 1, 0, NULL)"),
        format!("INSERT INTO {{user}}.edge VALUES ('{member}', 14, '{phid}', 1, 0, NULL)"),
    ] {
        app.exec(&sql).await;
    }
    restage(&app).await;
    for (db, table, secret) in COPIED {
        let read = |name: String| format!("SELECT * FROM {name} ORDER BY 1, 2");
        let masked = |rows: Vec<Value>| -> Vec<Value> {
            rows.into_iter()
                .map(|mut r| {
                    for c in *secret {
                        r[*c] = json!("secret");
                    }
                    r
                })
                .collect()
        };
        let live = masked(app.rows(&read(format!("{{{db}}}.{table}"))).await);
        let copy = masked(app.rows(&read(format!("{{scimstage}}.{db}_{table}"))).await);
        assert_eq!(copy, live, "{db}.{table}");
        if *table == "project" || *table == "edge" || *table == "user" {
            assert!(!live.is_empty(), "{db}.{table} has rows to copy");
        }
    }
    let name = app
        .rows("SELECT name FROM {scimstage}.project_project")
        .await;
    assert_eq!(name, vec![json!({"name": "Équipe — 東京 \\ 'q'"})]);
    app.cleanup().await;
}

#[tokio::test]
async fn staged_writes_leave_phabricator_untouched_and_read_back_as_live() {
    let app = TestApp::spawn_with(staged).await;
    seed_accounts(&app).await;
    restage(&app).await;
    let before = written_rows(&app, false).await;
    let ids = idp_sequence(&app).await;
    assert_eq!(
        written_rows(&app, false).await,
        before,
        "a staged rollout writes none of Phabricator's tables (nor the SCIM records)"
    );
    // The IdP reads back what it wrote: resources, filters, members.
    let (s, alice) = app.get(&format!("/Users/{}", ids["alice"])).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(alice["displayName"], "Alice Renamed");
    let (_, found) = app
        .get("/Users?filter=userName%20eq%20%22carol@example.com%22")
        .await;
    assert_eq!(found["totalResults"], 1, "{found}");
    assert_eq!(found["Resources"][0]["id"], ids["carol"].as_str());
    let (_, hand) = app.get(&format!("/Users/{}", ids["hand"])).await;
    assert_eq!(hand["active"], false);
    let (_, group) = app.get(&format!("/Groups/{}", ids["engineering"])).await;
    let mut members: Vec<&str> = group["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    members.sort_unstable();
    let mut expected = vec![ids["alice"].as_str(), ids["carol"].as_str()];
    expected.sort_unstable();
    assert_eq!(members, expected);
    let (s, _) = app.get(&format!("/Users/{}", ids["dave"])).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "deleted, as live would answer");
    app.cleanup().await;
}

#[tokio::test]
async fn the_plan_names_each_change_and_each_conflict() {
    let app = TestApp::spawn_with(staged).await;
    seed_accounts(&app).await;
    restage(&app).await;
    let ids = idp_sequence(&app).await;
    let kinds: HashMap<String, i64> = app
        .rows("SELECT kind, COUNT(*) AS n FROM {scim}.scim_planentry GROUP BY kind")
        .await
        .into_iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_owned(),
                r["n"].as_i64().unwrap(),
            )
        })
        .collect();
    let want: HashMap<String, i64> = [
        ("user.create", 4),
        ("user.adopt", 1),
        ("user.update", 1),
        ("user.deactivate", 2),
        ("user.delete", 1),
        ("group.create", 3),
        ("group.update", 1),
        ("group.members", 1),
        ("group.delete", 1),
        ("conflict", 2),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_owned(), n))
    .collect();
    assert_eq!(kinds, want);
    let entry = |kind: &'static str, phid: String| {
        let app = &app;
        async move {
            let rows = app
                .rows(&format!(
                    "SELECT * FROM {{scim}}.scim_planentry WHERE kind = '{kind}' AND objectPHID = '{phid}'"
                ))
                .await;
            assert_eq!(rows.len(), 1, "{kind} {phid}: {rows:?}");
            let details: Value =
                serde_json::from_str(rows[0]["details"].as_str().unwrap()).unwrap();
            (rows[0].clone(), details)
        }
    };
    // The hire whose username is taken gets another, and the plan says so.
    let (_, carol) = entry("user.create", ids["carol"].clone()).await;
    assert_eq!(carol["username"], "carol2");
    assert_eq!(carol["usernameTaken"], "carol");
    // The adoption names the account it takes over, which keeps its PHID.
    let hand_phid = app
        .rows("SELECT phid FROM {user}.user WHERE userName = 'hand'")
        .await[0]["phid"]
        .clone();
    assert_eq!(ids["hand"], hand_phid.as_str().unwrap());
    entry("user.adopt", ids["hand"].clone()).await;
    // The deactivation of a person with a web session says it would end it.
    let (_, hand) = entry("user.deactivate", ids["hand"].clone()).await;
    assert_eq!(hand["revoked"]["sessions"], 1, "{hand}");
    assert_eq!(hand["active"], json!({"old": true, "new": false}));
    // The administrator is a conflict, with the status the IdP got.
    let conflict = app
        .rows("SELECT * FROM {scim}.scim_planentry WHERE kind = 'conflict' ORDER BY id")
        .await;
    assert_eq!(conflict[0]["status"], 409);
    assert!(
        conflict[0]["summary"].as_str().unwrap().contains("boss"),
        "{conflict:?}"
    );
    assert_eq!(conflict[1]["status"], 409);
    assert!(
        conflict[1]["summary"]
            .as_str()
            .unwrap()
            .contains("another SCIM user"),
        "{conflict:?}"
    );
    let (_, members) = entry("group.members", ids["engineering"].clone()).await;
    assert_eq!(members["members"]["added"], 1);
    assert_eq!(members["members"]["removed"], 1);
    // `phab-scim status` says where the rollout is.
    let out = Command::new(env!("CARGO_BIN_EXE_phab-scim"))
        .arg("status")
        .env("PHAB_SCIM_DATABASE_URL", database_url())
        .env("PHAB_SCIM_NAMESPACE", app.ns.as_str())
        .env("PHAB_SCIM_MODE", "staged")
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{status}");
    for line in [
        "mode:             staged",
        "staged rollout:   staged",
        "2 conflict",
        "4 user.create",
    ] {
        assert!(status.contains(line), "{line:?} in {status}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn apply_writes_what_live_mode_writes() {
    let live = TestApp::spawn().await;
    seed_accounts(&live).await;
    let live_ids = idp_sequence(&live).await;

    let app = TestApp::spawn_with(staged).await;
    seed_accounts(&app).await;
    restage(&app).await;
    let ids = idp_sequence(&app).await;
    let out = apply_command(&app).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_rows(
        &written_rows(&app, false).await,
        &written_rows(&live, false).await,
    );
    // The ids the IdP got while staged are the accounts' and projects' own.
    for name in ["alice", "carol", "engineering"] {
        let path = if name == "engineering" {
            format!("/Groups/{}", ids[name])
        } else {
            format!("/Users/{}", ids[name])
        };
        let (s, b) = app.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{name} after apply: {b}");
        assert_ne!(ids[name], live_ids[name], "two runs, two sets of PHIDs");
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {scim}.scim_stageop WHERE state <> 'applied'")
            .await,
        0
    );
    let copies = format!("{}_scimstage", app.ns.as_str());
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{copies}'"
        ))
        .await,
        0,
        "the staged copies are dropped once applied"
    );
    // Now live: a write changes Phabricator at once.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, b) = app
        .post(
            "/Users",
            user_body("erin@example.com", "erin@example.com", "Erin"),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {user}.user WHERE userName = 'erin'")
            .await,
        1
    );
    live.cleanup().await;
    app.cleanup().await;
}

/// Many users and changes: enough operations for a kill to land in the middle of `apply`.
async fn long_sequence(app: &TestApp) {
    for i in 0..60 {
        let email = format!("user{i:03}@example.com");
        let (s, b) = app.post("/Users", user_body(&email, &email, "Many")).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let id = b["id"].as_str().unwrap().to_owned();
        let (s, b) = app
            .patch(
                &format!("/Users/{id}"),
                patch(
                    json!([{"op": "replace", "path": "displayName", "value": format!("Many {i}")}]),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
}

#[tokio::test]
async fn apply_killed_midway_resumes_to_the_same_rows() {
    let live = TestApp::spawn().await;
    long_sequence(&live).await;

    let app = TestApp::spawn_with(staged).await;
    long_sequence(&app).await;
    let total = app.count("SELECT COUNT(*) FROM {scim}.scim_stageop").await;
    assert_eq!(total, 120);
    let mut child = apply_command(&app)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut applied = 0;
    for _ in 0..2000 {
        applied = app
            .count("SELECT COUNT(*) FROM {scim}.scim_stageop WHERE state = 'applied'")
            .await;
        if applied >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let applied = app
        .count("SELECT COUNT(*) FROM {scim}.scim_stageop WHERE state = 'applied'")
        .await
        .max(applied);
    assert!(
        applied > 0 && applied < total,
        "the kill landed mid-way: {applied} of {total} applied"
    );
    // Writes wait while the plan is half applied.
    let (s, _, _) = app
        .send(
            reqwest::Method::POST,
            "/Users",
            Some(user_body("late@example.com", "late@example.com", "Late")),
        )
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    let out = apply_command(&app).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("applied by an earlier run"),
        "the second run goes on from the first: {stdout}"
    );
    assert_same_rows(
        &written_rows(&app, true).await,
        &written_rows(&live, true).await,
    );
    live.cleanup().await;
    app.cleanup().await;
}

#[tokio::test]
async fn apply_stops_where_phabricator_changed_since_staging_and_writes_none_of_it() {
    let app = TestApp::spawn_with(staged).await;
    let (s, b) = app
        .post(
            "/Users",
            user_body("kim@example.com", "kim@example.com", "Kim"),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = app
        .post(
            "/Users",
            user_body("lou@example.com", "lou@example.com", "Lou"),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    // Meanwhile an administrator makes Kim's account by hand: applying the staged create
    // would now adopt it, and the id the IdP holds would name nobody.
    insert_account(&app, "kim", "kim@example.com", Kind::Person).await;
    let before = written_rows(&app, false).await;
    let out = apply_command(&app).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("stopped at operation")
            && stdout.contains("changed since the plan was staged"),
        "{stdout}"
    );
    assert_eq!(
        written_rows(&app, false).await,
        before,
        "the refused operation wrote nothing, and none after it ran"
    );
    let states = app
        .rows("SELECT state, error FROM {scim}.scim_stageop ORDER BY id")
        .await;
    assert_eq!(states[0]["state"], "failed", "{states:?}");
    assert_eq!(states[1]["state"], "staged", "{states:?}");
    app.cleanup().await;
}

#[tokio::test]
async fn an_apply_asked_for_on_the_plan_page_is_run_once_by_the_service() {
    let app = TestApp::spawn_with(staged).await;
    let (s, b) = app
        .post(
            "/Users",
            user_body("max@example.com", "max@example.com", "Max"),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let prov = &app.state.prov;
    assert!(
        prov.apply_if_requested().await.unwrap().is_none(),
        "nothing asked, nothing applied"
    );
    // What the Plan page's Apply button writes.
    app.exec("UPDATE {scim}.scim_rollout SET applyRequestedBy = 'PHID-USER-admin', dateApplyRequested = UNIX_TIMESTAMP()",).await;
    let report = prov.apply_if_requested().await.unwrap().expect("applied");
    assert_eq!((report.applied, report.failed.is_none()), (1, true));
    // The service's own account may not drop the copies; the plan is applied all the same.
    assert!(report.copies_left.is_some(), "{report:?}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {user}.user WHERE userName = 'max'")
            .await,
        1
    );
    let rollout = app
        .rows("SELECT phase, dateApplyRequested FROM {scim}.scim_rollout")
        .await;
    assert_eq!(rollout[0]["phase"], "applied");
    assert_eq!(
        rollout[0]["dateApplyRequested"],
        Value::Null,
        "claimed once"
    );
    assert!(prov.apply_if_requested().await.unwrap().is_none());
    app.cleanup().await;
}

#[tokio::test]
async fn check_in_staged_mode_names_the_grants_on_the_copies() {
    let app = TestApp::spawn_with(staged).await;
    let check = |mode: &str| {
        Command::new(env!("CARGO_BIN_EXE_phab-scim"))
            .arg("check")
            .env("PHAB_SCIM_DATABASE_URL", app.cfg.database_url.expose())
            .env("PHAB_SCIM_NAMESPACE", app.ns.as_str())
            .env("PHAB_SCIM_MODE", mode)
            .output()
            .unwrap()
    };
    let out = check("staged");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("grants: enough for serve"), "{text}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "REVOKE SELECT, INSERT, UPDATE, DELETE ON `{}`.* FROM '{}'@'%'",
        // The database-level grant's pattern, `_` escaped as src/db/grants.rs writes it.
        format!("{}_scimstage", app.ns.as_str()).replace('_', "\\_"),
        app.ns.as_str()
    )))
    .execute(&app.pool)
    .await
    .unwrap();
    let out = check("staged");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "missing grant: SELECT on {}_scimstage.*",
            app.ns.as_str()
        )),
        "{text}"
    );
    // Live mode needs none of them.
    let out = check("live");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    app.cleanup().await;
}
