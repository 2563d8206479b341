//! The service's own tables in `<ns>_scim` (docs/design.md#own-tables-and-two-patch-appliers):
//! what SCIM manages, the sync log, token hashes and replica heartbeats.

use serde_json::Value;
use sqlx::FromRow;
use sqlx::{AssertSqlSafe, MySql, QueryBuilder};

use super::filter_sql::Sql;
use super::phabricator::Phid;
use super::phabricator::edge::MEMBER_OF_PROJECT;
use super::status::GuardSettings;
use super::{Conns, DbResult, Tables, now, placeholders};
use crate::scim::schema::Resource;

/// A managed user joined with the Phabricator columns a SCIM response needs.
#[derive(Debug, Clone, FromRow)]
pub struct ScimUserView {
    pub id: u32,
    #[sqlx(rename = "userPHID")]
    pub user_phid: Phid,
    #[sqlx(rename = "userName")]
    pub user_name: String,
    #[sqlx(rename = "externalID")]
    pub external_id: Option<String>,
    pub attributes: String,
    pub version: u32,
    #[sqlx(rename = "isDeprovisioned")]
    pub is_deprovisioned: bool,
    #[sqlx(rename = "dateCreated")]
    pub date_created: u32,
    #[sqlx(rename = "dateModified")]
    pub date_modified: u32,
    #[sqlx(rename = "isDisabled")]
    pub is_disabled: bool,
    #[sqlx(rename = "userID")]
    pub user_id: u32,
    #[sqlx(rename = "phabUserName")]
    pub phab_user_name: String,
    #[sqlx(rename = "realName")]
    pub real_name: String,
    #[sqlx(rename = "isAdmin")]
    pub is_admin: bool,
    #[sqlx(rename = "isSystemAgent")]
    pub is_system_agent: bool,
    #[sqlx(rename = "isMailingList")]
    pub is_mailing_list: bool,
    #[sqlx(rename = "isEmailVerified")]
    pub is_email_verified: bool,
    #[sqlx(rename = "userCreated")]
    pub user_created: u32,
    #[sqlx(rename = "userModified")]
    pub user_modified: u32,
    /// Whether a SCIM token (revoked or not) speaks for this account: the service's own bot,
    /// which SCIM never changes (README.md, Security).
    #[sqlx(rename = "isTokenBot")]
    pub is_token_bot: bool,
    /// `[[group id, displayName], ...]` when the query asked for it (`user_groups_column`).
    #[sqlx(rename = "groupsJson", default)]
    pub groups_json: Option<String>,
}

impl ScimUserView {
    /// The Phabricator `user` row read with it (locked too, when the view was).
    pub fn user_row(&self) -> crate::db::phabricator::user::UserRow {
        crate::db::phabricator::user::UserRow {
            id: self.user_id,
            phid: self.user_phid.clone(),
            user_name: self.phab_user_name.clone(),
            real_name: self.real_name.clone(),
            is_disabled: self.is_disabled,
            is_admin: self.is_admin,
            is_system_agent: self.is_system_agent,
            is_mailing_list: self.is_mailing_list,
            is_email_verified: self.is_email_verified,
            date_created: self.user_created,
            date_modified: self.user_modified,
        }
    }
}

/// A managed user as a read (GET, list, lookup) renders it: only the columns a SCIM response
/// shows. Every column costs the driver a metadata packet to parse on every execution (MySQL
/// sends them with each result): half the columns of [`ScimUserView`] cut a lookup's
/// instructions by a sixth (README.md, Performance).
#[derive(Debug, Clone, FromRow)]
pub struct ScimUserRead {
    #[sqlx(rename = "userPHID", try_from = "crate::db::Bin")]
    pub user_phid: String,
    #[sqlx(rename = "userName")]
    pub user_name: String,
    #[sqlx(rename = "externalID")]
    pub external_id: Option<String>,
    pub attributes: String,
    pub version: u32,
    #[sqlx(rename = "isDeprovisioned")]
    pub is_deprovisioned: bool,
    #[sqlx(rename = "dateCreated")]
    pub date_created: u32,
    #[sqlx(rename = "dateModified")]
    pub date_modified: u32,
    #[sqlx(rename = "isDisabled")]
    pub is_disabled: bool,
    /// As in [`ScimUserView::groups_json`].
    #[sqlx(rename = "groupsJson", default)]
    pub groups_json: Option<String>,
}

/// Columns of [`ScimUserRead`], over the same aliases as [`SCIM_USER_VIEW_COLUMNS`].
pub const SCIM_USER_READ_COLUMNS: &str = "s.userPHID, s.userName, s.externalID, s.attributes, \
     s.version, s.isDeprovisioned, s.dateCreated, s.dateModified, u.isDisabled";

/// Columns of [`ScimUserView`], for `FROM scim_user s JOIN user u ON u.phid = s.userPHID`.
pub const SCIM_USER_VIEW_COLUMNS: &str = "s.id, s.userPHID, s.userName, s.externalID, s.attributes, \
     s.version, s.isDeprovisioned, s.dateCreated, s.dateModified, u.isDisabled, u.id AS userID, \
     u.userName AS phabUserName, u.realName, u.isAdmin, u.isSystemAgent, u.isMailingList, u.isEmailVerified, u.dateCreated AS userCreated, \
     u.dateModified AS userModified";

/// One managed user with its Phabricator row and groups, found by a `scim_user` column.
/// `lock` takes both rows `FOR UPDATE` (editors reload the edited object locked,
/// docs/design.md#transactions-and-locking).
async fn one_user_view(
    conn: &mut Conns<'_>,
    t: &Tables,
    column: &'static str,
    value: &str,
    lock: bool,
) -> DbResult<Option<ScimUserView>> {
    // The token subquery takes no lock: a locking read locks the rows of the outer query only,
    // so token checks (which stamp `dateLastUsed`) never wait for a user write.
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {SCIM_USER_VIEW_COLUMNS}, EXISTS(SELECT 1 FROM {} k WHERE k.botPHID = s.userPHID) AS isTokenBot{} \
         FROM {} s JOIN {} u ON u.phid = s.userPHID WHERE s.{column} = ?{}",
        t.scim_token,
        user_groups_column(t),
        t.scim_user,
        t.user,
        if lock { " FOR UPDATE" } else { "" },
    )))
    .bind(value)
    .fetch_optional(&mut *conn)
    .await?)
}

/// The managed user with this PHID, locked.
pub async fn lock_scim_user(
    conn: &mut Conns<'_>,
    t: &Tables,
    user_phid: &str,
) -> DbResult<Option<ScimUserView>> {
    one_user_view(conn, t, "userPHID", user_phid, true).await
}

/// The managed user with this PHID, as a read renders it (no lock).
pub async fn get_scim_user(
    conn: &mut Conns<'_>,
    t: &Tables,
    user_phid: &str,
) -> DbResult<Option<ScimUserRead>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {SCIM_USER_READ_COLUMNS}{} FROM {} s JOIN {} u ON u.phid = s.userPHID WHERE s.userPHID = ?",
        user_groups_column(t),
        t.scim_user,
        t.user,
    )))
    .bind(user_phid)
    .fetch_optional(&mut *conn)
    .await?)
}

/// The managed user holding this SCIM userName (case-insensitive, by the column), locked.
pub async fn lock_scim_user_by_name(
    conn: &mut Conns<'_>,
    t: &Tables,
    user_name: &str,
) -> DbResult<Option<ScimUserView>> {
    one_user_view(conn, t, "userName", user_name, true).await
}

/// Whether a SCIM token (revoked or not) speaks for `user_phid`: the service's own bot.
pub async fn is_token_bot(conn: &mut Conns<'_>, t: &Tables, user_phid: &str) -> DbResult<bool> {
    Ok(sqlx::query(AssertSqlSafe(format!(
        "SELECT 1 FROM {} WHERE botPHID = ? LIMIT 1",
        t.scim_token
    )))
    .bind(user_phid)
    .fetch_optional(&mut *conn)
    .await?
    .is_some())
}

/// The columns of a SCIM user record the IdP decides.
#[derive(Debug, Clone, Copy)]
pub struct ScimUserFields<'a> {
    pub user_name: &'a str,
    pub external_id: Option<&'a str>,
    /// The stored SCIM document (`attributes`).
    pub attributes: &'a Value,
}

/// Inserts the SCIM record of a user (version 1), created and modified at `ts`. A duplicate
/// userName fails with 1062 on `key_username`: that unique key decides races between identical
/// POSTs. `account_created` says the service made the Phabricator account now (not an
/// adoption): the deprovision guard does not count such an account deprovisioned within its
/// window.
pub async fn insert_scim_user(
    conn: &mut Conns<'_>,
    t: &Tables,
    user_phid: &str,
    fields: &ScimUserFields<'_>,
    ts: u32,
    account_created: bool,
) -> DbResult<()> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (userPHID, userName, externalID, attributes, version, isDeprovisioned, \
         dateCreated, dateModified, dateAccountCreated) VALUES (?, ?, ?, ?, 1, 0, ?, ?, ?)",
        t.scim_user
    )))
    .bind(user_phid)
    .bind(fields.user_name)
    .bind(fields.external_id)
    .bind(fields.attributes.to_string())
    .bind(ts)
    .bind(ts)
    .bind(account_created.then_some(ts))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rewrites the SCIM record and bumps its version. `disabled_at` stamps `dateDeprovisioned`
/// when this write disables the account: the deprovision guard counts those stamps.
pub async fn update_scim_user(
    conn: &mut Conns<'_>,
    t: &Tables,
    id: u32,
    fields: &ScimUserFields<'_>,
    deprovisioned: bool,
    disabled_at: Option<u32>,
) -> DbResult<()> {
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE {} SET userName = ?, externalID = ?, attributes = ?, isDeprovisioned = ?, \
         version = version + 1, dateModified = ?, dateDeprovisioned = COALESCE(?, dateDeprovisioned) \
         WHERE id = ?",
        t.scim_user
    )))
    .bind(fields.user_name)
    .bind(fields.external_id)
    .bind(fields.attributes.to_string())
    .bind(deprovisioned)
    .bind(now())
    .bind(disabled_at)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One SCIM email value, for filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimEmail {
    pub address: String,
    /// Lower-cased `type`.
    pub kind: Option<String>,
    pub primary: bool,
}

/// Replaces the SCIM email values of a user.
pub async fn write_scim_emails(
    conn: &mut Conns<'_>,
    t: &Tables,
    user_phid: &str,
    emails: &[ScimEmail],
    replace_existing: bool,
) -> DbResult<()> {
    if replace_existing {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {} WHERE userPHID = ?",
            t.scim_useremail
        )))
        .bind(user_phid)
        .execute(&mut *conn)
        .await?;
    }
    if emails.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::<MySql>::new(format!(
        "INSERT INTO {} (userPHID, address, emailType, isPrimary) ",
        t.scim_useremail
    ));
    q.push_values(emails, |mut row, e| {
        row.push_bind(user_phid)
            .push_bind(&e.address)
            .push_bind(e.kind.as_deref())
            .push_bind(e.primary);
    });
    q.build().execute(&mut *conn).await?;
    Ok(())
}

/// A bound value of a compiled filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Str(String),
    Int(i64),
    UInt(u64),
    Bool(bool),
}

/// A page of managed users matching `filter` (over aliases `s`, `u`), ordered by `order`, and
/// the total count. `user u` is joined for the ids only when either fragment says it reads a
/// column of it ([`Sql::needs_user`]).
///
/// Round trips are what a lookup costs (benches/README.md): the page comes first, and the
/// count is skipped when a first page comes back short (an IdP's `userName eq` lookup is then
/// one statement). The page selects ids first and joins the wide rows for those only, so a deep
/// `startIndex` skips over index entries, not over whole rows; without a condition on `user`
/// the ids come from `scim_user`'s own `(isDeprovisioned, id)` key.
pub async fn list_scim_users(
    conn: &mut Conns<'_>,
    t: &Tables,
    filter: &Sql,
    order: &Sql,
    offset: u64,
    limit: u64,
    want_groups: bool,
) -> DbResult<(u64, Vec<ScimUserRead>)> {
    let (where_sql, binds) = (filter.text.as_str(), filter.binds.as_slice());
    let (order_sql, order_binds) = (order.text.as_str(), order.binds.as_slice());
    let needs_user = filter.needs_user || order.needs_user;
    let from = if needs_user {
        format!(
            "FROM {} s JOIN {} u ON u.phid = s.userPHID WHERE s.isDeprovisioned = 0 AND ({where_sql})",
            t.scim_user, t.user
        )
    } else {
        format!(
            "FROM {} s WHERE s.isDeprovisioned = 0 AND ({where_sql})",
            t.scim_user
        )
    };
    let mut rows = Vec::new();
    if limit > 0 {
        let groups = if want_groups {
            user_groups_column(t)
        } else {
            String::new()
        };
        if offset == 0 {
            // A first page (every IdP lookup) reads its rows directly: nothing to skip.
            let sql = format!(
                "SELECT {SCIM_USER_READ_COLUMNS}{groups} FROM {} s JOIN {} u ON u.phid = s.userPHID \
                 WHERE s.isDeprovisioned = 0 AND ({where_sql}) ORDER BY {order_sql} LIMIT ?",
                t.scim_user, t.user
            );
            let mut q = sqlx::query_as::<_, ScimUserRead>(AssertSqlSafe(sql.as_str()));
            for b in binds.iter().chain(order_binds) {
                q = bind_view(q, b);
            }
            rows = q.bind(limit).fetch_all(&mut *conn).await?;
        } else {
            let sql = format!(
                "SELECT {SCIM_USER_READ_COLUMNS}{groups} FROM (SELECT s.id {from} ORDER BY {order_sql} LIMIT ? OFFSET ?) page \
                 JOIN {} s ON s.id = page.id JOIN {} u ON u.phid = s.userPHID ORDER BY {order_sql}",
                t.scim_user, t.user
            );
            let mut q = sqlx::query_as::<_, ScimUserRead>(AssertSqlSafe(sql.as_str()));
            for b in binds.iter().chain(order_binds) {
                q = bind_view(q, b);
            }
            q = q.bind(limit).bind(offset);
            for b in order_binds {
                q = bind_view(q, b);
            }
            rows = q.fetch_all(&mut *conn).await?;
        }
    }
    if limit > 0 && offset == 0 && (rows.len() as u64) < limit {
        return Ok((rows.len() as u64, rows));
    }
    let count_sql = format!("SELECT COUNT(*) {from}");
    let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(count_sql.as_str()));
    for b in binds {
        q = bind_scalar(q, b);
    }
    let total = u64::try_from(q.fetch_one(&mut *conn).await?).unwrap_or(0);
    Ok((total, rows))
}

/// A `groupsJson` column: the SCIM-managed groups of user `s` as `[[id, displayName], ...]`
/// (`MEMBER_OF_PROJECT` edges), so a page needs no second query for them.
pub fn user_groups_column(t: &Tables) -> String {
    format!(
        ", (SELECT JSON_ARRAYAGG(JSON_ARRAY(CAST(g.projectPHID AS CHAR), g.displayName)) FROM {} ge \
         JOIN {} g ON g.projectPHID = ge.dst WHERE ge.src = s.userPHID AND ge.type = {MEMBER_OF_PROJECT}) AS groupsJson",
        t.user_edge, t.scim_group
    )
}

fn bind_view<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::MySql, O, sqlx::mysql::MySqlArguments>,
    b: &Bind,
) -> sqlx::query::QueryAs<'q, sqlx::MySql, O, sqlx::mysql::MySqlArguments> {
    match b {
        Bind::Str(s) => q.bind(s.clone()),
        Bind::Int(i) => q.bind(*i),
        Bind::UInt(i) => q.bind(*i),
        Bind::Bool(v) => q.bind(*v),
    }
}

fn bind_scalar<'q>(
    q: sqlx::query::QueryScalar<'q, sqlx::MySql, i64, sqlx::mysql::MySqlArguments>,
    b: &Bind,
) -> sqlx::query::QueryScalar<'q, sqlx::MySql, i64, sqlx::mysql::MySqlArguments> {
    match b {
        Bind::Str(s) => q.bind(s.clone()),
        Bind::Int(i) => q.bind(*i),
        Bind::UInt(i) => q.bind(*i),
        Bind::Bool(v) => q.bind(*v),
    }
}

/// How a request ended, as the sync log records it (`scim_event.outcome`): the values are
/// `PhabricatorScimEvent`'s `OUTCOME_*` constants, which the extension filters by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `OUTCOME_OK`: the write was done (or changed nothing).
    Ok,
    /// `OUTCOME_ERROR`: the request was refused or failed.
    Error,
    /// `OUTCOME_WARNING`: done, with something an operator should look at.
    Warning,
}

impl Outcome {
    /// The column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Warning => "warning",
        }
    }
}

/// The resource a sync-log row is about (`scim_event.resourceType`): the values are
/// `PhabricatorScimEvent`'s `RESOURCE_*` constants. A row about neither has none (NULL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    /// `RESOURCE_USER`.
    User,
    /// `RESOURCE_GROUP`.
    Group,
}

impl From<Resource> for ResourceType {
    fn from(r: Resource) -> Self {
        match r {
            Resource::User => ResourceType::User,
            Resource::Group => ResourceType::Group,
        }
    }
}

impl ResourceType {
    /// The column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::User => "User",
            ResourceType::Group => "Group",
        }
    }
}

/// One sync-log row (`scim_event`). Never holds a secret.
#[derive(Debug, Clone)]
pub struct Event {
    pub request_id: String,
    pub token_id: Option<u32>,
    pub method: String,
    pub path: String,
    pub resource_type: Option<ResourceType>,
    pub object_phid: Option<String>,
    pub status: u16,
    pub outcome: Outcome,
    pub summary: String,
    pub details: Value,
}

/// Writes a sync-log row.
pub async fn insert_event(conn: &mut Conns<'_>, t: &Tables, e: &Event) -> DbResult<()> {
    let ts = now();
    let path: String = e.path.chars().take(255).collect();
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (requestID, tokenID, method, path, resourceType, objectPHID, status, \
         outcome, summary, details, dateCreated, dateModified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        t.scim_event
    )))
    .bind(&e.request_id)
    .bind(e.token_id)
    .bind(&e.method)
    .bind(path)
    .bind(e.resource_type.map(ResourceType::as_str))
    .bind(e.object_phid.as_deref())
    .bind(e.status)
    .bind(e.outcome.as_str())
    .bind(&e.summary)
    .bind(e.details.to_string())
    .bind(ts)
    .bind(ts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes sync-log rows older than `cutoff`, in bounded batches.
pub async fn prune_events(conn: &mut Conns<'_>, t: &Tables, cutoff: u32) -> DbResult<u64> {
    Ok(sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {} WHERE dateCreated < ? LIMIT 10000",
        t.scim_event
    )))
    .bind(cutoff)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// Established users other than `except_id` disabled by SCIM in the `window` seconds before
/// `now` (for the blast-radius guard), by their `dateDeprovisioned` stamp. A user counts once:
/// IdPs deactivate and later DELETE the same user (a PATCH then a DELETE), and only the write
/// that disables stamps it. An account the service created and deprovisioned within `window`
/// of its creation is not established (an IdP's test run) and does not count.
pub async fn count_deprovisions_since(
    conn: &mut Conns<'_>,
    t: &Tables,
    now: u32,
    window: u32,
    except_id: u32,
) -> DbResult<u64> {
    // A range of `key_deprovisionedat`: one index entry per user disabled in the window,
    // however many other writes the window saw, and one row read for each.
    let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {} WHERE dateDeprovisioned >= ? AND id <> ? \
         AND (dateAccountCreated IS NULL OR dateDeprovisioned >= dateAccountCreated + ?)",
        t.scim_user
    )))
    .bind(now.saturating_sub(window))
    .bind(except_id)
    .bind(window)
    .fetch_one(&mut *conn)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// When the service created the account of SCIM user `id` (None: adopted, or created before
/// the service recorded it).
pub async fn account_created_at(
    conn: &mut Conns<'_>,
    t: &Tables,
    id: u32,
) -> DbResult<Option<u32>> {
    let at: Option<Option<u32>> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT dateAccountCreated FROM {} WHERE id = ?",
        t.scim_user
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(at.flatten())
}

/// Serializes deprovisions: locks the `worker_activetask` row of `lisk_counter` until the
/// transaction ends, so that concurrent deprovisions count one after the other (without it,
/// N parallel requests all see the same count and all pass). Every write that queues tasks
/// takes that row anyway just before COMMIT (docs/design.md#tasks-inside-the-transaction), and
/// the guard counts after that; this explicit lock is for a deprovision that queued none.
pub async fn lock_deprovision_guard(conn: &mut Conns<'_>, t: &Tables) -> DbResult<()> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (counterName, counterValue) VALUES ('worker_activetask', 0) \
         ON DUPLICATE KEY UPDATE counterValue = counterValue",
        t.lisk_counter
    )))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Managed users with web access (not deprovisioned, not disabled, not bots or agents): the
/// people the deprovision guard protects.
pub async fn count_active_managed_users(conn: &mut Conns<'_>, t: &Tables) -> DbResult<u64> {
    let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {} s JOIN {} u ON u.phid = s.userPHID WHERE s.isDeprovisioned = 0 AND u.isDisabled = 0 AND u.isSystemAgent = 0",
        t.scim_user, t.user
    )))
    .fetch_one(&mut *conn)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// A token row.
#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    pub id: u32,
    pub label: String,
    #[sqlx(rename = "botPHID")]
    pub bot_phid: Phid,
    #[sqlx(rename = "tokenHash")]
    pub token_hash: String,
    #[sqlx(rename = "dateExpires")]
    pub date_expires: Option<u32>,
    #[sqlx(rename = "dateLastUsed")]
    pub date_last_used: Option<u32>,
    #[sqlx(rename = "dateRevoked")]
    pub date_revoked: Option<u32>,
    #[sqlx(rename = "dateCreated")]
    pub date_created: u32,
    /// The bot's `isDisabled` (NULL when the bot row is missing).
    #[sqlx(rename = "botDisabled")]
    pub bot_disabled: Option<bool>,
}

const TOKEN_COLUMNS: &str = "k.id, k.label, k.botPHID, k.tokenHash, k.dateExpires, k.dateLastUsed, \
                             k.dateRevoked, k.dateCreated, u.isDisabled AS botDisabled";

/// A token and its bot's state.
pub async fn get_token(conn: &mut Conns<'_>, t: &Tables, id: u32) -> DbResult<Option<TokenRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {TOKEN_COLUMNS} FROM {} k LEFT JOIN {} u ON u.phid = k.botPHID WHERE k.id = ?",
        t.scim_token, t.user
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Every token, newest first.
pub async fn list_tokens(conn: &mut Conns<'_>, t: &Tables) -> DbResult<Vec<TokenRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {TOKEN_COLUMNS} FROM {} k LEFT JOIN {} u ON u.phid = k.botPHID ORDER BY k.id DESC",
        t.scim_token, t.user
    )))
    .fetch_all(&mut *conn)
    .await?)
}

/// A token row to insert.
#[derive(Debug, Clone, Copy)]
pub struct NewToken<'a> {
    pub label: &'a str,
    /// The bot the token speaks for.
    pub bot_phid: &'a str,
    /// `dateExpires`, epoch seconds; `None` never expires.
    pub expires: Option<u32>,
}

/// Inserts a token row with a placeholder hash; returns its id (the id is part of the token).
pub async fn insert_token(conn: &mut Conns<'_>, t: &Tables, token: &NewToken<'_>) -> DbResult<u32> {
    let ts = now();
    let res = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (label, botPHID, tokenHash, issuedByPHID, dateExpires, dateLastUsed, \
         dateRevoked, dateCreated, dateModified) VALUES (?, ?, '', NULL, ?, NULL, NULL, ?, ?)",
        t.scim_token
    )))
    .bind(token.label)
    .bind(token.bot_phid)
    .bind(token.expires)
    .bind(ts)
    .bind(ts)
    .execute(&mut *conn)
    .await?;
    u32::try_from(res.last_insert_id())
        .map_err(|_| super::DbError::Inconsistent("token id out of range".into()))
}

/// Stores the hash of a token.
pub async fn set_token_hash(conn: &mut Conns<'_>, t: &Tables, id: u32, hash: &str) -> DbResult<()> {
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE {} SET tokenHash = ?, dateModified = ? WHERE id = ?",
        t.scim_token
    )))
    .bind(hash)
    .bind(now())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Revokes a token now; false when it was unknown or already revoked.
pub async fn revoke_token(conn: &mut Conns<'_>, t: &Tables, id: u32) -> DbResult<bool> {
    let ts = now();
    Ok(sqlx::query(AssertSqlSafe(format!(
        "UPDATE {} SET dateRevoked = ?, dateModified = ? WHERE id = ? AND dateRevoked IS NULL",
        t.scim_token
    )))
    .bind(ts)
    .bind(ts)
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        > 0)
}

/// Records that a token was used.
pub async fn touch_token(conn: &mut Conns<'_>, t: &Tables, id: u32) -> DbResult<()> {
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE {} SET dateLastUsed = ? WHERE id = ?",
        t.scim_token
    )))
    .bind(now())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One replica of the service, as its heartbeat row (`scim_instance`) records it.
#[derive(Debug, Clone, Copy)]
pub struct Instance<'a> {
    /// The replica's key (`instanceKey`).
    pub key: &'a str,
    /// The machine it runs on.
    pub hostname: &'a str,
    /// The service's version.
    pub version: &'a str,
    /// When it started, epoch seconds.
    pub started: u32,
}

/// Upserts this replica's heartbeat; a heartbeat also clears a stop mark (a replica restarted
/// under the same key is running again). It publishes the replica's deprovision guard settings,
/// which the extension's Status page shows with the guard's state.
pub async fn heartbeat(
    conn: &mut Conns<'_>,
    t: &Tables,
    instance: &Instance<'_>,
    guard: &GuardSettings,
) -> DbResult<()> {
    let ts = now();
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (instanceKey, hostname, version, dateStarted, dateCreated, dateModified, \
         guardShare, guardMin, guardWindow) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON DUPLICATE KEY UPDATE dateModified = VALUES(dateModified), dateStopped = NULL, \
         guardShare = VALUES(guardShare), guardMin = VALUES(guardMin), guardWindow = VALUES(guardWindow)",
        t.scim_instance
    )))
    .bind(instance.key)
    .bind(instance.hostname)
    .bind(instance.version)
    .bind(instance.started)
    .bind(ts)
    .bind(ts)
    .bind(guard.share)
    .bind(guard.min)
    .bind(guard.window_secs)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks this replica stopped, on a clean shutdown: the Status page shows it stopped at once
/// instead of "running" until its heartbeat grows a minute old.
pub async fn mark_stopped(conn: &mut Conns<'_>, t: &Tables, key: &str) -> DbResult<()> {
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE {} SET dateStopped = ? WHERE instanceKey = ?",
        t.scim_instance
    )))
    .bind(now())
    .bind(key)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes the heartbeat rows of replicas not seen since `cutoff`: each restart makes a new
/// key, and old rows would otherwise pile up on the Status page forever.
pub async fn prune_instances(conn: &mut Conns<'_>, t: &Tables, cutoff: u32) -> DbResult<u64> {
    let done = sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {} WHERE dateModified < ?",
        t.scim_instance
    )))
    .bind(cutoff)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// A managed group (`scim_group`).
#[derive(Debug, Clone, FromRow)]
pub struct ScimGroupView {
    /// Row id.
    pub id: u32,
    /// The project PHID (the SCIM `id`).
    #[sqlx(rename = "projectPHID", try_from = "crate::db::Bin")]
    pub project_phid: String,
    /// SCIM `displayName`, unique case-insensitively.
    #[sqlx(rename = "displayName")]
    pub display_name: String,
    /// SCIM `externalId`.
    #[sqlx(rename = "externalID")]
    pub external_id: Option<String>,
    /// Other SCIM attributes, JSON.
    pub attributes: String,
    /// ETag version.
    pub version: u32,
    /// Epoch seconds.
    #[sqlx(rename = "dateCreated")]
    pub date_created: u32,
    /// Epoch seconds.
    #[sqlx(rename = "dateModified")]
    pub date_modified: u32,
}

/// Columns of [`ScimGroupView`] over alias `g`.
const SCIM_GROUP_COLUMNS: &str = "g.id, g.projectPHID, g.displayName, g.externalID, g.attributes, g.version, g.dateCreated, g.dateModified";

/// The managed group of a project (no lock).
pub async fn get_scim_group(
    conn: &mut Conns<'_>,
    t: &Tables,
    project_phid: &str,
) -> DbResult<Option<ScimGroupView>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {SCIM_GROUP_COLUMNS} FROM {} g WHERE g.projectPHID = ?",
        t.scim_group
    )))
    .bind(project_phid)
    .fetch_optional(&mut *conn)
    .await?)
}

/// The managed group of a project, locked: every group write takes this lock first.
pub async fn lock_scim_group(
    conn: &mut Conns<'_>,
    t: &Tables,
    project_phid: &str,
) -> DbResult<Option<ScimGroupView>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {SCIM_GROUP_COLUMNS} FROM {} g WHERE g.projectPHID = ? FOR UPDATE",
        t.scim_group
    )))
    .bind(project_phid)
    .fetch_optional(&mut *conn)
    .await?)
}

/// The columns of a SCIM group record the IdP decides.
#[derive(Debug, Clone, Copy)]
pub struct ScimGroupFields<'a> {
    pub display_name: &'a str,
    pub external_id: Option<&'a str>,
    /// The stored SCIM attributes (`attributes`).
    pub attributes: &'a Value,
}

/// Inserts the SCIM record of a group (version 1). A displayName already used by another
/// group (case-insensitively, by the column's collation) fails with 1062 on
/// `key_displayname`: that unique key decides races between identical POSTs.
pub async fn insert_scim_group(
    conn: &mut Conns<'_>,
    t: &Tables,
    project_phid: &str,
    fields: &ScimGroupFields<'_>,
) -> DbResult<()> {
    let ts = now();
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (projectPHID, displayName, externalID, attributes, version, dateCreated, dateModified) \
         VALUES (?, ?, ?, ?, 1, ?, ?)",
        t.scim_group
    )))
    .bind(project_phid)
    .bind(fields.display_name)
    .bind(fields.external_id)
    .bind(fields.attributes.to_string())
    .bind(ts)
    .bind(ts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rewrites the SCIM record of a group and bumps its version (membership changes bump it
/// too: members are part of the resource, so its ETag moves).
pub async fn update_scim_group(
    conn: &mut Conns<'_>,
    t: &Tables,
    id: u32,
    fields: &ScimGroupFields<'_>,
) -> DbResult<()> {
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE {} SET displayName = ?, externalID = ?, attributes = ?, version = version + 1, dateModified = ? WHERE id = ?",
        t.scim_group
    )))
    .bind(fields.display_name)
    .bind(fields.external_id)
    .bind(fields.attributes.to_string())
    .bind(now())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Ends SCIM management of a group.
pub async fn delete_scim_group(conn: &mut Conns<'_>, t: &Tables, id: u32) -> DbResult<()> {
    sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {} WHERE id = ?",
        t.scim_group
    )))
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A page of managed groups matching `where_sql` (over alias `g`), and the total count.
pub async fn list_scim_groups(
    conn: &mut Conns<'_>,
    t: &Tables,
    filter: &Sql,
    order_sql: &str,
    offset: u64,
    limit: u64,
) -> DbResult<(u64, Vec<ScimGroupView>)> {
    let (where_sql, binds) = (filter.text.as_str(), filter.binds.as_slice());
    let from = format!("FROM {} g WHERE ({where_sql})", t.scim_group);
    let count_sql = format!("SELECT COUNT(*) {from}");
    let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(count_sql.as_str()));
    for b in binds {
        q = bind_scalar(q, b);
    }
    let total = u64::try_from(q.fetch_one(&mut *conn).await?).unwrap_or(0);
    if limit == 0 || offset >= total {
        return Ok((total, Vec::new()));
    }
    let sql = format!("SELECT {SCIM_GROUP_COLUMNS} {from} ORDER BY {order_sql} LIMIT ? OFFSET ?");
    let mut q = sqlx::query_as::<_, ScimGroupView>(AssertSqlSafe(sql.as_str()));
    for b in binds {
        q = match b {
            Bind::Str(s) => q.bind(s.clone()),
            Bind::Int(i) => q.bind(*i),
            Bind::UInt(i) => q.bind(*i),
            Bind::Bool(v) => q.bind(*v),
        };
    }
    let rows = q.bind(limit).bind(offset).fetch_all(&mut *conn).await?;
    Ok((total, rows))
}

/// Which of `phids` are users SCIM manages and has not deprovisioned (the only valid group
/// members). The service's own bot never is, even where an older version adopted it: SCIM
/// never changes it (README.md, Security). Read in share mode: a `DELETE /Users` running at
/// the same time (which takes its user out of every group) either commits first, and the user
/// is not a valid member here, or waits for this write, and then finds the new membership.
pub async fn managed_users_among(
    conn: &mut Conns<'_>,
    t: &Tables,
    phids: &[String],
) -> DbResult<std::collections::HashSet<String>> {
    let mut out = std::collections::HashSet::new();
    for chunk in phids.chunks(super::phabricator::edge::CHUNK) {
        let sql = format!(
            "SELECT userPHID FROM {} s WHERE isDeprovisioned = 0 AND userPHID IN {} \
             AND NOT EXISTS (SELECT 1 FROM {} k WHERE k.botPHID = s.userPHID) \
             LOCK IN SHARE MODE",
            t.scim_user,
            placeholders(chunk.len()),
            t.scim_token
        );
        let mut q = sqlx::query(AssertSqlSafe(sql.as_str()));
        for p in chunk {
            q = q.bind(p);
        }
        for row in q.fetch_all(&mut *conn).await? {
            out.insert(super::bin_text(&row, 0)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{Outcome, ResourceType};

    /// The extension's class, which reads and filters these rows.
    const PHP: &str = include_str!("../../phabricator-ext/src/storage/PhabricatorScimEvent.php");

    fn declares(constant: &str, value: &str) -> bool {
        PHP.contains(&format!("const {constant} = '{value}';"))
    }

    #[test]
    fn outcomes_are_the_extensions_constants() {
        for (o, constant) in [
            (Outcome::Ok, "OUTCOME_OK"),
            (Outcome::Error, "OUTCOME_ERROR"),
            (Outcome::Warning, "OUTCOME_WARNING"),
        ] {
            assert!(
                declares(constant, o.as_str()),
                "{constant} = {}",
                o.as_str()
            );
        }
    }

    #[test]
    fn resource_types_are_the_extensions_constants() {
        for (r, constant) in [
            (ResourceType::User, "RESOURCE_USER"),
            (ResourceType::Group, "RESOURCE_GROUP"),
        ] {
            assert!(
                declares(constant, r.as_str()),
                "{constant} = {}",
                r.as_str()
            );
        }
    }
}
