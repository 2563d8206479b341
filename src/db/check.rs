//! Schema compatibility: does this namespace have every table and column phab-scim reads or
//! writes, with the types it expects? Used by `phab-scim check` and `/readyz`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::{AssertSqlSafe, Row};
use tokio::time::Instant;

use super::migrate::{PHABRICATOR_FIXTURE, SCIM_PATCHES, render_patch};
use super::{Db, DbResult};

/// Expected columns: (database app, table) -> [(column, normalised type)].
pub fn expected() -> BTreeMap<(String, String), Vec<(String, String)>> {
    let mut out = BTreeMap::new();
    let sources = PHABRICATOR_FIXTURE
        .iter()
        .chain(SCIM_PATCHES.iter())
        .map(|(_, sql)| render_patch(sql, &placeholder_ns()));
    for sql in sources {
        let mut current: Option<(String, String)> = None;
        let mut alter = false;
        for line in sql.lines() {
            let l = line.trim();
            // Later patches add columns with `ALTER TABLE <db>.<table>` and `ADD <column> ...`
            // lines, read like the lines of a CREATE TABLE until the statement's `;`.
            let (rest, altering) = match (
                l.strip_prefix("CREATE TABLE "),
                l.strip_prefix("ALTER TABLE "),
            ) {
                (Some(rest), _) => (Some(rest), false),
                (None, Some(rest)) => (Some(rest), true),
                (None, None) => (None, false),
            };
            if let Some(rest) = rest {
                let rest = rest.trim_start_matches("IF NOT EXISTS ");
                let name = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .replace('`', "");
                let mut parts = name.splitn(2, '.');
                let db = parts
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("x_")
                    .to_owned();
                let table = parts.next().unwrap_or("").trim_end_matches('(').to_owned();
                current = Some((db, table));
                alter = altering;
                out.entry(current.clone().unwrap_or_default())
                    .or_insert_with(Vec::new);
                continue;
            }
            if l.starts_with(')') {
                current = None;
                continue;
            }
            let Some(key) = current.clone() else { continue };
            let l = if alter {
                if l.ends_with(';') {
                    current = None;
                }
                match l.strip_prefix("ADD ") {
                    Some(added) => added.trim_end_matches(';'),
                    None => continue,
                }
            } else {
                l
            };
            let upper = l.to_ascii_uppercase();
            if upper.starts_with("PRIMARY")
                || upper.starts_with("UNIQUE")
                || upper.starts_with("KEY")
            {
                continue;
            }
            let mut words = l.split_whitespace();
            let Some(col) = words.next() else { continue };
            let col = col.trim_matches('`').to_owned();
            let mut ty = Vec::new();
            for w in words {
                let wu = w.to_ascii_uppercase();
                if [
                    "NOT",
                    "NULL",
                    "DEFAULT",
                    "CHARACTER",
                    "COLLATE",
                    "AUTO_INCREMENT",
                    "PRIMARY",
                ]
                .contains(&wu.trim_end_matches(','))
                {
                    break;
                }
                ty.push(w.trim_end_matches(',').to_ascii_lowercase());
            }
            if let Some(cols) = out.get_mut(&key) {
                cols.push((col, normalise_type(&ty.join(" "))));
            }
        }
    }
    out
}

/// [`expected`], less the fixture's tables phab-scim never touches (`edgedata`, caches): a
/// least-privilege account has no privilege on them and so does not see them
/// (src/db/grants.rs).
fn expected_used() -> BTreeMap<(String, String), Vec<(String, String)>> {
    expected()
        .into_iter()
        .filter(|((app, table), _)| super::grants::used(app, table))
        .collect()
}

/// The namespace `x`, used to render the DDL for parsing.
fn placeholder_ns() -> crate::config::Namespace {
    crate::config::Namespace::from_checked("x")
}

/// `int(10) unsigned` and MySQL 8's `int unsigned` are the same type.
fn normalise_type(t: &str) -> String {
    let t = t.trim().to_ascii_lowercase();
    for int in ["tinyint", "smallint", "int", "bigint"] {
        if let Some(rest) = t.strip_prefix(int)
            && rest.starts_with('(')
            && let Some(close) = rest.find(')')
        {
            if int == "tinyint" && &rest[..=close] == "(1)" {
                return format!("tinyint(1){}", &rest[close + 1..]);
            }
            return format!("{int}{}", &rest[close + 1..]);
        }
    }
    t
}

/// What `check` found.
#[derive(Debug, Default)]
pub struct Report {
    pub missing_tables: Vec<String>,
    pub missing_columns: Vec<String>,
    pub different_types: Vec<String>,
    /// `phorge` when `conduit_token.tokenName` exists, else `phabricator`.
    pub flavour: String,
}

/// Compares the namespace with what phab-scim needs (tables of `<ns>_scim` included): each
/// database on the master that holds it, when partitioned `cluster.databases` spread them.
pub async fn check(db: &Db) -> DbResult<Report> {
    let mut report = Report::default();
    for (index, (_, pool)) in db.masters.pools.iter().enumerate() {
        let here = |app: &str| db.masters.index_of(app) == index;
        let found = check_databases_on(pool, &db.ns, here).await?;
        if here("conduit") {
            report.flavour = found.flavour;
        }
        report.missing_tables.extend(found.missing_tables);
        report.missing_columns.extend(found.missing_columns);
        report.different_types.extend(found.different_types);
    }
    Ok(report)
}

/// [`check`], for the databases `here` accepts only (by application name): those one master
/// of partitioned `cluster.databases` holds (`config::cluster::Routing`).
pub async fn check_databases(db: &Db, here: impl Fn(&str) -> bool) -> DbResult<Report> {
    check_databases_on(&db.pool, &db.ns, here).await
}

/// [`check_databases`] on the server of `pool`.
async fn check_databases_on(
    pool: &sqlx::MySqlPool,
    ns: &crate::config::Namespace,
    here: impl Fn(&str) -> bool,
) -> DbResult<Report> {
    let rows = sqlx::query(
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA LIKE ?",
    )
    .bind(format!("{}\\_%", ns.as_str().replace('_', "\\_")))
    .fetch_all(pool)
    .await?;
    let prefix = format!("{}_", ns.as_str());
    let mut actual: BTreeMap<(String, String), BTreeMap<String, String>> = BTreeMap::new();
    for r in rows {
        let schema: String = r.try_get(0)?;
        let Some(app) = schema.strip_prefix(&prefix) else {
            continue;
        };
        let table: String = r.try_get(1)?;
        let col: String = r.try_get(2)?;
        let ty: String = r.try_get(3)?;
        actual
            .entry((app.to_owned(), table))
            .or_default()
            .insert(col, normalise_type(&ty));
    }
    let flavour = if actual
        .get(&("conduit".into(), "conduit_token".into()))
        .is_some_and(|c| c.contains_key("tokenName"))
    {
        "phorge".into()
    } else {
        "phabricator".into()
    };
    let mut report = Report {
        flavour,
        ..Report::default()
    };
    for ((app, table), cols) in expected_used() {
        if !here(&app) {
            continue;
        }
        let name = format!("{}_{app}.{table}", ns.as_str());
        let Some(have) = actual.get(&(app.clone(), table.clone())) else {
            report.missing_tables.push(name);
            continue;
        };
        for (col, ty) in cols {
            // Phorge-only column: phab-scim never writes it.
            if table == "conduit_token" && col == "tokenName" {
                continue;
            }
            match have.get(&col) {
                None => report.missing_columns.push(format!("{name}.{col}")),
                Some(t) if *t != ty => report
                    .different_types
                    .push(format!("{name}.{col}: {t}, expected {ty}")),
                Some(_) => {}
            }
        }
    }
    Ok(report)
}

/// The `cluster.databases` that `bin/storage partition` recorded on this server
/// (`<ns>_meta_data.hoststate`), if any.
pub async fn partition_state(db: &Db) -> DbResult<Option<String>> {
    Ok(sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT stateValue FROM {}.`hoststate` WHERE stateKey = 'cluster.databases'",
        db.ns.db("meta_data")
    )))
    .fetch_optional(&db.pool)
    .await?)
}

/// The Phabricator namespaces on the server: every `<ns>_meta_data` database, where
/// `bin/storage` keeps its patch list, is one.
pub async fn namespaces(db: &Db) -> DbResult<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA \
         WHERE SCHEMA_NAME LIKE '%\\_meta\\_data' ORDER BY SCHEMA_NAME",
    )
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(s,)| s.strip_suffix("_meta_data").map(str::to_owned))
        .collect())
}

/// Tables phab-scim needs that the namespace lacks (a cheap check for `/readyz`), each looked
/// for on the master that holds its database: `conn` is the coordinator's, and with
/// partitioned `cluster.databases` every other master is asked for its own databases.
pub async fn missing_tables(conn: &mut super::Conns<'_>, db: &Db) -> DbResult<Vec<String>> {
    let mut missing = Vec::new();
    for index in 0..db.masters.pools.len() {
        missing.extend(missing_tables_on(conn.on_master(index).await?, db, index).await?);
    }
    Ok(missing)
}

/// The tables of master `index`'s databases that its server lacks.
async fn missing_tables_on(
    conn: &mut sqlx::MySqlConnection,
    db: &Db,
    index: usize,
) -> DbResult<Vec<String>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE ?",
    )
    .bind(format!("{}\\_%", db.ns.as_str().replace('_', "\\_")))
    .fetch_all(&mut *conn)
    .await?;
    let prefix = format!("{}_", db.ns.as_str());
    let have: Vec<(String, String)> = rows
        .into_iter()
        .filter_map(|(s, t)| s.strip_prefix(&prefix).map(|a| (a.to_owned(), t)))
        .collect();
    Ok(expected_used()
        .into_keys()
        .filter(|(app, _)| db.masters.index_of(app) == index)
        .filter(|k| !have.contains(k))
        .map(|(a, t)| format!("{}_{a}.{t}", db.ns.as_str()))
        .collect())
}

/// What `/readyz` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// The database answers and has every table.
    Ready,
    /// The database answers; these tables are missing (for the log, never for the response).
    Incomplete(Vec<String>),
    /// The database failed or did not answer within `statement_timeout_secs`.
    Unreachable,
}

/// `/readyz`'s check, run at most once per [`ReadinessCache::TTL`]: the endpoint needs no
/// token, so without the cache every caller would cost a query of `information_schema`.
/// Concurrent callers wait for the one check in progress and share its result.
#[derive(Debug, Default)]
pub struct ReadinessCache {
    last: tokio::sync::Mutex<Option<(Instant, Readiness)>>,
    checks: AtomicU64,
}

impl ReadinessCache {
    /// How long a result is reused.
    pub const TTL: Duration = Duration::from_secs(1);

    /// The readiness of `db`: the cached result, or a new check bounded by
    /// `timeouts.statement`. A change is logged once, with the names of missing tables.
    pub async fn get(&self, db: &Db) -> Readiness {
        let mut last = self.last.lock().await;
        if let Some((at, r)) = last.as_ref()
            && at.elapsed() < Self::TTL
        {
            return r.clone();
        }
        self.checks.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + db.timeouts.statement;
        let found = db
            .within(deadline, "the readiness check", async |conn| {
                missing_tables(conn, db).await
            })
            .await;
        let now = match found {
            Ok(missing) if missing.is_empty() => Readiness::Ready,
            Ok(missing) => Readiness::Incomplete(missing),
            Err(e) => {
                if last
                    .as_ref()
                    .is_none_or(|(_, r)| *r != Readiness::Unreachable)
                {
                    tracing::warn!(error = %e, "not ready: the database is unreachable");
                }
                Readiness::Unreachable
            }
        };
        if last.as_ref().is_none_or(|(_, r)| *r != now) {
            match &now {
                Readiness::Ready => tracing::info!("ready"),
                Readiness::Incomplete(missing) => tracing::warn!(
                    missing = %missing.join(", "),
                    "not ready: tables are missing (`phab-scim check` lists them too)"
                ),
                Readiness::Unreachable => {}
            }
        }
        *last = Some((Instant::now(), now.clone()));
        now
    }

    /// How many checks ran (each one query of `information_schema`).
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_schema_is_parsed() {
        let e = expected();
        let user = &e[&("user".to_owned(), "user".to_owned())];
        assert!(user.contains(&("userName".to_owned(), "varchar(64)".to_owned())));
        assert!(user.contains(&("isDisabled".to_owned(), "tinyint(1)".to_owned())));
        assert!(user.contains(&("id".to_owned(), "int unsigned".to_owned())));
        assert!(e.contains_key(&("scim".to_owned(), "scim_user".to_owned())));
        assert_eq!(
            e[&("scim".to_owned(), "scim_user".to_owned())][0],
            ("id".to_owned(), "int unsigned".to_owned())
        );
        // A column added by a later patch's ALTER TABLE, and not its keys.
        let scim_user = &e[&("scim".to_owned(), "scim_user".to_owned())];
        assert!(scim_user.contains(&("dateDeprovisioned".to_owned(), "int unsigned".to_owned())));
        assert!(!scim_user.iter().any(|(c, _)| c == "KEY"));
    }
}
