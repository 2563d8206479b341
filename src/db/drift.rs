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

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Value, json};
use sqlx::mysql::MySqlRow;
use sqlx::{AssertSqlSafe, MySql, QueryBuilder, Row};

use super::phabricator::edge::{CHUNK, PROJECT_HAS_MEMBER};
use super::{Db, DbResult, bin_text, now, placeholders};

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

/// Computes the findings (reads only).
///
/// Each statement reads one database, on the master that holds it, and the rows are matched
/// here: with partitioned `cluster.databases`, `<ns>_project` (and `<ns>_user`, with
/// `<ns>_scim`) may be on another master, where no statement could join them
/// (docs/design.md#partitioned-databases).
pub async fn compute(db: &Db) -> DbResult<Vec<Finding>> {
    let groups = managed_groups(db).await?;
    let users = managed_users(db).await?;
    let mut out = renamed_projects(db, &groups).await?;
    out.extend(members_changed_outside_scim(db, &groups).await?);
    out.extend(reenabled_users(db, &users).await?);
    out.extend(phantom_accounts(db, &users).await?);
    Ok(out)
}

/// A SCIM-managed project: the group's displayName and when SCIM began managing it.
struct ManagedGroup {
    display_name: String,
    since: u32,
}

/// Every SCIM-managed project, by PHID (sorted, so chunked reads keep their order).
async fn managed_groups(db: &Db) -> DbResult<BTreeMap<String, ManagedGroup>> {
    let mut out = BTreeMap::new();
    for r in sqlx::query(AssertSqlSafe(format!(
        "SELECT projectPHID, displayName, dateCreated FROM {}",
        db.t.scim_group
    )))
    .fetch_all(db.masters.pool_of("scim"))
    .await?
    {
        let group = ManagedGroup {
            display_name: r.try_get(1)?,
            since: r.try_get(2)?,
        };
        out.insert(bin_text(&r, 0)?, group);
    }
    Ok(out)
}

/// Every account SCIM manages, by PHID (sorted), and whether the IdP deprovisioned it or set
/// it inactive (the stored document keeps the `active` the IdP asked for,
/// provisioning::users).
async fn managed_users(db: &Db) -> DbResult<BTreeMap<String, bool>> {
    let mut out = BTreeMap::new();
    for r in sqlx::query(AssertSqlSafe(format!(
        "SELECT userPHID, CAST(isDeprovisioned = 1 \
         OR COALESCE(JSON_UNQUOTE(JSON_EXTRACT(attributes, '$.active')) = 'false', 0) AS SIGNED) \
         FROM {}",
        db.t.scim_user
    )))
    .fetch_all(db.masters.pool_of("scim"))
    .await?
    {
        out.insert(bin_text(&r, 0)?, r.try_get::<i64, _>(1)? != 0);
    }
    Ok(out)
}

/// The rows of `SELECT {select} FROM {table} WHERE {column} IN (<phids>) {rest}` on `pool`,
/// [`CHUNK`] PHIDs at a time.
async fn rows_for<'p>(
    pool: &sqlx::MySqlPool,
    select: &str,
    table: &str,
    column: &str,
    phids: impl Iterator<Item = &'p String>,
    rest: &str,
) -> DbResult<Vec<MySqlRow>> {
    let phids: Vec<&String> = phids.collect();
    let mut out = Vec::new();
    for chunk in phids.chunks(CHUNK) {
        let sql = format!(
            "SELECT {select} FROM {table} WHERE {column} IN {} {rest}",
            placeholders(chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql.as_str()));
        for phid in chunk {
            q = q.bind(*phid);
        }
        out.extend(q.fetch_all(pool).await?);
    }
    Ok(out)
}

/// `project-renamed`: the project's name is not the group's displayName.
async fn renamed_projects(
    db: &Db,
    groups: &BTreeMap<String, ManagedGroup>,
) -> DbResult<Vec<Finding>> {
    let mut out = Vec::new();
    let pool = db.masters.pool_of("project");
    for r in rows_for(
        pool,
        "phid, name",
        &db.t.project,
        "phid",
        groups.keys(),
        "ORDER BY phid",
    )
    .await?
    {
        let phid = bin_text(&r, 0)?;
        let have: String = r.try_get(1)?;
        // Compared byte for byte, as the names are stored (`utf8mb4_bin`).
        match groups.get(&phid).map(|g| &g.display_name) {
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
async fn members_changed_outside_scim(
    db: &Db,
    groups: &BTreeMap<String, ManagedGroup>,
) -> DbResult<Vec<Finding>> {
    let t = &db.t;
    let bots: HashSet<String> = sqlx::query(AssertSqlSafe(format!(
        "SELECT DISTINCT botPHID FROM {}",
        t.scim_token
    )))
    .fetch_all(db.masters.pool_of("scim"))
    .await?
    .iter()
    .map(|r| bin_text(r, 0))
    .collect::<Result<_, _>>()?;
    let mut by_project: HashMap<String, (u32, Vec<String>, u32)> = HashMap::new();
    let edits = rows_for(
        db.masters.pool_of("project"),
        "objectPHID, authorPHID, dateCreated",
        &t.project_transaction,
        "objectPHID",
        groups.keys(),
        &format!(
            "AND transactionType = 'core:edge' AND metadata LIKE '%\"edge:type\":{PROJECT_HAS_MEMBER}%' ORDER BY id"
        ),
    )
    .await?;
    for r in edits {
        let (project, author) = (bin_text(&r, 0)?, bin_text(&r, 1)?);
        let at: u32 = r.try_get(2)?;
        if bots.contains(&author) || groups.get(&project).is_none_or(|g| at < g.since) {
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

/// `user-reenabled`: an enabled account the IdP deprovisioned or set inactive.
async fn reenabled_users(db: &Db, users: &BTreeMap<String, bool>) -> DbResult<Vec<Finding>> {
    let off = users.iter().filter(|(_, off)| **off).map(|(phid, _)| phid);
    rows_for(
        db.masters.pool_of("user"),
        "phid",
        &db.t.user,
        "phid",
        off,
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
async fn phantom_accounts(db: &Db, managed: &BTreeMap<String, bool>) -> DbResult<Vec<Finding>> {
    let t = &db.t;
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
        if managed.contains_key(&phid) {
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
