//! Project membership edges (docs/phabricator-tables.md#edges; the rows per operation:
//! docs/write-paths.md#add-members and #remove-members).
//!
//! `PhabricatorEdgeEditor` writes both directions of an edge: `(PROJ, 13, USER)` in
//! `<ns>_project.edge` and the inverse `(USER, 14, PROJ)` in `<ns>_user.edge`. Phorge's
//! project queries read only the materialized `(PROJ, 60, USER)` edges, which the membership
//! index extension derives from the 13-edges of the project and of its descendants.
//!
//! Every change here is a delta in set-based statements: one multi-row statement per table
//! per chunk of [`CHUNK`] members, never a statement per member, and never a load-modify-save
//! of the whole membership.

use std::collections::HashSet;

use futures_util::TryStreamExt;
use sqlx::{AssertSqlSafe, MySql, QueryBuilder};

use super::Phid;
use super::project::ProjectRow;
use crate::db::{Conns, DbResult, Tables, bin_text, now, placeholders};

/// `PhabricatorProjectProjectHasMemberEdgeType`: project has member (PROJ → USER).
pub const PROJECT_HAS_MEMBER: u32 = 13;
/// `PhabricatorProjectMemberOfProjectEdgeType`: user is member of project (USER → PROJ).
pub const MEMBER_OF_PROJECT: u32 = 14;
/// `PhabricatorProjectMaterializedMemberEdgeType`: what `PhabricatorProjectQuery` reads.
pub const MATERIALIZED_MEMBER: u32 = 60;

/// Largest IN list or VALUES list of one statement.
pub const CHUNK: usize = 500;

/// Which of `users` are direct members (type 13) of the project.
pub async fn members_among(
    conn: &mut Conns<'_>,
    t: &Tables,
    project_phid: &str,
    users: &[String],
) -> DbResult<HashSet<String>> {
    let mut out = HashSet::new();
    for chunk in users.chunks(CHUNK) {
        let sql = format!(
            "SELECT dst FROM {} WHERE src = ? AND type = {PROJECT_HAS_MEMBER} AND dst IN {}",
            t.project_edge,
            placeholders(chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql.as_str())).bind(project_phid);
        for u in chunk {
            q = q.bind(u);
        }
        for row in q.fetch_all(&mut *conn).await? {
            out.insert(bin_text(&row, 0)?);
        }
    }
    Ok(out)
}

/// Every direct member of the project (what a whole-set replace diffs against).
pub async fn all_members(
    conn: &mut Conns<'_>,
    t: &Tables,
    project_phid: &str,
) -> DbResult<HashSet<String>> {
    let sql = format!(
        "SELECT dst FROM {} WHERE src = ? AND type = {PROJECT_HAS_MEMBER}",
        t.project_edge
    );
    let mut out = HashSet::new();
    let mut rows = sqlx::query(AssertSqlSafe(sql.as_str()))
        .bind(project_phid)
        .fetch(&mut *conn);
    while let Some(row) = rows.try_next().await? {
        out.insert(bin_text(&row, 0)?);
    }
    Ok(out)
}

/// Streams the direct members of a project in the order the editor added them (the
/// `src(src, type, dateCreated, seq)` index), calling `f(userPHID, display)` per row so the
/// caller can render each one without collecting the membership first. `display` is the
/// SCIM userName, else the Phabricator username. Returns the number of members.
pub async fn for_each_member<F>(
    conn: &mut Conns<'_>,
    t: &Tables,
    project_phid: &str,
    mut f: F,
) -> DbResult<u64>
where
    F: FnMut(&str, &str),
{
    if !conn.together(&[&t.project_edge, &t.user, &t.scim_user]) {
        return for_each_member_apart(conn, t, project_phid, f).await;
    }
    let sql = format!(
        "SELECT e.dst, s.userName, u.userName FROM {} e LEFT JOIN {} u ON u.phid = e.dst \
         LEFT JOIN {} s ON s.userPHID = e.dst WHERE e.src = ? AND e.type = {PROJECT_HAS_MEMBER} \
         ORDER BY e.dateCreated, e.seq",
        t.project_edge, t.user, t.scim_user
    );
    let mut n = 0;
    let mut rows = sqlx::query(AssertSqlSafe(sql.as_str()))
        .bind(project_phid)
        .fetch(&mut *conn);
    while let Some(row) = rows.try_next().await? {
        let id = bin_text(&row, 0)?;
        let scim: Option<String> = sqlx::Row::try_get(&row, 1)?;
        let local: Option<String> = sqlx::Row::try_get(&row, 2)?;
        f(&id, scim.as_deref().or(local.as_deref()).unwrap_or(""));
        n += 1;
    }
    Ok(n)
}

/// [`for_each_member`] when `<ns>_project` is on another master than `<ns>_user` and
/// `<ns>_scim` (docs/design.md#partitioned-databases): the edges from the one, then the names
/// from the other, a chunk at a time, in the same order.
async fn for_each_member_apart<F>(
    conn: &mut Conns<'_>,
    t: &Tables,
    project_phid: &str,
    mut f: F,
) -> DbResult<u64>
where
    F: FnMut(&str, &str),
{
    let sql = format!(
        "SELECT dst FROM {} WHERE src = ? AND type = {PROJECT_HAS_MEMBER} \
         ORDER BY dateCreated, seq",
        t.project_edge
    );
    let members: Vec<String> = sqlx::query(AssertSqlSafe(sql.as_str()))
        .bind(project_phid)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| bin_text(row, 0))
        .collect::<Result<_, _>>()?;
    for chunk in members.chunks(CHUNK) {
        let sql = format!(
            "SELECT u.phid, s.userName, u.userName FROM {} u LEFT JOIN {} s ON s.userPHID = u.phid \
             WHERE u.phid IN {}",
            t.user,
            t.scim_user,
            placeholders(chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql.as_str()));
        for u in chunk {
            q = q.bind(u);
        }
        let mut names = std::collections::HashMap::new();
        for row in q.fetch_all(&mut *conn).await? {
            let scim: Option<String> = sqlx::Row::try_get(&row, 1)?;
            let local: Option<String> = sqlx::Row::try_get(&row, 2)?;
            names.insert(bin_text(&row, 0)?, scim.or(local).unwrap_or_default());
        }
        for id in chunk {
            f(id, names.get(id).map_or("", String::as_str));
        }
    }
    Ok(members.len() as u64)
}

/// Adds `users` (none of them a member yet) to the project, the way `PhabricatorEdgeEditor`
/// and `PhabricatorProjectsMembershipIndexEngineExtension` do
/// (docs/write-paths.md#add-members): per chunk, one upsert of 13-edges (`seq` 0, 1, 2... for
/// the one source, continuing across chunks), one upsert of the inverse 14-edges (each user is
/// its own source: `seq` 0), and one `INSERT IGNORE ... SELECT` of 60-edges per materializing
/// project (the project and each ancestor) copying `dateCreated` and `seq` from the 13-edge.
pub async fn add_members(
    conn: &mut Conns<'_>,
    t: &Tables,
    project_phid: &Phid,
    ancestors: &[ProjectRow],
    users: &[String],
) -> DbResult<()> {
    let ts = now();
    for (c, chunk) in users.chunks(CHUNK).enumerate() {
        let mut q = QueryBuilder::<MySql>::new(format!(
            "INSERT INTO {} (src, type, dst, dateCreated, seq, dataID) ",
            t.project_edge
        ));
        q.push_values(chunk.iter().enumerate(), |mut row, (i, u)| {
            let seq = u32::try_from(c * CHUNK + i).unwrap_or(u32::MAX);
            row.push_bind(project_phid)
                .push(PROJECT_HAS_MEMBER)
                .push_bind(u)
                .push_bind(ts)
                .push_bind(seq)
                .push("NULL");
        });
        // Existing edges keep their dateCreated and seq (docs/phabricator-tables.md#edges).
        q.push(" ON DUPLICATE KEY UPDATE dataID = VALUES(dataID)");
        q.build().execute(&mut *conn).await?;

        let mut q = QueryBuilder::<MySql>::new(format!(
            "INSERT INTO {} (src, type, dst, dateCreated, seq, dataID) ",
            t.user_edge
        ));
        q.push_values(chunk, |mut row, u| {
            row.push_bind(u)
                .push(MEMBER_OF_PROJECT)
                .push_bind(project_phid)
                .push_bind(ts)
                .push("0")
                .push("NULL");
        });
        q.push(" ON DUPLICATE KEY UPDATE dataID = VALUES(dataID)");
        q.build().execute(&mut *conn).await?;

        let targets = std::iter::once(project_phid).chain(ancestors.iter().map(|a| &a.phid));
        for target in targets {
            let sql = format!(
                "INSERT IGNORE INTO {0} (src, type, dst, dateCreated, seq, dataID) \
                 SELECT ?, {MATERIALIZED_MEMBER}, e.dst, e.dateCreated, e.seq, NULL FROM {0} e \
                 WHERE e.src = ? AND e.type = {PROJECT_HAS_MEMBER} AND e.dst IN {1}",
                t.project_edge,
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(target)
                .bind(project_phid);
            for u in chunk {
                q = q.bind(u);
            }
            q.execute(&mut *conn).await?;
        }
    }
    Ok(())
}

/// Removes `users` from the project (docs/write-paths.md#remove-members): per chunk, deletes
/// the 13-edges, the inverse 14-edges and the project's 60-edges by `dst IN (...)`, then each
/// ancestor's 60-edges for the users no other leaf descendant still has as a member (an
/// ancestor's desired set is the 13-edges of its non-milestone descendants without
/// subprojects: docs/phabricator-tables.md#materialized-members).
pub async fn remove_members(
    conn: &mut Conns<'_>,
    t: &Tables,
    project_phid: &Phid,
    ancestors: &[ProjectRow],
    users: &[String],
) -> DbResult<()> {
    for chunk in users.chunks(CHUNK) {
        let list = placeholders(chunk.len());
        for (table, by, ty, of) in [
            (&t.project_edge, "src", PROJECT_HAS_MEMBER, "dst"),
            (&t.user_edge, "dst", MEMBER_OF_PROJECT, "src"),
            (&t.project_edge, "src", MATERIALIZED_MEMBER, "dst"),
        ] {
            let sql =
                format!("DELETE FROM {table} WHERE {by} = ? AND type = {ty} AND {of} IN {list}");
            let mut q = sqlx::query(AssertSqlSafe(sql.as_str())).bind(project_phid);
            for u in chunk {
                q = q.bind(u);
            }
            q.execute(&mut *conn).await?;
        }
        for ancestor in ancestors {
            let sql = format!(
                "SELECT DISTINCT e.dst FROM {} e JOIN {} p ON p.phid = e.src \
                 WHERE e.type = {PROJECT_HAS_MEMBER} AND e.dst IN {list} \
                 AND LEFT(p.projectPath, ?) = ? AND p.projectDepth > ? \
                 AND p.milestoneNumber IS NULL AND p.hasSubprojects = 0",
                t.project_edge, t.project
            );
            let mut q = sqlx::query(AssertSqlSafe(sql.as_str()));
            for u in chunk {
                q = q.bind(u);
            }
            let rows = q
                .bind(ancestor.project_path.len() as u32)
                .bind(&ancestor.project_path)
                .bind(ancestor.project_depth)
                .fetch_all(&mut *conn)
                .await?;
            let still: HashSet<String> = rows
                .iter()
                .map(|r| bin_text(r, 0))
                .collect::<Result<_, _>>()?;
            let gone: Vec<&String> = chunk.iter().filter(|u| !still.contains(*u)).collect();
            if gone.is_empty() {
                continue;
            }
            let sql = format!(
                "DELETE FROM {} WHERE src = ? AND type = {MATERIALIZED_MEMBER} AND dst IN {}",
                t.project_edge,
                placeholders(gone.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql.as_str())).bind(&ancestor.phid);
            for u in gone {
                q = q.bind(u);
            }
            q.execute(&mut *conn).await?;
        }
    }
    Ok(())
}
