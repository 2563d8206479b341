//! `<ns>_scim` migrations and the demo/test fixture of Phabricator's own tables.
//!
//! The service's tables are Phabricator storage patches (`schema/scim/`,
//! docs/design.md#own-tables-and-two-patch-appliers). They are applied here and by
//! `bin/storage upgrade` through the extension's patch list; both record them in
//! `<ns>_meta_data.patch_status` under `phabscim:<file>`, so whichever runs first, the other
//! sees them applied.

use sqlx::AssertSqlSafe;
use sqlx::{Connection, MySqlConnection, Row};

use super::{Db, DbError, DbResult, now};
use crate::config::Namespace;

/// The patch namespace the extension's `PhabricatorSQLPatchList` declares.
pub const PATCH_NAMESPACE: &str = "phabscim";
/// Key of the mandatory `db` patch that creates `<ns>_scim`.
pub const DB_PATCH_KEY: &str = "db.scim";

/// `schema/scim/` in file-name order, embedded so the binary needs no checkout.
pub const SCIM_PATCHES: &[(&str, &str)] = &[
    (
        "20261128.scim.01.user.sql",
        include_str!("../../schema/scim/20261128.scim.01.user.sql"),
    ),
    (
        "20261128.scim.02.group.sql",
        include_str!("../../schema/scim/20261128.scim.02.group.sql"),
    ),
    (
        "20261128.scim.03.token.sql",
        include_str!("../../schema/scim/20261128.scim.03.token.sql"),
    ),
    (
        "20261128.scim.04.event.sql",
        include_str!("../../schema/scim/20261128.scim.04.event.sql"),
    ),
    (
        "20261128.scim.05.instance.sql",
        include_str!("../../schema/scim/20261128.scim.05.instance.sql"),
    ),
    (
        "20261128.scim.06.drift.sql",
        include_str!("../../schema/scim/20261128.scim.06.drift.sql"),
    ),
    (
        "20261128.scim.07.useremail.sql",
        include_str!("../../schema/scim/20261128.scim.07.useremail.sql"),
    ),
    (
        "20261128.scim.08.userlist.sql",
        include_str!("../../schema/scim/20261128.scim.08.userlist.sql"),
    ),
    (
        "20261128.scim.09.deprovisionedat.sql",
        include_str!("../../schema/scim/20261128.scim.09.deprovisionedat.sql"),
    ),
    (
        "20261202.scim.10.instancestopped.sql",
        include_str!("../../schema/scim/20261202.scim.10.instancestopped.sql"),
    ),
    (
        "20261202.scim.11.deprovisionguard.sql",
        include_str!("../../schema/scim/20261202.scim.11.deprovisionguard.sql"),
    ),
    (
        "20261202.scim.12.rollout.sql",
        include_str!("../../schema/scim/20261202.scim.12.rollout.sql"),
    ),
    (
        "20261202.scim.13.applyrequest.sql",
        include_str!("../../schema/scim/20261202.scim.13.applyrequest.sql"),
    ),
];

/// `schema/phabricator/`: Phabricator's own tables that phab-scim touches, for the demo and tests.
pub const PHABRICATOR_FIXTURE: &[(&str, &str)] = &[
    ("user", include_str!("../../schema/phabricator/user.sql")),
    (
        "project",
        include_str!("../../schema/phabricator/project.sql"),
    ),
    ("auth", include_str!("../../schema/phabricator/auth.sql")),
    (
        "conduit",
        include_str!("../../schema/phabricator/conduit.sql"),
    ),
    (
        "worker",
        include_str!("../../schema/phabricator/worker.sql"),
    ),
    (
        "meta_data",
        include_str!("../../schema/phabricator/meta_data.sql"),
    ),
    ("cache", include_str!("../../schema/phabricator/cache.sql")),
    (
        "metamta",
        include_str!("../../schema/phabricator/metamta.sql"),
    ),
    (
        "system",
        include_str!("../../schema/phabricator/system.sql"),
    ),
];

/// Substitutes Phabricator's patch placeholders (docs/phabricator-tables.md#storage-patches)
/// for a utf8mb4 server.
pub fn render_patch(sql: &str, ns: &Namespace) -> String {
    sql.replace("{$NAMESPACE}", ns.as_str())
        .replace("{$CHARSET_SORT}", "utf8mb4")
        .replace("{$COLLATE_SORT}", "utf8mb4_unicode_ci")
        .replace("{$CHARSET_FULLTEXT}", "utf8mb4")
        .replace("{$COLLATE_FULLTEXT}", "utf8mb4_unicode_ci")
        .replace("{$CHARSET}", "utf8mb4")
        .replace("{$COLLATE_TEXT}", "utf8mb4_bin")
}

/// Splits a patch into statements the way `bin/storage` does: on `;` followed by whitespace.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ';' && chars.peek().is_none_or(|n| n.is_whitespace()) {
            push_statement(&mut out, &current);
            current.clear();
        } else {
            current.push(c);
        }
    }
    push_statement(&mut out, &current);
    out
}

fn push_statement(out: &mut Vec<String>, stmt: &str) {
    let body: String = stmt
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    if !body.trim().is_empty() {
        out.push(body.trim().to_owned());
    }
}

/// What `migrate` did.
#[derive(Debug, Default)]
pub struct MigrateReport {
    /// Patch keys applied by this run.
    pub applied: Vec<String>,
}

/// Applies every pending `<ns>_scim` patch, under a named lock so replicas starting together
/// apply each patch once.
pub async fn migrate(db: &Db) -> DbResult<MigrateReport> {
    let mut conn = db.pool.acquire().await?;
    let lock = format!("{}:phabscim.migrate", db.ns.as_str());
    let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 60)")
        .bind(&lock)
        .fetch_one(&mut *conn)
        .await?;
    if got != Some(1) {
        return Err(DbError::Inconsistent(
            "timed out waiting for the migration lock".into(),
        ));
    }
    let mut result = migrate_locked(db, &mut conn).await;
    if result.is_ok() && !db.masters.is_single() {
        result = install_decision_log(db, &mut conn).await.and(result);
    }
    let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
        .bind(&lock)
        .execute(&mut *conn)
        .await;
    result
}

/// With the databases on several masters, the decision log of writes across them
/// (`db::xa`, `<ns>_scimxa` on the coordinator), created when missing: `serve`'s account
/// finds it there and needs no `CREATE`.
async fn install_decision_log(db: &Db, conn: &mut MySqlConnection) -> DbResult<()> {
    let present: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'decision'",
    )
    .bind(format!("{}_{}", db.ns.as_str(), super::xa::XA_APP))
    .fetch_optional(&mut *conn)
    .await?;
    if present.is_none() {
        super::xa::install(db).await?;
        tracing::info!("created the decision log of writes across masters");
    }
    Ok(())
}

async fn migrate_locked(db: &Db, conn: &mut MySqlConnection) -> DbResult<MigrateReport> {
    let applied: Vec<String> = sqlx::query(AssertSqlSafe(format!(
        "SELECT patch FROM {} WHERE patch LIKE ?",
        db.t.patch_status
    )))
    .bind(format!("{PATCH_NAMESPACE}:%"))
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| r.try_get::<String, _>(0))
    .collect::<Result<_, _>>()?;
    let mut report = MigrateReport::default();

    let db_key = format!("{PATCH_NAMESPACE}:{DB_PATCH_KEY}");
    if !applied.contains(&db_key) {
        let started = std::time::Instant::now();
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE DATABASE IF NOT EXISTS {} COLLATE utf8mb4_bin",
            db.ns.db("scim")
        )))
        .execute(&mut *conn)
        .await?;
        record_patch(db, conn, &db_key, started).await?;
        report.applied.push(db_key);
    }
    for (file, sql) in SCIM_PATCHES {
        let key = format!("{PATCH_NAMESPACE}:{file}");
        if applied.contains(&key) {
            continue;
        }
        let started = std::time::Instant::now();
        for stmt in split_statements(&render_patch(sql, &db.ns)) {
            sqlx::raw_sql(AssertSqlSafe(stmt))
                .execute(&mut *conn)
                .await?;
        }
        record_patch(db, conn, &key, started).await?;
        report.applied.push(key);
    }
    Ok(report)
}

async fn record_patch(
    db: &Db,
    conn: &mut MySqlConnection,
    key: &str,
    started: std::time::Instant,
) -> DbResult<()> {
    // Phabricator records the duration in microseconds.
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (patch, applied, duration) VALUES (?, ?, ?)",
        db.t.patch_status
    )))
    .bind(key)
    .bind(now())
    .bind(micros)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Creates Phabricator's tables that phab-scim touches in namespace `ns` (demo and tests only;
/// a real install has them from `bin/storage upgrade`).
pub async fn install_phabricator_fixture(
    conn: &mut MySqlConnection,
    ns: &Namespace,
) -> DbResult<()> {
    for (_, sql) in PHABRICATOR_FIXTURE {
        for stmt in split_statements(&render_patch(sql, ns)) {
            sqlx::raw_sql(AssertSqlSafe(stmt))
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// Drops every database of namespace `ns` (tests and `demo --reset`).
pub async fn drop_namespace(url: &crate::config::Secret, ns: &Namespace) -> DbResult<()> {
    let mut conn = MySqlConnection::connect_with(&super::connect_options(url)?).await?;
    let like = format!("{}\\_%", ns.as_str().replace('_', "\\_"));
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?",
    )
    .bind(like)
    .fetch_all(&mut conn)
    .await?;
    for name in names {
        // Names come from the server and match the checked namespace prefix.
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS `{}`",
            name.replace('`', "")
        )))
        .execute(&mut conn)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_patch_file_is_embedded_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/scim");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let embedded: Vec<String> = SCIM_PATCHES.iter().map(|(f, _)| (*f).to_owned()).collect();
        assert_eq!(files, embedded);
    }

    #[test]
    fn statements_split_on_semicolon_and_whitespace() {
        let s = split_statements("-- c\nCREATE TABLE a (x int);\nINSERT INTO b VALUES ('a;b');\n");
        assert_eq!(s.len(), 2);
        assert!(s[1].contains("'a;b'"));
    }

    #[test]
    fn placeholders_are_all_substituted() {
        let ns = Namespace::parse("t_x").unwrap_or_else(|_| unreachable!());
        for (_, sql) in SCIM_PATCHES.iter().chain(PHABRICATOR_FIXTURE) {
            assert!(!render_patch(sql, &ns).contains("{$"));
        }
    }
}
