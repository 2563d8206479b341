//! A staged rollout's storage (docs/design.md#staged-rollout): its copy of the Phabricator
//! tables the service writes, the rollout's phase, the operations `apply` replays and the plan
//! entries an administrator reviews.
//!
//! The copies live in a database of their own, `<ns>_scimstage`, as `<app>_<table>`. Not in
//! `<ns>_scim`: Phabricator's schema check (`PhabricatorConfigSchemaQuery`, run by
//! `bin/storage upgrade` and the Database Status page) reports every table of a known
//! database that no DAO declares as surplus, and fails on it; it looks only at the databases
//! its patches name, which `<ns>_scimstage` is not. The phase, the operations and the plan are
//! in `<ns>_scim` (patch 12), declared by the extension's DAOs, which the Plan page reads.

use sqlx::{AssertSqlSafe, Row};

use super::phabricator::Phid;
use super::{Conns, Db, DbResult, Tables, now};
use crate::config::Namespace;

/// The application name of the copies' database: `<ns>_scimstage`.
pub const STAGE_APP: &str = "scimstage";

/// How a table is copied when a staged rollout begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Copy {
    /// Its rows: the service reads them (who owns an address, which names are taken, how many
    /// sessions a deactivation would end).
    Rows,
    /// Its structure only: the service only appends to it (logs, transactions, tasks).
    Structure,
}

/// Every table a SCIM write changes, by application and table name: a staged write changes
/// its copy instead. The service's own tables outside this list (tokens, sync log, heartbeats,
/// drift, the rollout's own) stay shared: a token works in both modes and the log is one.
const SHADOWED: &[(&str, &str, Copy)] = &[
    ("user", "user", Copy::Rows),
    ("user", "user_email", Copy::Rows),
    ("user", "user_nametoken", Copy::Rows),
    ("user", "user_log", Copy::Structure),
    ("user", "user_transaction", Copy::Structure),
    ("user", "edge", Copy::Rows),
    ("user", "user_externalaccount", Copy::Rows),
    ("user", "user_externalaccountidentifier", Copy::Rows),
    ("user", "phabricator_session", Copy::Rows),
    ("project", "project", Copy::Rows),
    ("project", "project_slug", Copy::Rows),
    ("project", "project_datasourcetoken", Copy::Rows),
    ("project", "project_transaction", Copy::Structure),
    ("project", "edge", Copy::Rows),
    ("auth", "auth_temporarytoken", Copy::Rows),
    ("conduit", "conduit_token", Copy::Rows),
    ("worker", "worker_taskdata", Copy::Structure),
    ("worker", "worker_activetask", Copy::Structure),
    ("worker", "lisk_counter", Copy::Rows),
    ("cache", "cache_general", Copy::Structure),
    ("system", "system_destructionlog", Copy::Structure),
    ("scim", "scim_user", Copy::Rows),
    ("scim", "scim_useremail", Copy::Rows),
    ("scim", "scim_group", Copy::Rows),
];

/// Secrets never copied, by table and column, and what the copy holds instead. The service
/// only counts and deletes these rows, so a unique stand-in keeps every key valid.
const MASKED: &[(&str, &str, &str)] = &[
    ("phabricator_session", "sessionKey", "CONCAT('staged-', id)"),
    ("conduit_token", "token", "CONCAT('staged-', id)"),
    ("auth_temporarytoken", "tokenCode", "CONCAT('staged-', id)"),
    ("user", "accountSecret", "REPEAT('0', 64)"),
    ("user", "conduitCertificate", "''"),
    ("user_email", "verificationCode", "NULL"),
    ("user_externalaccount", "accountSecret", "NULL"),
];

/// The copy of `app`'s `table` a staged write uses, or `None` when it writes the table itself.
pub fn shadow_of(ns: &Namespace, app: &str, table: &str) -> Option<String> {
    SHADOWED
        .iter()
        .any(|(a, t, _)| *a == app && *t == table)
        .then(|| format!("{}.`{app}_{table}`", ns.db(STAGE_APP)))
}

/// Where a staged rollout is (`PhabricatorScimRollout::PHASE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The IdP's writes become plan entries; Phabricator is not touched.
    Staged,
    /// `phab-scim apply` is carrying the plan out; the IdP's writes wait (503).
    Applying,
    /// The plan was carried out; the service writes Phabricator directly.
    Applied,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Staged => "staged",
            Phase::Applying => "applying",
            Phase::Applied => "applied",
        }
    }

    fn parse(s: &str) -> DbResult<Self> {
        match s {
            "staged" => Ok(Phase::Staged),
            "applying" => Ok(Phase::Applying),
            "applied" => Ok(Phase::Applied),
            other => Err(super::DbError::Inconsistent(format!(
                "unknown rollout phase {other:?}"
            ))),
        }
    }
}

/// The rollout's row.
#[derive(Clone, Debug)]
pub struct Rollout {
    pub phase: Phase,
    pub date_staged: u32,
    pub date_applied: Option<u32>,
}

/// The rollout, if one was staged.
pub async fn rollout(conn: &mut Conns<'_>, t: &Tables) -> DbResult<Option<Rollout>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT phase, dateStaged, dateApplied FROM {} ORDER BY id DESC LIMIT 1",
        t.scim_rollout
    )))
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        Ok(Rollout {
            phase: Phase::parse(&r.try_get::<String, _>(0)?)?,
            date_staged: r.try_get(1)?,
            date_applied: r.try_get(2)?,
        })
    })
    .transpose()
}

/// The phase, read with a shared lock held to the end of the transaction: a staged write
/// holds it while it records its operation, so `apply`, which changes the phase, waits for
/// every such write to end, and none begins after it (docs/design.md#staged-rollout).
pub async fn hold_phase(conn: &mut Conns<'_>, t: &Tables) -> DbResult<Option<Phase>> {
    let phase: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT phase FROM {} ORDER BY id DESC LIMIT 1 LOCK IN SHARE MODE",
        t.scim_rollout
    )))
    .fetch_optional(&mut *conn)
    .await?;
    phase.as_deref().map(Phase::parse).transpose()
}

/// Moves the rollout to `phase`, stamping when apply started or ended.
pub async fn set_phase(conn: &mut Conns<'_>, t: &Tables, phase: Phase) -> DbResult<()> {
    let stamp = match phase {
        Phase::Staged => "",
        Phase::Applying => ", dateApplyStarted = ?",
        Phase::Applied => ", dateApplied = ?",
    };
    let sql = format!(
        "UPDATE {} SET phase = ?, dateModified = ?{stamp}",
        t.scim_rollout
    );
    let ts = now();
    let mut q = sqlx::query(AssertSqlSafe(sql))
        .bind(phase.as_str())
        .bind(ts);
    if phase != Phase::Staged {
        q = q.bind(ts);
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

/// Takes the administrator's request to apply the plan (the Plan page's Apply button sets
/// `dateApplyRequested`), if there is one: one replica wins it, and it is not taken twice.
pub async fn claim_apply_request(conn: &mut Conns<'_>, t: &Tables) -> DbResult<bool> {
    let n = sqlx::query(AssertSqlSafe(format!(
        "UPDATE {} SET dateApplyRequested = NULL, dateModified = ? \
         WHERE dateApplyRequested IS NOT NULL AND phase <> 'applied'",
        t.scim_rollout
    )))
    .bind(now())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// Creates `<ns>_scimstage` and empty copies of the shadowed tables, replacing older copies.
/// DDL commits on its own: run before [`copy_rows`]. A table on another master than the
/// copies (partitioned `cluster.databases`) is copied from its own master's definition: the
/// copy of its database on the copies' master is one `bin/storage upgrade` made and nobody uses.
pub async fn create_copies(db: &Db) -> DbResult<()> {
    let here = db.masters.index_of(STAGE_APP);
    let mut conn = db.masters.pool_of(STAGE_APP).acquire().await?;
    let stage_db = db.ns.db(STAGE_APP);
    sqlx::query(AssertSqlSafe(format!(
        "CREATE DATABASE IF NOT EXISTS {stage_db} COLLATE utf8mb4_bin"
    )))
    .execute(&mut *conn)
    .await?;
    for (app, table, _) in SHADOWED {
        let real = format!("{}.`{table}`", db.ns.db(app));
        let copy = format!("{stage_db}.`{app}_{table}`");
        sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS {copy}")))
            .execute(&mut *conn)
            .await?;
        let create = if db.masters.index_of(app) == here {
            format!("CREATE TABLE {copy} LIKE {real}")
        } else {
            let (_, definition): (String, String) =
                sqlx::query_as(AssertSqlSafe(format!("SHOW CREATE TABLE {real}")))
                    .fetch_one(db.masters.pool_of(app))
                    .await?;
            copy_definition(&definition, table, &copy)?
        };
        sqlx::query(AssertSqlSafe(create))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// `SHOW CREATE TABLE`'s statement for `table`, creating `copy` instead, as `CREATE TABLE …
/// LIKE` would: the same columns and keys, without the source's next auto-increment value.
fn copy_definition(definition: &str, table: &str, copy: &str) -> DbResult<String> {
    let head = format!("CREATE TABLE `{table}` (");
    let body = definition.strip_prefix(&head).ok_or_else(|| {
        super::DbError::Inconsistent(format!("unexpected definition of the table {table}"))
    })?;
    let body: String = body
        .split(' ')
        .filter(|word| !word.starts_with("AUTO_INCREMENT="))
        .collect::<Vec<_>>()
        .join(" ");
    Ok(format!("CREATE TABLE {copy} ({body}"))
}

/// Copies the rows of the shadowed tables that the service reads, secrets replaced
/// ([`MASKED`]). Returns how many rows, per copy. `conn` is on the copies' master.
pub async fn copy_rows(conn: &mut Conns<'_>, db: &Db) -> DbResult<Vec<(String, u64)>> {
    let ns = &db.ns;
    let mut copied = Vec::new();
    for (app, table, how) in SHADOWED {
        if *how != Copy::Rows {
            continue;
        }
        // The copy's columns, which are the table's ([`create_copies`]), read where the copy is.
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        )
        .bind(format!("{}_{STAGE_APP}", ns.as_str()))
        .bind(format!("{app}_{table}"))
        .fetch_all(&mut *conn)
        .await?;
        let names: Vec<String> = columns.iter().map(|c| format!("`{c}`")).collect();
        let values: Vec<String> = columns
            .iter()
            .map(|c| {
                MASKED
                    .iter()
                    .find(|(t, col, _)| t == table && col == c)
                    .map_or_else(|| format!("`{c}`"), |(_, _, expr)| (*expr).to_owned())
            })
            .collect();
        let copy = format!("{}.`{app}_{table}`", ns.db(STAGE_APP));
        let real = format!("{}.`{table}`", ns.db(app));
        let n = if conn.together(&[&copy, &real]) {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {copy} ({}) SELECT {} FROM {real}",
                names.join(", "),
                values.join(", "),
            )))
            .execute(&mut *conn)
            .await?
            .rows_affected()
        } else {
            let mut source = db.masters.pool_of(app).acquire().await?;
            copy_across(&mut source, conn, &real, &copy, &names, &values).await?
        };
        copied.push((format!("{app}.{table}"), n));
    }
    Ok(copied)
}

/// Copies `real`'s rows into `copy` on another master: read on `source` (a connection to
/// `real`'s master) as a stream, written here [`COPY_BATCH`] rows at a time, so a large table
/// never sits in memory whole; each value as its bytes (`HEX(CAST(… AS BINARY))`, `UNHEX`), so
/// text, binary PHIDs and numbers arrive exactly as stored. `values` are the expressions read
/// (secrets replaced).
async fn copy_across(
    source: &mut sqlx::MySqlConnection,
    conn: &mut Conns<'_>,
    real: &str,
    copy: &str,
    names: &[String],
    values: &[String],
) -> DbResult<u64> {
    use futures_util::TryStreamExt;
    let hexed: Vec<String> = values
        .iter()
        .map(|v| format!("HEX(CAST({v} AS BINARY))"))
        .collect();
    let select = format!("SELECT {} FROM {real}", hexed.join(", "));
    let mut rows = sqlx::query(AssertSqlSafe(select)).fetch(&mut *source);
    let mut batch = Vec::with_capacity(COPY_BATCH);
    let mut n = 0;
    while let Some(row) = rows.try_next().await? {
        batch.push(row);
        if batch.len() == COPY_BATCH {
            n += insert_hexed(conn, copy, names, &batch).await?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        n += insert_hexed(conn, copy, names, &batch).await?;
    }
    Ok(n)
}

/// Rows read by [`copy_across`] per INSERT.
const COPY_BATCH: usize = 500;

/// Inserts rows of hex-encoded values (`NULL` stays `NULL`) into `copy`.
async fn insert_hexed(
    conn: &mut Conns<'_>,
    copy: &str,
    names: &[String],
    rows: &[sqlx::mysql::MySqlRow],
) -> DbResult<u64> {
    let mut q = sqlx::QueryBuilder::<sqlx::MySql>::new(format!(
        "INSERT INTO {copy} ({}) ",
        names.join(", ")
    ));
    let mut bad = None;
    q.push_values(rows, |mut row, r| {
        for i in 0..names.len() {
            match r.try_get::<Option<String>, _>(i) {
                Ok(v) => {
                    row.push("UNHEX(")
                        .push_bind_unseparated(v)
                        .push_unseparated(")");
                }
                Err(e) => bad = Some(e),
            }
        }
    });
    if let Some(e) = bad {
        return Err(e.into());
    }
    Ok(q.build().execute(&mut *conn).await?.rows_affected())
}

/// Forgets any earlier rollout (its phase, operations and plan) and starts a staged one.
pub async fn restart_plan(conn: &mut Conns<'_>, t: &Tables) -> DbResult<()> {
    for table in [&t.scim_planentry, &t.scim_stageop, &t.scim_rollout] {
        sqlx::query(AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(&mut *conn)
            .await?;
    }
    let ts = now();
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (phase, dateStaged, dateCreated, dateModified) VALUES (?, ?, ?, ?)",
        t.scim_rollout
    )))
    .bind(Phase::Staged.as_str())
    .bind(ts)
    .bind(ts)
    .bind(ts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Drops the copies (after `apply`, or to abandon a rollout).
pub async fn drop_copies(db: &Db) -> DbResult<()> {
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {}",
        db.ns.db(STAGE_APP)
    )))
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// A staged operation as recorded: what `apply` replays.
#[derive(Clone, Debug)]
pub struct StageOpRow {
    pub id: u32,
    /// `PhabricatorScimStageOp::OPERATION_*` (`user.create`...).
    pub operation: String,
    /// The resource: the id in the path, or the one a create made or adopted.
    pub object_phid: Phid,
    /// The request body (JSON), `null` for a DELETE.
    pub request: String,
    pub request_id: String,
    pub token_id: Option<u32>,
    pub actor_phid: Phid,
    pub remote_addr: String,
}

/// A staged operation to record (its first plan entry records it).
#[derive(Clone, Debug)]
pub struct NewStageOp<'a> {
    pub op_key: &'a str,
    pub operation: &'a str,
    pub object_phid: &'a str,
    pub request: &'a str,
    pub request_id: &'a str,
    pub token_id: Option<u32>,
    pub actor_phid: &'a str,
    pub remote_addr: &'a str,
}

/// Records an operation once, by its key, and returns its id (the same id for every plan
/// entry of the operation).
pub async fn record_op(conn: &mut Conns<'_>, t: &Tables, op: &NewStageOp<'_>) -> DbResult<u32> {
    let ts = now();
    let id = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (opKey, operation, objectPHID, request, requestID, tokenID, actorPHID, \
         remoteAddr, state, dateCreated, dateModified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'staged', ?, ?) \
         ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)",
        t.scim_stageop
    )))
    .bind(op.op_key)
    .bind(op.operation)
    .bind(op.object_phid)
    .bind(op.request)
    .bind(op.request_id)
    .bind(op.token_id)
    .bind(op.actor_phid)
    .bind(op.remote_addr)
    .bind(ts)
    .bind(ts)
    .execute(&mut *conn)
    .await?
    .last_insert_id();
    u32::try_from(id).map_err(|_| super::DbError::Inconsistent("stage operation id".into()))
}

/// One plan entry (`PhabricatorScimPlanEntry`).
#[derive(Clone, Debug)]
pub struct PlanEntryRow<'a> {
    /// Its operation; none for a refused request.
    pub stage_op_id: Option<u32>,
    /// `PhabricatorScimPlanEntry::KIND_*`.
    pub kind: &'a str,
    /// `User` or `Group`.
    pub resource_type: &'a str,
    pub object_phid: Option<&'a str>,
    /// The status the IdP was answered.
    pub status: u16,
    pub summary: &'a str,
    /// JSON object.
    pub details: String,
}

/// Writes a plan entry.
pub async fn insert_plan_entry(
    conn: &mut Conns<'_>,
    t: &Tables,
    e: &PlanEntryRow<'_>,
) -> DbResult<()> {
    let ts = now();
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (stageOpID, kind, resourceType, objectPHID, status, summary, details, \
         dateCreated, dateModified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        t.scim_planentry
    )))
    .bind(e.stage_op_id)
    .bind(e.kind)
    .bind(e.resource_type)
    .bind(e.object_phid)
    .bind(e.status)
    .bind(e.summary)
    .bind(&e.details)
    .bind(ts)
    .bind(ts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The operations not yet applied, in the order they were staged.
pub async fn pending_ops(conn: &mut Conns<'_>, t: &Tables) -> DbResult<Vec<StageOpRow>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT id, operation, objectPHID, request, requestID, tokenID, actorPHID, remoteAddr \
         FROM {} WHERE state <> 'applied' ORDER BY id",
        t.scim_stageop
    )))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StageOpRow {
                id: r.try_get(0)?,
                operation: r.try_get(1)?,
                object_phid: r.try_get(2)?,
                request: r.try_get(3)?,
                request_id: r.try_get(4)?,
                token_id: r.try_get(5)?,
                actor_phid: r.try_get(6)?,
                remote_addr: r.try_get(7)?,
            })
        })
        .collect()
}

/// Marks an operation applied, in the transaction that applied it: the two commit together,
/// so a resumed `apply` neither skips nor repeats it.
pub async fn mark_applied(conn: &mut Conns<'_>, t: &Tables, id: u32) -> DbResult<()> {
    let ts = now();
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE {} SET state = 'applied', error = NULL, dateApplied = ?, dateModified = ? \
         WHERE id = ?",
        t.scim_stageop
    )))
    .bind(ts)
    .bind(ts)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks an operation failed, with why.
pub async fn mark_failed(conn: &mut Conns<'_>, t: &Tables, id: u32, error: &str) -> DbResult<()> {
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE {} SET state = 'failed', error = ?, dateModified = ? WHERE id = ?",
        t.scim_stageop
    )))
    .bind(error)
    .bind(now())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// How many operations are in each state, and how many plan entries of each kind.
#[derive(Clone, Debug, Default)]
pub struct PlanCounts {
    pub ops: Vec<(String, u64)>,
    pub kinds: Vec<(String, u64)>,
}

/// Counts the plan.
pub async fn plan_counts(conn: &mut Conns<'_>, t: &Tables) -> DbResult<PlanCounts> {
    let count = |table: &str, column: &str| {
        format!("SELECT {column}, COUNT(*) FROM {table} GROUP BY {column} ORDER BY {column}")
    };
    let ops: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(count(&t.scim_stageop, "state")))
        .fetch_all(&mut *conn)
        .await?;
    let kinds: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(count(&t.scim_planentry, "kind")))
        .fetch_all(&mut *conn)
        .await?;
    let unsigned = |v: Vec<(String, i64)>| {
        v.into_iter()
            .map(|(k, n)| (k, u64::try_from(n).unwrap_or(0)))
            .collect()
    };
    Ok(PlanCounts {
        ops: unsigned(ops),
        kinds: unsigned(kinds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_from_another_master_is_defined_like_create_table_like() {
        let shown = "CREATE TABLE `edge` (\n  `src` varbinary(64) NOT NULL,\n  `seq` int(10) unsigned \
                     NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`src`,`seq`)\n) ENGINE=InnoDB \
                     AUTO_INCREMENT=1843 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";
        let made = copy_definition(shown, "edge", "`ns_scimstage`.`project_edge`").unwrap();
        assert_eq!(
            made,
            "CREATE TABLE `ns_scimstage`.`project_edge` (\n  `src` varbinary(64) NOT NULL,\n  \
             `seq` int(10) unsigned NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`src`,`seq`)\n) \
             ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
        );
        assert!(copy_definition("CREATE TABLE `user` (", "edge", "x").is_err());
    }
}
