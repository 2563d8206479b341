//! Transaction rows (`user_transaction`, `project_transaction`) in the format of
//! `PhabricatorApplicationTransactionEditor` (docs/phabricator-tables.md#transactions).

use serde_json::{Value, json};
use sqlx::{MySql, QueryBuilder};

use super::{Phid, PhidKind, random_chars};
use crate::db::{Conns, DbResult, Tables, now};

/// The content source phab-scim writes. Phabricator renders an unknown source as "Unknown";
/// the extension registers `scim` so it reads "SCIM".
pub const CONTENT_SOURCE: &str = r#"{"source":"scim","params":[]}"#;

/// One transaction to write.
#[derive(Debug, Clone)]
pub struct Xaction {
    /// `transactionType`, e.g. `user.disable`.
    pub kind: &'static str,
    /// Old value, JSON.
    pub old: Value,
    /// New value, JSON.
    pub new: Value,
    /// Extra metadata keys written before `core.groupID` (e.g. `edge:type`, `customfield:key`).
    pub metadata: Vec<(&'static str, Value)>,
}

/// The object an edit's transactions are about, which decides their table and the type their
/// PHIDs name.
#[derive(Debug, Clone, Copy)]
pub enum Object<'a> {
    /// A user: `user_transaction`, `PHID-XACT-USER-…`.
    User(&'a Phid),
    /// A project: `project_transaction`, `PHID-XACT-PROJ-…`.
    Project(&'a Phid),
}

impl<'a> Object<'a> {
    fn table(self, t: &Tables) -> &str {
        match self {
            Object::User(_) => &t.user_transaction,
            Object::Project(_) => &t.project_transaction,
        }
    }

    fn kind(self) -> PhidKind {
        match self {
            Object::User(_) => PhidKind::User,
            Object::Project(_) => PhidKind::Project,
        }
    }

    fn phid(self) -> &'a Phid {
        match self {
            Object::User(p) | Object::Project(p) => p,
        }
    }
}

/// The transactions of one edit: on what, by whom.
#[derive(Debug, Clone, Copy)]
pub struct XactionGroup<'a> {
    /// The edited object.
    pub object: Object<'a>,
    /// The token's bot.
    pub actor_phid: &'a Phid,
    pub xactions: &'a [Xaction],
    /// The edit creates the object (each transaction records `core.create`).
    pub is_create: bool,
}

/// Writes a group of transactions of one edit, all sharing one `core.groupID`; returns their
/// PHIDs in order.
pub async fn insert_group(
    conn: &mut Conns<'_>,
    t: &Tables,
    group: &XactionGroup<'_>,
) -> DbResult<Vec<Phid>> {
    let XactionGroup {
        object,
        actor_phid,
        xactions,
        is_create,
    } = *group;
    let table = object.table(t);
    let object_kind = object.kind();
    let object_phid = object.phid();
    let group_id = random_chars(32);
    let ts = now();
    let mut phids = Vec::with_capacity(xactions.len());
    if xactions.is_empty() {
        return Ok(phids);
    }
    let mut q = QueryBuilder::<MySql>::new(format!(
        "INSERT INTO {table} (phid, authorPHID, objectPHID, viewPolicy, editPolicy, commentPHID, \
         commentVersion, transactionType, oldValue, newValue, metadata, contentSource, \
         dateCreated, dateModified) "
    ));
    q.push_values(xactions, |mut row, x| {
        let phid = Phid::new_xaction(object_kind);
        let mut meta = serde_json::Map::new();
        for (k, v) in &x.metadata {
            meta.insert((*k).to_owned(), v.clone());
        }
        if is_create {
            meta.insert("core.create".into(), Value::Bool(true));
        }
        meta.insert("core.groupID".into(), Value::String(group_id.clone()));
        row.push_bind(phid.clone())
            .push_bind(actor_phid.clone())
            .push_bind(object_phid.clone())
            .push("'public'")
            .push_bind(actor_phid.clone())
            .push("NULL, 0")
            .push_bind(x.kind)
            .push_bind(x.old.to_string())
            .push_bind(x.new.to_string())
            .push_bind(Value::Object(meta).to_string())
            .push_bind(CONTENT_SOURCE)
            .push_bind(ts)
            .push_bind(ts);
        phids.push(phid);
    });
    q.build().execute(&mut *conn).await?;
    Ok(phids)
}

/// The publish-worker state `PhabricatorUserTransactionEditor` queues (the same keys in the
/// same order): no mail, a feed story related to the user and the actor.
pub fn user_publish_state(user_phid: &str, actor_phid: &str) -> Value {
    json!({
        "parentMessageID": null,
        "isNewObject": false,
        "heraldEmailPHIDs": [],
        "heraldForcedEmailPHIDs": [],
        "heraldHeader": null,
        "mailToPHIDs": [],
        "mailCCPHIDs": [],
        "feedNotifyPHIDs": [],
        "feedRelatedPHIDs": [user_phid, actor_phid],
        "feedShouldPublish": true,
        "mailShouldSend": false,
        "mustEncrypt": [],
        "mailStamps": [],
        "mailUnexpandablePHIDs": [],
        "mailMutedPHIDs": [],
        "webhookMap": [],
        "silent": null,
        "excludeMailRecipientPHIDs": [],
        "custom": [],
        "custom.encoding": [],
    })
}

/// The publish-worker state of `PhabricatorProjectTransactionEditor`. Mail is off: the actor
/// is the provisioning bot, and bots receive no mail
/// (docs/write-paths.md#differences-from-phorges-own-writes).
pub fn project_publish_state(project_phid: &str, actor_phid: &str, is_new: bool) -> Value {
    json!({
        "parentMessageID": null,
        "isNewObject": is_new,
        "heraldEmailPHIDs": [],
        "heraldForcedEmailPHIDs": [],
        "heraldHeader": "none",
        "mailToPHIDs": [],
        "mailCCPHIDs": [],
        "feedNotifyPHIDs": [actor_phid],
        "feedRelatedPHIDs": [project_phid, actor_phid],
        "feedShouldPublish": true,
        "mailShouldSend": false,
        "mustEncrypt": [],
        "mailStamps": [],
        "mailUnexpandablePHIDs": [],
        "mailMutedPHIDs": [],
        "webhookMap": [],
        "silent": null,
        "excludeMailRecipientPHIDs": [],
        "custom": [],
        "custom.encoding": [],
    })
}
