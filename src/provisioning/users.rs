//! Users: create (or adopt, or rehire), read, replace, patch, deprovision.
//!
//! Every write runs in one transaction (`in_transaction`) that takes the rows it changes with
//! `FOR UPDATE`, writes what `PhabricatorUserEditor` and the user transaction editor write
//! (docs/write-paths.md, the user sections), queues the daemon tasks last, and records its
//! `scim_event` row, so a request commits all of it or none of it.

use serde_json::{Map, Value, json};
use tracing::instrument;

use super::error::GUARD_RETRY_AFTER_SECS;
use super::rollout::Operation;
use super::synclog::{Diff, Entry};
use super::username::{base_username, candidate};
use super::{
    Ctx, ProvisionError, Provisioner, Result, in_transaction, log_change, log_update, log_write,
};
use crate::config::AdoptionPolicy;
use crate::db::phabricator::external::{self, LinkOutcome};
use crate::db::phabricator::user::{self as pu, NewUser, Revoked, UserChanges, UserRow};
use crate::db::phabricator::worker::{self, Task};
use crate::db::phabricator::xaction::{self, Xaction, XactionGroup};
use crate::db::phabricator::{Phid, PhidKind};
use crate::db::sidecar::{
    self, ResourceType, ScimEmail, ScimUserFields, ScimUserRead, ScimUserView,
};
use crate::db::status::{GUARD_REFUSAL, GuardSettings};
use crate::db::{Conns, DbError, filter_sql, now};
use crate::scim::list::ListParams;
use crate::scim::patch;
use crate::scim::query::{self, UserFilter, UserSort};
use crate::scim::resource::{Preconditions, normalize};
use crate::scim::schema::Resource;
use crate::scim::user::{ACTIVE_UNASSIGNED, UserSpec, is_valid_email, stored_doc};

/// A managed user as SCIM shows it.
#[derive(Debug, Clone)]
pub struct StoredUser {
    pub phid: String,
    pub user_name: String,
    pub external_id: Option<String>,
    pub attributes: Map<String, Value>,
    pub active: bool,
    pub version: u32,
    pub created: u32,
    pub modified: u32,
    /// (group id, displayName)
    pub groups: Vec<(String, String)>,
}

/// A managed user as a read (GET, list, lookup) returns it: the stored document still as its
/// JSON text, which a response with the default projection copies as it is (parsing it into
/// `Value`s and writing them back was two fifths of a page's instructions). `into_stored`
/// parses it when a projection needs the values.
#[derive(Debug, Clone)]
pub struct ReadUser {
    pub phid: String,
    pub user_name: String,
    pub external_id: Option<String>,
    /// `scim_user.attributes`, as stored.
    pub attributes_json: String,
    pub active: bool,
    pub version: u32,
    pub created: u32,
    pub modified: u32,
    /// (group id, displayName)
    pub groups: Vec<(String, String)>,
}

impl ReadUser {
    fn from_read(v: ScimUserRead) -> Result<Self> {
        let groups = parse_groups(v.groups_json.as_deref())?;
        Ok(Self {
            phid: v.user_phid,
            user_name: v.user_name,
            external_id: v.external_id,
            attributes_json: v.attributes,
            active: !v.is_disabled,
            version: v.version,
            created: v.date_created,
            modified: v.date_modified,
            groups,
        })
    }

    /// The user with its document parsed.
    pub fn into_stored(self) -> Result<StoredUser> {
        Ok(StoredUser {
            attributes: parse_attributes(&self.attributes_json)?,
            phid: self.phid,
            user_name: self.user_name,
            external_id: self.external_id,
            active: self.active,
            version: self.version,
            created: self.created,
            modified: self.modified,
            groups: self.groups,
        })
    }
}

/// `groupsJson` (`sidecar::user_groups_column`): `[[id, displayName], ...]`.
fn parse_groups(json: Option<&str>) -> Result<Vec<(String, String)>> {
    let Some(text) = json else {
        return Ok(Vec::new());
    };
    let pairs: Vec<(String, String)> = serde_json::from_str(text).map_err(|_| {
        DbError::Inconsistent("groups of a user are not a JSON list of pairs".into())
    })?;
    Ok(pairs)
}

fn parse_attributes(text: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        // PHP may write an empty array as `[]`.
        Ok(Value::Array(a)) if a.is_empty() => Ok(Map::new()),
        _ => Err(DbError::Inconsistent("scim_user.attributes is not a JSON object".into()).into()),
    }
}

/// How a POST was satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// A new Phabricator account.
    New,
    /// An existing account SCIM did not manage, matched by its verified primary address.
    Adopted,
    /// A deprovisioned SCIM user with the same userName, re-activated.
    Rehired,
}

impl Created {
    /// The word the log uses for it.
    pub fn outcome(self) -> &'static str {
        match self {
            Created::New => "created",
            Created::Adopted => "adopted",
            Created::Rehired => "rehired",
        }
    }
}

impl Provisioner {
    /// GET /Users/{id}.
    #[instrument(skip_all, fields(id = %phid))]
    pub async fn get_user(&self, phid: &str) -> Result<ReadUser> {
        let view = self
            .db
            .read(async |conn| sidecar::get_scim_user(conn, &self.db.t, phid).await)
            .await?
            .filter(|v| !v.is_deprovisioned)
            .ok_or_else(|| ProvisionError::NotFound(format!("no user {phid}")))?;
        ReadUser::from_read(view)
    }

    /// GET /Users and POST /Users/.search.
    #[instrument(skip_all)]
    pub async fn list_users(
        &self,
        params: &ListParams,
        want_groups: bool,
    ) -> Result<(u64, u64, Vec<ReadUser>)> {
        let filter = query::list_filter(params.filter.as_deref(), query::resolve_user)?
            .unwrap_or(UserFilter::All);
        let page = params.page(100, u64::from(self.cfg.max_results))?;
        let sort = params
            .sort_by
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(query::user_sort_field)
            .transpose()?;
        let (total, users) = self
            .query_users(
                &filter,
                sort,
                params.descending()?,
                page.start_index - 1,
                page.count,
                want_groups,
            )
            .await?;
        Ok((total, page.start_index, users))
    }

    /// The users matching a resolved filter: the total, and `limit` of them from `offset` in
    /// the given order (by creation when unsorted, so pages are stable, RFC 7644 §3.4.2.4).
    pub async fn query_users(
        &self,
        filter: &UserFilter,
        sort: Option<UserSort>,
        descending: bool,
        offset: u64,
        limit: u64,
        want_groups: bool,
    ) -> Result<(u64, Vec<ReadUser>)> {
        let order = filter_sql::user_order(&self.db.t, sort, descending);
        let sql = filter_sql::user_where(&self.db.t, filter);
        let (total, rows) = self
            .db
            .read(async |conn| {
                sidecar::list_scim_users(conn, &self.db.t, &sql, &order, offset, limit, want_groups)
                    .await
            })
            .await?;
        let users = rows
            .into_iter()
            .map(ReadUser::from_read)
            .collect::<Result<Vec<_>>>()?;
        Ok((total, users))
    }

    /// POST /Users.
    #[instrument(skip_all, fields(request_id = %ctx.request_id))]
    pub async fn create_user(&self, ctx: &Ctx, body: &Value) -> Result<(Created, StoredUser)> {
        let staged = self.stage_ctx(ctx, Operation::CreateUser, None, Some(body));
        let ctx = &*staged;
        let result: Result<(Created, StoredUser)> = async {
            let spec = UserSpec::from_doc(normalize(Resource::User, body)?)?;
            let address = self.address_for(&spec, None)?;
            in_transaction(&self.db, async |tx| {
                self.create_in(tx, ctx, &spec, &address).await
            })
            .await
        }
        .await;
        log_write(ctx, ResourceType::User, &result, |(how, u)| {
            (u.phid.as_str(), how.outcome())
        });
        result
    }

    /// A POST in its transaction: the address decides between a new account, an adoption and
    /// a rehire (`claim_owned`); a managed owner is a conflict.
    async fn create_in(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        spec: &UserSpec,
        address: &str,
    ) -> Result<(Created, StoredUser)> {
        let (owner, application) = pu::email_owner(conn, &self.db.t, address).await?;
        if application {
            return Err(ProvisionError::InvalidValue(format!(
                "{address} is an application email address"
            )));
        }
        match owner {
            Some(owner) => self.claim_owned(conn, ctx, spec, address, owner).await,
            None => self.create_new(conn, ctx, spec, address).await,
        }
    }

    /// A POST whose address an account already has: the rehire of a deprovisioned SCIM user
    /// of that userName, the adoption of an account SCIM does not manage (when the policy and
    /// its protections allow it), or a conflict.
    async fn claim_owned(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        spec: &UserSpec,
        address: &str,
        owner: pu::EmailRow,
    ) -> Result<(Created, StoredUser)> {
        let t = &*self.db.t;
        if let Some(existing) = sidecar::lock_scim_user(conn, t, &owner.user_phid).await? {
            let same_name = existing.user_name.to_lowercase() == spec.user_name.to_lowercase();
            if existing.is_deprovisioned && same_name {
                return self.rehire(conn, ctx, existing, spec).await;
            }
            // The same user again (an IdP retrying its POST): the conflict is the
            // userName, as for a re-POST with another address.
            if same_name {
                return Err(ProvisionError::Conflict(format!(
                    "userName {} already exists",
                    spec.user_name
                )));
            }
            return Err(ProvisionError::Conflict(format!(
                "the email {address} belongs to another SCIM user ({})",
                existing.user_name
            )));
        }
        let adoptable = self.cfg.adoption == AdoptionPolicy::VerifiedEmail
            && owner.is_primary
            && owner.is_verified;
        if !adoptable {
            return Err(ProvisionError::Conflict(format!(
                "the email {address} belongs to an existing Phabricator account that SCIM does not manage"
            )));
        }
        // The account's own row, locked, decides whether it may be taken over.
        let account = pu::lock_user(conn, t, &owner.user_phid)
            .await?
            .ok_or_else(|| DbError::Inconsistent("the owner of an address vanished".into()))?;
        let service_bot =
            account.phid == ctx.actor_phid || sidecar::is_token_bot(conn, t, &account.phid).await?;
        self.refuse_protected(&account, service_bot, Change::Adopt)?;
        if self.is_placeholder(spec, address) {
            // The IdP named no address: the one the service made up proves nothing.
            return Err(ProvisionError::Conflict(format!(
                "the placeholder address {address} belongs to @{}, an account SCIM does not manage; SCIM adopts an account only by an address the IdP sends",
                account.user_name
            )));
        }
        self.adopt(conn, ctx, &owner.user_phid, spec).await
    }

    /// A POST for a new account: the SCIM record first (its userName is unique: a
    /// deprovisioned user of that name comes back instead, anyone else is a conflict), then
    /// the account (`write_new_account`).
    async fn create_new(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        spec: &UserSpec,
        address: &str,
    ) -> Result<(Created, StoredUser)> {
        let t = &*self.db.t;
        let phid = ctx
            .staged_new_phid()
            .unwrap_or_else(|| Phid::new(PhidKind::User));
        let active = spec.active.unwrap_or(true);
        // One timestamp for the stored record and the answer: a GET right after must match.
        let ts = now();
        let attributes = Value::Object(with_desired_active(&spec.attributes, active));
        let fields = record_fields(spec, &attributes);
        if let Err(e) = sidecar::insert_scim_user(conn, t, &phid, &fields, ts, true).await {
            if !e.is_unique_violation() {
                return Err(e.into());
            }
            // Same userName: a deprovisioned user comes back (rehire), anyone else is a conflict.
            return match sidecar::lock_scim_user_by_name(conn, t, &spec.user_name).await? {
                Some(existing) if existing.is_deprovisioned => {
                    self.rehire(conn, ctx, existing, spec).await
                }
                _ => Err(ProvisionError::Conflict(format!(
                    "userName {} already exists",
                    spec.user_name
                ))),
            };
        }
        self.write_new_account(conn, ctx, &phid, spec, address)
            .await?;
        let user = StoredUser {
            phid: phid.into(),
            user_name: spec.user_name.clone(),
            external_id: spec.external_id.clone(),
            attributes: spec.attributes.clone(),
            active,
            version: 1,
            created: ts,
            modified: ts,
            groups: Vec::new(),
        };
        Ok((Created::New, user))
    }

    /// Writes a new account as `PhabricatorUserEditor::createNewUser` does
    /// (docs/write-paths.md#create-a-user): the `user` row, its primary address, name tokens, the login
    /// link, the other addresses, a deactivation when the IdP created it inactive; then its
    /// sync-log row and tasks.
    async fn write_new_account(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        phid: &Phid,
        spec: &UserSpec,
        address: &str,
    ) -> Result<()> {
        let t = &*self.db.t;
        let is_bot = self.is_bot(spec);
        let verified = self.cfg.trust_idp_emails && !self.is_placeholder(spec, address);
        let wanted = mirrored_addresses(spec, address)?;
        let (user_id, username) = self
            .insert_account(conn, phid, spec, is_bot, verified)
            .await?;
        pu::insert_email(conn, t, phid, address, verified, true).await?;
        let tokens = pu::name_tokens(&username, &spec.real_name);
        pu::write_name_tokens(conn, t, user_id, &tokens, false).await?;
        sidecar::write_scim_emails(conn, t, phid, &scim_emails(spec), false).await?;
        let mut diff = Diff::default();
        diff.note("username", username.clone());
        let base = base_username(&spec.user_name, self.cfg.username_policy);
        if username != base {
            // Another account has the name: worth a look before a staged plan is applied.
            diff.note("usernameTaken", base);
        }
        diff.note("email", address.to_owned());
        if is_bot {
            diff.note("bot", true);
        }
        if let Some(link) = self
            .link_login(conn, phid, spec, address, &username)
            .await?
        {
            diff.note("login", link);
        }
        let mut tasks = vec![Task::search(phid, false), Task::identity_added(address)];
        // The other addresses the IdP sent, each as `PhabricatorUserEditor::addEmail` adds one.
        let trusted = self.cfg.trust_idp_emails;
        for other in &wanted[1..] {
            self.add_email(conn, ctx, phid, other, trusted, &mut tasks)
                .await?;
        }
        if wanted.len() > 1 {
            diff.note("emailsAdded", wanted[1..].to_vec());
        }
        if spec.active == Some(false) {
            // Created already deactivated: disable in the same request, as an edit would.
            let row = pu::lock_user(conn, t, phid)
                .await?
                .ok_or_else(|| DbError::Inconsistent("new user vanished".into()))?;
            self.set_disabled(conn, ctx, &row, true, &mut diff, &mut tasks)
                .await?;
        }
        let summary = format!("create user {} as @{username}", spec.user_name);
        let entry = Entry {
            resource: ResourceType::User,
            phid: Some(phid),
            status: 201,
            summary: &summary,
            outcome: "created",
        };
        self.log_done(conn, ctx, entry, diff).await?;
        worker::queue(conn, t, &tasks).await?;
        Ok(())
    }

    /// Inserts the `user` row under the first free derived name.
    async fn insert_account(
        &self,
        conn: &mut Conns<'_>,
        phid: &Phid,
        spec: &UserSpec,
        is_bot: bool,
        verified: bool,
    ) -> Result<(u32, String)> {
        let t = &*self.db.t;
        let base = base_username(&spec.user_name, self.cfg.username_policy);
        // The base name first (the usual case: one statement); on a collision, one look-up of
        // the next candidates; the insert's unique key settles races either way. A failed
        // INSERT rolls back only itself, not the transaction.
        let mut n = 0;
        loop {
            let name = candidate(&base, n);
            let new = NewUser {
                phid,
                user_name: &name,
                real_name: &spec.real_name,
                is_system_agent: is_bot,
                is_email_verified: verified,
            };
            match pu::insert_user(conn, t, &new).await {
                Ok(id) => return Ok((id, name)),
                Err(e)
                    if e.is_unique_violation()
                        && e.violated_key().as_deref() == Some("userName")
                        && n < 1000 =>
                {
                    let candidates: Vec<String> =
                        (n + 1..n + 9).map(|k| candidate(&base, k)).collect();
                    let taken: Vec<String> = pu::usernames_taken(conn, t, &candidates)
                        .await?
                        .iter()
                        .map(|s| s.to_lowercase())
                        .collect();
                    n = candidates
                        .iter()
                        .position(|c| !taken.contains(&c.to_lowercase()))
                        .map_or(n + 9, |p| n + 1 + p as u32);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn adopt(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        user_phid: &str,
        spec: &UserSpec,
    ) -> Result<(Created, StoredUser)> {
        let t = &*self.db.t;
        let empty = json!({});
        let fields = record_fields(spec, &empty);
        if let Err(e) = sidecar::insert_scim_user(conn, t, user_phid, &fields, now(), false).await {
            if e.is_unique_violation() {
                return Err(ProvisionError::Conflict(format!(
                    "userName {} already exists",
                    spec.user_name
                )));
            }
            return Err(e.into());
        }
        let view = sidecar::lock_scim_user(conn, t, user_phid)
            .await?
            .ok_or_else(|| DbError::Inconsistent("adopted user vanished".into()))?;
        let (user, _) = self
            .apply(conn, ctx, view, spec, Mode::Adopt)
            .await
            .map_err(refused_as_conflict)?;
        Ok((Created::Adopted, user))
    }

    async fn rehire(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        existing: ScimUserView,
        spec: &UserSpec,
    ) -> Result<(Created, StoredUser)> {
        let (user, _) = self
            .apply(conn, ctx, existing, spec, Mode::Rehire)
            .await
            .map_err(refused_as_conflict)?;
        Ok((Created::Rehired, user))
    }

    /// PUT /Users/{id}: the body replaces the resource; an omitted `active` stays as it is.
    #[instrument(skip_all, fields(request_id = %ctx.request_id, id = %phid))]
    pub async fn replace_user(
        &self,
        ctx: &Ctx,
        phid: &str,
        body: &Value,
        pre: Preconditions<'_>,
    ) -> Result<StoredUser> {
        let staged = self.stage_ctx(ctx, Operation::ReplaceUser, Some(phid), Some(body));
        let ctx = &*staged;
        let result: Result<(StoredUser, &'static str)> = async {
            let spec = UserSpec::from_doc(normalize(Resource::User, body)?)?;
            in_transaction(&self.db, async |tx| {
                let view = self.lock_managed(tx, phid).await?;
                pre.check_write(view.version)?;
                self.apply(tx, ctx, view, &spec, Mode::Update).await
            })
            .await
        }
        .await;
        log_update(ctx, ResourceType::User, phid, result)
    }

    /// PATCH /Users/{id}.
    #[instrument(skip_all, fields(request_id = %ctx.request_id, id = %phid))]
    pub async fn patch_user(
        &self,
        ctx: &Ctx,
        phid: &str,
        body: &Value,
        pre: Preconditions<'_>,
    ) -> Result<StoredUser> {
        let staged = self.stage_ctx(ctx, Operation::PatchUser, Some(phid), Some(body));
        let ctx = &*staged;
        let result: Result<(StoredUser, &'static str)> = async {
            let ops = patch::parse_request(body)?;
            in_transaction(&self.db, async |tx| {
                let view = self.lock_managed(tx, phid).await?;
                pre.check_write(view.version)?;
                let attrs = parse_attributes(&view.attributes)?;
                let mut doc = stored_doc(
                    &view.user_name,
                    view.external_id.as_deref(),
                    !view.is_disabled,
                    &attrs,
                );
                patch::apply(Resource::User, &mut doc, &ops)?;
                let unassigned = !doc.contains_key("active");
                let mut spec = UserSpec::from_doc(normalize(Resource::User, &Value::Object(doc))?)?;
                if unassigned {
                    spec.attributes
                        .insert(ACTIVE_UNASSIGNED.into(), Value::Bool(true));
                }
                self.apply(tx, ctx, view, &spec, Mode::Update).await
            })
            .await
        }
        .await;
        log_update(ctx, ResourceType::User, phid, result)
    }

    /// DELETE /Users/{id}: deprovision (disable, end sessions, revoke tokens), leave every
    /// group, and hide.
    #[instrument(skip_all, fields(request_id = %ctx.request_id, id = %phid))]
    pub async fn delete_user(&self, ctx: &Ctx, phid: &str, pre: Preconditions<'_>) -> Result<()> {
        let staged = self.stage_ctx(ctx, Operation::DeleteUser, Some(phid), None);
        let ctx = &*staged;
        let result = in_transaction(&self.db, async |tx| {
            let view = self.lock_managed(tx, phid).await?;
            pre.check_write(view.version)?;
            let attrs = parse_attributes(&view.attributes)?;
            let doc = stored_doc(&view.user_name, view.external_id.as_deref(), false, &attrs);
            let spec = UserSpec::from_doc(doc)?;
            // A hidden user must not stay a member whose `$ref` answers 404: it leaves every
            // group with the writes a member removal makes. Their tasks go after the user's,
            // so the task counter is taken as late as by any write.
            let groups = parse_groups(view.groups_json.as_deref())?;
            let (group_tasks, left) = self.leave_groups(tx, ctx, phid, &groups, 204).await?;
            self.apply(tx, ctx, view, &spec, Mode::Delete).await?;
            worker::queue(tx, &self.db.t, &group_tasks).await?;
            Ok(left)
        })
        .await;
        log_write(ctx, ResourceType::User, &result, |_| (phid, "deleted"));
        if let Ok(left) = &result {
            for group in left {
                log_change(
                    ctx,
                    ResourceType::Group,
                    group,
                    "member removed (user deleted)",
                );
            }
        }
        result.map(|_| ())
    }

    async fn lock_managed(&self, conn: &mut Conns<'_>, phid: &str) -> Result<ScimUserView> {
        sidecar::lock_scim_user(conn, &self.db.t, phid)
            .await?
            .filter(|v| !v.is_deprovisioned)
            .ok_or_else(|| ProvisionError::NotFound(format!("no user {phid}")))
    }

    /// Brings a managed user to `spec`: the diff engine behind PUT, PATCH, DELETE, adoption
    /// and rehire. Writes only what changed, in `PhabricatorUserEditor`'s order: plan the
    /// row's change, revoke, sync the addresses, write the user row, log in, write the SCIM
    /// record, then log and queue. Returns the user and, for the log, what happened.
    async fn apply(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        view: ScimUserView,
        spec: &UserSpec,
        mode: Mode,
    ) -> Result<(StoredUser, &'static str)> {
        // Locked with the SCIM record: the live row, so protections follow Phabricator at once.
        let user = view.user_row();
        let service_bot = view.is_token_bot || user.phid == ctx.actor_phid;
        self.refuse_protected(&user, service_bot, Change::Write)?;
        let old_attrs = parse_attributes(&view.attributes)?;
        // What the IdP asked for last time (for an adoption: nothing yet).
        let previous = UserSpec::from_doc(stored_doc(
            &view.user_name,
            view.external_id.as_deref(),
            true,
            &old_attrs,
        ))
        .ok();
        if view.user_name.to_lowercase() != spec.user_name.to_lowercase() {
            self.refuse_protected(&user, service_bot, Change::UserName)?;
        }
        let target = Target {
            user: &user,
            spec,
            previous: previous.as_ref(),
            mode,
            service_bot,
        };
        let mut edit = UserEdit::default();
        let desired_active = self.plan_row(&target, &mut edit)?;
        if !desired_active && (edit.changes.is_disabled.is_some() || mode == Mode::Delete) {
            self.revoke_noted(conn, &user.phid, &mut edit.diff).await?;
        }
        let deprovisioned_at = edit.ends_access.then(now);
        let address = self
            .sync_wanted_emails(conn, ctx, &target, &mut edit)
            .await?;
        let row_changed = !edit.changes.is_empty();
        self.write_user_row(conn, ctx, &target, &mut edit).await?;
        note_identity(&view, spec, &mut edit.diff);
        self.sync_login(conn, &target, &address, &mut edit.diff)
            .await?;
        let record = ScimRecord {
            new_attrs: with_desired_active(&spec.attributes, desired_active),
            old_attrs,
            deprovisioned_at,
        };
        let scim_changed = record.changes(&view, spec, mode);
        let (version, modified) = if scim_changed || row_changed {
            self.write_scim_record(conn, &view, &target, record).await?
        } else {
            (view.version, view.date_modified)
        };
        let (status, verb, outcome) = describe(mode, &edit.changes, scim_changed || row_changed);
        let summary = format!("{verb} user {} (@{})", spec.user_name, user.user_name);
        let entry = Entry {
            resource: ResourceType::User,
            phid: Some(&user.phid),
            status,
            summary: &summary,
            outcome,
        };
        self.log_done(conn, ctx, entry, edit.diff).await?;
        let groups = parse_groups(view.groups_json.as_deref())?;
        self.queue_and_guard(conn, &edit.tasks, deprovisioned_at.map(|_| view.id))
            .await?;
        let stored = StoredUser {
            phid: user.phid.into(),
            user_name: spec.user_name.clone(),
            external_id: spec.external_id.clone(),
            attributes: spec.attributes.clone(),
            active: desired_active,
            version,
            created: view.date_created,
            modified,
            groups,
        };
        Ok((stored, outcome))
    }

    /// Plans the changes to the `user` row and its transactions: the real name, the bot flag,
    /// `active`. Refuses what `refuse_protected` forbids. Returns the `active` the user ends
    /// with.
    fn plan_row(&self, target: &Target<'_>, edit: &mut UserEdit) -> Result<bool> {
        let Target {
            user,
            spec,
            previous,
            mode,
            service_bot,
        } = *target;
        // A name the IdP never sent is never written: an adopted account keeps its own until
        // the IdP sends one; a name the IdP sent and then removed is removed.
        let name_sent =
            !spec.real_name.is_empty() || previous.is_some_and(|p| !p.real_name.is_empty());
        if name_sent && user.real_name != spec.real_name {
            edit.diff
                .set("realName", user.real_name.clone(), spec.real_name.clone());
            // `core:customfield` for `user:realname` (docs/write-paths.md#change-the-real-name).
            edit.xactions.push(Xaction {
                kind: "core:customfield",
                old: Value::String(user.real_name.clone()),
                new: Value::String(spec.real_name.clone()),
                metadata: vec![("customfield:key", json!("user:realname"))],
            });
            edit.changes.real_name = Some(spec.real_name.clone());
        }
        let is_bot = self.is_bot(spec);
        if is_bot != user.is_system_agent && !user.is_mailing_list {
            self.refuse_protected(user, service_bot, Change::BotFlag)?;
            // Phabricator refuses web sessions to bots and agents
            // (`PhabricatorUser::canEstablishWebSessions`): making a person one locks them out
            // as surely as `active: false`, so it is a deprovision for the guard.
            edit.ends_access = is_bot;
            edit.diff.set("bot", user.is_system_agent, is_bot);
            edit.changes.is_system_agent = Some(is_bot);
        }
        let current_active = !user.is_disabled;
        let desired_active = match mode {
            Mode::Delete => false,
            Mode::Rehire => spec.active.unwrap_or(true),
            Mode::Adopt => spec.active.unwrap_or(current_active),
            Mode::Update => spec.active.unwrap_or(current_active),
        };
        if desired_active != current_active {
            if !desired_active {
                self.refuse_protected(user, service_bot, Change::Disable)?;
                edit.ends_access = true;
            }
            edit.xactions.push(Xaction {
                kind: "user.disable",
                old: json!(user.is_disabled),
                new: json!(!desired_active),
                metadata: Vec::new(),
            });
            edit.changes.is_disabled = Some(!desired_active);
            edit.diff.set("active", current_active, desired_active);
        }
        Ok(desired_active)
    }

    /// Mirrors the addresses the IdP asks for now (`sync_emails`) when they differ from the
    /// ones it asked for before, or when this write takes the account over. Returns the
    /// Phabricator primary address.
    async fn sync_wanted_emails(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        target: &Target<'_>,
        edit: &mut UserEdit,
    ) -> Result<String> {
        let Target {
            user, spec, mode, ..
        } = *target;
        let address = self.address_for(spec, Some(&user.user_name))?;
        let wanted = mirrored_addresses(spec, &address)?;
        let previously_wanted = self
            .previous_address(target)
            .and_then(|(s, a)| mirrored_addresses(s, &a).ok())
            .unwrap_or_default();
        // When the addresses the IdP asked for are unchanged there is nothing to move (and no
        // query to make), unless this write takes the account over.
        if mode == Mode::Update && previously_wanted == wanted {
            return Ok(address);
        }
        // Only what the IdP itself sent before and no longer sends is removed: an adopted
        // account keeps the addresses it had, and so does an address added in Phabricator.
        let dropped: Vec<String> = if mode == Mode::Adopt {
            Vec::new()
        } else {
            previously_wanted
                .into_iter()
                .filter(|p| !wanted.iter().any(|w| w.eq_ignore_ascii_case(p)))
                .collect()
        };
        let mirror = Mirror {
            wanted: &wanted,
            dropped: &dropped,
            verified: self.cfg.trust_idp_emails && !self.is_placeholder(spec, &address),
        };
        self.sync_emails(conn, ctx, user, mirror, edit).await?;
        Ok(address)
    }

    /// The previous request's document and the Phabricator address it asked for.
    fn previous_address<'a>(&self, target: &Target<'a>) -> Option<(&'a UserSpec, String)> {
        let previous = target.previous?;
        let address = self
            .address_for(previous, Some(&target.user.user_name))
            .ok()?;
        Some((previous, address))
    }

    /// Writes the planned `user` row change, its name tokens and its transactions, and plans
    /// the publish and search tasks (docs/write-paths.md#daemon-tasks).
    async fn write_user_row(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        target: &Target<'_>,
        edit: &mut UserEdit,
    ) -> Result<()> {
        let t = &*self.db.t;
        let user = target.user;
        pu::update_user(conn, t, &user.phid, &edit.changes).await?;
        if edit.changes.real_name.is_some() {
            let tokens = pu::name_tokens(&user.user_name, &target.spec.real_name);
            pu::write_name_tokens(conn, t, user.id, &tokens, true).await?;
        }
        if !edit.xactions.is_empty() {
            let phids = xaction::insert_group(
                conn,
                t,
                &XactionGroup {
                    object: xaction::Object::User(&user.phid),
                    actor_phid: &ctx.actor_phid,
                    xactions: &edit.xactions,
                    is_create: false,
                },
            )
            .await?;
            edit.tasks.push(Task::publish(
                &user.phid,
                &ctx.actor_phid,
                &phids,
                xaction::user_publish_state(&user.phid, &ctx.actor_phid),
            ));
        }
        if !edit.changes.is_empty() {
            // Without a transaction row, force the reindex (docs/write-paths.md#daemon-tasks).
            edit.tasks
                .insert(0, Task::search(&user.phid, edit.xactions.is_empty()));
        }
        Ok(())
    }

    /// Links the login provider (`link_login`), except for an administrator: its login links
    /// never change over SCIM, as a link lets whoever holds that directory identity in. A write
    /// that would move an administrator's identifier is refused; otherwise its links stay as
    /// they are (an adoption links none).
    async fn sync_login(
        &self,
        conn: &mut Conns<'_>,
        target: &Target<'_>,
        address: &str,
        diff: &mut Diff,
    ) -> Result<()> {
        let Target {
            user,
            spec,
            mode,
            service_bot,
            ..
        } = *target;
        if user.is_admin && self.cfg.login_provider.is_some() {
            let template = &self.cfg.login_identifier;
            let identifier = login_identifier(template, spec, address);
            let before = self
                .previous_address(target)
                .map(|(p, a)| login_identifier(template, p, &a));
            if mode != Mode::Adopt && before.as_deref() != Some(identifier.as_str()) {
                self.refuse_protected(user, service_bot, Change::LoginLink)?;
            }
        } else if let Some(link) = self
            .link_login(conn, &user.phid, spec, address, &user.user_name)
            .await?
        {
            diff.note("login", link);
        }
        Ok(())
    }

    /// Writes the `scim_user` record and its addresses; returns the new version and
    /// modification time.
    async fn write_scim_record(
        &self,
        conn: &mut Conns<'_>,
        view: &ScimUserView,
        target: &Target<'_>,
        record: ScimRecord,
    ) -> Result<(u32, u32)> {
        let t = &*self.db.t;
        let spec = target.spec;
        let emails_changed = record.old_attrs.get("emails") != spec.attributes.get("emails");
        let attributes = Value::Object(record.new_attrs);
        if let Err(e) = sidecar::update_scim_user(
            conn,
            t,
            view.id,
            &record_fields(spec, &attributes),
            target.mode == Mode::Delete,
            record.deprovisioned_at,
        )
        .await
        {
            if e.is_unique_violation() {
                return Err(ProvisionError::Conflict(format!(
                    "userName {} already exists",
                    spec.user_name
                )));
            }
            return Err(e.into());
        }
        if emails_changed || target.mode != Mode::Update {
            let emails = scim_emails(spec);
            sidecar::write_scim_emails(conn, t, &target.user.phid, &emails, true).await?;
        }
        Ok((view.version + 1, now()))
    }

    /// Queues the write's tasks, last: the counter row is hot
    /// (docs/design.md#tasks-inside-the-transaction). Then, for a write that ends a user's
    /// access (`deprovisioned`: its `scim_user` id), the burst guard, after the tasks: their
    /// counter allocation has locked the row the guard needs.
    async fn queue_and_guard(
        &self,
        conn: &mut Conns<'_>,
        tasks: &[Task],
        deprovisioned: Option<u32>,
    ) -> Result<()> {
        worker::queue(conn, &self.db.t, tasks).await?;
        if let Some(id) = deprovisioned {
            self.guard_burst(conn, id, tasks.is_empty()).await?;
        }
        Ok(())
    }

    /// Disables an account inside a creation (rare: an IdP creating an inactive user).
    async fn set_disabled(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        user: &UserRow,
        disabled: bool,
        diff: &mut Diff,
        tasks: &mut Vec<Task>,
    ) -> Result<()> {
        let t = &*self.db.t;
        pu::update_user(
            conn,
            t,
            &user.phid,
            &UserChanges {
                is_disabled: Some(disabled),
                ..Default::default()
            },
        )
        .await?;
        let x = Xaction {
            kind: "user.disable",
            old: json!(user.is_disabled),
            new: json!(disabled),
            metadata: Vec::new(),
        };
        let phids = xaction::insert_group(
            conn,
            t,
            &XactionGroup {
                object: xaction::Object::User(&user.phid),
                actor_phid: &ctx.actor_phid,
                xactions: &[x],
                is_create: false,
            },
        )
        .await?;
        tasks.push(Task::publish(
            &user.phid,
            &ctx.actor_phid,
            &phids,
            xaction::user_publish_state(&user.phid, &ctx.actor_phid),
        ));
        diff.set("active", !user.is_disabled, !disabled);
        Ok(())
    }

    /// Mirrors the addresses the IdP sends into `user_email`, each step the way
    /// `PhabricatorUserEditor` takes it: `addEmail` for an address the account lacks
    /// (`add_email`), `changePrimaryEmail` when SCIM's primary moves (`move_primary`) and
    /// `removeEmail` for an address in `dropped` (`remove_emails`); then, when an address
    /// went or the primary moved, `revokePasswordResetLinks`.
    async fn sync_emails(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        user: &UserRow,
        mirror: Mirror<'_>,
        edit: &mut UserEdit,
    ) -> Result<()> {
        let t = &*self.db.t;
        let Some(primary) = mirror.wanted.first() else {
            return Err(DbError::Inconsistent("no address to mirror".into()).into());
        };
        let emails = pu::user_emails(conn, t, &user.phid).await?;
        let plan = EmailPlan::new(&emails, &mirror, primary);
        if plan.to_add.is_empty() && !plan.primary_moves && plan.to_remove.is_empty() {
            return Ok(());
        }
        // `apply` refused the service's own bot before anything else.
        self.refuse_protected(user, false, Change::Emails)?;
        for address in &plan.to_add {
            let trusted = if address.eq_ignore_ascii_case(primary) {
                mirror.verified
            } else {
                self.cfg.trust_idp_emails
            };
            self.add_email(conn, ctx, &user.phid, address, trusted, &mut edit.tasks)
                .await?;
        }
        if !plan.to_add.is_empty() {
            edit.diff.note("emailsAdded", plan.to_add.clone());
        }
        if plan.primary_moves {
            self.move_primary(conn, ctx, user, &plan, mirror.verified, edit)
                .await?;
        }
        self.remove_emails(conn, ctx, user, &plan.to_remove, edit)
            .await?;
        if plan.primary_moves || !plan.to_remove.is_empty() {
            // `PhabricatorUserEditor::revokePasswordResetLinks`: a reset link must not outlive
            // the address it was sent to.
            pu::expire_temporary_tokens(
                conn,
                t,
                &user.phid,
                Some(&["login:onetime", "login:password"]),
            )
            .await?;
        }
        Ok(())
    }

    /// `PhabricatorUserEditor::changePrimaryEmail`: the old primary is demoted and kept, the
    /// new one promoted (verified when it was or `verified` says so), an `email-primary` row.
    async fn move_primary(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        user: &UserRow,
        plan: &EmailPlan,
        verified: bool,
        edit: &mut UserEdit,
    ) -> Result<()> {
        let t = &*self.db.t;
        let primary = plan.primary.as_str();
        let new = match &plan.owned_primary {
            Some(e) => e.clone(),
            None => pu::lock_email(conn, t, primary)
                .await?
                .ok_or_else(|| DbError::Inconsistent("the new address vanished".into()))?,
        };
        let old_address = plan.old_primary.as_ref().map(|e| e.address.clone());
        if let Some(old) = &plan.old_primary {
            pu::set_email_flags(conn, t, old.id, false, old.is_verified).await?;
        }
        pu::set_email_flags(conn, t, new.id, true, new.is_verified || verified).await?;
        let log = pu::UserLog {
            actor_phid: &ctx.actor_phid,
            user_phid: &user.phid,
            action: pu::LogAction::EmailPrimary,
            old: json!(old_address),
            new: json!(primary),
            remote_addr: &ctx.remote_addr,
        };
        pu::insert_log(conn, t, &log).await?;
        // `PhabricatorUserEditor::changePrimaryEmail` saves the account only to mark it
        // verified: an account already verified is not written (no reindex either).
        if (new.is_verified || verified) && !user.is_email_verified {
            edit.changes.is_email_verified = Some(true);
        }
        edit.diff.set("email", old_address, primary.to_owned());
        Ok(())
    }

    /// `PhabricatorUserEditor::removeEmail` for each of `to_remove`: a destruction-log row,
    /// the delete, an `email-remove` row, an identity task.
    async fn remove_emails(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        user: &UserRow,
        to_remove: &[pu::EmailRow],
        edit: &mut UserEdit,
    ) -> Result<()> {
        let t = &*self.db.t;
        for old in to_remove {
            pu::destroy_email(conn, t, old).await?;
            let log = pu::UserLog {
                actor_phid: &ctx.actor_phid,
                user_phid: &user.phid,
                action: pu::LogAction::EmailRemove,
                old: json!(old.address),
                new: Value::Null,
                remote_addr: &ctx.remote_addr,
            };
            pu::insert_log(conn, t, &log).await?;
            edit.tasks.push(Task::identity_removed(&old.address));
        }
        if !to_remove.is_empty() {
            let removed: Vec<String> = to_remove.iter().map(|e| e.address.clone()).collect();
            edit.diff.note("emailsRemoved", removed);
        }
        Ok(())
    }

    /// Adds `address` to an account, not primary, as `PhabricatorUserEditor::addEmail` does:
    /// refused when another account holds it (a conflict) or it is an application address (an
    /// invalid value).
    async fn add_email(
        &self,
        conn: &mut Conns<'_>,
        ctx: &Ctx,
        user_phid: &Phid,
        address: &str,
        verified: bool,
        tasks: &mut Vec<Task>,
    ) -> Result<()> {
        let t = &*self.db.t;
        if let Some(owner) = pu::lock_email(conn, t, address).await? {
            return Err(ProvisionError::Conflict(format!(
                "the email {address} belongs to another account ({})",
                owner.user_phid
            )));
        }
        if pu::is_application_email(conn, t, address).await? {
            return Err(ProvisionError::InvalidValue(format!(
                "{address} is an application email address"
            )));
        }
        if let Err(e) = pu::insert_email(conn, t, user_phid, address, verified, false).await {
            // A concurrent request took it between the check and the insert.
            if e.is_unique_violation() {
                return Err(ProvisionError::Conflict(format!(
                    "the email {address} belongs to another account"
                )));
            }
            return Err(e.into());
        }
        pu::insert_log(
            conn,
            t,
            &pu::UserLog {
                actor_phid: &ctx.actor_phid,
                user_phid,
                action: pu::LogAction::EmailAdd,
                old: Value::Null,
                new: json!(address),
                remote_addr: &ctx.remote_addr,
            },
        )
        .await?;
        tasks.push(Task::identity_added(address));
        Ok(())
    }

    /// `revoke`, and what it revoked in the sync log.
    async fn revoke_noted(
        &self,
        conn: &mut Conns<'_>,
        user_phid: &Phid,
        diff: &mut Diff,
    ) -> Result<()> {
        let revoked = self.revoke(conn, user_phid).await?;
        diff.note(
            "revoked",
            serde_json::to_value(revoked).unwrap_or(Value::Null),
        );
        Ok(())
    }

    /// Ends sessions and revokes credentials, per configuration (docs/design.md#deprovisioning).
    async fn revoke(&self, conn: &mut Conns<'_>, user_phid: &Phid) -> Result<Revoked> {
        let t = &*self.db.t;
        let r = &self.cfg.revoke;
        Ok(Revoked {
            sessions: if r.sessions {
                pu::delete_sessions(conn, t, user_phid).await?
            } else {
                0
            },
            api_tokens: if r.api_tokens {
                pu::expire_api_tokens(conn, t, user_phid).await?
            } else {
                0
            },
            temporary_tokens: if r.temporary_tokens {
                pu::expire_temporary_tokens(conn, t, user_phid, None).await?
            } else {
                0
            },
        })
    }

    /// Blast radius (issues 6 and 11): what SCIM never does, whatever a token asks. `user` is
    /// the row locked in this transaction, never a cached flag, so an account made an
    /// administrator a moment ago is protected from the next request on.
    ///
    /// - The service's own bot (`service_bot`: a SCIM token speaks for it) is never adopted nor
    ///   written: every token would break with it (`ensure_bot` refuses a bot that is no longer
    ///   one).
    /// - Mailing lists are never adopted: they are nobody's account to take over.
    /// - Administrators are adopted only with `adopt_administrators`, never disabled, and their
    ///   addresses (where a password reset goes), bot flag (bots get no web session), login
    ///   links (which let an outside identity in) and userName never change.
    ///
    /// Refusing an adoption is a conflict: the POST conflicts with an existing resource
    /// (RFC 7644 §3.3), which IdPs report as "already exists" and do not retry blindly. A write
    /// to a managed account is forbidden: the resource exists, the change is not allowed.
    fn refuse_protected(&self, user: &UserRow, service_bot: bool, change: Change) -> Result<()> {
        let who = &user.user_name;
        let refuse = |why: String| -> Result<()> {
            Err(if change == Change::Adopt {
                ProvisionError::Conflict(why)
            } else {
                ProvisionError::Forbidden(why)
            })
        };
        if service_bot {
            return refuse(format!(
                "@{who} is the bot account phab-scim's tokens speak for; SCIM never adopts or changes it"
            ));
        }
        if change == Change::Adopt && user.is_mailing_list {
            return refuse(format!("@{who} is a mailing list, which SCIM never adopts"));
        }
        // A bot made in Phabricator holds some automation's credentials and permissions; once
        // adopted, a token could make it a person and reset its password to an address of its
        // choosing. Bots the IdP wants are created over SCIM (`userType`), never taken over.
        if change == Change::Adopt && user.is_system_agent {
            return refuse(format!(
                "@{who} is a bot account made in Phabricator, which SCIM never adopts"
            ));
        }
        if !user.is_admin {
            return Ok(());
        }
        let never = match change {
            Change::Write => return Ok(()),
            Change::Adopt if self.cfg.adopt_administrators => return Ok(()),
            Change::Adopt => {
                return refuse(format!(
                    "@{who} is a Phabricator administrator; SCIM does not adopt administrators unless adopt_administrators is set"
                ));
            }
            Change::Disable => "disables administrators",
            Change::BotFlag => "changes an administrator's bot flag (userType Bot or Agent)",
            Change::Emails => "changes an administrator's email addresses",
            Change::LoginLink => "changes an administrator's login links",
            Change::UserName => "changes an administrator's userName",
        };
        refuse(format!(
            "@{who} is a Phabricator administrator; SCIM never {never}"
        ))
    }

    /// Blast radius (issue 6): refuse a burst of deprovisions of established users larger than
    /// the configured share of managed users. An account the service itself created within the
    /// window is neither counted nor refused: an IdP's test run or a compliance suite creates
    /// and deletes users minutes apart, which is no mass offboarding. Runs last, after the
    /// write's tasks took the counter row (or after locking it, when there were none):
    /// concurrent deprovisions count one after the other, the hot row is held no longer than by
    /// any write, and a refusal rolls it all back. The refusal is written to the sync log
    /// as an error by `http::auth`, like every failed request.
    async fn guard_burst(&self, conn: &mut Conns<'_>, scim_user_id: u32, lock: bool) -> Result<()> {
        let guard = GuardSettings::of(&self.cfg);
        if !guard.enabled() {
            return Ok(());
        }
        let ts = now();
        let window = guard.window_secs;
        if sidecar::account_created_at(conn, &self.db.t, scim_user_id)
            .await?
            .is_some_and(|created| u64::from(ts) < u64::from(created) + u64::from(window))
        {
            return Ok(());
        }
        if lock {
            sidecar::lock_deprovision_guard(conn, &self.db.t).await?;
        }
        let recent =
            sidecar::count_deprovisions_since(conn, &self.db.t, ts, window, scim_user_id).await?;
        if recent < u64::from(guard.min) {
            return Ok(());
        }
        // This user is already disabled in this transaction, so not among `active`: the
        // managed population is the active ones, those disabled in the window, and this one.
        let active = self.managed_users_estimate(conn).await?;
        let managed = active + recent + 1;
        let limit = guard.limit(managed);
        if recent + 1 > limit {
            return Err(ProvisionError::GuardTripped {
                retry_after_secs: GUARD_RETRY_AFTER_SECS,
                detail: format!(
                    "{GUARD_REFUSAL}: {recent} established users were deprovisioned in the last {window}s \
                     (deprovision_guard_window_secs), and {limit} are allowed: {:.0}% \
                     (deprovision_guard_share) of {managed} managed users, at least {} \
                     (deprovision_guard_min); users phab-scim created within the window do not count. \
                     Check the IdP's assignments, or raise deprovision_guard_share or \
                     deprovision_guard_min, or shorten deprovision_guard_window_secs",
                    guard.share * 100.0,
                    guard.min,
                ),
            });
        }
        Ok(())
    }

    /// Active managed users, re-counted at most every 30 s: the guard's denominator needs no
    /// precision, and counting on every deactivation made a reorg of 100,000 users crawl
    /// (benches/README.md).
    async fn managed_users_estimate(&self, conn: &mut Conns<'_>) -> Result<u64> {
        static CACHE: std::sync::Mutex<
            Option<std::collections::HashMap<String, (std::time::Instant, u64)>>,
        > = std::sync::Mutex::new(None);
        let key = self.db.ns.as_str().to_owned();
        if let Ok(guard) = CACHE.lock()
            && let Some((at, n)) = guard.as_ref().and_then(|m| m.get(&key))
            && at.elapsed() < std::time::Duration::from_secs(30)
        {
            return Ok(*n);
        }
        let n = sidecar::count_active_managed_users(conn, &self.db.t).await?;
        if let Ok(mut guard) = CACHE.lock() {
            guard
                .get_or_insert_with(Default::default)
                .insert(key, (std::time::Instant::now(), n));
        }
        Ok(n)
    }

    /// Links the login provider, when one is configured.
    async fn link_login(
        &self,
        conn: &mut Conns<'_>,
        user_phid: &Phid,
        spec: &UserSpec,
        address: &str,
        username: &str,
    ) -> Result<Option<Value>> {
        let Some(provider_spec) = self.cfg.login_provider.as_deref() else {
            return Ok(None);
        };
        let t = &*self.db.t;
        let provider = external::find_provider(conn, t, provider_spec)
            .await?
            .filter(|p| p.is_enabled && p.allows_login)
            .ok_or_else(|| {
                ProvisionError::Misconfigured(format!(
                    "login provider {provider_spec} is missing, disabled or does not allow login"
                ))
            })?;
        let identifier = login_identifier(&self.cfg.login_identifier, spec, address);
        if identifier.is_empty() {
            return Ok(None);
        }
        let link = external::NewLink {
            user_phid,
            identifier: &identifier,
            email: Some(address),
            username,
            real_name: &spec.real_name,
        };
        match external::link(conn, t, &provider, &link).await? {
            LinkOutcome::Unchanged => Ok(None),
            LinkOutcome::OwnedByOther { user_phid: other } => {
                Err(ProvisionError::Conflict(format!(
                    "the login identifier {identifier:?} of {} is linked to another account ({other})",
                    provider.provider_type
                )))
            }
            outcome => Ok(Some(
                json!({"provider": provider.phid, "identifier": identifier, "outcome": outcome}),
            )),
        }
    }

    fn is_bot(&self, spec: &UserSpec) -> bool {
        spec.user_type.as_deref().is_some_and(|ty| {
            self.cfg
                .bot_user_types
                .iter()
                .any(|b| b.eq_ignore_ascii_case(ty))
        })
    }

    fn is_placeholder(&self, spec: &UserSpec, address: &str) -> bool {
        spec.phabricator_email().as_deref() != Some(address)
    }

    /// The Phabricator address for `spec`, or a placeholder, or an invalid value that says why.
    fn address_for(&self, spec: &UserSpec, existing_username: Option<&str>) -> Result<String> {
        if let Some(a) = spec.phabricator_email() {
            if !is_valid_email(&a) {
                return Err(ProvisionError::InvalidValue(format!(
                    "{a:?} is not an email address Phabricator accepts"
                )));
            }
            return Ok(a);
        }
        match &self.cfg.placeholder_email_domain {
            Some(domain) => {
                let name = existing_username
                    .map(str::to_owned)
                    .unwrap_or_else(|| base_username(&spec.user_name, self.cfg.username_policy));
                Ok(format!("{name}@{domain}"))
            }
            None => Err(ProvisionError::InvalidValue(
                "Phabricator needs an email address: send emails, or an email-shaped userName, or configure placeholder_email_domain"
                    .into(),
            )),
        }
    }
}

/// A POST that adopts or rehires and is refused conflicts with the existing account: 409, as
/// an adoption refused outright is (RFC 7644 §3.3), not the 403 of a refused PUT or PATCH.
fn refused_as_conflict(e: ProvisionError) -> ProvisionError {
    match e {
        ProvisionError::Forbidden(why) => ProvisionError::Conflict(why),
        other => other,
    }
}

/// What a write would do to an account, for `Provisioner::refuse_protected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Take over an account SCIM does not manage (POST).
    Adopt,
    /// Any write to a managed account.
    Write,
    /// Disable it (`active: false`, DELETE).
    Disable,
    /// Make it a bot or agent, or a person again.
    BotFlag,
    /// Add, remove or re-prioritize its email addresses.
    Emails,
    /// Link it to a login identity.
    LoginLink,
    /// Change its SCIM userName.
    UserName,
}

/// Which write `apply` performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Update,
    Delete,
    Adopt,
    Rehire,
}

/// The account `apply` brings to a request, and what it knows of it.
#[derive(Clone, Copy)]
struct Target<'a> {
    /// The live `user` row, locked.
    user: &'a UserRow,
    /// What the IdP asks for now.
    spec: &'a UserSpec,
    /// What it asked for last time (for an adoption: nothing yet).
    previous: Option<&'a UserSpec>,
    mode: Mode,
    /// The account is the service's own bot.
    service_bot: bool,
}

/// What one `apply` changes, gathered step by step: the sync-log diff, the daemon tasks to
/// queue last, the user transactions and the `user` row's columns.
#[derive(Default)]
struct UserEdit {
    diff: Diff,
    tasks: Vec<Task>,
    xactions: Vec<Xaction>,
    changes: UserChanges,
    /// Set when this write ends the account's web access: stamped on `scim_user` and checked
    /// by the burst guard just before COMMIT.
    ends_access: bool,
}

/// The `scim_user` record as `apply` leaves it.
struct ScimRecord {
    old_attrs: Map<String, Value>,
    new_attrs: Map<String, Value>,
    deprovisioned_at: Option<u32>,
}

impl ScimRecord {
    /// Whether the record changes at all.
    fn changes(&self, view: &ScimUserView, spec: &UserSpec, mode: Mode) -> bool {
        view.user_name != spec.user_name
            || view.external_id != spec.external_id
            || self.old_attrs != self.new_attrs
            || view.is_deprovisioned != (mode == Mode::Delete)
    }
}

/// The addresses `sync_emails` brings an account to: `wanted[0]` is the primary; `verified`
/// is whether it counts as verified (the others are verified when the IdP is trusted).
/// Only addresses in `dropped` are removed.
struct Mirror<'a> {
    wanted: &'a [String],
    dropped: &'a [String],
    verified: bool,
}

/// What `sync_emails` does, planned from the account's `user_email` rows.
struct EmailPlan {
    /// The wanted primary.
    primary: String,
    /// Wanted addresses the account lacks.
    to_add: Vec<String>,
    old_primary: Option<pu::EmailRow>,
    /// The row of the wanted primary, when the account already has it.
    owned_primary: Option<pu::EmailRow>,
    primary_moves: bool,
    /// Dropped addresses the account has and no longer wants.
    to_remove: Vec<pu::EmailRow>,
}

impl EmailPlan {
    fn new(emails: &[pu::EmailRow], mirror: &Mirror<'_>, primary: &str) -> Self {
        let owned = |address: &str| {
            emails
                .iter()
                .find(|e| e.address.eq_ignore_ascii_case(address))
        };
        let old_primary = emails.iter().find(|e| e.is_primary).cloned();
        let primary_moves = !old_primary
            .as_ref()
            .is_some_and(|e| e.address.eq_ignore_ascii_case(primary));
        let wanted = mirror.wanted;
        Self {
            primary: primary.to_owned(),
            to_add: wanted
                .iter()
                .filter(|a| owned(a).is_none())
                .cloned()
                .collect(),
            owned_primary: owned(primary).cloned(),
            old_primary,
            primary_moves,
            to_remove: mirror
                .dropped
                .iter()
                .filter_map(|d| owned(d))
                .filter(|e| !wanted.iter().any(|w| w.eq_ignore_ascii_case(&e.address)))
                .cloned()
                .collect(),
        }
    }
}

/// The columns of `spec`'s SCIM record, with `attributes` as its stored document.
fn record_fields<'a>(spec: &'a UserSpec, attributes: &'a Value) -> ScimUserFields<'a> {
    ScimUserFields {
        user_name: &spec.user_name,
        external_id: spec.external_id.as_deref(),
        attributes,
    }
}

/// The sync-log entries of a changed userName or externalId.
fn note_identity(view: &ScimUserView, spec: &UserSpec, diff: &mut Diff) {
    if view.user_name != spec.user_name {
        diff.set("userName", view.user_name.clone(), spec.user_name.clone());
    }
    if view.external_id != spec.external_id {
        diff.set(
            "externalId",
            view.external_id.clone(),
            spec.external_id.clone(),
        );
    }
}

/// What `apply` did, for its sync-log row and its INFO line: the status the client gets, the
/// summary's verb and the outcome word. `changed`: the user row or the SCIM record changed.
fn describe(mode: Mode, changes: &UserChanges, changed: bool) -> (u16, &'static str, &'static str) {
    match mode {
        Mode::Delete => (204, "deprovision (delete)", "deleted"),
        Mode::Adopt => (201, "adopt", "adopted"),
        Mode::Rehire => (201, "rehire", "rehired"),
        Mode::Update if changes.is_disabled == Some(true) => (200, "deprovision", "deactivated"),
        Mode::Update if changes.is_disabled == Some(false) => (200, "reactivate", "reactivated"),
        Mode::Update if changes.is_system_agent == Some(true) => {
            (200, "deprovision (bot)", "made a bot")
        }
        Mode::Update if changed => (200, "update", "updated"),
        Mode::Update => (200, "no change to", "unchanged"),
    }
}

/// The stored document keeps the `active` the IdP asked for: responses show Phabricator's
/// state, and drift compares the two (an account SCIM disabled, enabled again by hand).
fn with_desired_active(attributes: &Map<String, Value>, active: bool) -> Map<String, Value> {
    let mut m = attributes.clone();
    m.insert("active".into(), Value::Bool(active));
    m
}

/// Most addresses one account gets from the IdP: each costs a handful of rows and a task, and
/// no person has more.
const MAX_MIRRORED_EMAILS: usize = 20;

/// The addresses Phabricator gets for `spec`: `primary` (`Provisioner::address_for`) first,
/// then every other address the IdP sent that Phabricator accepts
/// (`PhabricatorUserEmail::isValidAddress`), once each, compared case-insensitively as
/// `user_email.address` is. Others stay SCIM data only: an odd home address must not keep a
/// person from being provisioned.
fn mirrored_addresses(spec: &UserSpec, primary: &str) -> Result<Vec<String>> {
    let mut out = vec![primary.to_owned()];
    for e in &spec.emails {
        if is_valid_email(&e.value) && !out.iter().any(|a| a.eq_ignore_ascii_case(&e.value)) {
            out.push(e.value.clone());
        }
    }
    if out.len() > MAX_MIRRORED_EMAILS {
        return Err(ProvisionError::InvalidValue(format!(
            "{} email addresses; Phabricator gets at most {MAX_MIRRORED_EMAILS} per user",
            out.len()
        )));
    }
    Ok(out)
}

fn scim_emails(spec: &UserSpec) -> Vec<ScimEmail> {
    spec.emails
        .iter()
        .filter(|e| e.value.len() <= 128)
        .map(|e| ScimEmail {
            address: e.value.clone(),
            kind: e.kind.clone().filter(|k| k.len() <= 32),
            primary: e.primary,
        })
        .collect()
}

/// Expands the login identifier template (docs/design.md#login-linking).
pub fn login_identifier(template: &str, spec: &UserSpec, address: &str) -> String {
    let local = spec.user_name.split('@').next().unwrap_or(&spec.user_name);
    template
        .replace("{userNameLocalPart}", local)
        .replace("{userName}", &spec.user_name)
        .replace("{externalId}", spec.external_id.as_deref().unwrap_or(""))
        .replace("{email}", address)
}
