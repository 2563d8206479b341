//! Invariants of the Phabricator rows phab-scim writes, checked after races and kills.
//!
//! Shared by the integration tests (`tests/api`) and the kill test's driver
//! (`tests/faults/kill.rs`, through `#[path]`). Each check returns a human-readable line per
//! violating row, so a failure names the object to look at.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use phab_scim::db::Tables;
use phab_scim::db::phabricator::user::name_tokens;
use sqlx::{AssertSqlSafe, MySqlPool, Row};

async fn strings(pool: &MySqlPool, sql: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            let b: phab_scim::db::Bin = r.try_get(0)?;
            Ok(String::from_utf8_lossy(&b.0).into_owned())
        })
        .collect()
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
pub async fn check(pool: &MySqlPool, t: &Tables) -> Result<Vec<String>, sqlx::Error> {
    let mut v = Vec::new();

    let bad_primary = strings(
        pool,
        &format!(
            "SELECT CONCAT(s.userPHID, ' has ', COUNT(e.id), ' primary addresses') FROM {} s \
             LEFT JOIN {} e ON e.userPHID = s.userPHID AND e.isPrimary = 1 \
             GROUP BY s.userPHID HAVING COUNT(e.id) <> 1",
            t.scim_user, t.user_email
        ),
    )
    .await?;
    v.extend(bad_primary);

    // Name tokens: compare the stored set with the tokenizer's output, in Rust.
    let users = sqlx::query(AssertSqlSafe(format!(
        "SELECT u.id, u.phid, u.userName, u.realName FROM {} u JOIN {} s ON s.userPHID = u.phid",
        t.user, t.scim_user
    )))
    .fetch_all(pool)
    .await?;
    let tokens = sqlx::query(AssertSqlSafe(format!(
        "SELECT userID, token FROM {}",
        t.user_nametoken
    )))
    .fetch_all(pool)
    .await?;
    let mut by_user: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
    for r in &tokens {
        let id: u32 = r.try_get(0)?;
        let tok: String = r.try_get(1)?;
        by_user.entry(id).or_default().insert(tok);
    }
    for r in &users {
        let id: u32 = r.try_get(0)?;
        let phid: phab_scim::db::Bin = r.try_get(1)?;
        let name: String = r.try_get(2)?;
        let real: String = r.try_get(3)?;
        let want: BTreeSet<String> = name_tokens(&name, &real).into_iter().collect();
        let have = by_user.get(&id).cloned().unwrap_or_default();
        if want != have {
            v.push(format!(
                "{} (@{name}) has name tokens {have:?}, wants {want:?}",
                String::from_utf8_lossy(&phid.0)
            ));
        }
    }

    v.extend(
        strings(
            pool,
            &format!(
                "SELECT CONCAT('edge 13 ', p.src, ' -> ', p.dst, ' lacks its 14') FROM {} p \
                 LEFT JOIN {} u ON u.src = p.dst AND u.type = 14 AND u.dst = p.src \
                 WHERE p.type = 13 AND u.src IS NULL",
                t.project_edge, t.user_edge
            ),
        )
        .await?,
    );
    v.extend(
        strings(
            pool,
            &format!(
                "SELECT CONCAT('edge 13 ', p.src, ' -> ', p.dst, ' lacks its 60') FROM {} p \
                 LEFT JOIN {} m ON m.src = p.src AND m.type = 60 AND m.dst = p.dst \
                 WHERE p.type = 13 AND m.src IS NULL",
                t.project_edge, t.project_edge
            ),
        )
        .await?,
    );
    v.extend(
        strings(
            pool,
            &format!(
                "SELECT CONCAT('edge 14 ', u.src, ' -> ', u.dst, ' lacks its 13') FROM {} u \
                 LEFT JOIN {} p ON p.src = u.dst AND p.type = 13 AND p.dst = u.src \
                 WHERE u.type = 14 AND p.src IS NULL",
                t.user_edge, t.project_edge
            ),
        )
        .await?,
    );
    // A project without subprojects has exactly its own members materialized.
    v.extend(
        strings(
            pool,
            &format!(
                "SELECT CONCAT('edge 60 ', m.src, ' -> ', m.dst, ' without a 13 on a leaf project') FROM {} m \
                 JOIN {} pr ON pr.phid = m.src AND pr.hasSubprojects = 0 \
                 LEFT JOIN {} p ON p.src = m.src AND p.type = 13 AND p.dst = m.dst \
                 WHERE m.type = 60 AND p.src IS NULL",
                t.project_edge, t.project, t.project_edge
            ),
        )
        .await?,
    );

    v.extend(
        strings(
            pool,
            &format!(
                "SELECT CONCAT('scim_user ', s.userPHID, ' has no user row') FROM {} s \
                 LEFT JOIN {} u ON u.phid = s.userPHID WHERE u.id IS NULL",
                t.scim_user, t.user
            ),
        )
        .await?,
    );
    v.extend(
        strings(
            pool,
            &format!(
                "SELECT CONCAT('scim_useremail of ', s.userPHID, ' has no scim_user row') FROM {} s \
                 LEFT JOIN {} u ON u.userPHID = s.userPHID WHERE u.id IS NULL",
                t.scim_useremail, t.scim_user
            ),
        )
        .await?,
    );
    v.extend(
        strings(
            pool,
            &format!(
                "SELECT CONCAT('scim_group ', s.projectPHID, ' has no project row') FROM {} s \
                 LEFT JOIN {} p ON p.phid = s.projectPHID WHERE p.id IS NULL",
                t.scim_group, t.project
            ),
        )
        .await?,
    );
    // Every managed project has its primary slug row.
    v.extend(
        strings(
            pool,
            &format!(
                "SELECT CONCAT('project ', p.phid, ' lacks its primary slug row') FROM {} s \
                 JOIN {} p ON p.phid = s.projectPHID \
                 LEFT JOIN {} sl ON sl.slug = p.primarySlug AND sl.projectPHID = p.phid WHERE sl.id IS NULL",
                t.scim_group, t.project, t.project_slug
            ),
        )
        .await?,
    );

    v.extend(
        strings(
            pool,
            &format!(
                "SELECT CONCAT('task ', a.id, ' has no taskdata ', a.dataID) FROM {} a \
                 LEFT JOIN {} d ON d.id = a.dataID WHERE d.id IS NULL",
                t.worker_activetask, t.worker_taskdata
            ),
        )
        .await?,
    );
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT CAST(COALESCE((SELECT MAX(id) FROM {}), 0) AS UNSIGNED), \
         CAST(COALESCE((SELECT counterValue FROM {} WHERE counterName = 'worker_activetask'), 0) AS UNSIGNED)",
        t.worker_activetask, t.lisk_counter
    )))
    .fetch_one(pool)
    .await?;
    let (max_task, counter): (u64, u64) = (row.try_get(0)?, row.try_get(1)?);
    if counter < max_task {
        v.push(format!(
            "lisk_counter {counter} is below the highest task id {max_task}"
        ));
    }
    Ok(v)
}
