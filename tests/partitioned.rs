//! Partitioned `cluster.databases` against two private MariaDB servers (scripts/partition-test
//! starts them with scripts/lib/mariadbd.sh and sets PHAB_SCIM_TEST_MASTER_URLS and
//! PHAB_SCIM_TEST_MASTER_NAMES). A plain `cargo test` skips them (`#[ignore]`): they need the
//! servers.
//!
//! Master 0 (`a`) holds the default partition, `<ns>_scim` with it (the coordinator of
//! `db::xa`), and `user`; master 1 (`b`) holds `project` and `auth`, except in the tests of the
//! service under load, where it holds `project` alone (membership edges on both masters).

// Test code may panic: a failed expect is a failed test (as in tests/api/main.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use phab_scim::config::Namespace;
use phab_scim::config::cluster::{Cluster, Endpoint, Routing};
use phab_scim::db::xa::{self, CrossWrite, Stop};
use phab_scim::db::{Db, Timeouts, migrate};
use sqlx::{AssertSqlSafe, Connection, Executor, MySqlConnection};
use tokio::sync::Mutex;

/// The tests stop and kill the servers: one at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

struct Masters {
    urls: Vec<String>,
    names: Vec<String>,
}

fn masters() -> Option<Masters> {
    let urls: Vec<String> = std::env::var("PHAB_SCIM_TEST_MASTER_URLS")
        .ok()?
        .split(',')
        .map(str::to_owned)
        .collect();
    let names = std::env::var("PHAB_SCIM_TEST_MASTER_NAMES")
        .unwrap_or_default()
        .split(',')
        .map(str::to_owned)
        .collect();
    (urls.len() >= 2).then_some(Masters { urls, names })
}

/// The private masters; these tests are `#[ignore]`d in a plain `cargo test`, and
/// scripts/partition-test runs them with the servers started.
macro_rules! masters_or_skip {
    () => {
        masters().expect("PHAB_SCIM_TEST_MASTER_URLS: run scripts/partition-test")
    };
}

fn port(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3306)
}

/// local.json's `cluster.databases` for the two servers.
fn cluster_json(m: &Masters) -> serde_json::Value {
    serde_json::json!([
        {"host": "127.0.0.1", "port": port(&m.urls[0]), "role": "master", "partition": ["default"]},
        {"host": "127.0.0.1", "port": port(&m.urls[1]), "role": "master", "partition": ["project", "auth"]}
    ])
}

fn routing(m: &Masters) -> Routing {
    let defaults = Endpoint {
        host: "127.0.0.1".into(),
        port: 3306,
        user: "root".into(),
        pass: String::new(),
    };
    Cluster::parse(Some(&cluster_json(m)), &defaults)
        .ok()
        .flatten()
        .and_then(|c| c.routing().ok())
        .expect("the test's cluster parses")
}

fn fresh_ns(tag: &str) -> Namespace {
    use rand::Rng;
    let n: u32 = rand::thread_rng().r#gen();
    Namespace::parse(&format!("p_{tag}_{n:08x}")).expect("a valid namespace")
}

async fn connect(url: &str) -> MySqlConnection {
    let opts = phab_scim::db::connect_options(&phab_scim::config::Secret::new(url)).expect("url");
    MySqlConnection::connect_with(&opts).await.expect("connect")
}

async fn run(conn: &mut MySqlConnection, sql: String) {
    conn.execute(AssertSqlSafe(sql)).await.expect("statement");
}

/// A db per master with a table `t` in `<ns>_scim` on a and `<ns>_project` on b, and the log.
async fn setup(m: &Masters, ns: &Namespace) -> Db {
    let r = routing(m);
    let db = Db::connect_routed(&r, ns.clone(), 4, Timeouts::default())
        .await
        .expect("pools");
    assert_eq!(db.masters.pools.len(), 2);
    assert_eq!(db.masters.index_of("scim"), 0);
    assert_eq!(db.masters.index_of("project"), 1);
    for (i, app) in [(0, "scim"), (1, "project")] {
        let mut c = connect(&m.urls[i]).await;
        run(&mut c, format!("CREATE DATABASE {}", ns.db(app))).await;
        run(
            &mut c,
            format!(
                "CREATE TABLE {}.t (id INT PRIMARY KEY) ENGINE=InnoDB",
                ns.db(app)
            ),
        )
        .await;
    }
    xa::install(&db).await.expect("decision log");
    db
}

async fn count(url: &str, ns: &Namespace, app: &str) -> i64 {
    let mut c = connect(url).await;
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {}.t",
        ns.db(app)
    )))
    .fetch_one(&mut c)
    .await
    .expect("count")
}

async fn drop_ns(m: &Masters, ns: &Namespace) {
    for url in &m.urls {
        let _ = migrate::drop_namespace(&phab_scim::config::Secret::new(url.as_str()), ns).await;
    }
}

/// One row on each master in one CrossWrite.
async fn write_both(db: &Db, id: i32) -> CrossWrite {
    let mut w = CrossWrite::begin(db, &[0, 1]).await.expect("begin");
    for (m, app) in [(0, "scim"), (1, "project")] {
        let conn = w.conn(m).expect("conn");
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {}.t (id) VALUES (?)",
            db.ns.db(app)
        )))
        .bind(id)
        .execute(conn)
        .await
        .expect("insert");
    }
    w
}

/// Runs scripts/lib/mariadbd.sh's `action` on master `i`.
fn server(m: &Masters, action: &str, i: usize) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lib/mariadbd.sh");
    let status = Command::new("bash")
        .arg("-c")
        .arg(format!("source '{script}' && {action} {}", m.names[i]))
        .status()
        .expect("bash");
    assert!(status.success(), "{action} {}", m.names[i]);
}

#[tokio::test]
#[ignore = "needs two private MariaDB masters: scripts/partition-test starts them and runs these"]
async fn a_write_across_masters_commits_on_both() {
    let m = masters_or_skip!();
    let _serial = SERIAL.lock().await;
    let ns = fresh_ns("commit");
    let db = setup(&m, &ns).await;
    write_both(&db, 1).await.commit(&db).await.expect("commit");
    assert_eq!(count(&m.urls[0], &ns, "scim").await, 1);
    assert_eq!(count(&m.urls[1], &ns, "project").await, 1);
    // Nothing left prepared, no decision left behind.
    assert_eq!(
        xa::recover(&db, Duration::ZERO).await.expect("recover"),
        xa::Recovered::default()
    );
    drop_ns(&m, &ns).await;
}

#[tokio::test]
#[ignore = "needs two private MariaDB masters: scripts/partition-test starts them and runs these"]
async fn a_branch_lost_before_the_decision_leaves_nothing() {
    let m = masters_or_skip!();
    let _serial = SERIAL.lock().await;
    let ns = fresh_ns("lost");
    let db = setup(&m, &ns).await;
    let mut w = write_both(&db, 1).await;
    // The branch's connection dies (killed on its server) before the commit.
    let id: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
        .fetch_one(w.conn(1).expect("conn"))
        .await
        .expect("id");
    let mut admin = connect(&m.urls[1]).await;
    run(&mut admin, format!("KILL CONNECTION {id}")).await;
    assert!(w.commit(&db).await.is_err());
    assert_eq!(count(&m.urls[0], &ns, "scim").await, 0);
    assert_eq!(count(&m.urls[1], &ns, "project").await, 0);
    drop_ns(&m, &ns).await;
}

#[tokio::test]
#[ignore = "needs two private MariaDB masters: scripts/partition-test starts them and runs these"]
async fn a_crash_is_settled_by_the_decision() {
    let m = masters_or_skip!();
    let _serial = SERIAL.lock().await;
    let ns = fresh_ns("crash");
    let db = setup(&m, &ns).await;

    // Prepared, undecided: recovery rolls the branch back; the coordinator never committed.
    let _ = write_both(&db, 1)
        .await
        .commit_until(&db, Some(Stop::AfterPrepare))
        .await;
    // Too recent for its coordinator to be done deciding: left alone, and counted.
    let r = xa::recover(&db, Duration::from_secs(3600))
        .await
        .expect("recover");
    assert_eq!(
        r,
        xa::Recovered {
            committed: 0,
            rolled_back: 0,
            recent: 1
        }
    );
    let r = xa::recover(&db, Duration::ZERO).await.expect("recover");
    assert_eq!(
        r,
        xa::Recovered {
            committed: 0,
            rolled_back: 1,
            recent: 0
        }
    );
    assert_eq!(count(&m.urls[0], &ns, "scim").await, 0);
    assert_eq!(count(&m.urls[1], &ns, "project").await, 0);

    // Decided, branch prepared: what the host sees until recovery is the coordinator's side
    // only (the branch's row is invisible, not half-visible); recovery commits it.
    let _ = write_both(&db, 2)
        .await
        .commit_until(&db, Some(Stop::AfterDecision))
        .await;
    assert_eq!(count(&m.urls[0], &ns, "scim").await, 1);
    assert_eq!(count(&m.urls[1], &ns, "project").await, 0);
    // A transaction still deciding (younger than the limit) is left alone.
    let young = xa::recover(&db, Duration::from_secs(3600))
        .await
        .expect("recover");
    assert_eq!(
        young,
        xa::Recovered {
            recent: 1,
            ..Default::default()
        }
    );
    let r = xa::recover(&db, Duration::ZERO).await.expect("recover");
    assert_eq!(
        r,
        xa::Recovered {
            committed: 1,
            rolled_back: 0,
            recent: 0
        }
    );
    assert_eq!(count(&m.urls[1], &ns, "project").await, 1);
    drop_ns(&m, &ns).await;
}

/// The branch master killed (SIGKILL) with a prepared branch, in both states, `rounds` times:
/// after its restart, recovery settles each by the decision, never one-sided.
#[tokio::test]
#[ignore = "needs two private MariaDB masters: scripts/partition-test starts them and runs these"]
async fn a_branch_master_killed_mid_commit_recovers_its_branch() {
    let m = masters_or_skip!();
    if m.names.len() < 2 {
        eprintln!("no server names: skipped");
        return;
    }
    let _serial = SERIAL.lock().await;
    let rounds: i32 = std::env::var("PHAB_SCIM_TEST_KILL_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2);
    let ns = fresh_ns("kill");
    let db = setup(&m, &ns).await;
    let mut expect_committed = 0;
    for round in 0..rounds {
        let stop = if round % 2 == 0 {
            Stop::AfterDecision
        } else {
            Stop::AfterPrepare
        };
        let _ = write_both(&db, round)
            .await
            .commit_until(&db, Some(stop))
            .await;
        server(&m, "mariadbd_kill", 1);
        // While the master is down, a new write across both fails before writing anything.
        let before = count(&m.urls[0], &ns, "scim").await;
        let e = match CrossWrite::begin(&db, &[0, 1]).await {
            Ok(_) => panic!("a write began with its master down"),
            Err(e) => e,
        };
        assert!(e.is_unavailable(), "{e}");
        assert_eq!(count(&m.urls[0], &ns, "scim").await, before);
        server(&m, "mariadbd_start", 1);
        let r = xa::recover(&db, Duration::ZERO).await.expect("recover");
        if stop == Stop::AfterDecision {
            expect_committed += 1;
            assert_eq!(
                r,
                xa::Recovered {
                    committed: 1,
                    rolled_back: 0,
                    recent: 0
                },
                "round {round}"
            );
        } else {
            assert_eq!(
                r,
                xa::Recovered {
                    committed: 0,
                    rolled_back: 1,
                    recent: 0
                },
                "round {round}"
            );
        }
        assert_eq!(count(&m.urls[0], &ns, "scim").await, expect_committed);
        assert_eq!(count(&m.urls[1], &ns, "project").await, expect_committed);
    }
    eprintln!("kill rounds: {rounds}, committed after restart: {expect_committed}");
    drop_ns(&m, &ns).await;
}

#[tokio::test]
#[ignore = "needs two private MariaDB masters: scripts/partition-test starts them and runs these"]
async fn check_prints_the_routing_and_checks_each_master() {
    let m = masters_or_skip!();
    let _serial = SERIAL.lock().await;
    let ns = fresh_ns("check");
    for url in &m.urls {
        let mut c = connect(url).await;
        migrate::install_phabricator_fixture(&mut c, &ns)
            .await
            .expect("fixture");
    }
    let root = std::env::temp_dir().join(format!("phab-scim-{}", ns.as_str()));
    std::fs::create_dir_all(root.join("conf/local")).expect("checkout");
    let local = serde_json::json!({
        "storage.default-namespace": ns.as_str(),
        "cluster.databases": cluster_json(&m),
    });
    std::fs::write(root.join("conf/local/local.json"), local.to_string()).expect("local.json");
    // `bin/storage partition` recorded this layout on a; b holds an older one.
    for (i, state) in [
        (0, cluster_json(&m)),
        (
            1,
            serde_json::json!([{"host": "127.0.0.1", "role": "master"}]),
        ),
    ] {
        let mut c = connect(&m.urls[i]).await;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {}.hoststate (stateKey, stateValue) VALUES ('cluster.databases', ?)",
            ns.db("meta_data")
        )))
        .bind(state.to_string())
        .execute(&mut c)
        .await
        .expect("hoststate");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_phab-scim"))
        .arg("check")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PHAB_SCIM_PHABRICATOR_ROOT", &root)
        .output()
        .expect("phab-scim check");
    let text = String::from_utf8_lossy(&out.stdout);
    let (a, b) = (
        format!("127.0.0.1:{}", port(&m.urls[0])),
        format!("127.0.0.1:{}", port(&m.urls[1])),
    );
    for line in [
        format!("user       -> {a}"),
        format!("auth       -> {b}"),
        format!("project    -> {b}"),
        format!("scim       -> {a}"),
        format!("scimstage  -> {a}"),
        format!(
            "master {a} (user, worker, conduit, meta_data, metamta, system, cache, scim, scimstage):"
        ),
        format!("master {b} (project, auth):"),
        format!(
            "writes across masters: XA, decided in {}_scimxa on {a}",
            ns.as_str()
        ),
    ] {
        assert!(text.contains(&line), "{line:?} not in:\n{text}");
    }
    assert_eq!(text.matches("database: reachable").count(), 2, "{text}");
    let (on_a, on_b) = text.split_at(text.find(&format!("master {b} (")).expect("b's section"));
    assert!(on_a.contains("partition state: as in local.json"), "{text}");
    assert!(
        on_b.contains("partition state: differs from local.json's cluster.databases"),
        "{text}"
    );
    assert!(!out.status.success());
    let _ = std::fs::remove_dir_all(&root);
    drop_ns(&m, &ns).await;
}

// ---------------------------------------------------------------------------------------------
// The service itself on two masters, `<ns>_project` and `<ns>_worker` on b and the rest
// (`<ns>_scim`, the coordinator, and `<ns>_user`) on a: membership load and new hires while
// the service is SIGKILLed, or while each master is stopped, and then every membership on all
// three edge sets or on none, and every account with its search task or neither.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use phab_scim::config::Config;
use phab_scim::provisioning::Provisioner;

/// local.json's `cluster.databases` with `project` and `worker` on b: a membership writes
/// edges on both masters, and so does a new account (its row on a, its tasks on b).
fn project_apart_json(m: &Masters) -> serde_json::Value {
    serde_json::json!([
        {"host": "127.0.0.1", "port": port(&m.urls[0]), "role": "master", "partition": ["default"]},
        {"host": "127.0.0.1", "port": port(&m.urls[1]), "role": "master", "partition": ["project", "worker"]}
    ])
}

/// A namespace on both masters, migrated, with a bot's token, and a checkout whose local.json
/// routes it as [`project_apart_json`].
struct LoadFixture {
    ns: Namespace,
    db: Db,
    root: PathBuf,
    token: String,
    port: u16,
}

async fn load_fixture(m: &Masters, tag: &str) -> LoadFixture {
    let ns = fresh_ns(tag);
    for url in &m.urls {
        let mut c = connect(url).await;
        migrate::install_phabricator_fixture(&mut c, &ns)
            .await
            .expect("fixture");
    }
    let defaults = Endpoint {
        host: "127.0.0.1".into(),
        port: 3306,
        user: "root".into(),
        pass: String::new(),
    };
    let routing = Cluster::parse(Some(&project_apart_json(m)), &defaults)
        .ok()
        .flatten()
        .and_then(|c| c.routing().ok())
        .expect("the cluster parses");
    let db = Db::connect_routed(&routing, ns.clone(), 8, Timeouts::default())
        .await
        .expect("pools");
    assert_eq!(db.masters.index_of("project"), 1);
    assert_eq!(db.masters.index_of("worker"), 1);
    assert_eq!(db.masters.index_of("user"), 0);
    migrate::migrate(&db).await.expect("migrate");
    let prov = Provisioner {
        db: db.clone(),
        cfg: Arc::new(Config {
            namespace: ns.clone(),
            ..Config::default()
        }),
    };
    let bot = prov.ensure_bot("scim-bot").await.expect("bot");
    let (_, token) = phab_scim::token::issue(&db, &bot, "load", None)
        .await
        .expect("token");
    let root = std::env::temp_dir().join(format!("phab-scim-{}", ns.as_str()));
    std::fs::create_dir_all(root.join("conf/local")).expect("checkout");
    let local = serde_json::json!({
        "storage.default-namespace": ns.as_str(),
        "cluster.databases": project_apart_json(m),
    });
    std::fs::write(root.join("conf/local/local.json"), local.to_string()).expect("local.json");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    LoadFixture {
        ns,
        db,
        root,
        token,
        port,
    }
}

/// `phab-scim serve` on the fixture, its log appended to `<root>/serve.log`.
fn start_service(f: &LoadFixture) -> std::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(f.root.join("serve.log"))
        .expect("log");
    Command::new(env!("CARGO_BIN_EXE_phab-scim"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PHAB_SCIM_PHABRICATOR_ROOT", &f.root)
        .env("PHAB_SCIM_LISTEN", format!("127.0.0.1:{}", f.port))
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("phab-scim serve")
}

async fn wait_ready(client: &reqwest::Client, port: u16) {
    for _ in 0..300 {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the service did not start (see serve.log)");
}

fn scim(f: &LoadFixture, path: &str) -> String {
    format!("http://127.0.0.1:{}/scim/v2{path}", f.port)
}

/// A new account's SCIM body: `<prefix><i>@example.com`.
fn new_user(prefix: &str, i: usize) -> serde_json::Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("{prefix}{i}@example.com"),
        "name": {"givenName": prefix, "familyName": format!("Number{i}")},
        "emails": [{"value": format!("{prefix}{i}@example.com"), "primary": true}],
        "active": true
    })
}

/// Creates `users` users and `groups` groups; their ids.
async fn populate(
    f: &LoadFixture,
    client: &reqwest::Client,
    users: usize,
    groups: usize,
) -> (Vec<String>, Vec<String>) {
    let mut u = Vec::new();
    for i in 0..users {
        let r = client
            .post(scim(f, "/Users"))
            .bearer_auth(&f.token)
            .json(&new_user("load", i))
            .send()
            .await
            .expect("POST /Users");
        assert_eq!(r.status().as_u16(), 201);
        let body: serde_json::Value = r.json().await.expect("json");
        u.push(body["id"].as_str().expect("id").to_owned());
    }
    let mut g = Vec::new();
    for i in 0..groups {
        let r = client
            .post(scim(f, "/Groups"))
            .bearer_auth(&f.token)
            .json(&serde_json::json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": format!("Load Group {i}")
            }))
            .send()
            .await
            .expect("POST /Groups");
        assert_eq!(r.status().as_u16(), 201);
        let body: serde_json::Value = r.json().await.expect("json");
        g.push(body["id"].as_str().expect("id").to_owned());
    }
    (u, g)
}

/// What the IdP was told: memberships added (and not removed since) and removed, and the
/// accounts created.
#[derive(Default)]
struct Ledger {
    added: HashSet<(String, String)>,
    removed: HashSet<(String, String)>,
    hired: Vec<String>,
    unavailable: usize,
    /// 503 answers without `Retry-After`.
    no_retry_after: usize,
}

/// A 503 answer: counted, and whether it says when to retry.
fn unavailable(ledger: &mut Ledger, headers: &reqwest::header::HeaderMap) {
    ledger.unavailable += 1;
    if !headers.contains_key(reqwest::header::RETRY_AFTER) {
        ledger.no_retry_after += 1;
    }
}

/// New hires until `stop`: one client creating accounts, each a row on a and its tasks on b.
async fn hiring(f: Arc<LoadFixture>, stop: Arc<AtomicBool>, ops: Arc<AtomicUsize>) -> Ledger {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut ledger = Ledger::default();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        ops.fetch_add(1, Ordering::Relaxed);
        let sent = client
            .post(scim(&f, "/Users"))
            .bearer_auth(&f.token)
            .json(&new_user("hire", i))
            .send()
            .await;
        let answer = match sent {
            Ok(r) => {
                let (status, headers) = (r.status().as_u16(), r.headers().clone());
                r.json::<serde_json::Value>()
                    .await
                    .ok()
                    .map(|b| (status, headers, b))
            }
            Err(_) => None,
        };
        match answer {
            Some((201, _, body)) => {
                if let Some(id) = body["id"].as_str() {
                    ledger.hired.push(id.to_owned());
                }
            }
            Some((503, headers, _)) => unavailable(&mut ledger, &headers),
            // Not acknowledged: either outcome, but never one-sided.
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    ledger
}

async fn patch_member(
    f: &LoadFixture,
    client: &reqwest::Client,
    op: &str,
    group: &str,
    user: &str,
) -> Option<(u16, reqwest::header::HeaderMap)> {
    let r = client
        .patch(scim(f, &format!("/Groups/{group}")))
        .bearer_auth(&f.token)
        .json(&serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": op, "path": "members", "value": [{"value": user}]}]
        }))
        .send()
        .await
        .ok()?;
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    // The whole answer read: acknowledged only once the client has it.
    r.bytes().await.ok()?;
    Some((status, headers))
}

/// `workers` clients, each adding its own users to every group and removing every third
/// membership it added, and one client hiring ([`hiring`]), until `stop`; what was
/// acknowledged.
async fn membership_load(
    f: Arc<LoadFixture>,
    users: Arc<Vec<String>>,
    groups: Arc<Vec<String>>,
    workers: usize,
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicUsize>,
) -> Ledger {
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (f, users, groups, stop, ops) = (
            f.clone(),
            users.clone(),
            groups.clone(),
            stop.clone(),
            ops.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client");
            let mut ledger = Ledger::default();
            let mine: Vec<&String> = users.iter().skip(w).step_by(workers).collect();
            let pairs: Vec<(&String, &String)> = mine
                .iter()
                .flat_map(|u| groups.iter().map(move |g| (g, *u)))
                .collect();
            let mut n = 0usize;
            'outer: loop {
                for (g, u) in &pairs {
                    if stop.load(Ordering::Relaxed) {
                        break 'outer;
                    }
                    let key = ((*g).clone(), (*u).clone());
                    let op = if ledger.added.contains(&key) {
                        "remove"
                    } else {
                        "add"
                    };
                    // Every third added membership is removed again on the next pass.
                    if op == "remove" && !n.is_multiple_of(3) {
                        n += 1;
                        continue;
                    }
                    n += 1;
                    ops.fetch_add(1, Ordering::Relaxed);
                    match patch_member(&f, &client, op, g, u).await {
                        Some((200 | 204, _)) if op == "add" => {
                            ledger.removed.remove(&key);
                            ledger.added.insert(key);
                        }
                        Some((200 | 204, _)) => {
                            ledger.added.remove(&key);
                            ledger.removed.insert(key);
                        }
                        Some((503, headers)) => unavailable(&mut ledger, &headers),
                        Some(_) | None => {
                            // Not acknowledged: either outcome, but never one-sided.
                            ledger.added.remove(&key);
                            ledger.removed.remove(&key);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
            ledger
        }));
    }
    let hires = tokio::spawn(hiring(f, stop, ops));
    let mut all = Ledger::default();
    for t in tasks {
        let l = t.await.expect("worker");
        all.added.extend(l.added);
        all.removed.extend(l.removed);
        all.unavailable += l.unavailable;
        all.no_retry_after += l.no_retry_after;
    }
    let h = hires.await.expect("hiring");
    all.hired = h.hired;
    all.unavailable += h.unavailable;
    all.no_retry_after += h.no_retry_after;
    all
}

/// The PHIDs in a column of one table on `url`.
async fn phids(url: &str, sql: String) -> HashSet<String> {
    let mut c = connect(url).await;
    let rows: Vec<(Vec<u8>,)> = sqlx::query_as(AssertSqlSafe(sql))
        .fetch_all(&mut c)
        .await
        .expect("phids");
    rows.into_iter()
        .map(|(p,)| String::from_utf8_lossy(&p).into_owned())
        .collect()
}

/// `(src, dst)` of the edges of type `ty` in `<ns>_<app>.edge` on `url`.
async fn edges(url: &str, ns: &Namespace, app: &str, ty: u32) -> HashSet<(String, String)> {
    let mut c = connect(url).await;
    let rows: Vec<(Vec<u8>, Vec<u8>)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT src, dst FROM {}.edge WHERE type = ?",
        ns.db(app)
    )))
    .bind(ty)
    .fetch_all(&mut c)
    .await
    .expect("edges");
    rows.into_iter()
        .map(|(s, d)| {
            (
                String::from_utf8_lossy(&s).into_owned(),
                String::from_utf8_lossy(&d).into_owned(),
            )
        })
        .collect()
}

/// What [`audit`] found.
struct Audit {
    /// Memberships not on all three edge sets, and accounts without their search task on b or
    /// tasks on b of accounts a does not have.
    one_sided: usize,
    /// Acknowledged writes the masters do not show.
    lost: usize,
    memberships: usize,
    accounts: usize,
}

/// Settles what the dead service left prepared, then counts memberships not on all three edge
/// sets (13 and 60 in `<ns>_project` on b, 14 in `<ns>_user` on a), accounts on a without
/// their search task in `<ns>_worker` on b (or the reverse), and acknowledged writes the
/// masters do not show.
async fn audit(m: &Masters, f: &LoadFixture, ledger: &Ledger) -> Audit {
    // The service is dead: nothing is still deciding.
    xa::recover(&f.db, Duration::ZERO).await.expect("recover");
    let mut b = connect(&m.urls[1]).await;
    let left = b
        .fetch_all("XA RECOVER")
        .await
        .expect("XA RECOVER")
        .iter()
        .filter(|r| {
            sqlx::Row::try_get::<Vec<u8>, _>(*r, 3)
                .is_ok_and(|data| data.ends_with(f.ns.as_str().as_bytes()))
        })
        .count();
    assert_eq!(left, 0, "branches of this namespace still prepared");
    let p13 = edges(&m.urls[1], &f.ns, "project", 13).await;
    let p60 = edges(&m.urls[1], &f.ns, "project", 60).await;
    let u14: HashSet<(String, String)> = edges(&m.urls[0], &f.ns, "user", 14)
        .await
        .into_iter()
        .map(|(u, p)| (p, u))
        .collect();
    let all: HashSet<&(String, String)> = p13.iter().chain(&p60).chain(&u14).collect();
    let one_sided = all
        .iter()
        .filter(|e| !(p13.contains(*e) && p60.contains(*e) && u14.contains(*e)))
        .count();
    let lost = ledger
        .added
        .iter()
        .filter(|e| !(p13.contains(*e) && p60.contains(*e) && u14.contains(*e)))
        .count()
        + ledger
            .removed
            .iter()
            .filter(|e| p13.contains(*e) || p60.contains(*e) || u14.contains(*e))
            .count();
    // Every account has the search task its creation queued (PhabricatorSearchWorker, object
    // the account), and every such task its account.
    let accounts = phids(
        &m.urls[0],
        format!("SELECT phid FROM {}.user", f.ns.db("user")),
    )
    .await;
    let indexed = phids(
        &m.urls[1],
        format!(
            "SELECT objectPHID FROM {}.worker_activetask \
             WHERE taskClass = 'PhabricatorSearchWorker' AND objectPHID LIKE 'PHID-USER-%'",
            f.ns.db("worker")
        ),
    )
    .await;
    let accounts_one_sided = accounts.symmetric_difference(&indexed).count();
    let hires_lost = ledger
        .hired
        .iter()
        .filter(|id| !(accounts.contains(*id) && indexed.contains(*id)))
        .count();
    Audit {
        one_sided: one_sided + accounts_one_sided,
        lost: lost + hires_lost,
        memberships: p13.len(),
        accounts: accounts.len(),
    }
}

fn rounds(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The service under membership load and hiring on a fresh fixture (40 users, 3 groups, 4
/// clients and one hiring), until [`UnderLoad::finish`].
struct UnderLoad {
    f: Arc<LoadFixture>,
    client: reqwest::Client,
    service: std::process::Child,
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicUsize>,
    load: tokio::task::JoinHandle<Ledger>,
}

impl UnderLoad {
    async fn start(m: &Masters, tag: &str) -> Self {
        let f = Arc::new(load_fixture(m, tag).await);
        let client = reqwest::Client::new();
        let service = start_service(&f);
        wait_ready(&client, f.port).await;
        let (users, groups) = populate(&f, &client, 40, 3).await;
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicUsize::new(0));
        let load = tokio::spawn(membership_load(
            f.clone(),
            Arc::new(users),
            Arc::new(groups),
            4,
            stop.clone(),
            ops.clone(),
        ));
        Self {
            f,
            client,
            service,
            stop,
            ops,
            load,
        }
    }

    /// SIGKILLs the service and starts it again.
    async fn kill_service(&mut self) {
        self.service.kill().expect("SIGKILL");
        self.service.wait().expect("reaped");
        self.service = start_service(&self.f);
        wait_ready(&self.client, self.f.port).await;
    }

    /// Lets the load run `settle` longer, stops the clients and the service, audits both
    /// masters ([`audit`]), drops the fixture; what the clients were told, what the audit
    /// found, and a line of counts to print.
    async fn finish(mut self, m: &Masters, settle: Duration) -> (Ledger, Audit, String) {
        tokio::time::sleep(settle).await;
        self.stop.store(true, Ordering::Relaxed);
        let ledger = self.load.await.expect("load");
        self.service.kill().expect("SIGKILL");
        self.service.wait().expect("reaped");
        let a = audit(m, &self.f, &ledger).await;
        let counts = format!(
            "requests: {}, 503: {}, acknowledged adds kept: {}, removes: {}, hires: {}, \
             memberships: {}, accounts: {}, one-sided: {}, lost acknowledged: {}",
            self.ops.load(Ordering::Relaxed),
            ledger.unavailable,
            ledger.added.len(),
            ledger.removed.len(),
            ledger.hired.len(),
            a.memberships,
            a.accounts,
            a.one_sided,
            a.lost
        );
        let _ = std::fs::remove_dir_all(&self.f.root);
        drop_ns(m, &self.f.ns).await;
        (ledger, a, counts)
    }
}

#[tokio::test]
#[ignore = "needs two private MariaDB masters: scripts/partition-test starts them and runs these"]
async fn the_service_killed_during_membership_load_leaves_nothing_one_sided() {
    use rand::Rng;
    let m = masters_or_skip!();
    let _serial = SERIAL.lock().await;
    let kills = rounds("PHAB_SCIM_TEST_SERVICE_KILLS", 5);
    let mut run = UnderLoad::start(&m, "kill").await;
    for _ in 0..kills {
        let pause = rand::thread_rng().gen_range(100..800);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        run.kill_service().await;
    }
    let (ledger, a, counts) = run.finish(&m, Duration::from_millis(500)).await;
    eprintln!("service kills: {kills}, {counts}");
    assert_eq!(a.one_sided, 0);
    assert_eq!(a.lost, 0);
    assert!(!ledger.added.is_empty(), "no write was acknowledged");
    assert!(!ledger.hired.is_empty(), "no hire was acknowledged");
    assert_eq!(ledger.no_retry_after, 0, "503 answers without Retry-After");
}

#[tokio::test]
#[ignore = "needs two private MariaDB masters: scripts/partition-test starts them and runs these"]
async fn each_master_stopped_during_membership_load_leaves_nothing_one_sided() {
    let m = masters_or_skip!();
    let _serial = SERIAL.lock().await;
    let outages = rounds("PHAB_SCIM_TEST_MASTER_OUTAGES", 1);
    let run = UnderLoad::start(&m, "outage").await;
    for _ in 0..outages {
        // b (a branch's master), then a (the coordinator's), each stopped under load.
        for i in [1, 0] {
            tokio::time::sleep(Duration::from_millis(700)).await;
            server(&m, "mariadbd_stop", i);
            tokio::time::sleep(Duration::from_secs(2)).await;
            server(&m, "mariadbd_start", i);
        }
    }
    let (ledger, a, counts) = run.finish(&m, Duration::from_secs(2)).await;
    eprintln!(
        "master outages: {} (each master stopped {outages} time(s)), {counts}",
        2 * outages
    );
    assert_eq!(a.one_sided, 0);
    assert_eq!(a.lost, 0);
    assert!(
        ledger.unavailable > 0,
        "no request answered 503 while a master was down"
    );
    assert_eq!(ledger.no_retry_after, 0, "503 answers without Retry-After");
}
