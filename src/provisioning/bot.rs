//! The provisioning bot: the Phabricator account a token speaks for
//! (docs/design.md#authentication-and-tokens). It is written the way the admin "Create New
//! Bot" form writes one (docs/write-paths.md#create-the-provisioning-bot): a system agent,
//! approved, with a verified address, its name tokens and its search and identity tasks.

use super::{ProvisionError, Provisioner, Result, in_transaction};
use crate::db::DbError;
use crate::db::phabricator::user::{self as pu, NewUser};
use crate::db::phabricator::worker::{self, Task};
use crate::db::phabricator::{Phid, PhidKind};
use sqlx::AssertSqlSafe;

/// Real name of the bot.
pub const BOT_REAL_NAME: &str = "SCIM Provisioning";

impl Provisioner {
    /// Returns the PHID of bot `username`, creating it when missing. An existing account with
    /// that name must already be a bot: a person's account is never turned into one.
    pub async fn ensure_bot(&self, username: &str) -> Result<String> {
        if !super::username::is_valid_username(username) {
            return Err(ProvisionError::InvalidValue(format!(
                "{username:?} is not a valid Phabricator username"
            )));
        }
        let domain = self
            .cfg
            .placeholder_email_domain
            .clone()
            .unwrap_or_else(|| "phab-scim.invalid".to_owned());
        in_transaction(&self.db, async |tx| {
            let t = &*self.db.t;
            let existing: Option<(String, bool)> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT CAST(phid AS CHAR), isSystemAgent FROM {} WHERE userName = ? FOR UPDATE",
                t.user
            )))
            .bind(username)
            .fetch_optional(&mut *tx)
            .await
            .map_err(DbError::from)?;
            if let Some((phid, is_bot)) = existing {
                if !is_bot {
                    return Err(ProvisionError::Conflict(format!(
                        "@{username} exists and is not a bot"
                    )));
                }
                return Ok(phid);
            }
            let phid = Phid::new(PhidKind::User);
            let id = pu::insert_user(
                tx,
                t,
                &NewUser {
                    phid: &phid,
                    user_name: username,
                    real_name: BOT_REAL_NAME,
                    is_system_agent: true,
                    is_email_verified: true,
                },
            )
            .await?;
            let address = format!("{username}@{domain}");
            pu::insert_email(tx, t, &phid, &address, true, true).await?;
            pu::write_name_tokens(tx, t, id, &pu::name_tokens(username, BOT_REAL_NAME), false)
                .await?;
            worker::queue(
                tx,
                t,
                &[Task::search(&phid, false), Task::identity_added(&address)],
            )
            .await?;
            Ok(phid.into())
        })
        .await
    }
}
