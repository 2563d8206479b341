//! `PhabricatorUser`, `PhabricatorUserEmail`, name tokens, sessions, credentials and the user
//! log (docs/phabricator-tables.md#users; the rows per operation: docs/write-paths.md).

use sqlx::{AssertSqlSafe, MySql, QueryBuilder};
use std::collections::BTreeSet;

use serde_json::{Value, json};
use sqlx::{FromRow, Row};

use super::{Phid, PhidKind, random_chars};
use crate::db::{Conns, DbResult, Tables, now, placeholders};

/// The `user` columns phab-scim reads.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct UserRow {
    pub id: u32,
    pub phid: Phid,
    #[sqlx(rename = "userName")]
    pub user_name: String,
    #[sqlx(rename = "realName")]
    pub real_name: String,
    #[sqlx(rename = "isDisabled")]
    pub is_disabled: bool,
    #[sqlx(rename = "isAdmin")]
    pub is_admin: bool,
    #[sqlx(rename = "isSystemAgent")]
    pub is_system_agent: bool,
    #[sqlx(rename = "isMailingList")]
    pub is_mailing_list: bool,
    #[sqlx(rename = "isEmailVerified")]
    pub is_email_verified: bool,
    #[sqlx(rename = "dateCreated")]
    pub date_created: u32,
    #[sqlx(rename = "dateModified")]
    pub date_modified: u32,
}

const USER_COLUMNS: &str = "id, phid, userName, realName, isDisabled, isAdmin, isSystemAgent, \
                            isMailingList, isEmailVerified, dateCreated, dateModified";

/// A new account, as `PhabricatorUserEditor::createNewUser` writes it.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub phid: &'a Phid,
    pub user_name: &'a str,
    pub real_name: &'a str,
    pub is_system_agent: bool,
    pub is_email_verified: bool,
}

/// Inserts the `user` row (approved, not admin, random certificate and secret:
/// docs/write-paths.md#create-a-user); returns its id.
pub async fn insert_user(conn: &mut Conns<'_>, t: &Tables, u: &NewUser<'_>) -> DbResult<u32> {
    let ts = now();
    let res = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (phid, userName, realName, dateCreated, dateModified, profileImagePHID, \
         conduitCertificate, isSystemAgent, isDisabled, isAdmin, isEmailVerified, isApproved, \
         accountSecret, isEnrolledInMultiFactor, availabilityCache, availabilityCacheTTL, \
         isMailingList, defaultProfileImagePHID, defaultProfileImageVersion) \
         VALUES (?, ?, ?, ?, ?, NULL, ?, ?, 0, 0, ?, 1, ?, 0, NULL, NULL, 0, NULL, NULL)",
        t.user
    )))
    .bind(u.phid)
    .bind(u.user_name)
    .bind(u.real_name)
    .bind(ts)
    .bind(ts)
    .bind(random_chars(255))
    .bind(u.is_system_agent)
    .bind(u32::from(u.is_email_verified))
    .bind(random_chars(64))
    .execute(&mut *conn)
    .await?;
    u32::try_from(res.last_insert_id())
        .map_err(|_| crate::db::DbError::Inconsistent("user id out of range".into()))
}

/// Loads a user by PHID and locks the row (editors reload with `FOR UPDATE`,
/// `PhabricatorApplicationTransactionEditor`).
pub async fn lock_user(conn: &mut Conns<'_>, t: &Tables, phid: &str) -> DbResult<Option<UserRow>> {
    Ok(sqlx::query_as::<_, UserRow>(AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM {} WHERE phid = ? FOR UPDATE",
        t.user
    )))
    .bind(phid)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Which of these usernames are taken.
pub async fn usernames_taken(
    conn: &mut Conns<'_>,
    t: &Tables,
    names: &[String],
) -> DbResult<Vec<String>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT userName FROM {} WHERE userName IN {}",
        t.user,
        placeholders(names.len())
    );
    let mut q = sqlx::query(AssertSqlSafe(sql.as_str()));
    for n in names {
        q = q.bind(n);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get::<String, _>(0).ok())
        .collect())
}

/// The fields of `user` an update may change.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub real_name: Option<String>,
    pub is_disabled: Option<bool>,
    pub is_system_agent: Option<bool>,
    pub is_email_verified: Option<bool>,
}

impl UserChanges {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.real_name.is_none()
            && self.is_disabled.is_none()
            && self.is_system_agent.is_none()
            && self.is_email_verified.is_none()
    }
}

/// Writes the changed columns and `dateModified` in one statement.
pub async fn update_user(
    conn: &mut Conns<'_>,
    t: &Tables,
    phid: &Phid,
    c: &UserChanges,
) -> DbResult<()> {
    if c.is_empty() {
        return Ok(());
    }
    let mut sets = vec!["dateModified = ?"];
    if c.real_name.is_some() {
        sets.push("realName = ?");
    }
    if c.is_disabled.is_some() {
        sets.push("isDisabled = ?");
    }
    if c.is_system_agent.is_some() {
        sets.push("isSystemAgent = ?");
    }
    if c.is_email_verified.is_some() {
        sets.push("isEmailVerified = ?");
    }
    let sql = format!("UPDATE {} SET {} WHERE phid = ?", t.user, sets.join(", "));
    let mut q = sqlx::query(AssertSqlSafe(sql.as_str())).bind(now());
    if let Some(v) = &c.real_name {
        q = q.bind(v);
    }
    if let Some(v) = c.is_disabled {
        q = q.bind(v);
    }
    if let Some(v) = c.is_system_agent {
        q = q.bind(v);
    }
    if let Some(v) = c.is_email_verified {
        q = q.bind(u32::from(v));
    }
    q.bind(phid).execute(&mut *conn).await?;
    Ok(())
}

/// `PhabricatorTypeaheadDatasource::tokenizeString`: lower-case, trim, split on whitespace,
/// brackets, parentheses and `-`; unique, non-empty. `.` and `_` do not split.
pub fn name_tokens(user_name: &str, real_name: &str) -> Vec<String> {
    let text = format!("{user_name} {real_name}").to_lowercase();
    let set: BTreeSet<String> = text
        .trim()
        .split(|c: char| c.is_whitespace() || matches!(c, '[' | ']' | '(' | ')' | '-'))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    set.into_iter().collect()
}

/// Writes `user_nametoken` rows. A brand-new user has none, so nothing is deleted: Phorge's
/// DELETE of a new id's tokens is what deadlocks concurrent creators
/// (docs/phabricator-tables.md#locking-and-isolation).
pub async fn write_name_tokens(
    conn: &mut Conns<'_>,
    t: &Tables,
    user_id: u32,
    tokens: &[String],
    replace_existing: bool,
) -> DbResult<()> {
    if replace_existing {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {} WHERE userID = ?",
            t.user_nametoken
        )))
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    }
    if tokens.is_empty() {
        return Ok(());
    }
    let mut q =
        QueryBuilder::<MySql>::new(format!("INSERT INTO {} (token, userID) ", t.user_nametoken));
    q.push_values(tokens, |mut row, tok| {
        row.push_bind(tok).push_bind(user_id);
    });
    q.build().execute(&mut *conn).await?;
    Ok(())
}

/// A `user_email` row.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct EmailRow {
    pub id: u32,
    pub phid: Phid,
    #[sqlx(rename = "userPHID")]
    pub user_phid: Phid,
    pub address: String,
    #[sqlx(rename = "isVerified")]
    pub is_verified: bool,
    #[sqlx(rename = "isPrimary")]
    pub is_primary: bool,
}

const EMAIL_COLUMNS: &str = "id, phid, userPHID, address, isVerified, isPrimary";

/// Inserts a `user_email` row.
pub async fn insert_email(
    conn: &mut Conns<'_>,
    t: &Tables,
    user_phid: &Phid,
    address: &str,
    verified: bool,
    primary: bool,
) -> DbResult<Phid> {
    let ts = now();
    let phid = Phid::new(PhidKind::Email);
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (phid, userPHID, address, isVerified, isPrimary, verificationCode, \
         dateCreated, dateModified) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        t.user_email
    )))
    .bind(&phid)
    .bind(user_phid)
    .bind(address)
    .bind(verified)
    .bind(primary)
    .bind(random_chars(24))
    .bind(ts)
    .bind(ts)
    .execute(&mut *conn)
    .await?;
    Ok(phid)
}

/// The row owning `address` (the column is case-insensitive), locked.
pub async fn lock_email(
    conn: &mut Conns<'_>,
    t: &Tables,
    address: &str,
) -> DbResult<Option<EmailRow>> {
    Ok(sqlx::query_as::<_, EmailRow>(AssertSqlSafe(format!(
        "SELECT {EMAIL_COLUMNS} FROM {} WHERE address = ? FOR UPDATE",
        t.user_email
    )))
    .bind(address)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Who holds `address`: the `user_email` row, or `None`; and whether it is one of
/// Phabricator's application addresses (which no user may own). One round trip for both
/// checks of a creation, or one per master when `<ns>_metamta` is on another master than
/// `<ns>_user`. No lock: under READ COMMITTED a missing row cannot be locked anyway;
/// the unique key on `user_email.address` settles a race (the loser gets 409).
pub async fn email_owner(
    conn: &mut Conns<'_>,
    t: &Tables,
    address: &str,
) -> DbResult<(Option<EmailRow>, bool)> {
    if !conn.together(&[&t.user_email, &t.metamta_applicationemail]) {
        let owner = sqlx::query_as::<_, EmailRow>(AssertSqlSafe(format!(
            "SELECT {EMAIL_COLUMNS} FROM {} WHERE address = ?",
            t.user_email
        )))
        .bind(address)
        .fetch_optional(&mut *conn)
        .await?;
        return Ok((owner, is_application_email(conn, t, address).await?));
    }
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT CAST(id AS SIGNED), phid, userPHID, address, CAST(isVerified AS SIGNED), CAST(isPrimary AS SIGNED), \
         CAST(0 AS SIGNED) AS app FROM {} WHERE address = ? \
         UNION ALL SELECT CAST(0 AS SIGNED), '', '', address, CAST(0 AS SIGNED), CAST(0 AS SIGNED), CAST(1 AS SIGNED) \
         FROM {} WHERE address = ?",
        t.user_email, t.metamta_applicationemail
    )))
    .bind(address)
    .bind(address)
    .fetch_all(&mut *conn)
    .await?;
    let mut owner = None;
    let mut application = false;
    for r in rows {
        if r.try_get::<i64, _>(6)? == 1 {
            application = true;
        } else {
            owner = Some(EmailRow {
                id: u32::try_from(r.try_get::<i64, _>(0)?).unwrap_or(0),
                phid: r.try_get(1)?,
                user_phid: r.try_get(2)?,
                address: r.try_get(3)?,
                is_verified: r.try_get::<i64, _>(4)? != 0,
                is_primary: r.try_get::<i64, _>(5)? != 0,
            });
        }
    }
    Ok((owner, application))
}

/// Every address of a user, primary first.
pub async fn user_emails(
    conn: &mut Conns<'_>,
    t: &Tables,
    user_phid: &str,
) -> DbResult<Vec<EmailRow>> {
    Ok(sqlx::query_as::<_, EmailRow>(AssertSqlSafe(format!(
        "SELECT {EMAIL_COLUMNS} FROM {} WHERE userPHID = ? ORDER BY isPrimary DESC, id FOR UPDATE",
        t.user_email
    )))
    .bind(user_phid)
    .fetch_all(&mut *conn)
    .await?)
}

/// Sets `isPrimary` (and `isVerified`) on one address.
pub async fn set_email_flags(
    conn: &mut Conns<'_>,
    t: &Tables,
    email_id: u32,
    primary: bool,
    verified: bool,
) -> DbResult<()> {
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE {} SET isPrimary = ?, isVerified = ?, dateModified = ? WHERE id = ?",
        t.user_email
    )))
    .bind(primary)
    .bind(verified)
    .bind(now())
    .bind(email_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Removes an address the way `PhabricatorUserEditor::removeEmail` does
/// (docs/write-paths.md#change-the-primary-email-address): a `system_destructionlog` row, then
/// the delete.
pub async fn destroy_email(conn: &mut Conns<'_>, t: &Tables, email: &EmailRow) -> DbResult<()> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (objectClass, rootLogID, objectPHID, objectMonogram, epoch) \
         VALUES ('PhabricatorUserEmail', NULL, ?, NULL, ?)",
        t.system_destructionlog
    )))
    .bind(&email.phid)
    .bind(now())
    .execute(&mut *conn)
    .await?;
    sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {} WHERE id = ?",
        t.user_email
    )))
    .bind(email.id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Is `address` one of Phabricator's application email addresses (which users may not own)?
pub async fn is_application_email(
    conn: &mut Conns<'_>,
    t: &Tables,
    address: &str,
) -> DbResult<bool> {
    Ok(sqlx::query(AssertSqlSafe(format!(
        "SELECT 1 FROM {} WHERE address = ?",
        t.metamta_applicationemail
    )))
    .bind(address)
    .fetch_optional(&mut *conn)
    .await?
    .is_some())
}

/// The `user_log` actions SCIM writes: each the `LOGTYPE` of Phabricator's user-log type
/// class for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogAction {
    /// `PhabricatorAddEmailUserLogType`.
    EmailAdd,
    /// `PhabricatorPrimaryEmailUserLogType`.
    EmailPrimary,
    /// `PhabricatorRemoveEmailUserLogType`.
    EmailRemove,
}

impl LogAction {
    /// The `user_log.action` value.
    pub fn as_str(self) -> &'static str {
        match self {
            LogAction::EmailAdd => "email-add",
            LogAction::EmailPrimary => "email-primary",
            LogAction::EmailRemove => "email-remove",
        }
    }
}

/// One `user_log` row: who did what to whose account, from where.
#[derive(Debug, Clone)]
pub struct UserLog<'a> {
    /// The token's bot.
    pub actor_phid: &'a Phid,
    /// The account changed.
    pub user_phid: &'a Phid,
    pub action: LogAction,
    /// `oldValue` and `newValue`, JSON.
    pub old: Value,
    pub new: Value,
    /// The client's address.
    pub remote_addr: &'a str,
}

/// A `user_log` row (`PhabricatorUserLog`, docs/phabricator-tables.md#user-log): actor,
/// action, old/new JSON, details with the host.
pub async fn insert_log(conn: &mut Conns<'_>, t: &Tables, log: &UserLog<'_>) -> DbResult<()> {
    let ts = now();
    let details = json!({"host": hostname(), "user_agent": "phab-scim"});
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (actorPHID, userPHID, action, oldValue, newValue, details, remoteAddr, \
         session, dateCreated, dateModified) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
        t.user_log
    )))
    .bind(log.actor_phid)
    .bind(log.user_phid)
    .bind(log.action.as_str())
    .bind(log.old.to_string())
    .bind(log.new.to_string())
    .bind(details.to_string())
    .bind(log.remote_addr)
    .bind(ts)
    .bind(ts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// This machine's name, as Phabricator's log `details.host` records it.
pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// What deprovisioning revoked, for the sync log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Revoked {
    pub sessions: u64,
    pub api_tokens: u64,
    pub temporary_tokens: u64,
}

/// Ends every session of the user (`PhabricatorAuthSessionEngine::terminateLoginSessions`
/// deletes rows the same way; Phabricator's own disable does not, docs/design.md#deprovisioning).
pub async fn delete_sessions(conn: &mut Conns<'_>, t: &Tables, user_phid: &Phid) -> DbResult<u64> {
    Ok(sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {} WHERE userPHID = ?",
        t.session
    )))
    .bind(user_phid)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// Expires the user's Conduit API tokens the way the token "terminate" action does.
pub async fn expire_api_tokens(
    conn: &mut Conns<'_>,
    t: &Tables,
    user_phid: &Phid,
) -> DbResult<u64> {
    let ts = now();
    Ok(sqlx::query(AssertSqlSafe(format!(
        "UPDATE {} SET expires = ?, dateModified = ? \
         WHERE objectPHID = ? AND (expires IS NULL OR expires > ?)",
        t.conduit_token
    )))
    .bind(ts.saturating_sub(1))
    .bind(ts)
    .bind(user_phid)
    .bind(ts)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// Expires unexpired temporary tokens of the user (`tokenExpires = now - 1`,
/// docs/phabricator-tables.md#sessions-and-credentials).
/// With `types`, only those token types (reset links on an email change).
pub async fn expire_temporary_tokens(
    conn: &mut Conns<'_>,
    t: &Tables,
    user_phid: &Phid,
    types: Option<&[&str]>,
) -> DbResult<u64> {
    let ts = now();
    let mut sql = format!(
        "UPDATE {} SET tokenExpires = ? WHERE (tokenResource = ? OR userPHID = ?) AND tokenExpires > ?",
        t.auth_temporarytoken
    );
    if let Some(types) = types {
        sql.push_str(&format!(" AND tokenType IN {}", placeholders(types.len())));
    }
    let mut q = sqlx::query(AssertSqlSafe(sql.as_str()))
        .bind(ts.saturating_sub(1))
        .bind(user_phid)
        .bind(user_phid)
        .bind(ts);
    if let Some(types) = types {
        for ty in types {
            q = q.bind(*ty);
        }
    }
    Ok(q.execute(&mut *conn).await?.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_matches_phabricator() {
        assert_eq!(name_tokens("sam", "Sam Tyler"), vec!["sam", "tyler"]);
        assert_eq!(
            name_tokens("john.doe", "John Doe"),
            vec!["doe", "john", "john.doe"]
        );
        assert_eq!(
            name_tokens("sam.tyler", "Samuel Tyler-Rose"),
            vec!["rose", "sam.tyler", "samuel", "tyler"]
        );
        assert_eq!(name_tokens("a_b", "  (X) [y]  "), vec!["a_b", "x", "y"]);
        assert_eq!(name_tokens("ÉLODIE", ""), vec!["élodie"]);
    }
}
