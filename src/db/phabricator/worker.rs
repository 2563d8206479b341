//! The daemon queue: `worker_taskdata`, `worker_activetask`, `lisk_counter`
//! (docs/phabricator-tables.md#daemon-queue).
//!
//! Tasks are collected while a request runs and written just before COMMIT, inside the same
//! transaction: a rolled-back request leaves no task, and the one hot row, the
//! `worker_activetask` counter, is locked as briefly as possible
//! (docs/design.md#tasks-inside-the-transaction).

use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, MySql, QueryBuilder};

use super::Phid;
use crate::db::{Conns, DbResult, Tables, now};

/// Phabricator's task priorities.
pub mod priority {
    /// `PRIORITY_ALERTS`: publish workers.
    pub const ALERTS: u32 = 1000;
    /// `PRIORITY_DEFAULT`: repository identity updates.
    pub const DEFAULT: u32 = 2000;
    /// `PRIORITY_INDEX`: search indexing.
    pub const INDEX: u32 = 3500;
}

/// One task to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// `taskClass`.
    pub class: &'static str,
    /// JSON data.
    pub data: Value,
    /// Priority.
    pub priority: u32,
    /// `objectPHID`, when the task is about one object.
    pub object_phid: Option<Phid>,
}

impl Task {
    /// `PhabricatorSearchWorker` for a document; `force` reindexes when no transaction row
    /// changes the index version.
    pub fn search(phid: &Phid, force: bool) -> Self {
        let parameters = if force {
            json!({"force": true})
        } else {
            json!([])
        };
        Self {
            class: "PhabricatorSearchWorker",
            data: json!({"documentPHID": phid, "parameters": parameters, "strict": false}),
            priority: priority::INDEX,
            object_phid: Some(phid.clone()),
        }
    }

    /// `PhabricatorRepositoryIdentityChangeWorker` after an address is added.
    pub fn identity_added(address: &str) -> Self {
        Self {
            class: "PhabricatorRepositoryIdentityChangeWorker",
            data: json!({"emailAddresses": [address]}),
            priority: priority::DEFAULT,
            object_phid: None,
        }
    }

    /// The same after an address is removed (key order as `PhabricatorUserEditor::removeEmail`
    /// writes it).
    pub fn identity_removed(address: &str) -> Self {
        Self {
            class: "PhabricatorRepositoryIdentityChangeWorker",
            data: json!({"relatedPHIDs": [], "emailAddresses": [address]}),
            priority: priority::DEFAULT,
            object_phid: None,
        }
    }

    /// `PhabricatorApplicationTransactionPublishWorker` with the given editor state.
    pub fn publish(object_phid: &Phid, actor_phid: &Phid, xactions: &[Phid], state: Value) -> Self {
        Self {
            class: "PhabricatorApplicationTransactionPublishWorker",
            data: json!({
                "objectPHID": object_phid,
                "actorPHID": actor_phid,
                "xactionPHIDs": xactions,
                "state": state,
            }),
            priority: priority::ALERTS,
            object_phid: Some(object_phid.clone()),
        }
    }
}

/// The step between the ids one multi-row INSERT into `worker_taskdata` gets, when InnoDB
/// makes them consecutive: it does for an INSERT of a known number of rows unless
/// `innodb_autoinc_lock_mode` is 2 (MySQL 8's default, and what Galera requires), and the step
/// is `auto_increment_increment`. `None`: one INSERT per row, whose id is its own. Read once per
/// process (both are server settings that need a restart to change).
static TASKDATA_ID_STEP: tokio::sync::OnceCell<Option<u64>> = tokio::sync::OnceCell::const_new();

async fn taskdata_id_step(conn: &mut Conns<'_>) -> Option<u64> {
    const SQL: &str = "SELECT CAST(@@innodb_autoinc_lock_mode AS SIGNED), \
                       CAST(@@auto_increment_increment AS SIGNED)";
    *TASKDATA_ID_STEP
        .get_or_init(|| async {
            let row: Option<(i64, i64)> = sqlx::query_as(SQL).fetch_one(&mut *conn).await.ok();
            match row {
                Some((0 | 1, step)) => u64::try_from(step).ok().filter(|&s| s >= 1),
                _ => None,
            }
        })
        .await
}

/// Writes `tasks`: their data rows (one statement where the server gives a multi-row INSERT
/// consecutive ids), then one counter allocation for all of them, then the task rows in one
/// statement.
pub async fn queue(conn: &mut Conns<'_>, t: &Tables, tasks: &[Task]) -> DbResult<()> {
    if tasks.is_empty() {
        return Ok(());
    }
    let mut data_ids = Vec::with_capacity(tasks.len());
    let step = if tasks.len() > 1 {
        taskdata_id_step(conn).await
    } else {
        None
    };
    if let Some(step) = step {
        let mut q =
            QueryBuilder::<MySql>::new(format!("INSERT INTO {} (data) ", t.worker_taskdata));
        q.push_values(tasks, |mut row, task| {
            row.push_bind(task.data.to_string());
        });
        // The id of a multi-row INSERT is its first row's; the others follow by `step`.
        let first = q.build().execute(&mut *conn).await?.last_insert_id();
        data_ids.extend((0..tasks.len() as u64).map(|i| first + i * step));
    } else {
        let sql = format!("INSERT INTO {} (data) VALUES (?)", t.worker_taskdata);
        for task in tasks {
            let res = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(task.data.to_string())
                .execute(&mut *conn)
                .await?;
            data_ids.push(res.last_insert_id());
        }
    }
    let n = tasks.len() as u64;
    // LiskDAO::loadNextCounterValue, allocating n ids at once.
    let res = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (counterName, counterValue) VALUES ('worker_activetask', LAST_INSERT_ID(?)) \
         ON DUPLICATE KEY UPDATE counterValue = LAST_INSERT_ID(counterValue + ?)",
        t.lisk_counter
    )))
    .bind(n)
    .bind(n)
    .execute(&mut *conn)
    .await?;
    let last = res.last_insert_id();
    let first = last + 1 - n;
    let ts = now();
    let mut q = QueryBuilder::<MySql>::new(format!(
        "INSERT INTO {} (id, taskClass, leaseOwner, leaseExpires, failureCount, dataID, \
         failureTime, priority, objectPHID, dateCreated, dateModified, containerPHID) ",
        t.worker_activetask
    ));
    q.push_values(
        tasks.iter().zip(&data_ids).enumerate(),
        |mut row, (i, (task, data_id))| {
            row.push_bind(first + i as u64)
                .push_bind(task.class)
                .push("NULL, NULL, 0")
                .push_bind(*data_id)
                .push("NULL")
                .push_bind(task.priority)
                .push_bind(task.object_phid.as_deref())
                .push_bind(ts)
                .push_bind(ts)
                .push("NULL");
        },
    );
    q.build().execute(&mut *conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_data_matches_phorge_json() {
        assert_eq!(
            Task::search(&Phid::stored("PHID-USER-x"), false)
                .data
                .to_string(),
            r#"{"documentPHID":"PHID-USER-x","parameters":[],"strict":false}"#
        );
        assert_eq!(
            Task::search(&Phid::stored("PHID-USER-x"), true)
                .data
                .to_string(),
            r#"{"documentPHID":"PHID-USER-x","parameters":{"force":true},"strict":false}"#
        );
        assert_eq!(
            Task::identity_removed("a@b.c").data.to_string(),
            r#"{"relatedPHIDs":[],"emailAddresses":["a@b.c"]}"#
        );
    }
}
