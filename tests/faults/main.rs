//! Fault injection (issue 6, points 1 and 2): the `phab-scim serve` binary under a mixed load
//! from several clients while it is SIGKILLed and restarted (`kill`), or while its database is
//! stopped and started (`outage`); then every row invariant and every acknowledged write is
//! checked.
//!
//! `cargo test` runs the bounded kill form (a few rounds, on the debug binary).
//! `scripts/kill-test` and `scripts/outage-test` run the long forms on the release binary:
//!
//! - `PHAB_SCIM_FAULT_MODE`: `kill` (default) or `outage`;
//! - `PHAB_SCIM_FAULT_ROUNDS`: rounds (default 4);
//! - `PHAB_SCIM_BIN`: the service binary (default: the one cargo built for this test);
//! - `PHAB_SCIM_FAULT_DB_STOP` / `PHAB_SCIM_FAULT_DB_START`: shell commands that stop and start
//!   the database (outage mode only; a private mariadbd, never a shared one);
//! - `PHAB_SCIM_FAULT_DB_PAUSE` / `PHAB_SCIM_FAULT_DB_RESUME`: shell commands that hang the
//!   database (SIGSTOP) and let it go on (SIGCONT); a private mariadbd, never a shared one. When
//!   set, every second round of either mode is a hang instead: while the database is stopped
//!   every request must still be answered (503 with Retry-After and a SCIM error body), and
//!   `/readyz` must answer 503; in kill mode the service is also SIGKILLed during the hang;
//! - `PHAB_SCIM_FAULT_PAUSE_MS`: how long each hang lasts (default 7000; the service runs with
//!   a 2 s statement and 3 s transaction timeout unless `PHAB_SCIM_STATEMENT_TIMEOUT_SECS` and
//!   `PHAB_SCIM_TRANSACTION_TIMEOUT_SECS` are set); `PHAB_SCIM_FAULT_HANG_ONLY=1`: every round
//!   is a hang.
//!
//! Each client owns its users and one group and sends one request at a time, so the state of
//! each attribute is known: the last acknowledged (2xx) value, or the value of the one request
//! that got no answer (it may or may not have committed). A 4xx is an answer: nothing changed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../api/invariants.rs"]
mod invariants;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use phab_scim::config::{Config, Namespace, Secret};
use phab_scim::db::{Db, migrate};
use phab_scim::provisioning::Provisioner;
use rand::Rng;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, MySqlConnection, Row};
use tokio::sync::Mutex;

const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const CLIENTS: usize = 6;

/// What an attribute may hold: the last acknowledged value, or the value of any request sent
/// after it that got no answer (each may have committed before the service died; none can
/// commit later, since a dead process's connections roll back).
#[derive(Debug, Clone)]
struct Maybe<T: Clone + PartialEq> {
    acked: T,
    unanswered: Vec<T>,
}

impl<T: Clone + PartialEq + std::fmt::Debug> Maybe<T> {
    fn new(v: T) -> Self {
        Self {
            acked: v,
            unanswered: Vec::new(),
        }
    }
    fn allows(&self, v: &T) -> bool {
        &self.acked == v || self.unanswered.contains(v)
    }
}

#[derive(Debug)]
struct User {
    id: String,
    name: String,
    real: Maybe<String>,
    active: Maybe<bool>,
    member: Maybe<bool>,
}

#[derive(Debug, Default)]
struct ClientState {
    group: String,
    users: Vec<User>,
    /// userNames of creates that got no answer: they may exist.
    unknown_creates: Vec<String>,
}

#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    acked: AtomicU64,
    unanswered: AtomicU64,
    refused_4xx: AtomicU64,
    unavailable_503: AtomicU64,
    other_5xx: AtomicU64,
    retry_after_missing: AtomicU64,
    /// 503 answers whose body is not an RFC 7644 §3.12 error, or that name no request id.
    scim_body_missing: AtomicU64,
    request_id_missing: AtomicU64,
    /// Answers that arrived while the database was stopped (SIGSTOP).
    answered_while_paused: AtomicU64,
    /// The longest time any request took, in milliseconds.
    longest_ms: AtomicU64,
}

enum Outcome {
    Acked(Value),
    Refused,
    Unknown,
}

struct Driver {
    client: reqwest::Client,
    base: String,
    token: String,
    stats: Stats,
    /// Set while the database is stopped with SIGSTOP.
    paused: AtomicBool,
}

/// Whether a body is a SCIM error with status 503.
fn is_scim_503(text: &str) -> bool {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    v["status"] == "503"
        && v["schemas"].as_array().is_some_and(|s| {
            s.iter()
                .any(|u| u == "urn:ietf:params:scim:api:messages:2.0:Error")
        })
}

impl Driver {
    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> Outcome {
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        let req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/scim+json")
            .body(body.to_string());
        let started = Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                // A hang is a failure of its own: the client timeout is far above any request.
                assert!(!e.is_timeout(), "a request hung: {e}");
                self.stats.unanswered.fetch_add(1, Ordering::Relaxed);
                return Outcome::Unknown;
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp.headers().contains_key("retry-after");
        let request_id = resp.headers().contains_key("x-request-id");
        let text = resp.text().await.unwrap_or_default();
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if ms > 4000 {
            eprintln!("slow answer: {status} after {ms} ms");
        }
        self.stats.longest_ms.fetch_max(ms, Ordering::Relaxed);
        if self.paused.load(Ordering::Relaxed) {
            self.stats
                .answered_while_paused
                .fetch_add(1, Ordering::Relaxed);
        }
        match status {
            200..=299 => {
                self.stats.acked.fetch_add(1, Ordering::Relaxed);
                Outcome::Acked(serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            503 => {
                self.stats.unavailable_503.fetch_add(1, Ordering::Relaxed);
                if !retry_after {
                    self.stats
                        .retry_after_missing
                        .fetch_add(1, Ordering::Relaxed);
                }
                if !is_scim_503(&text) {
                    eprintln!("503 without a SCIM error body: {text:?}");
                    self.stats.scim_body_missing.fetch_add(1, Ordering::Relaxed);
                }
                if !request_id {
                    self.stats
                        .request_id_missing
                        .fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Unknown
            }
            500..=599 => {
                eprintln!("{status}: {text}");
                self.stats.other_5xx.fetch_add(1, Ordering::Relaxed);
                Outcome::Unknown
            }
            _ => {
                self.stats.refused_4xx.fetch_add(1, Ordering::Relaxed);
                Outcome::Refused
            }
        }
    }
}

fn user_body(name: &str, real: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "displayName": real,
        "active": true,
        "emails": [{"primary": true, "type": "work", "value": name}],
    })
}

/// One client's load: one request at a time until `stop`.
async fn run_client(
    k: usize,
    d: Arc<Driver>,
    state: Arc<Mutex<ClientState>>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let mut st = state.lock().await;
        let roll: u32 = rand::thread_rng().gen_range(0..100);
        let outcome_unknown = if st.users.len() < 3 || roll < 25 {
            let name = format!(
                "c{k}-u{n}-{}@kill.example",
                rand::thread_rng().gen_range(0..1_000_000)
            );
            let real = format!("Kill {k} {n}");
            match d
                .send(reqwest::Method::POST, "/Users", user_body(&name, &real))
                .await
            {
                Outcome::Acked(v) => {
                    let id = v["id"].as_str().expect("201 has an id").to_owned();
                    st.users.push(User {
                        id,
                        name,
                        real: Maybe::new(real),
                        active: Maybe::new(true),
                        member: Maybe::new(false),
                    });
                    false
                }
                Outcome::Refused => false,
                Outcome::Unknown => {
                    st.unknown_creates.push(name);
                    true
                }
            }
        } else {
            let i = rand::thread_rng().gen_range(0..st.users.len());
            let group = st.group.clone();
            let u = &mut st.users[i];
            let path = format!("/Users/{}", u.id);
            if roll < 50 {
                let real = format!("Renamed {k} {n}");
                u.real.unanswered.push(real.clone());
                let body = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "displayName", "value": real}]});
                settle(
                    &mut u.real,
                    d.send(reqwest::Method::PATCH, &path, body).await,
                )
            } else if roll < 78 {
                let want = !u.member.acked;
                u.member.unanswered.push(want);
                let op = if want {
                    json!({"op": "add", "path": "members", "value": [{"value": u.id}]})
                } else {
                    json!({"op": "remove", "path": format!("members[value eq \"{}\"]", u.id)})
                };
                let body = json!({"schemas": [PATCH], "Operations": [op]});
                settle(
                    &mut u.member,
                    d.send(reqwest::Method::PATCH, &format!("/Groups/{group}"), body)
                        .await,
                )
            } else {
                let want = !u.active.acked;
                u.active.unanswered.push(want);
                let body = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": want}]});
                settle(
                    &mut u.active,
                    d.send(reqwest::Method::PATCH, &path, body).await,
                )
            }
        };
        drop(st);
        if outcome_unknown {
            // The service is down or restarting: do not spin.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Applies an answer to an attribute whose last `unanswered` entry is the value just sent.
/// Returns whether the outcome is unknown.
fn settle<T: Clone + PartialEq>(m: &mut Maybe<T>, outcome: Outcome) -> bool {
    match outcome {
        Outcome::Acked(_) => {
            if let Some(v) = m.unanswered.pop() {
                m.acked = v;
            }
            // Earlier unanswered writes either committed before this one or never will.
            m.unanswered.clear();
            false
        }
        Outcome::Refused => {
            m.unanswered.pop();
            false
        }
        Outcome::Unknown => true,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_service(bin: &str, url: &str, ns: &Namespace, port: u16, log: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(bin)
        .arg("serve")
        .env("PHAB_SCIM_DATABASE_URL", url)
        .env("PHAB_SCIM_NAMESPACE", ns.as_str())
        .env("PHAB_SCIM_LISTEN", format!("127.0.0.1:{port}"))
        .env("PHAB_SCIM_POOL_SIZE", "8")
        // Deactivations are part of the load; the guard is tested on its own.
        .env("PHAB_SCIM_DEPROVISION_GUARD_SHARE", "1.0")
        .env("PHAB_SCIM_LOG", "warn")
        // Short timeouts keep the hang rounds short: a request waits at most 3 s for a stopped
        // database (unless the caller sets them, to measure the defaults).
        .env(
            "PHAB_SCIM_STATEMENT_TIMEOUT_SECS",
            std::env::var("PHAB_SCIM_STATEMENT_TIMEOUT_SECS").unwrap_or_else(|_| "2".into()),
        )
        .env(
            "PHAB_SCIM_TRANSACTION_TIMEOUT_SECS",
            std::env::var("PHAB_SCIM_TRANSACTION_TIMEOUT_SECS").unwrap_or_else(|_| "3".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start phab-scim serve")
}

async fn wait_healthy(client: &reqwest::Client, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the service did not become ready on port {port}");
}

async fn readyz(client: &reqwest::Client, port: u16, wait: Duration) -> Option<(u16, bool)> {
    let r = client
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .timeout(wait)
        .send()
        .await
        .ok()?;
    Some((r.status().as_u16(), r.headers().contains_key("retry-after")))
}

fn shell(cmd: &str) {
    let ok = Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "command failed: {cmd}");
}

/// Checks acknowledged writes against the rows.
async fn check_acknowledged(
    pool: &sqlx::MySqlPool,
    ns: &Namespace,
    states: &[Arc<Mutex<ClientState>>],
) -> Vec<String> {
    let db = |app: &str| ns.db(app);
    let mut v = Vec::new();
    let mut checked = 0u64;
    for st in states {
        let st = st.lock().await;
        for u in &st.users {
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT u.realName, u.isDisabled, s.userName, \
                 (SELECT COUNT(*) FROM {}.edge e WHERE e.src = ? AND e.type = 13 AND e.dst = u.phid) \
                 FROM {}.user u JOIN {}.scim_user s ON s.userPHID = u.phid WHERE u.phid = ?",
                db("project"),
                db("user"),
                db("scim")
            )))
            .bind(&st.group)
            .bind(&u.id)
            .fetch_optional(pool)
            .await
            .unwrap();
            checked += 1;
            let Some(row) = row else {
                v.push(format!(
                    "acknowledged user {} ({}) is missing",
                    u.id, u.name
                ));
                continue;
            };
            let real: String = row.get(0);
            let disabled: bool = row.get(1);
            let name: String = row.get(2);
            let member: i64 = row.get(3);
            if name != u.name {
                v.push(format!(
                    "{}: userName {name:?}, acknowledged {:?}",
                    u.id, u.name
                ));
            }
            if !u.real.allows(&real) {
                v.push(format!(
                    "{}: realName {real:?}, acknowledged {:?}",
                    u.id, u.real
                ));
            }
            if !u.active.allows(&!disabled) {
                v.push(format!(
                    "{}: active {}, acknowledged {:?}",
                    u.id, !disabled, u.active
                ));
            }
            if !u.member.allows(&(member == 1)) {
                v.push(format!(
                    "{}: member {}, acknowledged {:?}",
                    u.id,
                    member == 1,
                    u.member
                ));
            }
        }
    }
    eprintln!("checked {checked} acknowledged users");
    v
}

#[tokio::main]
async fn main() {
    let mode = std::env::var("PHAB_SCIM_FAULT_MODE").unwrap_or_else(|_| "kill".into());
    let rounds: u32 = std::env::var("PHAB_SCIM_FAULT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let bin = std::env::var("PHAB_SCIM_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_phab-scim").to_owned());
    let url = std::env::var("PHAB_SCIM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
    let (db_stop, db_start) = (
        std::env::var("PHAB_SCIM_FAULT_DB_STOP").ok(),
        std::env::var("PHAB_SCIM_FAULT_DB_START").ok(),
    );
    let hang = match (
        std::env::var("PHAB_SCIM_FAULT_DB_PAUSE").ok(),
        std::env::var("PHAB_SCIM_FAULT_DB_RESUME").ok(),
    ) {
        (Some(p), Some(r)) => Some((p, r)),
        _ => None,
    };
    let hang_only = std::env::var("PHAB_SCIM_FAULT_HANG_ONLY").is_ok_and(|v| v == "1");
    let pause_ms: u64 = std::env::var("PHAB_SCIM_FAULT_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7000);
    if mode == "outage" && (db_stop.is_none() || db_start.is_none()) {
        eprintln!(
            "outage mode needs PHAB_SCIM_FAULT_DB_STOP and PHAB_SCIM_FAULT_DB_START (scripts/outage-test sets them)"
        );
        std::process::exit(2);
    }

    let ns = Namespace::parse(&format!(
        "t_{:08x}_{}",
        phab_scim::db::now(),
        phab_scim::db::phabricator::random_chars(10)
    ))
    .unwrap();
    let secret_url = Secret::new(url.clone());
    let mut conn =
        MySqlConnection::connect_with(&phab_scim::db::connect_options(&secret_url).unwrap())
            .await
            .expect("database");
    migrate::install_phabricator_fixture(&mut conn, &ns)
        .await
        .expect("fixture");
    conn.close().await.ok();
    let cfg = Config {
        database_url: secret_url.clone(),
        namespace: ns.clone(),
        ..Config::default()
    };
    let db = Db::connect(&secret_url, ns.clone(), 4).await.unwrap();
    migrate::migrate(&db).await.expect("migrate");
    let prov = Provisioner {
        db: db.clone(),
        cfg: Arc::new(cfg),
    };
    let bot = prov.ensure_bot("scim-bot").await.expect("bot");
    let (_, token) = phab_scim::token::issue(&db, &bot, "faults", None)
        .await
        .expect("token");

    let port = free_port();
    let log = std::env::temp_dir().join(format!("phab-scim-faults-{}.log", ns.as_str()));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(90))
        .build()
        .unwrap();
    let driver = Arc::new(Driver {
        client: client.clone(),
        base: format!("http://127.0.0.1:{port}/scim/v2"),
        token,
        stats: Stats::default(),
        paused: AtomicBool::new(false),
    });

    let mut service = start_service(&bin, &url, &ns, port, &log);
    wait_healthy(&client, port).await;
    let mut states = Vec::new();
    for k in 0..CLIENTS {
        let body = json!({"displayName": format!("Kill Group {k}")});
        let Outcome::Acked(g) = driver.send(reqwest::Method::POST, "/Groups", body).await else {
            panic!("group {k}")
        };
        states.push(Arc::new(Mutex::new(ClientState {
            group: g["id"].as_str().unwrap().to_owned(),
            ..ClientState::default()
        })));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = states
        .iter()
        .enumerate()
        .map(|(k, st)| tokio::spawn(run_client(k, driver.clone(), st.clone(), stop.clone())))
        .collect();

    let mut kills = 0u32;
    let mut outages = 0u32;
    let mut hangs = 0u32;
    let mut readyz_red = 0u32;
    let mut hang_violations = Vec::new();
    for round in 0..rounds {
        let load_ms = rand::thread_rng().gen_range(300..2000);
        tokio::time::sleep(Duration::from_millis(load_ms)).await;
        if let Some((pause, resume)) = hang.as_ref().filter(|_| hang_only || round % 2 == 1) {
            // The database hangs with connections in use (SIGSTOP: the sockets stay open and
            // nothing answers). Every request must still be answered within the service's
            // timeouts, and /readyz too, before the database goes on.
            shell(pause);
            // Only answers sent after the server stopped count.
            let before = driver.stats.answered_while_paused.load(Ordering::Relaxed);
            driver.paused.store(true, Ordering::Relaxed);
            hangs += 1;
            let half = Duration::from_millis(pause_ms / 2);
            tokio::time::sleep(half).await;
            // Answered before the database goes on (the service's check gives up after 2 s).
            let ready = readyz(
                &client,
                port,
                half.saturating_sub(Duration::from_millis(500)),
            )
            .await;
            tokio::time::sleep(half).await;
            if mode == "kill" {
                // Killed while its transactions wait on the stopped server: they must roll
                // back when the server goes on and sees the connections closed.
                service.kill().expect("SIGKILL");
                service.wait().ok();
                kills += 1;
            }
            let answered = driver.stats.answered_while_paused.load(Ordering::Relaxed) - before;
            driver.paused.store(false, Ordering::Relaxed);
            shell(resume);
            if ready != Some((503, true)) {
                hang_violations.push(format!(
                    "/readyz while the database hung (round {round}): {ready:?}, expected 503 with Retry-After"
                ));
            }
            if answered < CLIENTS as u64 {
                hang_violations.push(format!(
                    "only {answered} answers while the database hung for {pause_ms} ms (round {round}): requests hang"
                ));
            }
            readyz_red += 1;
            if mode == "kill" {
                service = start_service(&bin, &url, &ns, port, &log);
            }
            wait_healthy(&client, port).await;
            eprintln!(
                "round {} (hang): sent {} acked {} answered while hung {answered}",
                round + 1,
                driver.stats.sent.load(Ordering::Relaxed),
                driver.stats.acked.load(Ordering::Relaxed)
            );
            continue;
        }
        match mode.as_str() {
            "outage" => {
                shell(db_stop.as_deref().unwrap_or_default());
                outages += 1;
                // While the database is down: the service answers (503 with Retry-After), and
                // /readyz is red.
                tokio::time::sleep(Duration::from_millis(
                    rand::thread_rng().gen_range(500..2500),
                ))
                .await;
                let ready = readyz(&client, port, Duration::from_secs(30)).await;
                assert_eq!(
                    ready,
                    Some((503, true)),
                    "/readyz while the database is down (round {round})"
                );
                readyz_red += 1;
                shell(db_start.as_deref().unwrap_or_default());
                // Recovery by itself: no restart of the service.
                wait_healthy(&client, port).await;
                assert!(
                    service.try_wait().unwrap().is_none(),
                    "the service exited during the outage"
                );
            }
            _ => {
                service.kill().expect("SIGKILL");
                service.wait().ok();
                kills += 1;
                tokio::time::sleep(Duration::from_millis(rand::thread_rng().gen_range(0..300)))
                    .await;
                service = start_service(&bin, &url, &ns, port, &log);
                wait_healthy(&client, port).await;
            }
        }
        eprintln!(
            "round {}: sent {} acked {}",
            round + 1,
            driver.stats.sent.load(Ordering::Relaxed),
            driver.stats.acked.load(Ordering::Relaxed)
        );
    }
    // A little load on the recovered service, then stop the clients.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("client task");
    }
    service.kill().ok();
    service.wait().ok();

    let mut violations = invariants::check(&invariants::Servers::one(&db.pool), &db.t)
        .await
        .expect("invariants");
    violations.extend(hang_violations);
    violations.extend(check_acknowledged(&db.pool, &ns, &states).await);
    let s = &driver.stats;
    let (sent, acked) = (
        s.sent.load(Ordering::Relaxed),
        s.acked.load(Ordering::Relaxed),
    );
    let other_5xx = s.other_5xx.load(Ordering::Relaxed);
    let no_retry_after = s.retry_after_missing.load(Ordering::Relaxed);
    if other_5xx > 0 {
        violations.push(format!("{other_5xx} answers were 5xx other than 503"));
    }
    if no_retry_after > 0 {
        violations.push(format!("{no_retry_after} 503 answers without Retry-After"));
    }
    let no_body = s.scim_body_missing.load(Ordering::Relaxed);
    if no_body > 0 {
        violations.push(format!("{no_body} 503 answers without a SCIM error body"));
    }
    let no_id = s.request_id_missing.load(Ordering::Relaxed);
    if no_id > 0 {
        violations.push(format!("{no_id} 503 answers without x-request-id"));
    }
    if acked == 0 {
        violations.push("no write was acknowledged: the load did not run".into());
    }
    println!(
        "{mode}: rounds={rounds} kills={kills} outages={outages} hangs={hangs} readyz_red={readyz_red} requests={sent} acknowledged={acked} \
         unanswered={} refused_4xx={} answered_503={} answered_while_hung={} longest_request_ms={} violations={}",
        s.unanswered.load(Ordering::Relaxed),
        s.refused_4xx.load(Ordering::Relaxed),
        s.unavailable_503.load(Ordering::Relaxed),
        s.answered_while_paused.load(Ordering::Relaxed),
        s.longest_ms.load(Ordering::Relaxed),
        violations.len()
    );
    for v in violations.iter().take(30) {
        println!("violation: {v}");
    }
    db.pool.close().await;
    if violations.is_empty() {
        migrate::drop_namespace(&secret_url, &ns).await.ok();
        let _ = std::fs::remove_file(&log);
        println!("{mode}: 1 passed, 0 failed");
    } else {
        println!(
            "namespace {} and log {} kept for inspection",
            ns.as_str(),
            log.display()
        );
        println!("{mode}: 0 passed, 1 failed");
        std::process::exit(1);
    }
}
