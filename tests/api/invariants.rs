//! Invariants of the Phabricator rows phab-scim writes, checked after races and kills.
//!
//! Shared by the integration tests (`tests/api`) and the kill test's driver
//! (`tests/faults/kill.rs`, through `#[path]`). Each check returns a human-readable line per
//! violating row, so a failure names the object to look at.
//!
//! Every table is read from the server that holds its database ([`Servers`]) and the rows are
//! joined here, not in SQL: with partitioned `cluster.databases` the `project` and `user`
//! databases live on different masters, and a join across them is exactly what no server can run.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use phab_scim::db::Tables;
use phab_scim::db::phabricator::user::name_tokens;
use sqlx::mysql::MySqlRow;
use sqlx::{AssertSqlSafe, MySqlPool, Row};

/// Where each database is: one server, or further ones holding some applications' databases
/// (a partitioned run, `PHAB_SCIM_TEST_PARTITIONS`).
pub struct Servers<'a> {
    pub main: &'a MySqlPool,
    /// Each further server and the quoted names of the databases it holds.
    pub others: Vec<(&'a MySqlPool, Vec<String>)>,
}

impl<'a> Servers<'a> {
    /// Everything on one server.
    pub fn one(pool: &'a MySqlPool) -> Self {
        Self::new(pool, Vec::new())
    }

    /// The databases `others` name on their servers, the rest on `main`.
    pub fn new(main: &'a MySqlPool, others: Vec<(&'a MySqlPool, Vec<String>)>) -> Self {
        Self { main, others }
    }

    /// The server of a rendered table name (`` `<ns>_<app>`.`table` ``).
    fn pool(&self, table: &str) -> &'a MySqlPool {
        self.others
            .iter()
            .find(|(_, dbs)| dbs.iter().any(|d| table.starts_with(&format!("{d}."))))
            .map_or(self.main, |(pool, _)| pool)
    }

    /// All rows of `SELECT {cols} FROM {table} {rest}`, from the table's server.
    async fn rows(
        &self,
        cols: &str,
        table: &str,
        rest: &str,
    ) -> Result<Vec<MySqlRow>, sqlx::Error> {
        sqlx::query(AssertSqlSafe(format!("SELECT {cols} FROM {table} {rest}")))
            .fetch_all(self.pool(table))
            .await
    }

    /// The first column of each row, as text (PHIDs are binary strings).
    async fn texts(&self, col: &str, table: &str, rest: &str) -> Result<Vec<String>, sqlx::Error> {
        self.rows(col, table, rest)
            .await?
            .iter()
            .map(|r| text(r, 0))
            .collect()
    }

    /// `(src, dst)` of every edge of `type` in an edge table.
    async fn edges(&self, table: &str, ty: u32) -> Result<BTreeSet<(String, String)>, sqlx::Error> {
        self.rows("src, dst", table, &format!("WHERE type = {ty}"))
            .await?
            .iter()
            .map(|r| Ok((text(r, 0)?, text(r, 1)?)))
            .collect()
    }
}

fn text(r: &MySqlRow, i: usize) -> Result<String, sqlx::Error> {
    let b: phab_scim::db::Bin = r.try_get(i)?;
    Ok(String::from_utf8_lossy(&b.0).into_owned())
}

/// Every invariant; an empty list means the rows are consistent.
///
/// - each SCIM-managed user has exactly one primary address, and its `user_nametoken` rows are
///   exactly the tokens of `userName + ' ' + realName` (docs/phabricator-tables.md#name-tokens);
/// - every project member edge (type 13) has its inverse (14) in the user database and its
///   materialized edge (60), and every 14 has its 13 (docs/phabricator-tables.md#edges);
/// - every `scim_user`, `scim_useremail` and `scim_group` row points at an existing object;
/// - every active task has its `worker_taskdata` row, and `lisk_counter` is at or above the
///   highest task id (a lower counter would hand out a used id:
///   docs/phabricator-tables.md#daemon-queue).
pub async fn check(s: &Servers<'_>, t: &Tables) -> Result<Vec<String>, sqlx::Error> {
    let mut v = Vec::new();
    v.extend(user_rows(s, t).await?);
    v.extend(member_edges(s, t).await?);
    v.extend(group_rows(s, t).await?);
    v.extend(task_rows(s, t).await?);
    Ok(v)
}

/// Primary addresses, name tokens, and the SCIM user rows' objects.
async fn user_rows(s: &Servers<'_>, t: &Tables) -> Result<Vec<String>, sqlx::Error> {
    let mut v = Vec::new();
    let managed: BTreeSet<String> = s
        .texts("userPHID", &t.scim_user, "")
        .await?
        .into_iter()
        .collect();

    let mut primaries: BTreeMap<String, usize> = BTreeMap::new();
    for p in s
        .texts("userPHID", &t.user_email, "WHERE isPrimary = 1")
        .await?
    {
        *primaries.entry(p).or_default() += 1;
    }
    for p in &managed {
        let n = primaries.get(p).copied().unwrap_or(0);
        if n != 1 {
            v.push(format!("{p} has {n} primary addresses"));
        }
    }

    // Name tokens: compare the stored set with the tokenizer's output.
    let mut by_user: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
    for r in s.rows("userID, token", &t.user_nametoken, "").await? {
        by_user
            .entry(r.try_get(0)?)
            .or_default()
            .insert(r.try_get(1)?);
    }
    let mut users = BTreeSet::new();
    for r in s.rows("id, phid, userName, realName", &t.user, "").await? {
        let (id, phid): (u32, String) = (r.try_get(0)?, text(&r, 1)?);
        let (name, real): (String, String) = (r.try_get(2)?, r.try_get(3)?);
        if managed.contains(&phid) {
            let want: BTreeSet<String> = name_tokens(&name, &real).into_iter().collect();
            let have = by_user.get(&id).cloned().unwrap_or_default();
            if want != have {
                v.push(format!(
                    "{phid} (@{name}) has name tokens {have:?}, wants {want:?}"
                ));
            }
        }
        users.insert(phid);
    }
    for p in managed.difference(&users) {
        v.push(format!("scim_user {p} has no user row"));
    }
    for p in s.texts("userPHID", &t.scim_useremail, "").await? {
        if !managed.contains(&p) {
            v.push(format!("scim_useremail of {p} has no scim_user row"));
        }
    }
    Ok(v)
}

/// Member edges: 13 (project → user) with its inverse 14 (user → project, in the user
/// database) and its materialized 60; a leaf project's 60s are exactly its 13s.
async fn member_edges(s: &Servers<'_>, t: &Tables) -> Result<Vec<String>, sqlx::Error> {
    let mut v = Vec::new();
    let p13 = s.edges(&t.project_edge, 13).await?;
    let p60 = s.edges(&t.project_edge, 60).await?;
    let u14 = s.edges(&t.user_edge, 14).await?;
    for (src, dst) in &p13 {
        if !u14.contains(&(dst.clone(), src.clone())) {
            v.push(format!("edge 13 {src} -> {dst} lacks its 14"));
        }
        if !p60.contains(&(src.clone(), dst.clone())) {
            v.push(format!("edge 13 {src} -> {dst} lacks its 60"));
        }
    }
    for (src, dst) in &u14 {
        if !p13.contains(&(dst.clone(), src.clone())) {
            v.push(format!("edge 14 {src} -> {dst} lacks its 13"));
        }
    }
    let leaves: BTreeSet<String> = s
        .texts("phid", &t.project, "WHERE hasSubprojects = 0")
        .await?
        .into_iter()
        .collect();
    for (src, dst) in &p60 {
        if leaves.contains(src) && !p13.contains(&(src.clone(), dst.clone())) {
            v.push(format!(
                "edge 60 {src} -> {dst} without a 13 on a leaf project"
            ));
        }
    }
    Ok(v)
}

/// Every managed project exists and has its primary slug row.
async fn group_rows(s: &Servers<'_>, t: &Tables) -> Result<Vec<String>, sqlx::Error> {
    let mut v = Vec::new();
    let mut projects: BTreeMap<String, Option<String>> = BTreeMap::new();
    for r in s.rows("phid, primarySlug", &t.project, "").await? {
        projects.insert(text(&r, 0)?, r.try_get(1)?);
    }
    let slugs: BTreeSet<(String, String)> = s
        .rows("slug, projectPHID", &t.project_slug, "")
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, text(r, 1)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    for p in s.texts("projectPHID", &t.scim_group, "").await? {
        match projects.get(&p) {
            None => v.push(format!("scim_group {p} has no project row")),
            Some(slug) => {
                let has = slug
                    .as_ref()
                    .is_some_and(|slug| slugs.contains(&(slug.clone(), p.clone())));
                if !has {
                    v.push(format!("project {p} lacks its primary slug row"));
                }
            }
        }
    }
    Ok(v)
}

/// Every active task has its data, and the task id counter is not behind.
async fn task_rows(s: &Servers<'_>, t: &Tables) -> Result<Vec<String>, sqlx::Error> {
    let mut v = Vec::new();
    let data: BTreeSet<u64> = s
        .rows("CAST(id AS UNSIGNED)", &t.worker_taskdata, "")
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut max_task = 0u64;
    for r in s
        .rows(
            "CAST(id AS UNSIGNED), CAST(dataID AS UNSIGNED)",
            &t.worker_activetask,
            "",
        )
        .await?
    {
        let (id, data_id): (u64, Option<u64>) = (r.try_get(0)?, r.try_get(1)?);
        max_task = max_task.max(id);
        if !data_id.is_some_and(|d| data.contains(&d)) {
            v.push(format!("task {id} has no taskdata {data_id:?}"));
        }
    }
    let counter: u64 = s
        .rows(
            "CAST(counterValue AS UNSIGNED)",
            &t.lisk_counter,
            "WHERE counterName = 'worker_activetask'",
        )
        .await?
        .first()
        .map(|r| r.try_get(0))
        .transpose()?
        .unwrap_or(0);
    if counter < max_task {
        v.push(format!(
            "lisk_counter {counter} is below the highest task id {max_task}"
        ));
    }
    Ok(v)
}
