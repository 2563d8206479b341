//! The database layer: the only place with SQL. Every table name is rendered from the
//! configured [`Namespace`]; every value is a bound parameter.

pub mod check;
pub mod conns;
pub mod drift;
pub mod filter_sql;
pub mod grants;
pub mod migrate;
pub mod phabricator;
pub mod reach;
pub mod sidecar;
pub mod stage;
pub mod status;
pub mod xa;

use std::sync::Arc;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{Connection, Executor, MySqlPool};
use tokio::time::Instant;

use crate::config::{Namespace, Secret};

pub use conns::Conns;

/// One connection (writers and readers take [`Conns`], the connections of an operation).
pub type Conn = sqlx::MySqlConnection;
/// An open transaction.
pub type Tx = sqlx::Transaction<'static, sqlx::MySql>;
/// A connection taken from the pool.
pub type Lease = sqlx::pool::PoolConnection<sqlx::MySql>;

/// Errors of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A driver or server error. Not a `#[source]`: the message already holds the driver's,
    /// and an error chain printed with `{:#}` would say it twice.
    #[error("database error [DB0001]: {0}")]
    Sqlx(sqlx::Error),
    /// The DSN could not be parsed.
    #[error("invalid database URL [DB0002]: {0}")]
    Url(String),
    /// The server could not be connected to at all (see [`reach::reach`]).
    #[error("MySQL at {addr} cannot be reached [DB0005]: {cause}")]
    Unreachable {
        /// `host:port` of the server.
        addr: String,
        /// Why, in an operator's words.
        cause: String,
    },
    /// A row holds data phab-scim cannot read (corrupt JSON, missing row of a pair).
    #[error("inconsistent data [DB0003]: {0}")]
    Inconsistent(String),
    /// The database did not answer in time (`statement_timeout_secs`,
    /// `transaction_timeout_secs`): hung, or far too slow. Names what ran out of time.
    #[error("database timeout [DB0004]: {0} ran out of time")]
    Timeout(&'static str),
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        DbError::Sqlx(e)
    }
}

/// MySQL error numbers we act on.
const ER_DUP_ENTRY: u16 = 1062;
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
const ER_LOCK_DEADLOCK: u16 = 1213;

impl DbError {
    fn mysql_code(&self) -> Option<u16> {
        match self {
            DbError::Sqlx(sqlx::Error::Database(e)) => e
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(|e| e.number()),
            _ => None,
        }
    }
    /// A unique key was violated (MySQL 1062).
    pub fn is_unique_violation(&self) -> bool {
        self.mysql_code() == Some(ER_DUP_ENTRY)
    }
    /// The name of the violated unique key, from MySQL's message (`... for key 'key_username'`).
    pub fn violated_key(&self) -> Option<String> {
        if let DbError::Sqlx(sqlx::Error::Database(e)) = self
            && self.is_unique_violation()
        {
            let msg = e.message();
            let start = msg.rfind("for key '")? + "for key '".len();
            let rest = &msg[start..];
            let end = rest.find('\'')?;
            let key = &rest[..end];
            return Some(key.rsplit('.').next().unwrap_or(key).to_owned());
        }
        None
    }
    /// A deadlock or lock-wait timeout: the whole transaction may be retried.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.mysql_code(),
            Some(ER_LOCK_DEADLOCK) | Some(ER_LOCK_WAIT_TIMEOUT)
        )
    }
    /// The database cannot be reached (the request should be retried later: 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            DbError::Unreachable { .. }
                | DbError::Timeout(_)
                | DbError::Sqlx(
                    sqlx::Error::Io(_)
                        | sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::Tls(_)
                        | sqlx::Error::WorkerCrashed
                )
        )
    }
}

/// Result of the database layer.
pub type DbResult<T> = Result<T, DbError>;

/// Qualified table names of one namespace, rendered once.
#[derive(Debug, Clone)]
pub struct Tables {
    pub user: String,
    pub user_email: String,
    pub user_nametoken: String,
    pub user_log: String,
    pub user_transaction: String,
    pub user_edge: String,
    pub user_externalaccount: String,
    pub user_externalaccountidentifier: String,
    pub session: String,
    pub project: String,
    pub project_slug: String,
    pub project_datasourcetoken: String,
    pub project_transaction: String,
    pub project_edge: String,
    pub auth_providerconfig: String,
    pub auth_temporarytoken: String,
    pub conduit_token: String,
    pub worker_taskdata: String,
    pub worker_activetask: String,
    pub lisk_counter: String,
    pub patch_status: String,
    pub cache_general: String,
    pub metamta_applicationemail: String,
    pub system_destructionlog: String,
    pub scim_user: String,
    pub scim_useremail: String,
    pub scim_group: String,
    pub scim_token: String,
    pub scim_event: String,
    pub scim_instance: String,
    pub scim_drift: String,
    pub scim_rollout: String,
    pub scim_stageop: String,
    pub scim_planentry: String,
}

impl Tables {
    /// Renders every table name for `ns`.
    pub fn new(ns: &Namespace) -> Self {
        Self::render(|app, table| format!("{}.`{}`", ns.db(app), table))
    }

    /// The names a staged rollout writes instead (`db::stage`): its copies of Phabricator's
    /// tables and of the SCIM records, and the real names of everything else.
    pub fn staged(ns: &Namespace) -> Self {
        Self::render(|app, table| match stage::shadow_of(ns, app, table) {
            Some(shadow) => shadow,
            None => format!("{}.`{}`", ns.db(app), table),
        })
    }

    /// Every name, from the application's database name and the table's.
    fn render(t: impl Fn(&str, &str) -> String) -> Self {
        Self {
            user: t("user", "user"),
            user_email: t("user", "user_email"),
            user_nametoken: t("user", "user_nametoken"),
            user_log: t("user", "user_log"),
            user_transaction: t("user", "user_transaction"),
            user_edge: t("user", "edge"),
            user_externalaccount: t("user", "user_externalaccount"),
            user_externalaccountidentifier: t("user", "user_externalaccountidentifier"),
            session: t("user", "phabricator_session"),
            project: t("project", "project"),
            project_slug: t("project", "project_slug"),
            project_datasourcetoken: t("project", "project_datasourcetoken"),
            project_transaction: t("project", "project_transaction"),
            project_edge: t("project", "edge"),
            auth_providerconfig: t("auth", "auth_providerconfig"),
            auth_temporarytoken: t("auth", "auth_temporarytoken"),
            conduit_token: t("conduit", "conduit_token"),
            worker_taskdata: t("worker", "worker_taskdata"),
            worker_activetask: t("worker", "worker_activetask"),
            lisk_counter: t("worker", "lisk_counter"),
            patch_status: t("meta_data", "patch_status"),
            cache_general: t("cache", "cache_general"),
            metamta_applicationemail: t("metamta", "metamta_applicationemail"),
            system_destructionlog: t("system", "system_destructionlog"),
            scim_user: t("scim", "scim_user"),
            scim_useremail: t("scim", "scim_useremail"),
            scim_group: t("scim", "scim_group"),
            scim_token: t("scim", "scim_token"),
            scim_event: t("scim", "scim_event"),
            scim_instance: t("scim", "scim_instance"),
            scim_drift: t("scim", "scim_drift"),
            scim_rollout: t("scim", "scim_rollout"),
            scim_stageop: t("scim", "scim_stageop"),
            scim_planentry: t("scim", "scim_planentry"),
        }
    }
}

/// How long database work may take (README, settings `statement_timeout_secs` and
/// `transaction_timeout_secs`). A hung server (SIGSTOP, a dead host whose sockets stay open)
/// answers nothing and fails nothing: only these limits end the wait.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Waiting for a pooled connection, a lock wait on the server, the `/readyz` check.
    pub statement: Duration,
    /// One operation as a whole: a read, or a transaction from BEGIN to COMMIT with retries.
    pub operation: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            statement: Duration::from_secs(5),
            operation: Duration::from_secs(10),
        }
    }
}

/// The pool and the namespace's table names.
#[derive(Clone, Debug)]
pub struct Db {
    /// The connection pool (no default database: every name is qualified).
    pub pool: MySqlPool,
    /// Namespace of the Phabricator install.
    pub ns: Namespace,
    /// Rendered table names.
    pub t: Arc<Tables>,
    /// Time limits of database work.
    pub timeouts: Timeouts,
    /// `/readyz`'s cached check, shared by the clones of this `Db`.
    pub readiness: Arc<check::ReadinessCache>,
    /// Whether `t` names a staged rollout's copies ([`Db::staged`]): every transaction then
    /// first holds the rollout's phase (`stage::hold_phase`).
    pub staged: bool,
    /// The pool of each master, when partitioned `cluster.databases` spreads the databases over
    /// several ([`Db::connect_routed`]); one entry, `pool` itself, otherwise.
    pub masters: Arc<Masters>,
}

/// The masters' pools, in the order of `config::cluster::Routing::masters`, and which master
/// holds each database. The first pool is `Db::pool`, the master of `<ns>_scim`, which
/// coordinates a write across masters (`db::xa`).
#[derive(Debug)]
pub struct Masters {
    /// `host:port` and pool of each master.
    pub pools: Vec<(String, MySqlPool)>,
    /// Each database (application name) and the index of its master in `pools`.
    pub routes: Vec<(&'static str, usize)>,
}

impl Masters {
    fn one(pool: &MySqlPool) -> Self {
        Self {
            pools: vec![("database_url".to_owned(), pool.clone())],
            routes: Vec::new(),
        }
    }

    /// Whether every database is on one master (no write needs `db::xa`).
    pub fn is_single(&self) -> bool {
        self.pools.len() == 1
    }

    /// Whether the databases of `apps` are all on one master (a statement may join them).
    pub fn together(&self, apps: &[&str]) -> bool {
        apps.windows(2)
            .all(|w| self.index_of(w[0]) == self.index_of(w[1]))
    }

    /// The pool of the master of `database` (application name).
    pub fn pool_of(&self, database: &str) -> &MySqlPool {
        let index = self.index_of(database);
        &self.pools[index.min(self.pools.len().saturating_sub(1))].1
    }

    /// The index of the master of `database`; the coordinator (0) for one not routed.
    pub fn index_of(&self, database: &str) -> usize {
        self.routes
            .iter()
            .find(|(d, _)| *d == database)
            .map_or(0, |(_, i)| *i)
    }
}

/// Opens a lazy pool on `url` after checking the server can be reached at all. Each
/// connection runs at READ COMMITTED: under REPEATABLE READ Phorge's own user creation
/// (`PhabricatorUserEditor::createNewUser`, its name-token rewrite) deadlocks on next-key
/// locks. Each waits for a row lock no longer than `timeouts.statement` (InnoDB's default is
/// 50 s; `provisioning::in_transaction` retries a lock-wait timeout).
async fn open_pool(url: &Secret, pool_size: u32, timeouts: Timeouts) -> DbResult<MySqlPool> {
    let opts = connect_options(url)?;
    reach::reach(&opts).await?;
    let lock_wait = format!(
        "SET SESSION innodb_lock_wait_timeout = {}",
        timeouts.statement.as_secs().max(1)
    );
    Ok(MySqlPoolOptions::new()
        .max_connections(pool_size.max(1))
        .min_connections(0)
        // Covers connecting and the idle ping below: a stopped server accepts TCP
        // connections (the kernel does) and then never answers the handshake.
        .acquire_timeout(timeouts.statement)
        // A ping on every acquire was a round trip per request (a third of a lookup's
        // system calls). A connection that sat idle is still pinged before use, so one
        // the server dropped (a restart, wait_timeout) is replaced instead of failing the
        // request; under load connections are reused within milliseconds.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= IDLE_BEFORE_PING {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .after_connect(move |conn, _meta| {
            let lock_wait = lock_wait.clone();
            Box::pin(async move {
                conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .await?;
                conn.execute(sqlx::AssertSqlSafe(lock_wait)).await?;
                Ok(())
            })
        })
        .connect_lazy_with(opts))
}

/// How long a pooled connection may sit unused before it is pinged on its next use.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(5);

/// Parses a `mysql://` URL into connect options, without a database.
pub fn connect_options(url: &Secret) -> DbResult<MySqlConnectOptions> {
    // The parse error of sqlx may quote the URL; report only that it failed.
    let opts: MySqlConnectOptions = url
        .expose()
        .parse()
        .map_err(|_| DbError::Url("cannot parse the mysql:// URL".into()))?;
    Ok(opts.charset("utf8mb4").collation("utf8mb4_bin"))
}

impl Db {
    /// Opens a pool with the default [`Timeouts`].
    pub async fn connect(url: &Secret, ns: Namespace, pool_size: u32) -> DbResult<Self> {
        Self::connect_with(url, ns, pool_size, Timeouts::default()).await
    }

    /// Opens the pool ([`open_pool`]).
    pub async fn connect_with(
        url: &Secret,
        ns: Namespace,
        pool_size: u32,
        timeouts: Timeouts,
    ) -> DbResult<Self> {
        let pool = open_pool(url, pool_size, timeouts).await?;
        let mut db = Self::from_pool(pool, ns);
        db.timeouts = timeouts;
        Ok(db)
    }

    /// Opens the pool of every master `cfg` routes the service's databases to: one
    /// ([`Db::connect_with`] on `database_url`, no XA) unless partitioned `cluster.databases`
    /// spread them over several ([`Db::connect_routed`]).
    pub async fn connect_config(
        cfg: &crate::config::Config,
        pool_size: u32,
        timeouts: Timeouts,
    ) -> DbResult<Self> {
        let routing = cfg.routing();
        if routing.one_master().is_some() {
            return Self::connect_with(
                &cfg.database_url,
                cfg.namespace.clone(),
                pool_size,
                timeouts,
            )
            .await;
        }
        Self::connect_routed(&routing, cfg.namespace.clone(), pool_size, timeouts).await
    }

    /// Opens a pool per master of `routing` (each as [`Db::connect_with`] opens its one),
    /// the master of `<ns>_scim` first: it is `pool`, and the coordinator of `db::xa`.
    pub async fn connect_routed(
        routing: &crate::config::cluster::Routing,
        ns: Namespace,
        pool_size: u32,
        timeouts: Timeouts,
    ) -> DbResult<Self> {
        let first = routing
            .routes
            .iter()
            .find(|(d, _)| *d == "scim")
            .map_or(0, |(_, i)| *i);
        let mut order: Vec<usize> = vec![first];
        order.extend((0..routing.masters.len()).filter(|&i| i != first));
        let mut pools = Vec::with_capacity(order.len());
        for &i in &order {
            let master = &routing.masters[i];
            pools.push((
                master.key.clone(),
                open_pool(&master.url, pool_size, timeouts).await?,
            ));
        }
        let routes = routing
            .routes
            .iter()
            .map(|(d, i)| (*d, order.iter().position(|o| o == i).unwrap_or(0)))
            .collect();
        let mut db = Self::from_pool(pools[0].1.clone(), ns);
        db.timeouts = timeouts;
        db.masters = Arc::new(Masters { pools, routes });
        Ok(db)
    }

    /// Wraps an existing pool, with the default [`Timeouts`].
    pub fn from_pool(pool: MySqlPool, ns: Namespace) -> Self {
        let t = Arc::new(Tables::new(&ns));
        let masters = Arc::new(Masters::one(&pool));
        Self {
            pool,
            ns,
            t,
            timeouts: Timeouts::default(),
            readiness: Arc::default(),
            staged: false,
            masters,
        }
    }

    /// The same pool, naming a staged rollout's copies instead of Phabricator's tables.
    pub fn staged(&self) -> Self {
        Self {
            t: Arc::new(Tables::staged(&self.ns)),
            staged: true,
            ..self.clone()
        }
    }

    /// When an operation starting now must be done (`timeouts.operation`).
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.timeouts.operation
    }

    /// Takes a connection from the pool, giving up at `deadline` (or after
    /// `timeouts.statement`, the pool's own limit, if that comes first).
    pub async fn acquire_until(&self, deadline: Instant) -> DbResult<Lease> {
        match tokio::time::timeout_at(deadline, self.pool.acquire()).await {
            Ok(conn) => Ok(conn?),
            Err(_) => Err(DbError::Timeout("waiting for a database connection")),
        }
    }

    /// Gives up on a connection whose operation ran out of time, and says so. The connection
    /// is closed, never returned to the pool: it may be mid-protocol (a statement sent, its
    /// answer unread), and the next borrower would read that answer or wait behind it. The
    /// server rolls back its open transaction when it sees the socket closed, so nothing is
    /// half-written; a timeout during COMMIT is ambiguous (the server may have committed the
    /// whole transaction before it saw the close) but never partial.
    pub fn give_up(&self, conn: Lease, what: &'static str) -> DbError {
        tracing::warn!(what, "database timeout: the connection is closed");
        // Detached, the connection is dropped here: its socket closes without a goodbye that
        // a hung server would never read.
        drop(conn.detach());
        DbError::Timeout(what)
    }

    /// Runs a read within `timeouts.operation` ([`Db::within`]).
    pub async fn read<T, E: From<DbError>>(
        &self,
        op: impl AsyncFnOnce(&mut Conns<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.within(self.deadline(), "a read", op).await
    }

    /// Runs `op` on the coordinator's connection (and, with several masters, on each other
    /// master's it reaches: `Conns`), acquired and done by `deadline`; on time out every
    /// connection is closed ([`Db::give_up`]) and the error is [`DbError::Timeout`].
    pub async fn within<T, E: From<DbError>>(
        &self,
        deadline: Instant,
        what: &'static str,
        op: impl AsyncFnOnce(&mut Conns<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.acquire_until(deadline).await?;
        let mut conns = Conns::of(self, &mut conn);
        let outcome = tokio::time::timeout_at(deadline, op(&mut conns)).await;
        let others = conns.into_others();
        match outcome {
            Ok(result) => {
                others.release();
                result
            }
            // `others` dropped: closed, as `conn` is.
            Err(_) => Err(self.give_up(conn, what).into()),
        }
    }

    /// Begins a transaction, without a deadline (background work and the CLI; requests use
    /// `provisioning::in_transaction`).
    pub async fn begin(&self) -> DbResult<Tx> {
        Ok(self.pool.begin().await?)
    }

    /// Checks the server answers.
    pub async fn ping(&self) -> DbResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Seconds since the epoch, as Phabricator stores time.
pub fn now() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// Builds `(?, ?, ?)` for an IN list of `n` values.
pub fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 3 + 2);
    s.push('(');
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('?');
    }
    s.push(')');
    s
}

/// Bytes of a `varbinary`/`binary` column (PHIDs, secrets): Phabricator stores PHIDs as
/// binary strings, which sqlx will not decode into `String` directly. Fields read them with
/// `#[sqlx(try_from = "Bin")]`; the PHIDs of Phabricator's rows decode as
/// [`phabricator::Phid`] through it.
#[derive(Debug, Clone)]
pub struct Bin(pub Vec<u8>);

impl sqlx::Type<sqlx::MySql> for Bin {
    fn type_info() -> sqlx::mysql::MySqlTypeInfo {
        <Vec<u8> as sqlx::Type<sqlx::MySql>>::type_info()
    }
    fn compatible(ty: &sqlx::mysql::MySqlTypeInfo) -> bool {
        <Vec<u8> as sqlx::Type<sqlx::MySql>>::compatible(ty)
            || <String as sqlx::Type<sqlx::MySql>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::MySql> for Bin {
    fn decode(value: sqlx::mysql::MySqlValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(Bin(<Vec<u8> as sqlx::Decode<sqlx::MySql>>::decode(value)?))
    }
}

impl TryFrom<Bin> for String {
    type Error = std::string::FromUtf8Error;
    fn try_from(b: Bin) -> Result<Self, Self::Error> {
        String::from_utf8(b.0)
    }
}

/// Reads a binary column as text.
pub fn bin_text(row: &sqlx::mysql::MySqlRow, idx: usize) -> Result<String, sqlx::Error> {
    use sqlx::Row;
    let b: Bin = row.try_get(idx)?;
    String::from_utf8(b.0).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}
