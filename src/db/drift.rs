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
use sqlx::{AssertSqlSafe, MySql, QueryBuilder, Row};

use super::phabricator::edge::PROJECT_HAS_MEMBER;
use super::{Db, DbError, DbResult, bin_text, now};

/// One finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: &'static str,
    pub object_phid: String,
    pub summary: String,
    pub details: Value,
}

/// Largest number of phantom accounts recorded (an install that never used SCIM has many).
const MAX_PHANTOMS: u32 = 5000;

/// The databases drift's statements join.
pub const DRIFT_DATABASES: &[&str] = &["scim", "project", "user"];

/// Computes the findings (reads only).
pub async fn compute(db: &Db) -> DbResult<Vec<Finding>> {
    // Its statements join `<ns>_scim` with `<ns>_project` and `<ns>_user`: refused rather than
    // read from a copy another master's partition left unused
    // (docs/design.md#partitioned-databases).
    if !db.masters.together(DRIFT_DATABASES) {
        return Err(DbError::Inconsistent(
            "drift is not computed while scim, project and user are on different masters".into(),
        ));
    }
    let mut out = renamed_projects(db).await?;
    out.extend(members_changed_outside_scim(db).await?);
    out.extend(reenabled_users(db).await?);
    out.extend(phantom_accounts(db).await?);
    Ok(out)
}

/// `project-renamed`: the project's name is not the group's displayName.
async fn renamed_projects(db: &Db) -> DbResult<Vec<Finding>> {
    let t = &db.t;
    let mut out = Vec::new();
    for r in sqlx::query(AssertSqlSafe(format!(
        "SELECT g.projectPHID, g.displayName, p.name FROM {} g JOIN {} p ON p.phid = g.projectPHID \
         WHERE CAST(p.name AS BINARY) <> CAST(g.displayName AS BINARY)",
        t.scim_group, t.project
    )))
    .fetch_all(&db.pool)
    .await?
    {
        let phid = bin_text(&r, 0)?;
        let want: String = r.try_get(1)?;
        let have: String = r.try_get(2)?;
        out.push(Finding {
            kind: "project-renamed",
            object_phid: phid,
            summary: format!("the project is named {have:?}; the IdP's group is {want:?}"),
            details: json!({"idpName": want, "projectName": have}),
        });
    }
    Ok(out)
}

/// `project-members`: membership edge transactions on a SCIM-managed project authored by
/// anyone but a SCIM bot.
async fn members_changed_outside_scim(db: &Db) -> DbResult<Vec<Finding>> {
    let t = &db.t;
    let bots: HashSet<String> = sqlx::query(AssertSqlSafe(format!(
        "SELECT DISTINCT botPHID FROM {}",
        t.scim_token
    )))
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| bin_text(r, 0))
    .collect::<Result<_, _>>()?;
    let mut by_project: HashMap<String, (u32, Vec<String>, u32)> = HashMap::new();
    for r in sqlx::query(AssertSqlSafe(format!(
        "SELECT x.objectPHID, x.authorPHID, x.dateCreated FROM {} x JOIN {} g ON g.projectPHID = x.objectPHID \
         WHERE x.transactionType = 'core:edge' AND x.metadata LIKE '%\"edge:type\":{PROJECT_HAS_MEMBER}%' AND x.dateCreated >= g.dateCreated \
         ORDER BY x.id",
        t.project_transaction, t.scim_group
    )))
    .fetch_all(&db.pool)
    .await?
    {
        let author = bin_text(&r, 1)?;
        if bots.contains(&author) {
            continue;
        }
        let e = by_project.entry(bin_text(&r, 0)?).or_insert((0, Vec::new(), 0));
        e.0 += 1;
        if !e.1.contains(&author) {
            e.1.push(author);
        }
        e.2 = e.2.max(r.try_get(2)?);
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
async fn reenabled_users(db: &Db) -> DbResult<Vec<Finding>> {
    let t = &db.t;
    // The stored document keeps the `active` the IdP asked for (provisioning::users).
    sqlx::query(AssertSqlSafe(format!(
        "SELECT s.userPHID FROM {} s JOIN {} u ON u.phid = s.userPHID WHERE u.isDisabled = 0 \
         AND (s.isDeprovisioned = 1 OR JSON_UNQUOTE(JSON_EXTRACT(s.attributes, '$.active')) = 'false') ORDER BY s.userPHID",
        t.scim_user, t.user
    )))
    .fetch_all(&db.pool)
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
/// [`MAX_PHANTOMS`]).
async fn phantom_accounts(db: &Db) -> DbResult<Vec<Finding>> {
    let t = &db.t;
    let mut out = Vec::new();
    for r in sqlx::query(AssertSqlSafe(format!(
        "SELECT u.phid, u.userName, u.isAdmin FROM {} u LEFT JOIN {} s ON s.userPHID = u.phid \
         WHERE s.id IS NULL AND u.isDisabled = 0 AND u.isSystemAgent = 0 AND u.isMailingList = 0 ORDER BY u.id LIMIT {MAX_PHANTOMS}",
        t.user, t.scim_user
    )))
    .fetch_all(&db.pool)
    .await?
    {
        let name: String = r.try_get(1)?;
        let admin: bool = r.try_get(2)?;
        out.push(Finding {
            kind: "phantom-account",
            object_phid: bin_text(&r, 0)?,
            summary: if admin {
                format!("@{name} is an enabled administrator the IdP does not manage")
            } else {
                format!("@{name} is an enabled account the IdP does not manage")
            },
            details: json!({"userName": name, "isAdmin": admin}),
        });
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
