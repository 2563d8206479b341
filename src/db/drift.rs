//! Drift: where Phabricator no longer matches what the IdP pushed (docs/design.md#drift).
//! Computed on a schedule by the service and stored in `scim_drift`; the extension's Drift page
//! lists it.
//!
//! - `project-renamed`: a SCIM-managed project whose name differs from the group's displayName.
//! - `project-members`: membership of a SCIM-managed project changed by someone other than a
//!   SCIM bot (a `core:edge` type-13 transaction authored by a person,
//!   docs/write-paths.md#add-members).
//! - `user-reenabled`: the IdP says inactive (or deleted the user), yet the account is enabled.
//! - `phantom-account`: an enabled person's account SCIM does not manage.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};
use sqlx::mysql::MySqlRow;
use sqlx::{AssertSqlSafe, MySql, QueryBuilder, Row};

use super::phabricator::edge::PROJECT_HAS_MEMBER;
use super::{Db, DbResult, bin_text, now};

/// One finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: &'static str,
    pub object_phid: String,
    pub summary: String,
    pub details: Value,
}

/// Largest number of phantom accounts recorded (an install that never used SCIM has many).
const MAX_PHANTOMS: usize = 5000;

/// How many PHIDs one `IN (...)` list holds.
const CHUNK: usize = 500;

/// Computes the findings (reads only).
///
/// Each statement reads one database, on the master that holds it, and the rows are matched
/// here: with partitioned `cluster.databases`, `<ns>_project` (and `<ns>_user`, with
/// `<ns>_scim`) may be on another master, where no statement could join them
/// (docs/design.md#partitioned-databases).
pub async fn compute(db: &Db) -> DbResult<Vec<Finding>> {
    let mut out = renamed_projects(db).await?;
    out.extend(members_changed_outside_scim(db).await?);
    out.extend(reenabled_users(db).await?);
    out.extend(phantom_accounts(db).await?);
    Ok(out)
}

/// The rows of `SELECT {select} FROM {table} WHERE {column} IN (<phids>) {rest}` on `pool`,
/// [`CHUNK`] PHIDs at a time.
async fn rows_for(
    pool: &sqlx::MySqlPool,
    select: &str,
    table: &str,
    column: &str,
    phids: &[String],
    rest: &str,
) -> DbResult<Vec<MySqlRow>> {
    let mut out = Vec::new();
    for chunk in phids.chunks(CHUNK) {
        let mut q =
            QueryBuilder::<MySql>::new(format!("SELECT {select} FROM {table} WHERE {column} IN ("));
        let mut list = q.separated(", ");
        for phid in chunk {
            list.push_bind(phid);
        }
        q.push(format!(") {rest}"));
        out.extend(q.build().fetch_all(pool).await?);
    }
    Ok(out)
}

/// `project-renamed`: the project's name is not the group's displayName.
async fn renamed_projects(db: &Db) -> DbResult<Vec<Finding>> {
    let t = &db.t;
    let mut want: HashMap<String, String> = HashMap::new();
    for r in sqlx::query(AssertSqlSafe(format!(
        "SELECT projectPHID, displayName FROM {}",
        t.scim_group
    )))
    .fetch_all(db.masters.pool_of("scim"))
    .await?
    {
        want.insert(bin_text(&r, 0)?, r.try_get(1)?);
    }
    let mut phids: Vec<String> = want.keys().cloned().collect();
    phids.sort();
    let mut out = Vec::new();
    let pool = db.masters.pool_of("project");
    for r in rows_for(
        pool,
        "phid, name",
        &t.project,
        "phid",
        &phids,
        "ORDER BY phid",
    )
    .await?
    {
        let phid = bin_text(&r, 0)?;
        let have: String = r.try_get(1)?;
        // Compared byte for byte, as the names are stored (`utf8mb4_bin`).
        match want.get(&phid) {
            Some(want) if *want != have => out.push(Finding {
                kind: "project-renamed",
                object_phid: phid,
                summary: format!("the project is named {have:?}; the IdP's group is {want:?}"),
                details: json!({"idpName": want, "projectName": have}),
            }),
            _ => {}
        }
    }
    Ok(out)
}

/// `project-members`: membership edge transactions on a SCIM-managed project, since SCIM
/// began managing it, authored by anyone but a SCIM bot.
async fn members_changed_outside_scim(db: &Db) -> DbResult<Vec<Finding>> {
    let t = &db.t;
    let scim = db.masters.pool_of("scim");
    let bots: HashSet<String> = sqlx::query(AssertSqlSafe(format!(
        "SELECT DISTINCT botPHID FROM {}",
        t.scim_token
    )))
    .fetch_all(scim)
    .await?
    .iter()
    .map(|r| bin_text(r, 0))
    .collect::<Result<_, _>>()?;
    let mut managed_since: HashMap<String, u32> = HashMap::new();
    for r in sqlx::query(AssertSqlSafe(format!(
        "SELECT projectPHID, dateCreated FROM {}",
        t.scim_group
    )))
    .fetch_all(scim)
    .await?
    {
        managed_since.insert(bin_text(&r, 0)?, r.try_get(1)?);
    }
    let mut phids: Vec<String> = managed_since.keys().cloned().collect();
    phids.sort();
    let mut by_project: HashMap<String, (u32, Vec<String>, u32)> = HashMap::new();
    let edits = rows_for(
        db.masters.pool_of("project"),
        "objectPHID, authorPHID, dateCreated",
        &t.project_transaction,
        "objectPHID",
        &phids,
        &format!(
            "AND transactionType = 'core:edge' AND metadata LIKE '%\"edge:type\":{PROJECT_HAS_MEMBER}%' ORDER BY id"
        ),
    )
    .await?;
    for r in edits {
        let (project, author) = (bin_text(&r, 0)?, bin_text(&r, 1)?);
        let at: u32 = r.try_get(2)?;
        if bots.contains(&author) || managed_since.get(&project).is_none_or(|since| at < *since) {
            continue;
        }
        let e = by_project.entry(project).or_insert((0, Vec::new(), 0));
        e.0 += 1;
        if !e.1.contains(&author) {
            e.1.push(author);
        }
        e.2 = e.2.max(at);
    }
    let mut projects: Vec<_> = by_project.into_iter().collect();
    projects.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(projects
        .into_iter()
        .map(|(phid, (n, authors, last))| Finding {
            kind: "project-members",
            object_phid: phid,
            summary: format!(
                "members changed {n} time(s) outside SCIM, last at {}",
                crate::scim::resource::datetime(last)
            ),
            details: json!({"changes": n, "authors": authors, "last": last}),
        })
        .collect())
}

/// The accounts SCIM manages (`scim_user` rows matching `filter`, a WHERE clause or nothing).
async fn managed_users(db: &Db, filter: &str) -> DbResult<Vec<String>> {
    sqlx::query(AssertSqlSafe(format!(
        "SELECT userPHID FROM {} {filter}",
        db.t.scim_user
    )))
    .fetch_all(db.masters.pool_of("scim"))
    .await?
    .iter()
    .map(|r| Ok(bin_text(r, 0)?))
    .collect()
}

/// `user-reenabled`: an enabled account the IdP deprovisioned or set inactive.
async fn reenabled_users(db: &Db) -> DbResult<Vec<Finding>> {
    let t = &db.t;
    // The stored document keeps the `active` the IdP asked for (provisioning::users).
    let mut off = managed_users(
        db,
        "WHERE isDeprovisioned = 1 OR JSON_UNQUOTE(JSON_EXTRACT(attributes, '$.active')) = 'false'",
    )
    .await?;
    off.sort();
    rows_for(
        db.masters.pool_of("user"),
        "phid",
        &t.user,
        "phid",
        &off,
        "AND isDisabled = 0 ORDER BY phid",
    )
    .await?
    .iter()
    .map(|r| {
        Ok(Finding {
            kind: "user-reenabled",
            object_phid: bin_text(r, 0)?,
            summary: "SCIM disabled this account, but it is enabled again".into(),
            details: json!({}),
        })
    })
    .collect()
}

/// `phantom-account`: an enabled person's account SCIM does not manage (at most
/// [`MAX_PHANTOMS`], the first by account id).
async fn phantom_accounts(db: &Db) -> DbResult<Vec<Finding>> {
    let t = &db.t;
    let managed: HashSet<String> = managed_users(db, "").await?.into_iter().collect();
    // At most `managed.len()` of the enabled people are managed: this many rows hold the first
    // MAX_PHANTOMS phantoms.
    let limit = MAX_PHANTOMS + managed.len();
    let mut out = Vec::new();
    for r in sqlx::query(AssertSqlSafe(format!(
        "SELECT phid, userName, isAdmin FROM {} \
         WHERE isDisabled = 0 AND isSystemAgent = 0 AND isMailingList = 0 ORDER BY id LIMIT {limit}",
        t.user
    )))
    .fetch_all(db.masters.pool_of("user"))
    .await?
    {
        let phid = bin_text(&r, 0)?;
        if managed.contains(&phid) {
            continue;
        }
        let name: String = r.try_get(1)?;
        let admin: bool = r.try_get(2)?;
        out.push(Finding {
            kind: "phantom-account",
            object_phid: phid,
            summary: if admin {
                format!("@{name} is an enabled administrator the IdP does not manage")
            } else {
                format!("@{name} is an enabled account the IdP does not manage")
            },
            details: json!({"userName": name, "isAdmin": admin}),
        });
        if out.len() == MAX_PHANTOMS {
            break;
        }
    }
    Ok(out)
}

/// Replaces the stored findings in one transaction; returns how many there are.
pub async fn store(db: &Db, findings: &[Finding]) -> DbResult<usize> {
    let t = &db.t;
    let mut tx = db.begin().await?;
    sqlx::query(AssertSqlSafe(format!("DELETE FROM {}", t.scim_drift)))
        .execute(&mut *tx)
        .await?;
    let ts = now();
    for chunk in findings.chunks(500) {
        let mut q = QueryBuilder::<MySql>::new(format!(
            "INSERT INTO {} (driftType, objectPHID, summary, details, dateCreated, dateModified) ",
            t.scim_drift
        ));
        q.push_values(chunk, |mut row, f| {
            row.push_bind(f.kind)
                .push_bind(&f.object_phid)
                .push_bind(&f.summary)
                .push_bind(f.details.to_string())
                .push_bind(ts)
                .push_bind(ts);
        });
        q.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(findings.len())
}

/// Computes and stores drift unless another replica is doing it right now.
pub async fn run_once(db: &Db) -> DbResult<Option<usize>> {
    let mut conn = db.pool.acquire().await?;
    let lock = format!("{}:phabscim.drift", db.ns.as_str());
    let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 0)")
        .bind(&lock)
        .fetch_one(&mut *conn)
        .await?;
    if got != Some(1) {
        return Ok(None);
    }
    let result = async { store(db, &compute(db).await?).await }.await;
    let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
        .bind(&lock)
        .execute(&mut *conn)
        .await;
    result.map(Some)
}
