//! Users: create (or adopt, or rehire), read, replace, patch, deprovision.
//!
//! Every write runs in one transaction (`in_transaction!`) that takes the rows it changes with
//! `FOR UPDATE`, writes what `PhabricatorUserEditor` and the user transaction editor write
//! (docs/write-paths.md, the user sections), queues the daemon tasks last, and records its
//! `scim_event` row, so a request commits all of it or none of it.

use serde_json::{Map, Value, json};
use tracing::instrument;

use super::username::{base_username, candidate};
use super::{Ctx, ProvisionError, Provisioner, Result, log_change, log_write};
use crate::config::AdoptionPolicy;
use crate::db::phabricator::external::{self, LinkOutcome};
use crate::db::phabricator::new_phid;
use crate::db::phabricator::user::{self as pu, NewUser, Revoked, UserChanges, UserRow};
use crate::db::phabricator::worker::{self, Task};
use crate::db::phabricator::xaction::{self, Xaction};
use crate::db::sidecar::{self, Event, ScimEmail, ScimUserRead, ScimUserView};
use crate::db::status::{GUARD_REFUSAL, GuardSettings};
use crate::db::{Conn, DbError, filter_sql, now};
use crate::in_transaction;
use crate::scim::ScimError;
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

/// The diff of one write, for the sync log.
#[derive(Debug, Default)]
struct Diff {
    changes: Map<String, Value>,
}

impl Diff {
    fn set(&mut self, key: &str, old: impl Into<Value>, new: impl Into<Value>) {
        self.changes.insert(
            key.to_owned(),
            json!({"old": old.into(), "new": new.into()}),
        );
    }
    fn note(&mut self, key: &str, value: impl Into<Value>) {
        self.changes.insert(key.to_owned(), value.into());
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
            .ok_or_else(|| ScimError::not_found(format!("no user {phid}")))?;
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
        let result: Result<(Created, StoredUser)> = async {
            let spec = UserSpec::from_doc(normalize(Resource::User, body)?)?;
            let address = self.address_for(&spec, None)?;
            in_transaction!(self.db, |tx| self
                .create_in(&mut tx, ctx, &spec, &address)
                .await)
        }
        .await;
        log_write(ctx, "User", None, &result, |(how, u)| {
            (u.phid.as_str(), how.outcome())
        });
        result
    }

    async fn create_in(
        &self,
        conn: &mut Conn,
        ctx: &Ctx,
        spec: &UserSpec,
        address: &str,
    ) -> Result<(Created, StoredUser)> {
        let t = &*self.db.t;
        // The address decides adoption; a managed owner is a conflict.
        let (owner, application) = pu::email_owner(conn, t, address).await?;
        if application {
            return Err(ScimError::invalid_value(format!(
                "{address} is an application email address"
            ))
            .into());
        }
        if let Some(owner) = owner {
            if let Some(existing) = sidecar::lock_scim_user(conn, t, &owner.user_phid).await? {
                if existing.is_deprovisioned
                    && existing.user_name.to_lowercase() == spec.user_name.to_lowercase()
                {
                    return self.rehire(conn, ctx, existing, spec).await;
                }
                // The same user again (an IdP retrying its POST): the conflict is the
                // userName, as for a re-POST with another address.
                if existing.user_name.to_lowercase() == spec.user_name.to_lowercase() {
                    return Err(ScimError::uniqueness(format!(
                        "userName {} already exists",
                        spec.user_name
                    ))
                    .into());
                }
                return Err(ScimError::uniqueness(format!(
                    "the email {address} belongs to another SCIM user ({})",
                    existing.user_name
                ))
                .into());
            }
            let adoptable = self.cfg.adoption == AdoptionPolicy::VerifiedEmail
                && owner.is_primary
                && owner.is_verified;
            if !adoptable {
                return Err(ScimError::uniqueness(format!(
                    "the email {address} belongs to an existing Phabricator account that SCIM does not manage"
                ))
                .into());
            }
            // The account's own row, locked, decides whether it may be taken over.
            let account = pu::lock_user(conn, t, &owner.user_phid)
                .await?
                .ok_or_else(|| DbError::Inconsistent("the owner of an address vanished".into()))?;
            let service_bot = account.phid == ctx.actor_phid
                || sidecar::is_token_bot(conn, t, &account.phid).await?;
            self.refuse_protected(&account, service_bot, Change::Adopt)?;
            if self.is_placeholder(spec, address) {
                // The IdP named no address: the one the service made up proves nothing.
                return Err(ScimError::uniqueness(format!(
                    "the placeholder address {address} belongs to @{}, an account SCIM does not manage; SCIM adopts an account only by an address the IdP sends",
                    account.user_name
                ))
                .into());
            }
            return self.adopt(conn, ctx, &owner.user_phid, spec).await;
        }
        let phid = new_phid("USER");
        let active = spec.active.unwrap_or(true);
        // One timestamp for the stored record and the answer: a GET right after must match.
        let ts = now();
        if let Err(e) = sidecar::insert_scim_user(
            conn,
            t,
            &phid,
            &spec.user_name,
            spec.external_id.as_deref(),
            &Value::Object(with_desired_active(&spec.attributes, active)),
            ts,
            true,
        )
        .await
        {
            if !e.is_unique_violation() {
                return Err(e.into());
            }
            // Same userName: a deprovisioned user comes back (rehire), anyone else is a conflict.
            return match sidecar::lock_scim_user_by_name(conn, t, &spec.user_name).await? {
                Some(existing) if existing.is_deprovisioned => {
                    self.rehire(conn, ctx, existing, spec).await
                }
                _ => Err(ScimError::uniqueness(format!(
                    "userName {} already exists",
                    spec.user_name
                ))
                .into()),
            };
        }
        let is_bot = self.is_bot(spec);
        let verified = self.cfg.trust_idp_emails && !self.is_placeholder(spec, address);
        let wanted = mirrored_addresses(spec, address)?;
        let (user_id, username) = self
            .insert_account(conn, &phid, spec, is_bot, verified)
            .await?;
        pu::insert_email(conn, t, &phid, address, verified, true).await?;
        pu::write_name_tokens(
            conn,
            t,
            user_id,
            &pu::name_tokens(&username, &spec.real_name),
            false,
        )
        .await?;
        sidecar::write_scim_emails(conn, t, &phid, &scim_emails(spec), false).await?;
        let mut diff = Diff::default();
        diff.note("username", username.clone());
        diff.note("email", address.to_owned());
        if is_bot {
            diff.note("bot", true);
        }
        if let Some(link) = self
            .link_login(conn, &phid, spec, address, &username)
            .await?
        {
            diff.note("login", link);
        }
        let mut tasks = vec![Task::search(&phid, false), Task::identity_added(address)];
        // The other addresses the IdP sent, each as `PhabricatorUserEditor::addEmail` adds one.
        let mut added = Vec::new();
        for other in &wanted[1..] {
            self.add_email(
                conn,
                ctx,
                &phid,
                other,
                self.cfg.trust_idp_emails,
                &mut tasks,
            )
            .await?;
            added.push(other.clone());
        }
        if !added.is_empty() {
            diff.note("emailsAdded", added);
        }
        if !active {
            // Created already deactivated: disable in the same request, as an edit would.
            let row = pu::lock_user(conn, t, &phid)
                .await?
                .ok_or_else(|| DbError::Inconsistent("new user vanished".into()))?;
            self.set_disabled(conn, ctx, &row, true, &mut diff, &mut tasks)
                .await?;
        }
        self.log(
            conn,
            ctx,
            Some(&phid),
            201,
            &format!("create user {} as @{username}", spec.user_name),
            diff,
        )
        .await?;
        worker::queue(conn, t, &tasks).await?;
        Ok((
            Created::New,
            StoredUser {
                phid,
                user_name: spec.user_name.clone(),
                external_id: spec.external_id.clone(),
                attributes: spec.attributes.clone(),
                active,
                version: 1,
                created: ts,
                modified: ts,
                groups: Vec::new(),
            },
        ))
    }

    /// Inserts the `user` row under the first free derived name.
    async fn insert_account(
        &self,
        conn: &mut Conn,
        phid: &str,
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
        conn: &mut Conn,
        ctx: &Ctx,
        user_phid: &str,
        spec: &UserSpec,
    ) -> Result<(Created, StoredUser)> {
        let t = &*self.db.t;
        if let Err(e) = sidecar::insert_scim_user(
            conn,
            t,
            user_phid,
            &spec.user_name,
            spec.external_id.as_deref(),
            &json!({}),
            now(),
            false,
        )
        .await
        {
            if e.is_unique_violation() {
                return Err(ScimError::uniqueness(format!(
                    "userName {} already exists",
                    spec.user_name
                ))
                .into());
            }
            return Err(e.into());
        }
        let view = sidecar::lock_scim_user(conn, t, user_phid)
            .await?
            .ok_or_else(|| DbError::Inconsistent("adopted user vanished".into()))?;
        let (user, _) = self.apply(conn, ctx, view, spec, Mode::Adopt).await?;
        Ok((Created::Adopted, user))
    }

    async fn rehire(
        &self,
        conn: &mut Conn,
        ctx: &Ctx,
        existing: ScimUserView,
        spec: &UserSpec,
    ) -> Result<(Created, StoredUser)> {
        let (user, _) = self.apply(conn, ctx, existing, spec, Mode::Rehire).await?;
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
        let result: Result<(StoredUser, &str)> = async {
            let spec = UserSpec::from_doc(normalize(Resource::User, body)?)?;
            in_transaction!(self.db, |tx| async {
                let view = self.lock_managed(&mut tx, phid).await?;
                pre.check_write(view.version)?;
                self.apply(&mut tx, ctx, view, &spec, Mode::Update).await
            }
            .await)
        }
        .await;
        log_write(ctx, "User", Some(phid), &result, |(_, outcome)| {
            (phid, *outcome)
        });
        result.map(|(user, _)| user)
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
        let result: Result<(StoredUser, &str)> = async {
            let ops = patch::parse_request(body)?;
            in_transaction!(self.db, |tx| async {
                let view = self.lock_managed(&mut tx, phid).await?;
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
                self.apply(&mut tx, ctx, view, &spec, Mode::Update).await
            }
            .await)
        }
        .await;
        log_write(ctx, "User", Some(phid), &result, |(_, outcome)| {
            (phid, *outcome)
        });
        result.map(|(user, _)| user)
    }

    /// DELETE /Users/{id}: deprovision (disable, end sessions, revoke tokens), leave every
    /// group, and hide.
    #[instrument(skip_all, fields(request_id = %ctx.request_id, id = %phid))]
    pub async fn delete_user(&self, ctx: &Ctx, phid: &str, pre: Preconditions<'_>) -> Result<()> {
        let result = in_transaction!(self.db, |tx| async {
            let view = self.lock_managed(&mut tx, phid).await?;
            pre.check_write(view.version)?;
            let attrs = parse_attributes(&view.attributes)?;
            let doc = stored_doc(&view.user_name, view.external_id.as_deref(), false, &attrs);
            let spec = UserSpec::from_doc(doc)?;
            // A hidden user must not stay a member whose `$ref` answers 404: it leaves every
            // group with the writes a member removal makes. Their tasks go after the user's,
            // so the task counter is taken as late as by any write.
            let groups = parse_groups(view.groups_json.as_deref())?;
            let (group_tasks, left) = self.leave_groups(&mut tx, ctx, phid, &groups, 204).await?;
            self.apply(&mut tx, ctx, view, &spec, Mode::Delete).await?;
            worker::queue(&mut tx, &self.db.t, &group_tasks).await?;
            Ok(left)
        }
        .await);
        log_write(ctx, "User", Some(phid), &result, |_| (phid, "deleted"));
        if let Ok(left) = &result {
            for group in left {
                log_change(ctx, "Group", group, "member removed (user deleted)");
            }
        }
        result.map(|_| ())
    }

    async fn lock_managed(&self, conn: &mut Conn, phid: &str) -> Result<ScimUserView> {
        sidecar::lock_scim_user(conn, &self.db.t, phid)
            .await?
            .filter(|v| !v.is_deprovisioned)
            .ok_or_else(|| ScimError::not_found(format!("no user {phid}")).into())
    }

    /// Brings a managed user to `spec`: the diff engine behind PUT, PATCH, DELETE, adoption
    /// and rehire. Writes only what changed. Returns the user and, for the log, what happened.
    async fn apply(
        &self,
        conn: &mut Conn,
        ctx: &Ctx,
        view: ScimUserView,
        spec: &UserSpec,
        mode: Mode,
    ) -> Result<(StoredUser, &'static str)> {
        let t = &*self.db.t;
        // Locked with the SCIM record: the live row, so protections follow Phabricator at once.
        let user = view.user_row();
        let service_bot = view.is_token_bot || user.phid == ctx.actor_phid;
        self.refuse_protected(&user, service_bot, Change::Write)?;
        let mut diff = Diff::default();
        let mut tasks: Vec<Task> = Vec::new();
        let mut xactions: Vec<Xaction> = Vec::new();
        let mut changes = UserChanges::default();

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

        // A name the IdP never sent is never written: an adopted account keeps its own until
        // the IdP sends one; a name the IdP sent and then removed is removed.
        let name_sent = !spec.real_name.is_empty()
            || previous.as_ref().is_some_and(|p| !p.real_name.is_empty());
        if name_sent && user.real_name != spec.real_name {
            diff.set("realName", user.real_name.clone(), spec.real_name.clone());
            // `core:customfield` for `user:realname` (docs/write-paths.md#change-the-real-name).
            xactions.push(Xaction {
                kind: "core:customfield",
                old: Value::String(user.real_name.clone()),
                new: Value::String(spec.real_name.clone()),
                metadata: vec![("customfield:key", json!("user:realname"))],
            });
            changes.real_name = Some(spec.real_name.clone());
        }
        // Set when this write ends the account's web access: stamped on `scim_user` and
        // checked by the burst guard just before COMMIT.
        let mut ends_access = false;
        let is_bot = self.is_bot(spec);
        if is_bot != user.is_system_agent && !user.is_mailing_list {
            self.refuse_protected(&user, service_bot, Change::BotFlag)?;
            // Phabricator refuses web sessions to bots and agents
            // (`PhabricatorUser::canEstablishWebSessions`): making a person one locks them out
            // as surely as `active: false`, so it is a deprovision for the guard.
            ends_access = is_bot;
            diff.set("bot", user.is_system_agent, is_bot);
            changes.is_system_agent = Some(is_bot);
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
                self.refuse_protected(&user, service_bot, Change::Disable)?;
                ends_access = true;
            }
            xactions.push(Xaction {
                kind: "user.disable",
                old: json!(user.is_disabled),
                new: json!(!desired_active),
                metadata: Vec::new(),
            });
            changes.is_disabled = Some(!desired_active);
            diff.set("active", current_active, desired_active);
        }
        if !desired_active && (desired_active != current_active || mode == Mode::Delete) {
            let revoked = self.revoke(conn, &user.phid).await?;
            diff.note(
                "revoked",
                serde_json::to_value(revoked).unwrap_or(Value::Null),
            );
        }

        let deprovisioned_at = ends_access.then(now);

        let address = self.address_for(spec, Some(&user.user_name))?;
        let wanted = mirrored_addresses(spec, &address)?;
        let previous_address = previous
            .as_ref()
            .and_then(|s| self.address_for(s, Some(&user.user_name)).ok());
        let previously_wanted = previous
            .as_ref()
            .zip(previous_address.as_deref())
            .and_then(|(s, a)| mirrored_addresses(s, a).ok())
            .unwrap_or_default();
        // When the addresses the IdP asked for are unchanged there is nothing to move (and no
        // query to make), unless this write takes the account over.
        if mode != Mode::Update || previously_wanted != wanted {
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
            self.sync_emails(
                conn,
                ctx,
                &user,
                &wanted,
                &dropped,
                self.cfg.trust_idp_emails && !self.is_placeholder(spec, &address),
                &mut changes,
                &mut diff,
                &mut tasks,
            )
            .await?;
        }

        let row_changed = !changes.is_empty();
        pu::update_user(conn, t, &user.phid, &changes).await?;
        if changes.real_name.is_some() {
            pu::write_name_tokens(
                conn,
                t,
                user.id,
                &pu::name_tokens(&user.user_name, &spec.real_name),
                true,
            )
            .await?;
        }
        if !xactions.is_empty() {
            let phids = xaction::insert_group(
                conn,
                &t.user_transaction,
                "USER",
                &user.phid,
                &ctx.actor_phid,
                &xactions,
                false,
            )
            .await?;
            tasks.push(Task::publish(
                &user.phid,
                &ctx.actor_phid,
                &phids,
                xaction::user_publish_state(&user.phid, &ctx.actor_phid),
            ));
        }
        if row_changed {
            // Without a transaction row, force the reindex (docs/write-paths.md#daemon-tasks).
            tasks.insert(0, Task::search(&user.phid, xactions.is_empty()));
        }

        let new_attrs = with_desired_active(&spec.attributes, desired_active);
        let deprovisioned = mode == Mode::Delete;
        let scim_changed = view.user_name != spec.user_name
            || view.external_id != spec.external_id
            || old_attrs != new_attrs
            || view.is_deprovisioned != deprovisioned;
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
        if user.is_admin && self.cfg.login_provider.is_some() {
            // An administrator's login links never change over SCIM: a link lets whoever holds
            // that directory identity in. A write that would move its identifier is refused;
            // otherwise its links stay as they are (an adoption links none).
            let identifier = login_identifier(&self.cfg.login_identifier, spec, &address);
            let before = previous
                .as_ref()
                .zip(previous_address.as_deref())
                .map(|(p, a)| login_identifier(&self.cfg.login_identifier, p, a));
            if mode != Mode::Adopt && before.as_deref() != Some(identifier.as_str()) {
                self.refuse_protected(&user, service_bot, Change::LoginLink)?;
            }
        } else if let Some(link) = self
            .link_login(conn, &user.phid, spec, &address, &user.user_name)
            .await?
        {
            diff.note("login", link);
        }
        let (version, modified) = if scim_changed || row_changed {
            if let Err(e) = sidecar::update_scim_user(
                conn,
                t,
                view.id,
                &spec.user_name,
                spec.external_id.as_deref(),
                &Value::Object(new_attrs),
                deprovisioned,
                deprovisioned_at,
            )
            .await
            {
                if e.is_unique_violation() {
                    return Err(ScimError::uniqueness(format!(
                        "userName {} already exists",
                        spec.user_name
                    ))
                    .into());
                }
                return Err(e.into());
            }
            if old_attrs.get("emails") != spec.attributes.get("emails") || mode != Mode::Update {
                sidecar::write_scim_emails(conn, t, &user.phid, &scim_emails(spec), true).await?;
            }
            (view.version + 1, now())
        } else {
            (view.version, view.date_modified)
        };

        let (status, verb, outcome) = match mode {
            Mode::Delete => (204, "deprovision (delete)", "deleted"),
            Mode::Adopt => (201, "adopt", "adopted"),
            Mode::Rehire => (201, "rehire", "rehired"),
            Mode::Update if changes.is_disabled == Some(true) => {
                (200, "deprovision", "deactivated")
            }
            Mode::Update if changes.is_disabled == Some(false) => {
                (200, "reactivate", "reactivated")
            }
            Mode::Update if changes.is_system_agent == Some(true) => {
                (200, "deprovision (bot)", "made a bot")
            }
            Mode::Update if scim_changed || row_changed => (200, "update", "updated"),
            Mode::Update => (200, "no change to", "unchanged"),
        };
        self.log(
            conn,
            ctx,
            Some(&user.phid),
            status,
            &format!("{verb} user {} (@{})", spec.user_name, user.user_name),
            diff,
        )
        .await?;
        let groups = parse_groups(view.groups_json.as_deref())?;
        // Task ids last: the counter row is hot (docs/design.md#tasks-inside-the-transaction).
        worker::queue(conn, t, &tasks).await?;
        if deprovisioned_at.is_some() {
            // After the tasks: their counter allocation has locked the row the guard needs.
            self.guard_burst(conn, view.id, tasks.is_empty()).await?;
        }
        Ok((
            StoredUser {
                phid: user.phid,
                user_name: spec.user_name.clone(),
                external_id: spec.external_id.clone(),
                attributes: spec.attributes.clone(),
                active: desired_active,
                version,
                created: view.date_created,
                modified,
                groups,
            },
            outcome,
        ))
    }

    /// Disables an account inside a creation (rare: an IdP creating an inactive user).
    async fn set_disabled(
        &self,
        conn: &mut Conn,
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
            &t.user_transaction,
            "USER",
            &user.phid,
            &ctx.actor_phid,
            &[x],
            false,
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
    /// `PhabricatorUserEditor` takes it: `addEmail` for an address the account lacks (the row,
    /// an `email-add` user-log row, an identity task), `changePrimaryEmail` when SCIM's primary
    /// moves (the old primary is demoted and kept, an `email-primary` row, reset links revoked)
    /// and `removeEmail` for an address in `dropped` (a destruction-log row, the delete, an
    /// `email-remove` row, an identity task). `wanted[0]` is the primary; `verified` is whether
    /// it counts as verified (the others are verified when the IdP is trusted).
    #[allow(clippy::too_many_arguments)]
    async fn sync_emails(
        &self,
        conn: &mut Conn,
        ctx: &Ctx,
        user: &UserRow,
        wanted: &[String],
        dropped: &[String],
        verified: bool,
        changes: &mut UserChanges,
        diff: &mut Diff,
        tasks: &mut Vec<Task>,
    ) -> Result<()> {
        let t = &*self.db.t;
        let Some(primary) = wanted.first() else {
            return Err(DbError::Inconsistent("no address to mirror".into()).into());
        };
        let emails = pu::user_emails(conn, t, &user.phid).await?;
        let owned = |address: &str| {
            emails
                .iter()
                .find(|e| e.address.eq_ignore_ascii_case(address))
        };
        let to_add: Vec<&String> = wanted.iter().filter(|a| owned(a).is_none()).collect();
        let old_primary = emails.iter().find(|e| e.is_primary).cloned();
        let primary_moves = !old_primary
            .as_ref()
            .is_some_and(|e| e.address.eq_ignore_ascii_case(primary));
        let to_remove: Vec<pu::EmailRow> = dropped
            .iter()
            .filter_map(|d| owned(d))
            .filter(|e| !wanted.iter().any(|w| w.eq_ignore_ascii_case(&e.address)))
            .cloned()
            .collect();
        if to_add.is_empty() && !primary_moves && to_remove.is_empty() {
            return Ok(());
        }
        // `apply` refused the service's own bot before anything else.
        self.refuse_protected(user, false, Change::Emails)?;
        let actor = ctx.actor_phid.as_str();
        let remote = ctx.remote_addr.as_str();
        for address in &to_add {
            let is_primary = address.eq_ignore_ascii_case(primary);
            let trusted = if is_primary {
                verified
            } else {
                self.cfg.trust_idp_emails
            };
            self.add_email(conn, ctx, &user.phid, address, trusted, tasks)
                .await?;
        }
        if !to_add.is_empty() {
            diff.note(
                "emailsAdded",
                to_add.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            );
        }
        if primary_moves {
            let new = match owned(primary) {
                Some(e) => e.clone(),
                None => pu::lock_email(conn, t, primary)
                    .await?
                    .ok_or_else(|| DbError::Inconsistent("the new address vanished".into()))?,
            };
            if let Some(old) = &old_primary {
                pu::set_email_flags(conn, t, old.id, false, old.is_verified).await?;
            }
            pu::set_email_flags(conn, t, new.id, true, new.is_verified || verified).await?;
            pu::insert_log(
                conn,
                t,
                actor,
                &user.phid,
                "email-primary",
                json!(old_primary.as_ref().map(|e| e.address.clone())),
                json!(primary),
                remote,
            )
            .await?;
            // `PhabricatorUserEditor::changePrimaryEmail` saves the account only to mark it
            // verified: an account already verified is not written (no reindex either).
            if (new.is_verified || verified) && !user.is_email_verified {
                changes.is_email_verified = Some(true);
            }
            diff.set(
                "email",
                old_primary.as_ref().map(|e| e.address.clone()),
                primary.clone(),
            );
        }
        for old in &to_remove {
            pu::destroy_email(conn, t, old).await?;
            pu::insert_log(
                conn,
                t,
                actor,
                &user.phid,
                "email-remove",
                json!(old.address),
                Value::Null,
                remote,
            )
            .await?;
            tasks.push(Task::identity_removed(&old.address));
        }
        if !to_remove.is_empty() {
            diff.note(
                "emailsRemoved",
                to_remove
                    .iter()
                    .map(|e| e.address.clone())
                    .collect::<Vec<_>>(),
            );
        }
        if primary_moves || !to_remove.is_empty() {
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

    /// Adds `address` to an account, not primary, as `PhabricatorUserEditor::addEmail` does:
    /// refused when another account holds it (409) or it is an application address (400).
    async fn add_email(
        &self,
        conn: &mut Conn,
        ctx: &Ctx,
        user_phid: &str,
        address: &str,
        verified: bool,
        tasks: &mut Vec<Task>,
    ) -> Result<()> {
        let t = &*self.db.t;
        if let Some(owner) = pu::lock_email(conn, t, address).await? {
            return Err(ScimError::uniqueness(format!(
                "the email {address} belongs to another account ({})",
                owner.user_phid
            ))
            .into());
        }
        if pu::is_application_email(conn, t, address).await? {
            return Err(ScimError::invalid_value(format!(
                "{address} is an application email address"
            ))
            .into());
        }
        if let Err(e) = pu::insert_email(conn, t, user_phid, address, verified, false).await {
            // A concurrent request took it between the check and the insert.
            if e.is_unique_violation() {
                return Err(ScimError::uniqueness(format!(
                    "the email {address} belongs to another account"
                ))
                .into());
            }
            return Err(e.into());
        }
        pu::insert_log(
            conn,
            t,
            &ctx.actor_phid,
            user_phid,
            "email-add",
            Value::Null,
            json!(address),
            &ctx.remote_addr,
        )
        .await?;
        tasks.push(Task::identity_added(address));
        Ok(())
    }

    /// Ends sessions and revokes credentials, per configuration (docs/design.md#deprovisioning).
    async fn revoke(&self, conn: &mut Conn, user_phid: &str) -> Result<Revoked> {
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
    /// Refusing an adoption is 409 `uniqueness`: the POST conflicts with an existing resource
    /// (RFC 7644 §3.3), which IdPs report as "already exists" and do not retry blindly. A write
    /// to a managed account is 403: the resource exists, the change is not allowed.
    fn refuse_protected(&self, user: &UserRow, service_bot: bool, change: Change) -> Result<()> {
        let who = &user.user_name;
        let refuse = |why: String| -> Result<()> {
            Err(if change == Change::Adopt {
                ScimError::uniqueness(why)
            } else {
                ScimError::forbidden(why)
            }
            .into())
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
    /// any write, and a refusal rolls it all back. The refusal's 429 is written to the sync log
    /// as an error by `http::auth`, like every failed request.
    async fn guard_burst(&self, conn: &mut Conn, scim_user_id: u32, lock: bool) -> Result<()> {
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
            return Err(ScimError::status(
                429,
                format!(
                    "{GUARD_REFUSAL}: {recent} established users were deprovisioned in the last {window}s \
                     (deprovision_guard_window_secs), and {limit} are allowed: {:.0}% \
                     (deprovision_guard_share) of {managed} managed users, at least {} \
                     (deprovision_guard_min); users phab-scim created within the window do not count. \
                     Check the IdP's assignments, or raise deprovision_guard_share or \
                     deprovision_guard_min, or shorten deprovision_guard_window_secs",
                    guard.share * 100.0,
                    guard.min,
                ),
            )
            .into());
        }
        Ok(())
    }

    /// Active managed users, re-counted at most every 30 s: the guard's denominator needs no
    /// precision, and counting on every deactivation made a reorg of 100,000 users crawl
    /// (benches/README.md).
    async fn managed_users_estimate(&self, conn: &mut Conn) -> Result<u64> {
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
        conn: &mut Conn,
        user_phid: &str,
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
            .ok_or_else(|| ScimError::status(500, format!("login provider {provider_spec} is missing, disabled or does not allow login")))?;
        let identifier = login_identifier(&self.cfg.login_identifier, spec, address);
        if identifier.is_empty() {
            return Ok(None);
        }
        match external::link(
            conn,
            t,
            &provider,
            user_phid,
            &identifier,
            Some(address),
            username,
            &spec.real_name,
        )
        .await?
        {
            LinkOutcome::Unchanged => Ok(None),
            LinkOutcome::OwnedByOther { user_phid: other } => Err(ScimError::uniqueness(format!(
                "the login identifier {identifier:?} of {} is linked to another account ({other})",
                provider.provider_type
            ))
            .into()),
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

    /// The Phabricator address for `spec`, or a placeholder, or a 400 that says why.
    fn address_for(
        &self,
        spec: &UserSpec,
        existing_username: Option<&str>,
    ) -> std::result::Result<String, ScimError> {
        if let Some(a) = spec.phabricator_email() {
            if !is_valid_email(&a) {
                return Err(ScimError::invalid_value(format!(
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
            None => Err(ScimError::invalid_value(
                "Phabricator needs an email address: send emails, or an email-shaped userName, or configure placeholder_email_domain",
            )),
        }
    }

    /// Writes a sync-log row inside the request's transaction.
    async fn log(
        &self,
        conn: &mut Conn,
        ctx: &Ctx,
        phid: Option<&str>,
        status: u16,
        summary: &str,
        diff: Diff,
    ) -> Result<()> {
        let event = Event {
            request_id: ctx.request_id.clone(),
            token_id: ctx.token_id,
            method: ctx.method.clone(),
            path: ctx.path.clone(),
            resource_type: Some("User"),
            object_phid: phid.map(str::to_owned),
            status,
            outcome: "ok",
            summary: summary.to_owned(),
            details: Value::Object(diff.changes),
        };
        sidecar::insert_event(conn, &self.db.t, &event).await?;
        Ok(())
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
fn mirrored_addresses(
    spec: &UserSpec,
    primary: &str,
) -> std::result::Result<Vec<String>, ScimError> {
    let mut out = vec![primary.to_owned()];
    for e in &spec.emails {
        if is_valid_email(&e.value) && !out.iter().any(|a| a.eq_ignore_ascii_case(&e.value)) {
            out.push(e.value.clone());
        }
    }
    if out.len() > MAX_MIRRORED_EMAILS {
        return Err(ScimError::invalid_value(format!(
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

impl From<ProvisionError> for ScimError {
    fn from(e: ProvisionError) -> Self {
        match e {
            ProvisionError::Scim(s) => s,
            ProvisionError::Db(_) => ScimError::status(500, "internal error"),
        }
    }
}
