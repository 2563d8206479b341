//! One write across the masters of partitioned `cluster.databases`, all or nothing, by XA
//! two-phase commit with the coordinator as last agent (docs/design.md#partitioned-databases).
//!
//! The coordinator is the master of `<ns>_scim` (`Masters::pools[0]`): every SCIM write has a
//! row there (its sync-log entry), so it always takes part. It runs an ordinary transaction;
//! each other master a branch, `XA START … XA END; XA PREPARE`. Once every branch is prepared
//! (durable, and surviving the service's disconnect or crash on MariaDB 10.5 and later), the
//! decision is a row in `<ns>_scimxa.decision` inserted by the coordinator's own transaction:
//! its COMMIT commits the write. Then each branch gets `XA COMMIT`. A failure before the
//! decision rolls every part back; after it, a branch left prepared (the service died, a
//! branch master went away) is committed by [`recover`], which finds it with `XA RECOVER`.
//!
//! `<ns>_scimxa` is a database of its own for the reason `<ns>_scimstage` is
//! (src/db/stage.rs): Phabricator's schema check reports any table of a patch-declared
//! database that no DAO declares.

use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, Executor, MySqlConnection, Row};

use super::{Conn, Db, DbError, DbResult, Lease, Tx, now};

/// The application name of the decision log's database: `<ns>_scimxa`.
pub const XA_APP: &str = "scimxa";

/// `formatID` of the service's XA transactions ("PSXA"), told apart in `XA RECOVER` from any
/// other coordinator's.
pub const FORMAT_ID: u32 = 0x5053_5841;

/// Where a test stops a commit, as a crash there would: every connection closed without a
/// word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Every branch prepared, no decision yet: recovery rolls back.
    AfterPrepare,
    /// The decision committed, no branch committed yet: recovery commits.
    AfterDecision,
}

/// `<ns>_scimxa.decision`, quoted.
fn decision_table(db: &Db) -> String {
    format!("{}.`decision`", db.ns.db(XA_APP))
}

/// Creates the decision log on the coordinator (`migrate` with partitions; tests).
pub async fn install(db: &Db) -> DbResult<()> {
    let mut conn = db.pool.acquire().await?;
    conn.execute(AssertSqlSafe(format!(
        "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        db.ns.db(XA_APP)
    )))
    .await?;
    conn.execute(AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {} (\
           gtrid VARBINARY(64) NOT NULL PRIMARY KEY, \
           dateCreated INT UNSIGNED NOT NULL\
         ) ENGINE=InnoDB",
        decision_table(db)
    )))
    .await?;
    Ok(())
}

/// A global transaction id: `ps-<seconds>-<random>`, the time telling [`recover`] whether the
/// transaction may still be deciding.
fn new_gtrid() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    format!("ps-{}-{:016x}", now(), rng.r#gen::<u64>())
}

/// The seconds in a gtrid of [`new_gtrid`].
fn gtrid_time(gtrid: &str) -> Option<u32> {
    gtrid.strip_prefix("ps-")?.split('-').next()?.parse().ok()
}

/// `'gtrid','bqual',formatID`: the branch qualifier is the namespace, so two namespaces on
/// one server recover only their own.
fn xid(gtrid: &str, db: &Db) -> String {
    // Both are [a-z0-9_-]: nothing to escape.
    format!("'{gtrid}','{}',{FORMAT_ID}", db.ns.as_str())
}

/// The other masters' connections of one operation (index into `Masters::pools`, lease).
/// Dropped, it closes them without returning them to their pools: a connection holding an
/// open or prepared XA branch, or cut off mid-statement, must not serve another request.
/// [`Branches::release`] returns them once they are known to be clean.
#[derive(Debug, Default)]
pub struct Branches {
    pub(crate) list: Vec<(usize, Lease)>,
}

impl Branches {
    /// Whether no other master was reached.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Returns the connections to their pools (each is outside any transaction).
    pub fn release(mut self) {
        self.list.clear();
    }
}

impl Drop for Branches {
    fn drop(&mut self) {
        for (_, lease) in self.list.drain(..) {
            drop(lease.detach());
        }
    }
}

/// A write in progress on several masters.
pub struct CrossWrite {
    gtrid: String,
    coordinator: Tx,
    /// Each other master taking part and its branch's connection.
    branches: Branches,
}

impl CrossWrite {
    /// Begins the coordinator's transaction and a branch on each of `masters` but the
    /// coordinator (0). A master that cannot be reached fails it here, before anything is
    /// written ([`DbError::is_unavailable`]: 503).
    pub async fn begin(db: &Db, masters: &[usize]) -> DbResult<Self> {
        let gtrid = new_gtrid();
        let coordinator = db.pool.begin().await?;
        let mut write = Self {
            gtrid,
            coordinator,
            branches: Branches::default(),
        };
        let mut wanted: Vec<usize> = masters.iter().copied().filter(|&m| m != 0).collect();
        wanted.sort_unstable();
        wanted.dedup();
        for m in wanted {
            let pool = &db
                .masters
                .pools
                .get(m)
                .ok_or_else(|| DbError::Inconsistent(format!("no master {m}")))?
                .1;
            let mut lease = match pool.acquire().await {
                Ok(lease) => lease,
                Err(e) => {
                    write.rollback(db).await;
                    return Err(e.into());
                }
            };
            if let Err(e) = lease
                .execute(AssertSqlSafe(format!("XA START {}", xid(&write.gtrid, db))))
                .await
            {
                write.rollback(db).await;
                return Err(e.into());
            }
            write.branches.list.push((m, lease));
        }
        Ok(write)
    }

    /// The connection writing master `m`'s rows (the coordinator's for 0).
    pub fn conn(&mut self, m: usize) -> DbResult<&mut Conn> {
        if m == 0 {
            return Ok(&mut *self.coordinator);
        }
        self.branches
            .list
            .iter_mut()
            .find(|(i, _)| *i == m)
            .map(|(_, lease)| &mut **lease)
            .ok_or_else(|| DbError::Inconsistent(format!("master {m} is not part of the write")))
    }

    /// Commits on every master, or on none.
    pub async fn commit(self, db: &Db) -> DbResult<()> {
        self.commit_until(db, None).await
    }

    /// [`CrossWrite::commit`], stopping as a crash would at `stop` (tests).
    pub async fn commit_until(self, db: &Db, stop: Option<Stop>) -> DbResult<()> {
        commit_parts(db, &self.gtrid, self.coordinator, self.branches, stop).await
    }

    /// Rolls every part back ([`rollback_parts`]).
    pub async fn rollback(self, db: &Db) {
        rollback_parts(db, &self.gtrid, self.coordinator, self.branches).await;
    }
}

/// A new write's global transaction id and the XA id its branches start with.
pub fn new_xid(db: &Db) -> (String, String) {
    let gtrid = new_gtrid();
    let xid = xid(&gtrid, db);
    (gtrid, xid)
}

/// Commits a write on every master or on none: each branch (`XA START`ed with the xid of
/// `gtrid`) prepared, the decision row inserted and committed with the coordinator's
/// transaction, then each branch committed. Stops as a crash would at `stop` (tests).
pub async fn commit_parts(
    db: &Db,
    gtrid: &str,
    mut coordinator: sqlx::Transaction<'_, sqlx::MySql>,
    mut branches: Branches,
    stop: Option<Stop>,
) -> DbResult<()> {
    let xid = xid(gtrid, db);
    // Phase one: every branch prepared, or everything rolled back.
    for i in 0..branches.list.len() {
        let prepared = async {
            let conn = &mut branches.list[i].1;
            conn.execute(AssertSqlSafe(format!("XA END {xid}"))).await?;
            conn.execute(AssertSqlSafe(format!("XA PREPARE {xid}")))
                .await?;
            Ok::<_, sqlx::Error>(())
        }
        .await;
        if let Err(e) = prepared {
            rollback_parts(db, gtrid, coordinator, branches).await;
            return Err(e.into());
        }
    }
    if stop == Some(Stop::AfterPrepare) {
        drop(coordinator);
        drop(branches);
        return Err(DbError::Timeout("a test's crash after XA PREPARE"));
    }
    // The decision: the coordinator's commit, with its row.
    let decided = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (gtrid, dateCreated) VALUES (?, ?)",
        decision_table(db)
    )))
    .bind(gtrid)
    .bind(now())
    .execute(&mut *coordinator)
    .await;
    if let Err(e) = decided {
        rollback_parts(db, gtrid, coordinator, branches).await;
        return Err(e.into());
    }
    if let Err(e) = coordinator.commit().await {
        // Refused (then nothing is decided), or unknown (the connection broke during
        // COMMIT): the branches stay prepared and `recover` settles them by the row.
        tracing::warn!(gtrid, error = %e, "XA decision not confirmed: recovery settles it");
        drop(branches);
        return Err(e.into());
    }
    if stop == Some(Stop::AfterDecision) {
        drop(branches);
        return Err(DbError::Timeout("a test's crash after the XA decision"));
    }
    // Phase two: decided; a branch not committed now is committed by `recover`.
    let mut unfinished = 0;
    for (m, lease) in &mut branches.list {
        if let Err(e) = lease
            .execute(AssertSqlSafe(format!("XA COMMIT {xid}")))
            .await
        {
            unfinished += 1;
            tracing::warn!(gtrid, master = *m, error = %e, "XA COMMIT failed: recovery commits it");
        }
    }
    // One that failed: every connection closed (dropped).
    if unfinished == 0 {
        branches.release();
        // Best effort: `recover` removes what is left.
        let _ = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {} WHERE gtrid = ?",
            decision_table(db)
        )))
        .bind(gtrid)
        .execute(&db.pool)
        .await;
    }
    Ok(())
}

/// Rolls every part of a write back (best effort: a branch whose master went away is rolled
/// back by its server when the connection closes, or, if it was prepared, by [`recover`]).
pub async fn rollback_parts(
    db: &Db,
    gtrid: &str,
    coordinator: sqlx::Transaction<'_, sqlx::MySql>,
    branches: Branches,
) {
    let _ = coordinator.rollback().await;
    rollback_branches(db, gtrid, branches).await;
}

/// Rolls the branches of a write back (see [`rollback_parts`]).
pub async fn rollback_branches(db: &Db, gtrid: &str, mut branches: Branches) {
    let xid = xid(gtrid, db);
    let mut clean = true;
    for (_, lease) in &mut branches.list {
        // XA END fails once ended; XA ROLLBACK works both from ACTIVE-ended and PREPARED.
        let _ = lease.execute(AssertSqlSafe(format!("XA END {xid}"))).await;
        clean &= lease
            .execute(AssertSqlSafe(format!("XA ROLLBACK {xid}")))
            .await
            .is_ok();
    }
    // One that failed: every connection closed (dropped); the server rolls back what was not
    // prepared, and `recover` what was.
    if clean {
        branches.release();
    }
}

/// What [`recover`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Prepared branches committed (their decision row exists).
    pub committed: usize,
    /// Prepared branches rolled back (no decision was made).
    pub rolled_back: usize,
    /// Prepared branches left alone: too recent for their coordinator to be done deciding.
    pub recent: usize,
}

/// Settles the branches of this namespace left prepared on any master (`XA RECOVER`) whose
/// transaction began more than `settled_after` ago, so that its coordinator can no longer be
/// deciding (at least `transaction_timeout_secs`): committed when the coordinator holds its
/// decision row, else rolled back. Run at start and periodically; idempotent.
pub async fn recover(db: &Db, settled_after: Duration) -> DbResult<Recovered> {
    let mut done = Recovered::default();
    let cutoff = now().saturating_sub(u32::try_from(settled_after.as_secs()).unwrap_or(u32::MAX));
    for (_, pool) in db.masters.pools.iter().skip(1) {
        // A connection of its own: a pooled one may be from before the master restarted.
        let mut conn = MySqlConnection::connect_with(&pool.connect_options()).await?;
        let rows = conn.fetch_all("XA RECOVER").await?;
        for row in rows {
            let format: i64 = row.try_get(0)?;
            let gtrid_len: i64 = row.try_get(1)?;
            let data: Vec<u8> = row.try_get(3)?;
            if format != i64::from(FORMAT_ID) {
                continue;
            }
            let split = usize::try_from(gtrid_len).unwrap_or(0).min(data.len());
            let (gtrid, bqual) = data.split_at(split);
            if bqual != db.ns.as_str().as_bytes() {
                continue;
            }
            let Ok(gtrid) = std::str::from_utf8(gtrid) else {
                continue;
            };
            match gtrid_time(gtrid) {
                None => continue,
                Some(t) if t > cutoff => {
                    done.recent += 1;
                    continue;
                }
                Some(_) => {}
            }
            let decided: Option<(i64,)> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT 1 FROM {} WHERE gtrid = ?",
                decision_table(db)
            )))
            .bind(gtrid)
            .fetch_optional(&db.pool)
            .await?;
            let xid = xid(gtrid, db);
            if decided.is_some() {
                conn.execute(AssertSqlSafe(format!("XA COMMIT {xid}")))
                    .await?;
                done.committed += 1;
            } else {
                conn.execute(AssertSqlSafe(format!("XA ROLLBACK {xid}")))
                    .await?;
                done.rolled_back += 1;
            }
        }
    }
    // Decisions whose branches are all settled (the commit's own delete may have failed).
    sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {} WHERE dateCreated < ?",
        decision_table(db)
    )))
    .bind(cutoff)
    .execute(&db.pool)
    .await?;
    Ok(done)
}

/// [`recover`], waiting for the branches too recent to settle until they are old enough: for
/// a command that needs the rows such a branch holds locked (`apply` resuming after it was
/// killed mid-commit). Waits at most `settled_after` and a little more, so a steady stream of
/// new writes cannot hold it.
pub async fn recover_waiting(db: &Db, settled_after: Duration) -> DbResult<Recovered> {
    let give_up = tokio::time::Instant::now() + settled_after + Duration::from_secs(2);
    let mut total = Recovered::default();
    loop {
        let r = recover(db, settled_after).await?;
        total.committed += r.committed;
        total.rolled_back += r.rolled_back;
        total.recent = r.recent;
        if r.recent == 0 || tokio::time::Instant::now() >= give_up {
            return Ok(total);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtrids_carry_their_time_and_fit_xa() {
        let g = new_gtrid();
        assert!(g.len() <= 64, "{g}");
        let t = gtrid_time(&g).unwrap_or(0);
        assert!(t + 1 >= now() && t <= now(), "{g}");
        assert_eq!(gtrid_time("other-1-2"), None);
    }
}
