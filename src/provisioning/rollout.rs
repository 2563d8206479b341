//! A staged rollout, the domain's side (docs/design.md#staged-rollout). In staged mode every
//! write runs exactly as in live mode, on copies of Phabricator's tables (`db::stage`): the
//! IdP gets the answers live mode would give, and reads back what it wrote. Each write's
//! sync-log row is also a plan entry (what it would do to Phabricator), and the write itself
//! an operation that `apply` replays later on the real tables, through the same code, each in
//! its own transaction with the mark that it was applied.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;

use super::synclog::Entry;
use super::{Ctx, ProvisionError, Provisioner, Result};
use crate::db::phabricator::{Phid, PhidKind, random_chars};
use crate::db::sidecar::ResourceType;
use crate::db::stage::{self, NewStageOp, PlanEntryRow};
use crate::db::{Conns, DbError};

/// A SCIM write, as `apply` replays it (`PhabricatorScimStageOp::OPERATION_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    CreateUser,
    ReplaceUser,
    PatchUser,
    DeleteUser,
    CreateGroup,
    ReplaceGroup,
    PatchGroup,
    DeleteGroup,
}

impl Operation {
    pub const ALL: [Operation; 8] = [
        Operation::CreateUser,
        Operation::ReplaceUser,
        Operation::PatchUser,
        Operation::DeleteUser,
        Operation::CreateGroup,
        Operation::ReplaceGroup,
        Operation::PatchGroup,
        Operation::DeleteGroup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::CreateUser => "user.create",
            Operation::ReplaceUser => "user.replace",
            Operation::PatchUser => "user.patch",
            Operation::DeleteUser => "user.delete",
            Operation::CreateGroup => "group.create",
            Operation::ReplaceGroup => "group.replace",
            Operation::PatchGroup => "group.patch",
            Operation::DeleteGroup => "group.delete",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// The resource it writes.
    pub fn resource(self) -> ResourceType {
        match self {
            Operation::CreateUser
            | Operation::ReplaceUser
            | Operation::PatchUser
            | Operation::DeleteUser => ResourceType::User,
            _ => ResourceType::Group,
        }
    }

    pub fn is_create(self) -> bool {
        matches!(self, Operation::CreateUser | Operation::CreateGroup)
    }
}

/// What a plan entry announces (`PhabricatorScimPlanEntry::KIND_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanKind {
    UserCreate,
    UserAdopt,
    UserRehire,
    UserUpdate,
    UserDeactivate,
    UserReactivate,
    UserDelete,
    GroupCreate,
    GroupAdopt,
    GroupUpdate,
    GroupDelete,
    GroupMembers,
    Conflict,
}

impl PlanKind {
    pub const ALL: [PlanKind; 13] = [
        PlanKind::UserCreate,
        PlanKind::UserAdopt,
        PlanKind::UserRehire,
        PlanKind::UserUpdate,
        PlanKind::UserDeactivate,
        PlanKind::UserReactivate,
        PlanKind::UserDelete,
        PlanKind::GroupCreate,
        PlanKind::GroupAdopt,
        PlanKind::GroupUpdate,
        PlanKind::GroupDelete,
        PlanKind::GroupMembers,
        PlanKind::Conflict,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PlanKind::UserCreate => "user.create",
            PlanKind::UserAdopt => "user.adopt",
            PlanKind::UserRehire => "user.rehire",
            PlanKind::UserUpdate => "user.update",
            PlanKind::UserDeactivate => "user.deactivate",
            PlanKind::UserReactivate => "user.reactivate",
            PlanKind::UserDelete => "user.delete",
            PlanKind::GroupCreate => "group.create",
            PlanKind::GroupAdopt => "group.adopt",
            PlanKind::GroupUpdate => "group.update",
            PlanKind::GroupDelete => "group.delete",
            PlanKind::GroupMembers => "group.members",
            PlanKind::Conflict => "conflict",
        }
    }

    /// The kind of a write that was done, from its resource, the outcome word of its log line
    /// and what it changed; `None` when it changed nothing (nothing to review).
    fn of(resource: ResourceType, outcome: &str, details: &Value) -> Option<Self> {
        let has = |key: &str| details.get(key).is_some();
        Some(match (resource, outcome) {
            (_, "unchanged") => return None,
            (ResourceType::User, "created") => PlanKind::UserCreate,
            (ResourceType::User, "adopted") => PlanKind::UserAdopt,
            (ResourceType::User, "rehired") => PlanKind::UserRehire,
            (ResourceType::User, "deactivated" | "made a bot") => PlanKind::UserDeactivate,
            (ResourceType::User, "reactivated") => PlanKind::UserReactivate,
            (ResourceType::User, "deleted") => PlanKind::UserDelete,
            (ResourceType::User, _) => PlanKind::UserUpdate,
            (ResourceType::Group, "created") => PlanKind::GroupCreate,
            (ResourceType::Group, "adopted") => PlanKind::GroupAdopt,
            (ResourceType::Group, "deleted") => PlanKind::GroupDelete,
            (ResourceType::Group, _) if has("members") && !has("name") => PlanKind::GroupMembers,
            (ResourceType::Group, _) => PlanKind::GroupUpdate,
        })
    }
}

/// The operation a write is, in a staged rollout or while `apply` replays it.
#[derive(Clone, Debug)]
pub struct StageOp {
    /// Tells apart the operations of one request (a Bulk request has many).
    pub key: String,
    pub operation: Operation,
    /// The resource: the id in the path; for a create, the PHID a new account or project gets.
    pub object: String,
    /// For a create: the PHID a new account or project gets, the id the IdP keeps (so that it
    /// stays valid once applied).
    pub created: Option<Phid>,
    /// The request body (`null` for a DELETE).
    pub request: Value,
    /// While `apply` replays it: the operation's id, marked applied in the same transaction.
    pub applying: Option<u32>,
}

impl Ctx {
    /// The PHID a new account or project of this request gets, when a staged rollout chose it
    /// (`StageOp::object`); else the caller makes a new one.
    pub(super) fn staged_new_phid(&self) -> Option<Phid> {
        self.stage.as_ref().and_then(|op| op.created.clone())
    }
}

impl Provisioner {
    /// The context of a write: in a staged rollout, with the operation it records. Live, or
    /// replayed by `apply` (which sets the operation itself), the context as it is.
    pub(super) fn stage_ctx<'a>(
        &self,
        ctx: &'a Ctx,
        operation: Operation,
        object: Option<&str>,
        request: Option<&Value>,
    ) -> Cow<'a, Ctx> {
        if !self.db.staged || ctx.stage.is_some() {
            return Cow::Borrowed(ctx);
        }
        let kind = if operation.resource() == ResourceType::User {
            PhidKind::User
        } else {
            PhidKind::Project
        };
        let created = operation.is_create().then(|| Phid::new(kind));
        let object = match (&created, object) {
            (Some(phid), _) => phid.to_string(),
            (None, object) => object.unwrap_or_default().to_owned(),
        };
        let op = StageOp {
            key: random_chars(20),
            operation,
            object,
            created,
            request: request.cloned().unwrap_or(Value::Null),
            applying: None,
        };
        Cow::Owned(Ctx {
            stage: Some(Arc::new(op)),
            ..ctx.clone()
        })
    }

    /// The staged side of a write's sync-log row, in its transaction: staged, its operation
    /// (once) and its plan entry; replayed by `apply`, the check that it did what was staged
    /// and the mark that it is applied.
    pub(super) async fn stage_done(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        op: &StageOp,
        entry: &Entry<'_>,
        details: &Value,
    ) -> Result<()> {
        let t = &*self.db.t;
        let own = entry.resource == op.operation.resource();
        if let Some(id) = op.applying {
            if own && op.operation.is_create() && entry.phid != Some(op.object.as_str()) {
                return Err(ProvisionError::Conflict(format!(
                    "Phabricator changed since the plan was staged: the staged {} made or adopted {}, now it would be {}; stage the rollout again",
                    op.operation.as_str(),
                    op.object,
                    entry.phid.unwrap_or("-"),
                )));
            }
            stage::mark_applied(conn, t, id).await?;
            return Ok(());
        }
        // A create that adopted: the id the IdP got is the adopted account's.
        let object = match entry.phid {
            Some(phid) if own => phid,
            _ => op.object.as_str(),
        };
        let request = op.request.to_string();
        let op_id = stage::record_op(
            conn,
            t,
            &NewStageOp {
                op_key: &op.key,
                operation: op.operation.as_str(),
                object_phid: object,
                request: &request,
                request_id: &ctx.request_id,
                token_id: ctx.token_id,
                actor_phid: &ctx.actor_phid,
                remote_addr: &ctx.remote_addr,
            },
        )
        .await?;
        let Some(kind) = PlanKind::of(entry.resource, entry.outcome, details) else {
            return Ok(());
        };
        let row = PlanEntryRow {
            stage_op_id: Some(op_id),
            kind: kind.as_str(),
            resource_type: entry.resource.as_str(),
            object_phid: entry.phid,
            status: entry.status,
            summary: entry.summary,
            details: details.to_string(),
        };
        stage::insert_plan_entry(conn, t, &row).await?;
        Ok(())
    }

    /// A staged write that was refused is a plan entry too (a conflict the administrator
    /// resolves before applying): written on its own, since the write's transaction rolled
    /// back. `status` is the one the IdP got (`http::error` decides it). Not a missing
    /// resource, a failed precondition or an unavailable service: nothing the plan would change.
    pub async fn stage_refused(
        &self,
        ctx: &Ctx,
        resource: ResourceType,
        object: Option<&str>,
        status: u16,
        reason: &str,
    ) {
        if !self.db.staged || ctx.stage.is_some() || matches!(status, 404 | 412 | 503) {
            return;
        }
        let details = serde_json::json!({
            "reason": reason,
            "method": ctx.method,
            "path": ctx.path,
        });
        let summary = format!("refused {} {}: {reason}", ctx.method, ctx.path);
        let row = PlanEntryRow {
            stage_op_id: None,
            kind: PlanKind::Conflict.as_str(),
            resource_type: resource.as_str(),
            object_phid: object,
            status,
            summary: &summary,
            details: details.to_string(),
        };
        let db = &self.db;
        let written = db
            .within(db.deadline(), "the plan", async |conn: &mut Conns<'_>| {
                stage::insert_plan_entry(conn, &db.t, &row).await
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not write the plan entry of a refused write");
        }
    }
}

/// Holds the rollout's phase for a staged write's transaction (`stage::hold_phase`): a write
/// that finds the plan being applied, or applied, is refused and retried by the IdP; by then
/// the service writes Phabricator itself.
pub(super) async fn hold_staged(conn: &mut Conns<'_>, db: &crate::db::Db) -> Result<()> {
    match stage::hold_phase(conn, &db.t).await? {
        Some(stage::Phase::Staged) => Ok(()),
        Some(_) => Err(ProvisionError::RolloutApplying),
        None => Err(DbError::Inconsistent("staged mode without a staged rollout".into()).into()),
    }
}

/// How long the service trusts the phase it read: staged writes check it again in their
/// transaction (`hold_staged`), so a stale phase costs a staged read at most this long after
/// `apply` ended, or one 503 the IdP retries.
pub(super) const PHASE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// In staged mode, which provisioner serves a request: the staged one (the copies) until the
/// plan is applied, then the live one.
#[derive(Debug)]
pub struct Switch {
    live: Provisioner,
    staged: Provisioner,
    phase: std::sync::Mutex<Option<(stage::Phase, tokio::time::Instant)>>,
}

impl Switch {
    pub fn new(live: Provisioner) -> Self {
        let staged = Provisioner {
            db: live.db.staged(),
            cfg: live.cfg.clone(),
        };
        Self {
            live,
            staged,
            phase: std::sync::Mutex::new(None),
        }
    }

    /// The provisioner for a request now. A phase that cannot be read counts as staged: its
    /// writes then fail their own check (503) and its reads see what the IdP wrote.
    pub async fn current(&self) -> &Provisioner {
        match self.phase().await {
            Some(stage::Phase::Applied) => &self.live,
            _ => &self.staged,
        }
    }

    /// The rollout's phase, read at most once per [`PHASE_TTL`].
    pub async fn phase(&self) -> Option<stage::Phase> {
        let now = tokio::time::Instant::now();
        if let Ok(cached) = self.phase.lock()
            && let Some((phase, at)) = *cached
            && now.duration_since(at) < PHASE_TTL
        {
            return Some(phase);
        }
        let db = &self.live.db;
        let read: crate::db::DbResult<Option<stage::Rollout>> = db
            .read(async |conn: &mut Conns<'_>| stage::rollout(conn, &db.t).await)
            .await;
        let phase = read.ok().flatten().map(|r| r.phase);
        if let (Some(phase), Ok(mut cached)) = (phase, self.phase.lock()) {
            *cached = Some((phase, now));
        }
        phase
    }
}

#[cfg(test)]
mod tests {
    use super::{Operation, PlanKind};
    use crate::db::stage::Phase;

    /// The extension's classes, which read these rows for the Plan page.
    const ENTRY: &str =
        include_str!("../../phabricator-ext/src/storage/PhabricatorScimPlanEntry.php");
    const OP: &str = include_str!("../../phabricator-ext/src/storage/PhabricatorScimStageOp.php");
    const ROLLOUT: &str =
        include_str!("../../phabricator-ext/src/storage/PhabricatorScimRollout.php");

    /// `user.create` is `KIND_USER_CREATE`.
    fn constant(prefix: &str, value: &str) -> String {
        let name = value.replace('.', "_").to_ascii_uppercase();
        format!("const {prefix}_{name} = '{value}';")
    }

    #[test]
    fn values_are_the_extensions_constants() {
        for kind in PlanKind::ALL {
            let c = constant("KIND", kind.as_str());
            assert!(ENTRY.contains(&c), "PhabricatorScimPlanEntry lacks {c}");
        }
        for op in Operation::ALL {
            let c = constant("OPERATION", op.as_str());
            assert!(OP.contains(&c), "PhabricatorScimStageOp lacks {c}");
            assert_eq!(Operation::parse(op.as_str()), Some(op));
        }
        for state in ["staged", "applied", "failed"] {
            let c = constant("STATE", state);
            assert!(OP.contains(&c), "PhabricatorScimStageOp lacks {c}");
        }
        for phase in [Phase::Staged, Phase::Applying, Phase::Applied] {
            let c = constant("PHASE", phase.as_str());
            assert!(ROLLOUT.contains(&c), "PhabricatorScimRollout lacks {c}");
        }
    }
}
