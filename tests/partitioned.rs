//! Partitioned `cluster.databases` against two private MariaDB servers (scripts/partition-test
//! starts them with scripts/lib/mariadbd.sh and sets PHAB_SCIM_TEST_MASTER_URLS and
//! PHAB_SCIM_TEST_MASTER_NAMES). Without them every test passes at once, saying so.
//!
//! Master 0 (`a`) holds the default partition, `<ns>_scim` with it (the coordinator of
//! `db::xa`); master 1 (`b`) holds `user` and `auth`.

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

macro_rules! masters_or_skip {
    () => {
        match masters() {
            Some(m) => m,
            None => {
                eprintln!("no private masters (scripts/partition-test): skipped");
                return;
            }
        }
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
        {"host": "127.0.0.1", "port": port(&m.urls[1]), "role": "master", "partition": ["user", "auth"]}
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

/// A db per master with a table `t` in `<ns>_scim` on a and `<ns>_user` on b, and the log.
async fn setup(m: &Masters, ns: &Namespace) -> Db {
    let r = routing(m);
    let db = Db::connect_routed(&r, ns.clone(), 4, Timeouts::default())
        .await
        .expect("pools");
    assert_eq!(db.masters.pools.len(), 2);
    assert_eq!(db.masters.index_of("scim"), 0);
    assert_eq!(db.masters.index_of("user"), 1);
    for (i, app) in [(0, "scim"), (1, "user")] {
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
    for (m, app) in [(0, "scim"), (1, "user")] {
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
async fn a_write_across_masters_commits_on_both() {
    let m = masters_or_skip!();
    let _serial = SERIAL.lock().await;
    let ns = fresh_ns("commit");
    let db = setup(&m, &ns).await;
    write_both(&db, 1).await.commit(&db).await.expect("commit");
    assert_eq!(count(&m.urls[0], &ns, "scim").await, 1);
    assert_eq!(count(&m.urls[1], &ns, "user").await, 1);
    // Nothing left prepared, no decision left behind.
    assert_eq!(
        xa::recover(&db, Duration::ZERO).await.expect("recover"),
        xa::Recovered::default()
    );
    drop_ns(&m, &ns).await;
}

#[tokio::test]
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
    assert_eq!(count(&m.urls[1], &ns, "user").await, 0);
    drop_ns(&m, &ns).await;
}

#[tokio::test]
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
    let r = xa::recover(&db, Duration::ZERO).await.expect("recover");
    assert_eq!(
        r,
        xa::Recovered {
            committed: 0,
            rolled_back: 1
        }
    );
    assert_eq!(count(&m.urls[0], &ns, "scim").await, 0);
    assert_eq!(count(&m.urls[1], &ns, "user").await, 0);

    // Decided, branch prepared: what the host sees until recovery is the coordinator's side
    // only (the branch's row is invisible, not half-visible); recovery commits it.
    let _ = write_both(&db, 2)
        .await
        .commit_until(&db, Some(Stop::AfterDecision))
        .await;
    assert_eq!(count(&m.urls[0], &ns, "scim").await, 1);
    assert_eq!(count(&m.urls[1], &ns, "user").await, 0);
    // A transaction still deciding (younger than the limit) is left alone.
    let young = xa::recover(&db, Duration::from_secs(3600))
        .await
        .expect("recover");
    assert_eq!(young, xa::Recovered::default());
    let r = xa::recover(&db, Duration::ZERO).await.expect("recover");
    assert_eq!(
        r,
        xa::Recovered {
            committed: 1,
            rolled_back: 0
        }
    );
    assert_eq!(count(&m.urls[1], &ns, "user").await, 1);
    drop_ns(&m, &ns).await;
}

/// The branch master killed (SIGKILL) with a prepared branch, in both states, `rounds` times:
/// after its restart, recovery settles each by the decision, never one-sided.
#[tokio::test]
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
                    rolled_back: 0
                },
                "round {round}"
            );
        } else {
            assert_eq!(
                r,
                xa::Recovered {
                    committed: 0,
                    rolled_back: 1
                },
                "round {round}"
            );
        }
        assert_eq!(count(&m.urls[0], &ns, "scim").await, expect_committed);
        assert_eq!(count(&m.urls[1], &ns, "user").await, expect_committed);
    }
    eprintln!("kill rounds: {rounds}, committed after restart: {expect_committed}");
    drop_ns(&m, &ns).await;
}

#[tokio::test]
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
        format!("user       -> {b}"),
        format!("auth       -> {b}"),
        format!("project    -> {a}"),
        format!("scim       -> {a}"),
        format!("scimstage  -> {a}"),
        format!(
            "master {a} (project, worker, conduit, meta_data, metamta, system, cache, scim, scimstage):"
        ),
        format!("master {b} (user, auth):"),
        format!(
            "writes across masters: XA, decided in {}_scimxa on {a}",
            ns.as_str()
        ),
    ] {
        assert!(text.contains(&line), "{line:?} not in:\n{text}");
    }
    assert_eq!(text.matches("database: reachable").count(), 2, "{text}");
    assert!(!out.status.success());
    let _ = std::fs::remove_dir_all(&root);
    drop_ns(&m, &ns).await;
}
