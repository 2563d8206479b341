//! Beginning a staged rollout and applying its plan (`phab-scim stage`, `phab-scim apply`;
//! docs/design.md#staged-rollout).
//!
//! `apply` replays the staged operations in the order the IdP made them, each through the
//! same code as a live request, in its own transaction, which also marks the operation applied:
//! a crash or a kill leaves every operation either applied with its mark or not at all, and
//! `apply` again goes on from the first one not applied. The first refusal stops it (later
//! operations may depend on that one), marked failed with the reason; the administrator fixes
//! the cause and runs `apply` again.

use std::sync::Arc;

use serde_json::Value;

use super::rollout::{Operation, StageOp};
use super::{Ctx, ProvisionError, Provisioner, Result};
use crate::db::stage::{self, Phase, StageOpRow};
use crate::db::{Conns, DbError};
use crate::scim::resource::Preconditions;

/// How long after the phase turns `applied` a staged-mode service may still read the copies:
/// it trusts the phase it read for `rollout::PHASE_TTL`, and a read begun then must end.
const COPIES_LAST_READ: std::time::Duration =
    std::time::Duration::from_secs(super::rollout::PHASE_TTL.as_secs() * 3);

/// Whatever a staged rollout is doing, `stage` and `apply` say why they will not run.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// `stage` would discard a rollout that has operations.
    #[error(
        "a staged rollout is already {phase} here with {ops} operations; `phab-scim stage --discard` forgets it and starts over"
    )]
    Exists { phase: &'static str, ops: u64 },
    /// `apply` without a rollout.
    #[error("no staged rollout was begun here (`phab-scim stage`)")]
    NotStaged,
    /// Another `apply` holds the lock.
    #[error("another `phab-scim apply` is running on this namespace")]
    Busy,
    /// The provisioning layer failed.
    #[error(transparent)]
    Provision(#[from] ProvisionError),
}

impl From<DbError> for RolloutError {
    fn from(e: DbError) -> Self {
        RolloutError::Provision(e.into())
    }
}

/// What `stage` copied: rows per table.
#[derive(Debug, Default)]
pub struct StageReport {
    pub copied: Vec<(String, u64)>,
}

/// How `apply` ended.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Operations applied by this run.
    pub applied: usize,
    /// Operations an earlier run had applied.
    pub already: u64,
    /// Why the staged copies are still there, when they could not be dropped (the service's
    /// own account, which applies a plan asked for on the Plan page, may not drop them).
    pub copies_left: Option<String>,
    /// The operation that was refused, and why: `apply` stopped there.
    pub failed: Option<(u32, String)>,
}

impl Provisioner {
    /// Begins a staged rollout: copies the tables a SCIM write changes (`db::stage`) and
    /// starts an empty plan. Refuses to discard one that has operations, unless `discard`.
    pub async fn begin_stage(
        &self,
        discard: bool,
    ) -> std::result::Result<StageReport, RolloutError> {
        let db = &self.db;
        let mut conn = db.pool.acquire().await.map_err(DbError::from)?;
        if let Some(r) = stage::rollout(&mut crate::db::Conns::of(db, &mut conn), &db.t).await? {
            let counts =
                stage::plan_counts(&mut crate::db::Conns::of(db, &mut conn), &db.t).await?;
            let ops: u64 = counts.ops.iter().map(|(_, n)| n).sum();
            if r.phase == Phase::Applying || (ops > 0 && !discard) {
                return Err(RolloutError::Exists {
                    phase: r.phase.as_str(),
                    ops,
                });
            }
        }
        stage::create_copies(db).await?;
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(DbError::from)?;
        let copied = stage::copy_rows(&mut crate::db::Conns::of(db, &mut tx), db).await?;
        stage::restart_plan(&mut crate::db::Conns::of(db, &mut tx), &db.t).await?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(StageReport { copied })
    }

    /// Applies the plan (see the module's documentation); `progress` hears of each operation.
    pub async fn apply_plan(
        &self,
        mut progress: impl FnMut(&StageOpRow, &Result<()>),
    ) -> std::result::Result<ApplyReport, RolloutError> {
        let db = &self.db;
        // Held for the whole run, on a connection of its own: one `apply` at a time.
        let mut lock = db.pool.acquire().await.map_err(DbError::from)?;
        let lock_name = format!("phab-scim apply {}", db.ns.as_str());
        let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 0)")
            .bind(&lock_name)
            .fetch_one(&mut *lock)
            .await
            .map_err(DbError::from)?;
        if got != Some(1) {
            return Err(RolloutError::Busy);
        }
        let report = self.apply_locked(&mut progress).await;
        let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
            .bind(&lock_name)
            .execute(&mut *lock)
            .await;
        report
    }

    async fn apply_locked(
        &self,
        progress: &mut impl FnMut(&StageOpRow, &Result<()>),
    ) -> std::result::Result<ApplyReport, RolloutError> {
        let db = &self.db;
        if !db.masters.is_single() {
            // An apply killed mid-commit may have left a branch prepared on another master,
            // holding the rows the next operation writes: settled first (`xa::recover`).
            let settled_after = db.timeouts.operation + std::time::Duration::from_secs(1);
            let done = crate::db::xa::recover_waiting(db, settled_after).await?;
            if done.committed + done.rolled_back > 0 {
                tracing::warn!(
                    committed = done.committed,
                    rolled_back = done.rolled_back,
                    "settled writes across masters left prepared"
                );
            }
        }
        let mut conn = db.pool.acquire().await.map_err(DbError::from)?;
        let rollout = stage::rollout(&mut crate::db::Conns::of(db, &mut conn), &db.t)
            .await?
            .ok_or(RolloutError::NotStaged)?;
        let mut report = ApplyReport::default();
        if rollout.phase == Phase::Staged {
            // Waits for the staged writes in flight (they hold the phase shared) and turns
            // away later ones (503): the plan is complete from here on.
            let mut tx = sqlx::Connection::begin(&mut *conn)
                .await
                .map_err(DbError::from)?;
            stage::set_phase(
                &mut crate::db::Conns::of(db, &mut tx),
                &db.t,
                Phase::Applying,
            )
            .await?;
            tx.commit().await.map_err(DbError::from)?;
        }
        let counts = stage::plan_counts(&mut crate::db::Conns::of(db, &mut conn), &db.t).await?;
        report.already = counts
            .ops
            .iter()
            .find(|(state, _)| state == "applied")
            .map_or(0, |(_, n)| *n);
        for op in stage::pending_ops(&mut crate::db::Conns::of(db, &mut conn), &db.t).await? {
            let result = self.replay(&op).await;
            progress(&op, &result);
            if let Err(e) = result {
                let why = e.reason().map_or_else(|| e.to_string(), str::to_owned);
                stage::mark_failed(&mut crate::db::Conns::of(db, &mut conn), &db.t, op.id, &why)
                    .await?;
                report.failed = Some((op.id, why));
                return Ok(report);
            }
            // Its transaction marked it (`Provisioner::stage_done`); marked again in case a
            // write ever ends without a sync-log row, so a resumed run never repeats it.
            stage::mark_applied(&mut crate::db::Conns::of(db, &mut conn), &db.t, op.id).await?;
            report.applied += 1;
        }
        if rollout.phase != Phase::Applied {
            stage::set_phase(
                &mut crate::db::Conns::of(db, &mut conn),
                &db.t,
                Phase::Applied,
            )
            .await?;
        }
        // The copies hold people's names and addresses: gone once nothing reads them. A
        // staged-mode service reads the phase at most a second late (`rollout::Switch`).
        tokio::time::sleep(COPIES_LAST_READ).await;
        if let Err(e) = stage::drop_copies(db).await {
            report.copies_left = Some(e.to_string());
        }
        Ok(report)
    }

    /// Applies the plan when an administrator asked for it on the Plan page (the service's
    /// background loop calls this in staged mode): the request is claimed first, so one replica
    /// runs it once; a second `apply` at the same time finds the lock taken. `None`: nothing
    /// was asked.
    pub async fn apply_if_requested(
        &self,
    ) -> std::result::Result<Option<ApplyReport>, RolloutError> {
        let db = &self.db;
        let mut conn = db.pool.acquire().await.map_err(DbError::from)?;
        if !stage::claim_apply_request(&mut crate::db::Conns::of(db, &mut conn), &db.t).await? {
            return Ok(None);
        }
        drop(conn);
        tracing::info!("applying the staged plan, as an administrator asked on the Plan page");
        let report = self.apply_plan(|_, _| {}).await?;
        match &report.failed {
            Some((id, why)) => tracing::warn!(
                operation = id,
                reason = %why,
                "the staged plan stopped at an operation (the Plan page shows it); fix the cause and apply again"
            ),
            None => tracing::info!(applied = report.applied, "the staged plan is applied"),
        }
        if let Some(why) = &report.copies_left {
            tracing::warn!(
                error = %why,
                "the staged copies could not be dropped: drop <namespace>_scimstage with the migrate account"
            );
        }
        Ok(Some(report))
    }

    /// One staged operation, as the live request would have run it, with the ids the staged
    /// one gave the IdP. No precondition: the staged request passed its own.
    async fn replay(&self, row: &StageOpRow) -> Result<()> {
        let operation = Operation::parse(&row.operation).ok_or_else(|| {
            DbError::Inconsistent(format!("unknown staged operation {:?}", row.operation))
        })?;
        let body: Value = serde_json::from_str(&row.request)
            .map_err(|e| DbError::Inconsistent(format!("staged request {}: {e}", row.id)))?;
        let (method, collection) = replay_route(operation);
        let path = if operation == Operation::CreateUser || operation == Operation::CreateGroup {
            format!("/scim/v2/{collection}")
        } else {
            format!("/scim/v2/{collection}/{}", row.object_phid)
        };
        let ctx = Ctx {
            request_id: row.request_id.clone(),
            token_id: row.token_id,
            actor_phid: row.actor_phid.clone(),
            method: method.to_owned(),
            path,
            remote_addr: row.remote_addr.clone(),
            stage: Some(Arc::new(StageOp {
                key: String::new(),
                operation,
                object: row.object_phid.to_string(),
                created: operation.is_create().then(|| row.object_phid.clone()),
                request: body.clone(),
                applying: Some(row.id),
            })),
        };
        let id = row.object_phid.as_str();
        let none = Preconditions::if_match(None);
        match operation {
            Operation::CreateUser => self.create_user(&ctx, &body).await.map(drop),
            Operation::ReplaceUser => self.replace_user(&ctx, id, &body, none).await.map(drop),
            Operation::PatchUser => self.patch_user(&ctx, id, &body, none).await.map(drop),
            Operation::DeleteUser => self.delete_user(&ctx, id, none).await,
            Operation::CreateGroup => self.create_group(&ctx, &body).await.map(drop),
            Operation::ReplaceGroup => self.replace_group(&ctx, id, &body, none).await.map(drop),
            Operation::PatchGroup => self.patch_group(&ctx, id, &body, none, 200).await.map(drop),
            Operation::DeleteGroup => self.delete_group(&ctx, id, none).await,
        }
    }

    /// The rollout's phase and its plan's counts, for `status` and the Status page.
    pub async fn rollout_state(&self) -> Result<Option<(stage::Rollout, stage::PlanCounts)>> {
        let db = &self.db;
        db.read(async |conn: &mut Conns<'_>| {
            let Some(r) = stage::rollout(conn, &db.t).await? else {
                return Ok(None);
            };
            Ok(Some((r, stage::plan_counts(conn, &db.t).await?)))
        })
        .await
    }
}

/// The method and collection of an operation, for the sync log of its replay.
fn replay_route(op: Operation) -> (&'static str, &'static str) {
    let method = match op {
        Operation::CreateUser | Operation::CreateGroup => "POST",
        Operation::ReplaceUser | Operation::ReplaceGroup => "PUT",
        Operation::PatchUser | Operation::PatchGroup => "PATCH",
        Operation::DeleteUser | Operation::DeleteGroup => "DELETE",
    };
    let collection = match op.resource() {
        crate::db::sidecar::ResourceType::User => "Users",
        crate::db::sidecar::ResourceType::Group => "Groups",
    };
    (method, collection)
}
