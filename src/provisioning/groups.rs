//! Groups: create (or adopt), read, list, replace, patch, delete (archive).
//!
//! A group is a Phabricator project (docs/design.md#groups-are-projects). Every write runs in
//! one transaction (`in_transaction`) that locks the `scim_group` row and the project row
//! `FOR UPDATE`, writes what `PhabricatorProjectTransactionEditor` writes (docs/write-paths.md,
//! Create a group to Replace the membership: the project row re-save, slugs, datasource tokens,
//! `project_transaction` rows, edges 13/14/60), records its `scim_event` row and queues the
//! publish worker last (project edits queue no search task: docs/write-paths.md#daemon-tasks).
//! Memberships change as deltas (`db::phabricator::edge`), never as a rewrite of the set.

use std::collections::HashSet;

use serde_json::{Map, Value, json};
use tracing::instrument;

use super::rollout::Operation;
use super::synclog::{Diff, Entry};
use super::users::Created;
use super::{Ctx, ProvisionError, Provisioner, Result, in_transaction, log_update, log_write};
use crate::db::phabricator::Phid;
use crate::db::phabricator::edge;
use crate::db::phabricator::project::{self as pp, NewProject, ProjectChanges, ProjectRow};
use crate::db::phabricator::worker::{self, Task};
use crate::db::phabricator::xaction::{self, Xaction, XactionGroup};
use crate::db::sidecar::{self, ResourceType, ScimGroupFields, ScimGroupView};
use crate::db::{Conns, DbError, filter_sql, now};
use crate::scim::group::{
    GroupSpec, MemberFields, MemberPlan, split_patch, stored_doc, write_member,
};
use crate::scim::list::ListParams;
use crate::scim::patch;
use crate::scim::query::{self, GroupField, GroupFilter};
use crate::scim::resource::{Preconditions, normalize};
use crate::scim::schema::Resource;

/// Phabricator's default view and edit policy of new projects when the Projects application
/// has no configured defaults (docs/phabricator-tables.md#projects).
const DEFAULT_POLICY: &str = "users";

/// A managed group as SCIM shows it (members are streamed separately).
#[derive(Debug, Clone)]
pub struct StoredGroup {
    /// The project PHID (the SCIM `id`).
    pub phid: String,
    /// SCIM `displayName`.
    pub display_name: String,
    /// SCIM `externalId`.
    pub external_id: Option<String>,
    /// Other SCIM attributes.
    pub attributes: Map<String, Value>,
    /// ETag version.
    pub version: u32,
    /// `meta.created`, epoch seconds.
    pub created: u32,
    /// `meta.lastModified`, epoch seconds.
    pub modified: u32,
    /// The group has no member for certain (a project this request created without any), so
    /// its response needs no read of the membership.
    pub no_members: bool,
}

impl StoredGroup {
    fn from_view(v: ScimGroupView) -> Result<Self> {
        Ok(Self {
            attributes: parse_attributes(&v.attributes)?,
            phid: v.project_phid,
            display_name: v.display_name,
            external_id: v.external_id,
            version: v.version,
            created: v.date_created,
            modified: v.date_modified,
            no_members: false,
        })
    }
}

fn parse_attributes(text: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Array(a)) if a.is_empty() => Ok(Map::new()),
        _ => Err(DbError::Inconsistent("scim_group.attributes is not a JSON object".into()).into()),
    }
}

/// Which write `apply_group` performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// PUT or PATCH, answered with `status` (a PATCH may answer 204).
    Update {
        status: u16,
    },
    Adopt,
}

impl Provisioner {
    /// GET /Groups/{id}, without members (see [`Provisioner::write_group_members`]).
    #[instrument(skip_all, fields(id = %phid))]
    pub async fn get_group(&self, phid: &str) -> Result<StoredGroup> {
        let view = self
            .db
            .read(async |conn| sidecar::get_scim_group(conn, &self.db.t, phid).await)
            .await?
            .ok_or_else(|| ProvisionError::NotFound(format!("no group {phid}")))?;
        StoredGroup::from_view(view)
    }

    /// Writes the members of a group as JSON values separated by commas into `buf`, streaming
    /// the edge rows: a 50,000-member group is never held as rows and JSON at once.
    #[instrument(skip_all, fields(id = %phid))]
    pub async fn write_group_members(
        &self,
        phid: &str,
        base_url: &str,
        fields: MemberFields,
        buf: &mut Vec<u8>,
    ) -> Result<u64> {
        let mut first = true;
        let n = self
            .db
            .read(async |conn| {
                edge::for_each_member(conn, &self.db.t, phid, |id, display| {
                    if !first {
                        buf.push(b',');
                    }
                    first = false;
                    write_member(buf, fields, base_url, id, display);
                })
                .await
            })
            .await?;
        Ok(n)
    }

    /// GET /Groups and POST /Groups/.search (members are streamed by the caller, if wanted).
    #[instrument(skip_all)]
    pub async fn list_groups(&self, params: &ListParams) -> Result<(u64, u64, Vec<StoredGroup>)> {
        let filter = query::list_filter(params.filter.as_deref(), query::resolve_group)?
            .unwrap_or(GroupFilter::All);
        let page = params.page(100, u64::from(self.cfg.max_results))?;
        let sort = params
            .sort_by
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(query::group_sort_field)
            .transpose()?;
        let (total, groups) = self
            .query_groups(
                &filter,
                sort,
                params.descending()?,
                page.start_index - 1,
                page.count,
            )
            .await?;
        Ok((total, page.start_index, groups))
    }

    /// The groups matching a resolved filter: the total, and `limit` of them from `offset` in
    /// the given order (by creation when unsorted, so pages are stable).
    pub async fn query_groups(
        &self,
        filter: &GroupFilter,
        sort: Option<GroupField>,
        descending: bool,
        offset: u64,
        limit: u64,
    ) -> Result<(u64, Vec<StoredGroup>)> {
        let order = filter_sql::group_order(sort, descending);
        // With `<ns>_project` on another master than `<ns>_scim`, members are read from the
        // user side of the edges (docs/design.md#partitioned-databases).
        let masters = &self.db.masters;
        let members = if masters.index_of("project") == masters.index_of("scim") {
            filter_sql::Members::ProjectSide
        } else {
            filter_sql::Members::UserSide
        };
        let sql = filter_sql::group_where_on(&self.db.t, filter, members);
        let (total, rows) = self
            .db
            .read(async |conn| {
                sidecar::list_scim_groups(conn, &self.db.t, &sql, &order, offset, limit).await
            })
            .await?;
        let groups = rows
            .into_iter()
            .map(StoredGroup::from_view)
            .collect::<Result<Vec<_>>>()?;
        Ok((total, groups))
    }

    /// POST /Groups: a new project, or the adoption of an unmanaged project whose hashtag is
    /// the name's slug (by `group_adoption`), or a conflict.
    #[instrument(skip_all, fields(request_id = %ctx.request_id))]
    pub async fn create_group(&self, ctx: &Ctx, body: &Value) -> Result<(Created, StoredGroup)> {
        let staged = self.stage_ctx(ctx, Operation::CreateGroup, None, Some(body));
        let ctx = &*staged;
        let result: Result<(Created, StoredGroup)> = async {
            let spec = GroupSpec::from_body(body)?;
            let slug = valid_slug(&spec.display_name)?;
            in_transaction(&self.db, async |tx| {
                self.create_group_in(tx, ctx, &spec, &slug).await
            })
            .await
        }
        .await;
        log_write(ctx, ResourceType::Group, &result, |(how, g)| {
            (g.phid.as_str(), how.outcome())
        });
        result
    }

    /// A POST in its transaction: the adoption of the project with the name's hashtag
    /// (`adopt_project`), or a new project (`create_project`).
    async fn create_group_in(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        spec: &GroupSpec,
        slug: &str,
    ) -> Result<(Created, StoredGroup)> {
        match pp::lock_project_by_slug(conn, &self.db.t, slug).await? {
            Some(existing) => self.adopt_project(conn, ctx, spec, slug, existing).await,
            None => self.create_project(conn, ctx, spec, slug).await,
        }
    }

    /// A POST whose hashtag a project already has: a conflict when SCIM manages it or
    /// `group_adoption` is off, else its adoption.
    async fn adopt_project(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        spec: &GroupSpec,
        slug: &str,
        existing: ProjectRow,
    ) -> Result<(Created, StoredGroup)> {
        let t = &*self.db.t;
        if let Some(group) = sidecar::lock_scim_group(conn, t, &existing.phid).await? {
            return Err(ProvisionError::Conflict(format!(
                "the group {:?} ({}) already has the hashtag #{slug}",
                group.display_name, group.project_phid
            )));
        }
        if !self.cfg.group_adoption {
            return Err(ProvisionError::Conflict(format!(
                "the Phabricator project #{slug} ({}) exists and SCIM does not manage it (group_adoption is off)",
                existing.phid
            )));
        }
        refuse_unmanageable(conn, t, &existing).await?;
        self.insert_group_row(conn, &existing.phid, spec).await?;
        let view = sidecar::lock_scim_group(conn, t, &existing.phid)
            .await?
            .ok_or_else(|| DbError::Inconsistent("adopted group vanished".into()))?;
        // An adopted project keeps its members unless the POST names them.
        let plan = spec.members.clone().map(MemberPlan::replace);
        let (group, _) = self
            .apply_group(conn, ctx, view, existing, spec, plan, Mode::Adopt)
            .await?;
        Ok((Created::Adopted, group))
    }

    /// A POST for a new project: the SCIM record, the project (`write_new_project`), its
    /// sync-log row and publish task.
    async fn create_project(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        spec: &GroupSpec,
        slug: &str,
    ) -> Result<(Created, StoredGroup)> {
        let t = &*self.db.t;
        let phid = match ctx.staged_new_phid() {
            Some(phid) => phid,
            None => pp::new_project_phid(conn, t).await?,
        };
        // The scim_group unique key on displayName decides races between identical POSTs.
        self.insert_group_row(conn, &phid, spec).await?;
        let members = spec.members.clone().unwrap_or_default();
        let members = dedup(members);
        self.check_members(conn, &members).await?;
        let xphids = self
            .write_new_project(conn, ctx, &phid, spec, slug, &members)
            .await?;
        let mut diff = Diff::default();
        diff.note("slug", json!(slug));
        diff.members(&members, &[]);
        let summary = format!("create group {:?} as #{slug}", spec.display_name);
        let entry = Entry {
            resource: ResourceType::Group,
            phid: Some(&phid),
            status: 201,
            summary: &summary,
            outcome: "created",
        };
        self.log_done(conn, ctx, entry, diff).await?;
        let state = xaction::project_publish_state(&phid, &ctx.actor_phid, true);
        let task = Task::publish(&phid, &ctx.actor_phid, &xphids, state);
        worker::queue(conn, t, &[task]).await?;
        let ts = now();
        let group = StoredGroup {
            phid: phid.into(),
            display_name: spec.display_name.clone(),
            external_id: spec.external_id.clone(),
            attributes: spec.attributes.clone(),
            version: 1,
            created: ts,
            modified: ts,
            no_members: members.is_empty(),
        };
        Ok((Created::New, group))
    }

    /// Writes a new project as `PhabricatorProjectTransactionEditor` does
    /// (docs/write-paths.md#create-a-group): the row, its tokens, the transactions, the slug,
    /// the member edges. Returns the transactions' PHIDs, for the publish task.
    async fn write_new_project(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        phid: &Phid,
        spec: &GroupSpec,
        slug: &str,
        members: &[String],
    ) -> Result<Vec<Phid>> {
        let t = &*self.db.t;
        let new = NewProject {
            phid,
            name: &spec.display_name,
            primary_slug: slug,
            author_phid: &ctx.actor_phid,
            view_policy: DEFAULT_POLICY,
            edit_policy: DEFAULT_POLICY,
            join_policy: &self.cfg.project_join_policy,
        };
        let id = pp::insert_project(conn, t, &new).await?;
        // The save writes tokens before the slug row exists: they come from the name
        // (docs/phabricator-tables.md#datasource-tokens).
        let tokens = pp::datasource_tokens(&[], &spec.display_name);
        pp::write_datasource_tokens(conn, t, id, &tokens, false).await?;
        let mut xactions = vec![
            Xaction {
                kind: "core:create",
                old: Value::Null,
                new: Value::Null,
                metadata: Vec::new(),
            },
            Xaction {
                kind: "project:name",
                old: Value::Null,
                new: json!(spec.display_name),
                metadata: Vec::new(),
            },
        ];
        if !members.is_empty() {
            xactions.push(edge_xaction(&[], members));
        }
        let xphids = xaction::insert_group(
            conn,
            t,
            &XactionGroup {
                object: xaction::Object::Project(phid),
                actor_phid: &ctx.actor_phid,
                xactions: &xactions,
                is_create: true,
            },
        )
        .await?;
        pp::insert_slug(conn, t, phid, slug).await?;
        edge::add_members(conn, t, phid, &[], members).await?;
        Ok(xphids)
    }

    async fn insert_group_row(
        &self,
        conn: &mut Conns<'_>,
        phid: &str,
        spec: &GroupSpec,
    ) -> Result<()> {
        let attrs = Value::Object(spec.attributes.clone());
        match sidecar::insert_scim_group(conn, &self.db.t, phid, &group_fields(spec, &attrs)).await
        {
            Ok(()) => Ok(()),
            Err(e) if e.is_unique_violation() => Err(ProvisionError::Conflict(format!(
                "a group named {:?} already exists",
                spec.display_name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// PUT /Groups/{id}: the name and the whole membership (absent `members` empties it, RFC
    /// 7644 §3.5.1; docs/scim-clients.md#put-and-patch-semantics).
    #[instrument(skip_all, fields(request_id = %ctx.request_id, id = %phid))]
    pub async fn replace_group(
        &self,
        ctx: &Ctx,
        phid: &str,
        body: &Value,
        pre: Preconditions<'_>,
    ) -> Result<StoredGroup> {
        let staged = self.stage_ctx(ctx, Operation::ReplaceGroup, Some(phid), Some(body));
        let ctx = &*staged;
        let result: Result<(StoredGroup, &'static str)> = async {
            let mut spec = GroupSpec::from_body(body)?;
            let plan = MemberPlan::replace(spec.members.take().unwrap_or_default());
            in_transaction(&self.db, async |tx| {
                let (view, project) = self.lock_managed_group(tx, phid).await?;
                pre.check_write(view.version)?;
                self.apply_group(
                    tx,
                    ctx,
                    view,
                    project,
                    &spec,
                    Some(plan.clone()),
                    Mode::Update { status: 200 },
                )
                .await
            })
            .await
        }
        .await;
        log_update(ctx, ResourceType::Group, phid, result)
    }

    /// PATCH /Groups/{id}: attribute operations through the PATCH engine, member operations
    /// as a delta (`scim::group::split_patch`). `status` is what the caller answers (200 with
    /// the resource, or 204), for the sync log.
    #[instrument(skip_all, fields(request_id = %ctx.request_id, id = %phid))]
    pub async fn patch_group(
        &self,
        ctx: &Ctx,
        phid: &str,
        body: &Value,
        pre: Preconditions<'_>,
        status: u16,
    ) -> Result<StoredGroup> {
        let staged = self.stage_ctx(ctx, Operation::PatchGroup, Some(phid), Some(body));
        let ctx = &*staged;
        let result: Result<(StoredGroup, &'static str)> = async {
            let ops = patch::parse_request(body)?;
            let split = split_patch(&ops)?;
            in_transaction(&self.db, async |tx| {
                let (view, project) = self.lock_managed_group(tx, phid).await?;
                pre.check_write(view.version)?;
                let attrs = parse_attributes(&view.attributes)?;
                let mut doc = stored_doc(&view.display_name, view.external_id.as_deref(), &attrs);
                patch::apply(Resource::Group, &mut doc, &split.attribute_ops)?;
                let spec = GroupSpec::from_doc(normalize(Resource::Group, &Value::Object(doc))?)?;
                self.apply_group(
                    tx,
                    ctx,
                    view,
                    project,
                    &spec,
                    split.members.clone(),
                    Mode::Update { status },
                )
                .await
            })
            .await
        }
        .await;
        log_update(ctx, ResourceType::Group, phid, result)
    }

    /// DELETE /Groups/{id}: archives the project the way `PhabricatorProjectArchiveController`
    /// does and ends SCIM management (the `scim_group` row goes; members and hashtags stay, as
    /// an archive keeps them: docs/write-paths.md#archive-a-group-delete). Afterwards the group
    /// is not found.
    #[instrument(skip_all, fields(request_id = %ctx.request_id, id = %phid))]
    pub async fn delete_group(&self, ctx: &Ctx, phid: &str, pre: Preconditions<'_>) -> Result<()> {
        let staged = self.stage_ctx(ctx, Operation::DeleteGroup, Some(phid), None);
        let ctx = &*staged;
        let result = in_transaction(&self.db, async |tx| {
            let t = &*self.db.t;
            let view = sidecar::lock_scim_group(tx, t, phid)
                .await?
                .ok_or_else(|| ProvisionError::NotFound(format!("no group {phid}")))?;
            pre.check_write(view.version)?;
            let mut tasks = Vec::new();
            let mut diff = Diff::default();
            if let Some(project) = pp::lock_project(tx, t, phid).await?
                && project.status != pp::STATUS_ARCHIVED
            {
                let slugs = pp::lock_slugs(tx, t, phid).await?;
                pp::update_project(
                    tx,
                    t,
                    project.id,
                    &ProjectChanges {
                        status: Some(pp::STATUS_ARCHIVED),
                        ..Default::default()
                    },
                )
                .await?;
                pp::write_datasource_tokens(
                    tx,
                    t,
                    project.id,
                    &pp::datasource_tokens(&slugs, &project.name),
                    true,
                )
                .await?;
                let x = status_xaction(&project.status, pp::STATUS_ARCHIVED);
                let xphids = xaction::insert_group(
                    tx,
                    t,
                    &XactionGroup {
                        object: xaction::Object::Project(&project.phid),
                        actor_phid: &ctx.actor_phid,
                        xactions: &[x],
                        is_create: false,
                    },
                )
                .await?;
                let state = xaction::project_publish_state(&project.phid, &ctx.actor_phid, false);
                tasks.push(Task::publish(
                    &project.phid,
                    &ctx.actor_phid,
                    &xphids,
                    state,
                ));
                diff.set("status", project.status.clone(), pp::STATUS_ARCHIVED);
            }
            sidecar::delete_scim_group(tx, t, view.id).await?;
            self.log_done(
                tx,
                ctx,
                Entry {
                    resource: ResourceType::Group,
                    phid: Some(phid),
                    status: 204,
                    summary: &format!("delete group {:?} (archive the project)", view.display_name),
                    outcome: "deleted",
                },
                diff,
            )
            .await?;
            worker::queue(tx, t, &tasks).await?;
            Ok(())
        })
        .await;
        log_write(ctx, ResourceType::Group, &result, |()| {
            (phid, "deleted (project archived)")
        });
        result
    }

    async fn lock_managed_group(
        &self,
        conn: &mut Conns<'_>,
        phid: &str,
    ) -> Result<(ScimGroupView, ProjectRow)> {
        let t = &*self.db.t;
        let view = sidecar::lock_scim_group(conn, t, phid)
            .await?
            .ok_or_else(|| ProvisionError::NotFound(format!("no group {phid}")))?;
        let project = pp::lock_project(conn, t, phid).await?.ok_or_else(|| {
            ProvisionError::NotFound(format!(
                "the project of group {phid} no longer exists in Phabricator"
            ))
        })?;
        Ok((view, project))
    }

    /// Refuses member ids that are not users SCIM manages (an invalid value naming them).
    async fn check_members(&self, conn: &mut Conns<'_>, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let known = sidecar::managed_users_among(conn, &self.db.t, ids).await?;
        let unknown: Vec<&String> = ids.iter().filter(|id| !known.contains(*id)).collect();
        if let Some(first) = unknown.first() {
            let more = if unknown.len() > 1 {
                format!(" (and {} more)", unknown.len() - 1)
            } else {
                String::new()
            };
            return Err(ProvisionError::InvalidValue(format!(
                "member {first}{more} is not a user provisioned through SCIM; members must be ids of /Users"
            )));
        }
        Ok(())
    }

    /// Brings a managed group to `spec` and `plan`: the engine behind PUT, PATCH and adoption.
    /// Writes only what changed, in the editor's order (docs/write-paths.md#rename-a-group and
    /// #add-members): the project row re-save, tokens, the transactions, the new slug, the
    /// edges.
    #[allow(clippy::too_many_arguments)]
    async fn apply_group(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        view: ScimGroupView,
        project: ProjectRow,
        spec: &GroupSpec,
        plan: Option<MemberPlan>,
        mode: Mode,
    ) -> Result<(StoredGroup, &'static str)> {
        let t = &*self.db.t;
        let slugs = pp::lock_slugs(conn, t, &project.phid).await?;
        let mut edit = GroupEdit::default();
        self.plan_rename(conn, &project, spec, &slugs, &mut edit)
            .await?;
        if mode == Mode::Adopt && project.status == pp::STATUS_ARCHIVED {
            // The IdP creates a live group: an adopted archived project is activated
            // (docs/write-paths.md#adopt-a-project).
            edit.changes.status = Some(pp::STATUS_ACTIVE);
            edit.xactions
                .push(status_xaction(&project.status, pp::STATUS_ACTIVE));
            edit.diff
                .set("status", project.status.clone(), pp::STATUS_ACTIVE);
        }
        let (to_add, to_remove) = match &plan {
            Some(plan) => self.member_delta(conn, &project.phid, plan).await?,
            None => (Vec::new(), Vec::new()),
        };
        let members_changed = !to_add.is_empty() || !to_remove.is_empty();
        if members_changed {
            refuse_unmanageable(conn, t, &project).await?;
            self.check_members(conn, &to_add).await?;
            edit.xactions.push(edge_xaction(&to_remove, &to_add));
            edit.diff.members(&to_add, &to_remove);
        }
        let mut tasks = Vec::new();
        if !edit.xactions.is_empty() {
            let save = ProjectEdit {
                slugs: &slugs,
                changes: &edit.changes,
                xactions: &edit.xactions,
                new_slug: edit.new_slug.as_deref(),
                to_add: &to_add,
                to_remove: &to_remove,
            };
            tasks.push(self.save_project(conn, ctx, &project, save).await?);
        }
        let scim_changed = note_group_identity(&view, spec, &mut edit.diff)?;
        let saved = !edit.xactions.is_empty();
        let (version, modified) = if scim_changed || saved {
            self.write_group_record(conn, &view, spec).await?
        } else {
            (view.version, view.date_modified)
        };
        let renamed = edit.diff.has("name");
        let (status, verb, outcome) =
            describe_group(mode, renamed, members_changed, scim_changed, saved);
        let summary = format!("{verb} group {:?}", spec.display_name);
        let entry = Entry {
            resource: ResourceType::Group,
            phid: Some(&project.phid),
            status,
            summary: &summary,
            outcome,
        };
        self.log_done(conn, ctx, entry, edit.diff).await?;
        worker::queue(conn, t, &tasks).await?;
        let group = StoredGroup {
            phid: project.phid.into(),
            display_name: spec.display_name.clone(),
            external_id: spec.external_id.clone(),
            attributes: spec.attributes.clone(),
            version,
            created: view.date_created,
            modified,
            no_members: false,
        };
        Ok((group, outcome))
    }

    /// Plans a rename: the new name, the primary hashtag it makes (a new slug row unless the
    /// project has it; a conflict when another project does), a `project:name` transaction.
    async fn plan_rename(
        &self,
        conn: &mut Conns<'_>,
        project: &ProjectRow,
        spec: &GroupSpec,
        slugs: &[String],
        edit: &mut GroupEdit,
    ) -> Result<()> {
        if project.name == spec.display_name {
            return Ok(());
        }
        let slug = valid_slug(&spec.display_name)?;
        if !slugs.contains(&slug) {
            if let Some(owner) = pp::lock_slug_owner(conn, &self.db.t, &slug).await? {
                return Err(ProvisionError::Conflict(format!(
                    "the hashtag #{slug} belongs to another project ({owner})"
                )));
            }
            edit.new_slug = Some(slug.clone());
        }
        if project.primary_slug.as_deref() != Some(slug.as_str()) {
            edit.changes.primary_slug = Some(slug);
        }
        edit.changes.name = Some(spec.display_name.clone());
        edit.xactions.push(Xaction {
            kind: "project:name",
            old: json!(project.name),
            new: json!(spec.display_name),
            metadata: Vec::new(),
        });
        edit.diff
            .set("name", project.name.clone(), spec.display_name.clone());
        Ok(())
    }

    /// Writes the `scim_group` record; returns the new version and modification time. Its
    /// displayName is unique: a name another group has is a conflict.
    async fn write_group_record(
        &self,
        conn: &mut Conns<'_>,
        view: &ScimGroupView,
        spec: &GroupSpec,
    ) -> Result<(u32, u32)> {
        let attrs = Value::Object(spec.attributes.clone());
        match sidecar::update_scim_group(conn, &self.db.t, view.id, &group_fields(spec, &attrs))
            .await
        {
            Ok(()) => Ok((view.version + 1, now())),
            Err(e) if e.is_unique_violation() => Err(ProvisionError::Conflict(format!(
                "a group named {:?} already exists",
                spec.display_name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Saves an edited project the way `PhabricatorProjectTransactionEditor` does, in its
    /// order (docs/write-paths.md#rename-a-group, #add-members and #remove-members): the
    /// project row re-save, tokens, the transactions, the new slug, the edges. Returns the
    /// publish task, for the caller to queue last.
    async fn save_project(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        project: &ProjectRow,
        edit: ProjectEdit<'_>,
    ) -> Result<Task> {
        let t = &*self.db.t;
        pp::update_project(conn, t, project.id, edit.changes).await?;
        let final_name = edit.changes.name.as_deref().unwrap_or(&project.name);
        // Tokens from the slugs that exist before this save (the one-save lag of
        // docs/phabricator-tables.md#datasource-tokens).
        pp::write_datasource_tokens(
            conn,
            t,
            project.id,
            &pp::datasource_tokens(edit.slugs, final_name),
            true,
        )
        .await?;
        let xphids = xaction::insert_group(
            conn,
            t,
            &XactionGroup {
                object: xaction::Object::Project(&project.phid),
                actor_phid: &ctx.actor_phid,
                xactions: edit.xactions,
                is_create: false,
            },
        )
        .await?;
        if let Some(slug) = edit.new_slug {
            pp::insert_slug(conn, t, &project.phid, slug).await?;
        }
        if !edit.to_add.is_empty() || !edit.to_remove.is_empty() {
            let ancestors = pp::lock_ancestors(conn, t, project).await?;
            edge::remove_members(conn, t, &project.phid, &ancestors, edit.to_remove).await?;
            edge::add_members(conn, t, &project.phid, &ancestors, edit.to_add).await?;
        }
        let state = xaction::project_publish_state(&project.phid, &ctx.actor_phid, false);
        Ok(Task::publish(
            &project.phid,
            &ctx.actor_phid,
            &xphids,
            state,
        ))
    }

    /// Takes a deleted user out of every group SCIM manages (`groups`: the user's
    /// `(group id, displayName)` pairs, read with its locked record), each group as a PATCH
    /// removing the member would: the same project save and edge deletes (`save_project`),
    /// a new group version and a sync-log row answering `status`. Groups are locked in id
    /// order, as concurrent deletions then wait for each other instead of deadlocking.
    /// A project that gained subprojects in Phabricator is left as it is: Phabricator does
    /// not edit a parent's members (docs/phabricator-tables.md#subprojects-and-milestones).
    /// Returns the publish tasks to queue and the groups left.
    pub(super) async fn leave_groups(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        user_phid: &str,
        groups: &[(String, String)],
        status: u16,
    ) -> Result<(Vec<Task>, Vec<String>)> {
        let t = &*self.db.t;
        let mut ids: Vec<&String> = groups.iter().map(|(id, _)| id).collect();
        ids.sort();
        ids.dedup();
        let mut tasks = Vec::new();
        let mut left = Vec::new();
        let member = [user_phid.to_owned()];
        for phid in ids {
            let Some(view) = sidecar::lock_scim_group(conn, t, phid).await? else {
                continue;
            };
            let Some(project) = pp::lock_project(conn, t, phid).await? else {
                continue;
            };
            if project.is_milestone() || pp::has_subprojects(conn, t, &project).await? {
                continue;
            }
            if edge::members_among(conn, t, phid, &member)
                .await?
                .is_empty()
            {
                continue;
            }
            let slugs = pp::lock_slugs(conn, t, phid).await?;
            let xactions = [edge_xaction(&member, &[])];
            let edit = ProjectEdit {
                slugs: &slugs,
                changes: &ProjectChanges::default(),
                xactions: &xactions,
                new_slug: None,
                to_add: &[],
                to_remove: &member,
            };
            tasks.push(self.save_project(conn, ctx, &project, edit).await?);
            sidecar::update_scim_group(
                conn,
                t,
                view.id,
                &ScimGroupFields {
                    display_name: &view.display_name,
                    external_id: view.external_id.as_deref(),
                    attributes: &Value::Object(parse_attributes(&view.attributes)?),
                },
            )
            .await?;
            let mut diff = Diff::default();
            diff.members(&[], &member);
            self.log_done(
                conn,
                ctx,
                Entry {
                    resource: ResourceType::Group,
                    phid: Some(phid),
                    status,
                    summary: &format!(
                        "remove deleted user {user_phid} from group {:?}",
                        view.display_name
                    ),
                    outcome: "member removed (user deleted)",
                },
                diff,
            )
            .await?;
            left.push(phid.clone());
        }
        Ok((tasks, left))
    }

    /// The edges a plan changes, computed against the current membership: for a delta only
    /// the named ids are looked up; a whole-set replace reads the member list once.
    async fn member_delta(
        &self,
        conn: &mut Conns<'_>,
        project_phid: &str,
        plan: &MemberPlan,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let t = &*self.db.t;
        let adds = plan.adds();
        if plan.replace_all {
            let current = edge::all_members(conn, t, project_phid).await?;
            let wanted: HashSet<&String> = adds.iter().collect();
            let to_add: Vec<String> = adds
                .iter()
                .filter(|id| !current.contains(*id))
                .cloned()
                .collect();
            let mut to_remove: Vec<String> = current
                .into_iter()
                .filter(|id| !wanted.contains(id))
                .collect();
            to_remove.sort();
            return Ok((to_add, to_remove));
        }
        let removes = plan.removes();
        let mut named = adds.clone();
        named.extend(removes.iter().cloned());
        let present = edge::members_among(conn, t, project_phid, &named).await?;
        let to_add = adds
            .into_iter()
            .filter(|id| !present.contains(id))
            .collect();
        let to_remove = removes
            .into_iter()
            .filter(|id| present.contains(id))
            .collect();
        Ok((to_add, to_remove))
    }
}

/// What one `apply_group` changes, gathered step by step: the sync-log diff, the project
/// transactions, the project row's columns, and a hashtag to add.
#[derive(Default)]
struct GroupEdit {
    diff: Diff,
    xactions: Vec<Xaction>,
    changes: ProjectChanges,
    new_slug: Option<String>,
}

/// The columns of `spec`'s SCIM record, with `attributes` as its stored attributes.
fn group_fields<'a>(spec: &'a GroupSpec, attributes: &'a Value) -> ScimGroupFields<'a> {
    ScimGroupFields {
        display_name: &spec.display_name,
        external_id: spec.external_id.as_deref(),
        attributes,
    }
}

/// Notes a changed displayName (when the project was not renamed) or externalId; returns
/// whether the `scim_group` record changes at all.
fn note_group_identity(view: &ScimGroupView, spec: &GroupSpec, diff: &mut Diff) -> Result<bool> {
    let old_attrs = parse_attributes(&view.attributes)?;
    if view.display_name != spec.display_name && !diff.has("name") {
        diff.set(
            "displayName",
            view.display_name.clone(),
            spec.display_name.clone(),
        );
    }
    if view.external_id != spec.external_id {
        diff.set(
            "externalId",
            view.external_id.clone(),
            spec.external_id.clone(),
        );
    }
    Ok(view.display_name != spec.display_name
        || view.external_id != spec.external_id
        || old_attrs != spec.attributes)
}

/// What `apply_group` did, for its sync-log row and its INFO line: the status the client
/// gets, the summary's verb and the outcome word. `saved`: the project was saved.
fn describe_group(
    mode: Mode,
    renamed: bool,
    members_changed: bool,
    scim_changed: bool,
    saved: bool,
) -> (u16, &'static str, &'static str) {
    let (status, verb) = match mode {
        Mode::Adopt => (201, "adopt"),
        Mode::Update { status } if scim_changed || saved => (status, "update"),
        Mode::Update { status } => (status, "no change to"),
    };
    let outcome = match (mode, renamed, members_changed) {
        (Mode::Adopt, ..) => "adopted",
        (_, true, true) => "renamed, members changed",
        (_, true, false) => "renamed",
        (_, false, true) => "members changed",
        _ if scim_changed => "updated",
        _ => "unchanged",
    };
    (status, verb, outcome)
}

/// One project save: what changed and the rows it writes (`Provisioner::save_project`).
struct ProjectEdit<'a> {
    /// The project's slugs before this save.
    slugs: &'a [String],
    changes: &'a ProjectChanges,
    xactions: &'a [Xaction],
    new_slug: Option<&'a str>,
    to_add: &'a [String],
    to_remove: &'a [String],
}

/// The project hashtag of a name, or an invalid value when Phabricator would refuse it
/// (docs/phabricator-tables.md#hashtags).
fn valid_slug(name: &str) -> Result<String> {
    let slug = pp::normalize_slug(name);
    if pp::is_valid_slug(&slug) {
        Ok(slug)
    } else {
        Err(ProvisionError::InvalidValue(format!(
            "displayName {name:?} gives no valid Phabricator hashtag"
        )))
    }
}

/// Milestones have no members of their own and parents with subprojects cannot have members
/// edited (docs/phabricator-tables.md#subprojects-and-milestones): SCIM cannot manage either.
async fn refuse_unmanageable(
    conn: &mut Conns<'_>,
    t: &crate::db::Tables,
    project: &ProjectRow,
) -> Result<()> {
    if project.is_milestone() {
        return Err(ProvisionError::InvalidValue(format!(
            "#{} is a milestone: milestones have no members of their own, so SCIM cannot manage it",
            project.primary_slug.as_deref().unwrap_or(&project.name)
        )));
    }
    if pp::has_subprojects(conn, t, project).await? {
        return Err(ProvisionError::InvalidValue(format!(
            "#{} has subprojects: Phabricator does not allow editing the members of a parent project",
            project.primary_slug.as_deref().unwrap_or(&project.name)
        )));
    }
    Ok(())
}

/// `core:edge` for edge type 13 with the slim old/new lists of `PhabricatorEdgeChangeRecord`
/// (old = removed, new = added; `edge:type` first in the metadata,
/// docs/write-paths.md#add-members).
fn edge_xaction(removed: &[String], added: &[String]) -> Xaction {
    Xaction {
        kind: "core:edge",
        old: json!(removed),
        new: json!(added),
        metadata: vec![("edge:type", json!(edge::PROJECT_HAS_MEMBER))],
    }
}

/// `project:status`: old as a JSON string, new as a JSON number, as Phorge stores it
/// (docs/phabricator-tables.md#transactions).
fn status_xaction(old: &str, new: &str) -> Xaction {
    let new_num: u32 = new.parse().unwrap_or(0);
    Xaction {
        kind: "project:status",
        old: json!(old),
        new: json!(new_num),
        metadata: Vec::new(),
    }
}

fn dedup(ids: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    ids.into_iter()
        .filter(|id| seen.insert(id.clone()))
        .collect()
}
