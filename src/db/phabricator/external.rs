//! External accounts (`PhabricatorExternalAccount`, `...Identifier`, `PhabricatorAuthProviderConfig`):
//! the link that lets a provisioned person log in through the company's provider
//! (docs/phabricator-tables.md#external-accounts).

use sqlx::AssertSqlSafe;
use sqlx::{FromRow, Row};

use super::{Phid, PhidKind, digest_for_index, random_chars};
use crate::db::{Conns, DbResult, Tables, now};

/// A login provider's configuration row.
#[derive(Debug, Clone, FromRow)]
pub struct ProviderRow {
    pub phid: Phid,
    #[sqlx(rename = "providerType")]
    pub provider_type: String,
    #[sqlx(rename = "providerDomain")]
    pub provider_domain: String,
    #[sqlx(rename = "isEnabled")]
    pub is_enabled: bool,
    #[sqlx(rename = "shouldAllowLogin")]
    pub allows_login: bool,
    pub properties: String,
}

/// Finds the provider by PHID (`PHID-AUTH-...`) or by `type:domain` (e.g. `ldap:self`).
pub async fn find_provider(
    conn: &mut Conns<'_>,
    t: &Tables,
    spec: &str,
) -> DbResult<Option<ProviderRow>> {
    let cols = "phid, providerType, providerDomain, isEnabled, shouldAllowLogin, properties";
    if spec.starts_with("PHID-") {
        return Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {cols} FROM {} WHERE phid = ?",
            t.auth_providerconfig
        )))
        .bind(spec)
        .fetch_optional(&mut *conn)
        .await?);
    }
    let (ty, domain) = spec.split_once(':').unwrap_or((spec, "self"));
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {cols} FROM {} WHERE providerType = ? AND providerDomain = ?",
        t.auth_providerconfig
    )))
    .bind(ty)
    .bind(domain)
    .fetch_optional(&mut *conn)
    .await?)
}

/// What linking did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LinkOutcome {
    /// A new account and identifier were written.
    Created { account_phid: Phid },
    /// An account that already owned the identifier was (re)linked to the user.
    Relinked { account_phid: Phid },
    /// The user's account already owns it.
    Unchanged,
    /// The identifier belongs to another user's account; nothing was written.
    OwnedByOther { user_phid: Phid },
}

/// A login link to make: whose account, by which identifier, and what a new external account
/// records of the person.
#[derive(Debug, Clone, Copy)]
pub struct NewLink<'a> {
    pub user_phid: &'a Phid,
    /// The identifier the provider knows the person by (hashed for the index).
    pub identifier: &'a str,
    pub email: Option<&'a str>,
    pub username: &'a str,
    pub real_name: &'a str,
}

/// Links `link.user_phid` to `provider` with `link.identifier`
/// (docs/write-paths.md#link-the-login-account): reuse an account that owns the identifier
/// hash (relinking a pending one), else insert account + identifier.
pub async fn link(
    conn: &mut Conns<'_>,
    t: &Tables,
    provider: &ProviderRow,
    link: &NewLink<'_>,
) -> DbResult<LinkOutcome> {
    let NewLink {
        user_phid,
        identifier,
        email,
        username,
        real_name,
    } = *link;
    let hash = digest_for_index(identifier);
    let owner = sqlx::query(AssertSqlSafe(format!(
        "SELECT a.phid, a.userPHID FROM {} i JOIN {} a ON a.phid = i.externalAccountPHID \
         WHERE i.providerConfigPHID = ? AND i.identifierHash = ? FOR UPDATE",
        t.user_externalaccountidentifier, t.user_externalaccount
    )))
    .bind(&provider.phid)
    .bind(&hash)
    .fetch_optional(&mut *conn)
    .await?;
    let ts = now();
    if let Some(row) = owner {
        let account_phid: Phid = row.try_get(0)?;
        let owner_phid: Option<Phid> = row.try_get(1)?;
        return Ok(match owner_phid {
            Some(p) if p == *user_phid => LinkOutcome::Unchanged,
            Some(p) => LinkOutcome::OwnedByOther { user_phid: p },
            None => {
                sqlx::query(AssertSqlSafe(format!(
                    "UPDATE {} SET userPHID = ?, dateModified = ? WHERE phid = ?",
                    t.user_externalaccount
                )))
                .bind(user_phid)
                .bind(ts)
                .bind(&account_phid)
                .execute(&mut *conn)
                .await?;
                LinkOutcome::Relinked { account_phid }
            }
        });
    }
    let account_phid = Phid::new(PhidKind::ExternalAccount);
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (phid, userPHID, accountType, accountDomain, accountSecret, accountID, \
         displayName, dateCreated, dateModified, username, realName, email, emailVerified, \
         accountURI, profileImagePHID, properties, providerConfigPHID) \
         VALUES (?, ?, ?, ?, ?, '', NULL, ?, ?, ?, ?, ?, 0, NULL, NULL, '[]', ?)",
        t.user_externalaccount
    )))
    .bind(&account_phid)
    .bind(user_phid)
    .bind(&provider.provider_type)
    .bind(&provider.provider_domain)
    .bind(random_chars(32))
    .bind(ts)
    .bind(ts)
    .bind(username)
    .bind(real_name)
    .bind(email)
    .bind(&provider.phid)
    .execute(&mut *conn)
    .await?;
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (phid, externalAccountPHID, providerConfigPHID, identifierHash, \
         identifierRaw, dateCreated, dateModified) VALUES (?, ?, ?, ?, ?, ?, ?)",
        t.user_externalaccountidentifier
    )))
    .bind(Phid::new(PhidKind::ExternalAccountIdentifier))
    .bind(&account_phid)
    .bind(&provider.phid)
    .bind(&hash)
    .bind(identifier)
    .bind(ts)
    .bind(ts)
    .execute(&mut *conn)
    .await?;
    Ok(LinkOutcome::Created { account_phid })
}
