//! The test fixture: a namespace built from `schema/phabricator/`, the app on port 0, a token.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use phab_scim::app::Application;
use phab_scim::config::{Config, Namespace, RolloutMode, Secret};
use phab_scim::db::{Db, Tables, grants, migrate};
use phab_scim::provisioning::Provisioner;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection, MySqlConnection, MySqlPool};
use tokio::sync::{OnceCell, oneshot};

/// The server the tests use.
pub fn database_url() -> String {
    std::env::var("PHAB_SCIM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

static SWEPT: OnceCell<()> = OnceCell::const_new();

/// Drops namespaces of test runs that died more than an hour ago.
async fn sweep_stale() {
    let url = Secret::new(database_url());
    let Ok(opts) = phab_scim::db::connect_options(&url) else {
        return;
    };
    let Ok(mut conn) = MySqlConnection::connect_with(&opts).await else {
        return;
    };
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 't\\_%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap_or_default();
    let now = phab_scim::db::now();
    for name in names {
        let mut parts = name.split('_');
        let (Some("t"), Some(epoch)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(epoch) = u32::from_str_radix(epoch, 16) else {
            continue;
        };
        if now.saturating_sub(epoch) > 3600 {
            let _ = sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS `{name}`")))
                .execute(&mut conn)
                .await;
        }
    }
    // The per-namespace service accounts of those runs (named as their namespace).
    let users: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(User AS CHAR) FROM mysql.user WHERE User LIKE 't\\_%' AND Host = '%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap_or_default();
    for user in users {
        let mut parts = user.split('_');
        let (Some("t"), Some(epoch)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(epoch) = u32::from_str_radix(epoch, 16) else {
            continue;
        };
        if now.saturating_sub(epoch) > 3600 {
            let _ = sqlx::raw_sql(AssertSqlSafe(format!("DROP USER IF EXISTS '{user}'@'%'")))
                .execute(&mut conn)
                .await;
        }
    }
}

/// The further servers of a partitioned run (scripts/partition-test), if any:
/// `PHAB_SCIM_TEST_PARTITIONS=url2[,url3]`. Server `i` (from the second) holds the databases of
/// [`PLACED`]`[i]`, as partitioned `cluster.databases` would place them; every other database
/// stays on [`database_url`], which holds `<ns>_user` and `<ns>_scim` (they go together) and so
/// coordinates writes across the servers.
pub fn partition_urls() -> Vec<String> {
    std::env::var("PHAB_SCIM_TEST_PARTITIONS")
        .unwrap_or_default()
        .split(',')
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What each further server of a partitioned run holds: the second `project` (a membership
/// then writes edges 13 and 60 there and 14 on the first); the third, when there is one, the
/// default partition's databases the service writes, so that creating or disabling a user also
/// commits worker tasks, tokens and sessions on another master than the account.
pub const PLACED: &[&[&str]] = &[
    &["project"],
    &["worker", "auth", "conduit", "metamta", "system", "cache"],
];

/// `host:port` of a `mysql://` URL.
fn url_key(url: &str) -> String {
    let u = reqwest::Url::parse(url).expect("database URL");
    format!(
        "{}:{}",
        u.host_str().unwrap_or("127.0.0.1"),
        u.port().unwrap_or(3306)
    )
}

/// The routing of a partitioned run: the databases of [`PLACED`]`[i]` on `servers[i + 1]`,
/// the rest on `servers[0]`.
pub fn partition_routing(servers: &[Secret]) -> phab_scim::config::cluster::Routing {
    use phab_scim::config::cluster::{DATABASES, Master, Routing, partition_of};
    let masters = servers
        .iter()
        .map(|url| Master {
            key: url_key(url.expose()),
            url: url.clone(),
        })
        .collect();
    let routes = DATABASES
        .iter()
        .map(|d| {
            let at = PLACED
                .iter()
                .take(servers.len().saturating_sub(1))
                .position(|apps| apps.contains(&partition_of(d)));
            (*d, at.map_or(0, |i| i + 1))
        })
        .collect();
    Routing {
        masters,
        routes,
        replicas: Vec::new(),
        state: None,
    }
}

/// The same URL with `other`'s host and port.
fn on_server(url: &Secret, other: &str) -> Secret {
    let mut u = reqwest::Url::parse(url.expose()).expect("URL");
    let s = reqwest::Url::parse(other).expect("other URL");
    u.set_host(s.host_str()).expect("host");
    u.set_port(s.port()).expect("port");
    Secret::new(u.to_string())
}

/// A `Db` of the root account on namespace `ns`: `root`, the pool of [`database_url`], alone;
/// in a partitioned run, a pool per server routed as [`partition_routing`] places them.
async fn root_db(root: &MySqlPool, ns: &Namespace) -> Db {
    let urls = partition_urls();
    if urls.is_empty() {
        return Db::from_pool(root.clone(), ns.clone());
    }
    let servers: Vec<Secret> = std::iter::once(database_url())
        .chain(urls)
        .map(Secret::new)
        .collect();
    Db::connect_routed(
        &partition_routing(&servers),
        ns.clone(),
        4,
        phab_scim::db::Timeouts::default(),
    )
    .await
    .expect("root pools")
}

/// A fresh namespace name.
pub fn new_namespace() -> Namespace {
    let ns = format!(
        "t_{:08x}_{}",
        phab_scim::db::now(),
        phab_scim::db::phabricator::random_chars(10)
    );
    Namespace::parse(&ns).expect("valid namespace")
}

/// A running app on its own namespace.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub token: String,
    pub bot_phid: String,
    pub db: Db,
    pub pool: MySqlPool,
    /// In a partitioned run, each further server's root pool and the applications whose
    /// databases it holds ([`partition_urls`], [`PLACED`]).
    pub others: Vec<(MySqlPool, &'static [&'static str])>,
    pub ns: Namespace,
    pub cfg: Config,
    /// The running app's state (its refused-request tally, its token verifier).
    pub state: phab_scim::http::AppState,
    /// The gauges of the database's state that `/metrics` appends (refresh them at will).
    pub gauges: Arc<phab_scim::status_gauges::StatusGauges>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    /// Spawns with the default configuration.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns after `tweak` adjusts the configuration.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_with_metrics(tweak, None).await
    }

    /// Spawns with a Prometheus handle serving `/metrics`.
    pub async fn spawn_with_metrics(
        tweak: impl FnOnce(&mut Config),
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> Self {
        if std::env::var_os("TEST_LOG").is_some() {
            phab_scim::telemetry::init(false);
        }
        SWEPT.get_or_init(sweep_stale).await;
        let ns = new_namespace();
        let url = Secret::new(database_url());
        let mut conn =
            MySqlConnection::connect_with(&phab_scim::db::connect_options(&url).unwrap())
                .await
                .expect("connect");
        migrate::install_phabricator_fixture(&mut conn, &ns)
            .await
            .expect("fixture");
        // A partitioned run: `bin/storage upgrade` makes every database on every master.
        let mut others = Vec::new();
        for url2 in partition_urls() {
            let mut conn2 = MySqlConnection::connect_with(
                &phab_scim::db::connect_options(&Secret::new(url2.clone())).unwrap(),
            )
            .await
            .expect("connect to a further server");
            migrate::install_phabricator_fixture(&mut conn2, &ns)
                .await
                .expect("fixture on a further server");
            others.push((url2, conn2));
        }
        // `migrate` is a separate step with the stronger account (README.md, *The database
        // account*); the service then runs as the least-privilege one, so every test proves
        // the documented grants are enough.
        let root = MySqlPool::connect_with(phab_scim::db::connect_options(&url).unwrap())
            .await
            .expect("connect");
        let migrator = root_db(&root, &ns).await;
        migrate::migrate(&migrator).await.expect("migrate");
        let mut cfg = Config {
            namespace: ns.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            pool_size: 12,
            token_recheck_secs: 1,
            ..Config::default()
        };
        tweak(&mut cfg);
        // Staged mode serves a rollout `phab-scim stage` began, with the migrate account.
        let needs = if cfg.mode == RolloutMode::Staged {
            let stager = Provisioner {
                db: migrator.clone(),
                cfg: Arc::new(cfg.clone()),
            };
            stager.begin_stage(false).await.expect("stage");
            [grants::SERVE, grants::STAGED].concat()
        } else {
            grants::SERVE.to_vec()
        };
        let needs = if !others.is_empty() {
            [needs.as_slice(), grants::PARTITIONED].concat()
        } else {
            needs
        };
        cfg.database_url = create_account(&mut conn, &ns, &needs).await;
        conn.close().await.ok();
        // The same account on each further server, with the same grants.
        let mut servers = vec![cfg.database_url.clone()];
        let mut other_pools = Vec::new();
        for ((url2, mut conn2), apps) in others.into_iter().zip(PLACED) {
            let password = reqwest::Url::parse(cfg.database_url.expose())
                .ok()
                .and_then(|u| u.password().map(str::to_owned))
                .expect("password");
            let account = format!("'{}'@'%'", ns.as_str());
            sqlx::raw_sql(AssertSqlSafe(format!(
                "CREATE USER {account} IDENTIFIED BY '{password}'"
            )))
            .execute(&mut conn2)
            .await
            .expect("create user on a further server");
            for grant in grants::statements(&needs, &ns, &account) {
                sqlx::raw_sql(AssertSqlSafe(grant.as_str()))
                    .execute(&mut conn2)
                    .await
                    .expect(&grant);
            }
            conn2.close().await.ok();
            servers.push(on_server(&cfg.database_url, &url2));
            other_pools.push((
                MySqlPool::connect_with(
                    phab_scim::db::connect_options(&Secret::new(url2)).unwrap(),
                )
                .await
                .expect("connect"),
                *apps,
            ));
        }
        if servers.len() > 1 {
            cfg.database_sources.routing = Some(partition_routing(&servers));
        }
        let app = Application::build(cfg.clone(), metrics)
            .await
            .expect("build");
        let addr = app.addr();
        let state = app.state().clone();
        let gauges = app.status_gauges();
        let db = app.state().prov.db.clone();
        let prov = Provisioner {
            db: db.clone(),
            cfg: Arc::new(cfg.clone()),
        };
        let bot_phid = prov.ensure_bot("scim-bot").await.expect("bot");
        let (_, token) = phab_scim::token::issue(&db, &bot_phid, "test", None)
            .await
            .expect("token");
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = app
                .run_with_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        let pool = root;
        Self {
            base: format!("http://{addr}/scim/v2"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            token,
            bot_phid,
            db,
            pool,
            others: other_pools,
            ns,
            cfg,
            state,
            gauges,
            stop: Some(tx),
            server: Some(server),
        }
    }

    /// Table names of this namespace.
    pub fn t(&self) -> &Tables {
        &self.db.t
    }

    /// Sends a request with the token; returns status, headers and JSON body (Null if empty).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.send_with(method, path, body, &[]).await
    }

    /// Same with extra headers.
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{}", self.base, path)
        };
        let mut req = self.client.request(method, url).bearer_auth(&self.token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, json)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, _, b) = self.send(Method::GET, path, None).await;
        (s, b)
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, _, b) = self.send(Method::POST, path, Some(body)).await;
        (s, b)
    }
    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, _, b) = self.send(Method::PUT, path, Some(body)).await;
        (s, b)
    }
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, _, b) = self.send(Method::PATCH, path, Some(body)).await;
        (s, b)
    }
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        let (s, _, b) = self.send(Method::DELETE, path, None).await;
        (s, b)
    }

    /// Runs a query with `{user}`, `{project}`, `{worker}`, `{scim}`, ... replaced by this
    /// namespace's database names.
    pub fn sql(&self, template: &str) -> String {
        let mut s = template.to_owned();
        for app in [
            "user",
            "project",
            "worker",
            "scim",
            "auth",
            "conduit",
            "system",
            "meta_data",
            "cache",
            "metamta",
            "scimstage",
        ] {
            s = s.replace(&format!("{{{app}}}"), &self.ns.db(app));
        }
        s
    }

    /// A `Db` of the root account on the app's layout (routed like the service in a
    /// partitioned run): what `migrate`, `stage` and `apply` use.
    pub async fn root_db(&self) -> Db {
        root_db(&self.pool, &self.ns).await
    }

    /// `phab-scim <command>` on the app's namespace as the root account: `database_url` on
    /// one server; in a partitioned run, a Phabricator checkout whose `local.json` partitions
    /// the databases as the app's servers hold them ([`PLACED`]), which is how the CLI learns
    /// the routing.
    pub fn cli(&self, command: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_phab-scim"));
        cmd.arg(command)
            .env("PHAB_SCIM_NAMESPACE", self.ns.as_str())
            .env("PHAB_SCIM_TEST_DATABASE_URL", "ignored by the service");
        let urls = partition_urls();
        if urls.is_empty() {
            cmd.env("PHAB_SCIM_DATABASE_URL", database_url());
            return cmd;
        }
        let server = |url: &str, partition: Vec<&str>| {
            let u = reqwest::Url::parse(url).expect("URL");
            serde_json::json!({
                "host": u.host_str().unwrap_or("127.0.0.1"), "port": u.port().unwrap_or(3306),
                "user": u.username(), "pass": u.password().unwrap_or(""),
                "role": "master", "partition": partition,
            })
        };
        // The first server holds `user` and `scim`; the last further one is the default
        // partition when there are two (it holds the default applications), else the first is.
        let mut first = vec!["user", "scim"];
        if urls.len() < 2 {
            first.push("default");
        }
        let mut servers = vec![server(&database_url(), first)];
        for (i, (url, apps)) in urls.iter().zip(PLACED).enumerate() {
            let partition = if i == 1 {
                vec!["default"]
            } else {
                apps.to_vec()
            };
            servers.push(server(url, partition));
        }
        let root = std::env::temp_dir().join(format!("phab-scim-{}", self.ns.as_str()));
        std::fs::create_dir_all(root.join("conf/local")).expect("checkout");
        let local = serde_json::json!({
            "storage.default-namespace": self.ns.as_str(),
            "cluster.databases": servers,
        });
        std::fs::write(root.join("conf/local/local.json"), local.to_string()).expect("local.json");
        cmd.env("PHAB_SCIM_PHABRICATOR_ROOT", &root);
        cmd
    }

    /// The root pool of the server holding the databases `template` names (`{project}`...):
    /// a further one in a partitioned run when it names one of that server's [`PLACED`].
    pub fn pool_for(&self, template: &str) -> &MySqlPool {
        self.others
            .iter()
            .find(|(_, apps)| {
                apps.iter()
                    .any(|app| template.contains(&format!("{{{app}}}")))
            })
            .map_or(&self.pool, |(pool, _)| pool)
    }

    /// Each further server's pool and the quoted names of the databases it holds, for
    /// reading rows server by server (`invariants::Servers`).
    pub fn placement(&self) -> Vec<(&MySqlPool, Vec<String>)> {
        self.others
            .iter()
            .map(|(pool, apps)| (pool, apps.iter().map(|a| self.ns.db(a)).collect()))
            .collect()
    }

    /// Runs one statement on the server holding the databases it names (a hand edit).
    pub async fn exec(&self, template: &str) {
        sqlx::query(AssertSqlSafe(self.sql(template)))
            .execute(self.pool_for(template))
            .await
            .expect(template);
    }

    /// One integer.
    pub async fn count(&self, template: &str) -> i64 {
        let rows = self.rows(template).await;
        let v = rows
            .first()
            .and_then(|r| r.as_object())
            .and_then(|o| o.values().next().cloned());
        match v {
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
            Some(Value::String(s)) => s.parse().unwrap_or(0),
            _ => 0,
        }
    }

    /// Rows as JSON objects (every column as text or null), for readable assertions.
    pub async fn rows(&self, template: &str) -> Vec<Value> {
        use sqlx::{Column, Row, TypeInfo, ValueRef};
        let rows = sqlx::query(AssertSqlSafe(self.sql(template)))
            .fetch_all(self.pool_for(template))
            .await
            .expect(template);
        rows.iter()
            .map(|r| {
                let mut m = serde_json::Map::new();
                for (i, c) in r.columns().iter().enumerate() {
                    let raw = r.try_get_raw(i).expect("raw");
                    let v = if raw.is_null() {
                        Value::Null
                    } else {
                        let ty = raw.type_info().name().to_ascii_uppercase();
                        if ty.contains("INT") {
                            r.try_get::<i64, _>(i)
                                .map(Value::from)
                                .or_else(|_| r.try_get::<u64, _>(i).map(Value::from))
                                .unwrap_or(Value::Null)
                        } else if ty.contains("BOOL") {
                            r.try_get::<bool, _>(i)
                                .map(|b| Value::from(i64::from(b)))
                                .unwrap_or(Value::Null)
                        } else {
                            r.try_get::<String, _>(i)
                                .map(Value::from)
                                .or_else(|_| {
                                    r.try_get::<Vec<u8>, _>(i).map(|b| {
                                        Value::from(String::from_utf8_lossy(&b).into_owned())
                                    })
                                })
                                .unwrap_or(Value::Null)
                        }
                    };
                    m.insert(c.name().to_owned(), v);
                }
                Value::Object(m)
            })
            .collect()
    }

    /// Makes every managed user established: backdates the accounts the service created by a
    /// day, past any test's deprovision guard window (users created within the window do not
    /// count, src/provisioning/users.rs `guard_burst`).
    pub async fn establish_users(&self) {
        sqlx::query(AssertSqlSafe(self.sql(
            "UPDATE {scim}.scim_user SET dateAccountCreated = dateAccountCreated - 86400 \
             WHERE dateAccountCreated IS NOT NULL",
        )))
        .execute(&self.pool)
        .await
        .expect("establish users");
    }

    /// Issues another token for the bot.
    pub async fn issue_token(&self) -> (u32, String) {
        phab_scim::token::issue(&self.db, &self.bot_phid, "extra", None)
            .await
            .expect("token")
    }

    /// Stops the server the way SIGTERM does (its clean-shutdown work included); the pool and
    /// the namespace stay for the test to read.
    pub async fn stop_server(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
        }
    }

    /// Stops the server and drops the namespace.
    pub async fn cleanup(mut self) {
        self.stop_server().await;
        let _ = std::fs::remove_dir_all(
            std::env::temp_dir().join(format!("phab-scim-{}", self.ns.as_str())),
        );
        self.pool.close().await;
        migrate::drop_namespace(&Secret::new(database_url()), &self.ns)
            .await
            .expect("drop namespace");
        drop_account(&self.ns).await;
        for ((pool2, _), url2) in std::mem::take(&mut self.others)
            .into_iter()
            .zip(partition_urls())
        {
            pool2.close().await;
            let _ = migrate::drop_namespace(&Secret::new(url2.clone()), &self.ns).await;
            if let Ok(opts) = phab_scim::db::connect_options(&Secret::new(url2))
                && let Ok(mut conn) = MySqlConnection::connect_with(&opts).await
            {
                let _ = sqlx::raw_sql(AssertSqlSafe(format!(
                    "DROP USER IF EXISTS '{}'@'%'",
                    self.ns.as_str()
                )))
                .execute(&mut conn)
                .await;
            }
        }
    }
}

/// Creates the MySQL account `<ns>`@`%` with a random password and exactly the grants of
/// `needs` (src/db/grants.rs, as the README documents them); returns its URL.
pub async fn create_account(
    conn: &mut MySqlConnection,
    ns: &Namespace,
    needs: &[grants::Need],
) -> Secret {
    create_account_named(conn, ns.as_str(), ns, needs).await
}

/// Creates the MySQL account `<user>`@`%` with the grants of `needs` on namespace `ns`.
pub async fn create_account_named(
    conn: &mut MySqlConnection,
    user: &str,
    ns: &Namespace,
    needs: &[grants::Need],
) -> Secret {
    let password = phab_scim::db::phabricator::random_chars(24);
    let account = format!("'{user}'@'%'");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE USER {account} IDENTIFIED BY '{password}'"
    )))
    .execute(&mut *conn)
    .await
    .expect("create user");
    for grant in grants::statements(needs, ns, &account) {
        sqlx::raw_sql(AssertSqlSafe(grant.as_str()))
            .execute(&mut *conn)
            .await
            .expect(&grant);
    }
    let mut url = reqwest::Url::parse(&database_url()).expect("database URL");
    url.set_username(user).expect("user");
    url.set_password(Some(&password)).expect("password");
    Secret::new(url.to_string())
}

/// Drops the account [`create_account`] made for `ns`.
pub async fn drop_account(ns: &Namespace) {
    let url = Secret::new(database_url());
    if let Ok(opts) = phab_scim::db::connect_options(&url)
        && let Ok(mut conn) = MySqlConnection::connect_with(&opts).await
    {
        let _ = sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP USER IF EXISTS '{}'@'%'",
            ns.as_str()
        )))
        .execute(&mut conn)
        .await;
    }
}

/// A standard Entra-shaped user body.
pub fn user_body(user_name: &str, email: &str, display: &str) -> Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "displayName": display,
        "active": true,
        "emails": [{"primary": true, "type": "work", "value": email}],
    })
}
