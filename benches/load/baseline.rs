//! The plain-SQL baseline: for each phase, the rows Phorge itself writes for the operation
//! (docs/write-paths.md: create a user, disable, create a group, add members), sent straight
//! to MariaDB with sqlx, one transaction per operation, one statement per row group, as Phorge
//! sends them. No HTTP, no SCIM, no sidecar rows: the limit this machine and this database
//! allow.

use phab_scim::db::phabricator::user::name_tokens;
use phab_scim::db::phabricator::xaction::{project_publish_state, user_publish_state};
use phab_scim::db::phabricator::{digest_for_index, new_phid, new_xaction_phid, random_chars};
use phab_scim::db::{Db, Tables, now};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Executor, MySqlConnection, Row};

use crate::model::Person;

type R<T> = Result<T, String>;

/// Retries a whole transaction on deadlock (1213) or lock-wait timeout (1205), as the
/// service does (and as Phorge must: its datasource-token rewrite deadlocks under load).
pub async fn retrying<T, F, Fut>(f: F) -> R<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = R<T>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f().await {
            Err(e) if attempt < 6 && (e.contains(" 1213 ") || e.contains(" 1205 ")) => {
                tokio::time::sleep(std::time::Duration::from_millis(attempt * 5)).await;
            }
            other => return other,
        }
    }
}

fn e(what: &str) -> impl Fn(sqlx::Error) -> String + '_ {
    move |err| format!("{what}: {err}")
}

/// `PhabricatorWorker::scheduleTask`: data row, counter allocation, task row
/// (docs/phabricator-tables.md#daemon-queue).
async fn queue_task(
    conn: &mut MySqlConnection,
    t: &Tables,
    class: &str,
    data: &Value,
    priority: u32,
    object: Option<&str>,
) -> R<()> {
    let data_id = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (data) VALUES (?)",
        t.worker_taskdata
    )))
    .bind(data.to_string())
    .execute(&mut *conn)
    .await
    .map_err(e("taskdata"))?
    .last_insert_id();
    let id = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (counterName, counterValue) VALUES ('worker_activetask', LAST_INSERT_ID(1)) \
         ON DUPLICATE KEY UPDATE counterValue = LAST_INSERT_ID(counterValue + 1)",
        t.lisk_counter
    )))
    .execute(&mut *conn)
    .await
    .map_err(e("lisk_counter"))?
    .last_insert_id();
    let ts = now();
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (id, taskClass, leaseOwner, leaseExpires, failureCount, dataID, failureTime, \
         priority, objectPHID, dateCreated, dateModified, containerPHID) VALUES (?, ?, NULL, NULL, 0, ?, NULL, ?, ?, ?, ?, NULL)",
        t.worker_activetask
    )))
    .bind(id)
    .bind(class)
    .bind(data_id)
    .bind(priority)
    .bind(object)
    .bind(ts)
    .bind(ts)
    .execute(&mut *conn)
    .await
    .map_err(e("activetask"))?;
    Ok(())
}

/// Create a user (docs/write-paths.md#create-a-user): user, name tokens, email, search task,
/// identity task. The tasks come last so the counter row is locked only until COMMIT
/// (docs/phabricator-tables.md#locking-and-isolation).
pub async fn create_user(db: &Db, p: &Person) -> R<String> {
    let t = &*db.t;
    let mut tx = db.pool.begin().await.map_err(e("begin"))?;
    let ts = now();
    let phid = new_phid("USER");
    let id = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (phid, userName, realName, dateCreated, dateModified, profileImagePHID, \
         conduitCertificate, isSystemAgent, isDisabled, isAdmin, isEmailVerified, isApproved, \
         accountSecret, isEnrolledInMultiFactor, availabilityCache, availabilityCacheTTL, \
         isMailingList, defaultProfileImagePHID, defaultProfileImageVersion) \
         VALUES (?, ?, ?, ?, ?, NULL, ?, 0, 0, 0, 1, 1, ?, 0, NULL, NULL, 0, NULL, NULL)",
        t.user
    )))
    .bind(&phid)
    .bind(&p.username)
    .bind(&p.display)
    .bind(ts)
    .bind(ts)
    .bind(random_chars(255))
    .bind(random_chars(64))
    .execute(&mut *tx)
    .await
    .map_err(e("user"))?
    .last_insert_id();
    let tokens = name_tokens(&p.username, &p.display);
    let mut sql = format!("INSERT INTO {} (token, userID) VALUES ", t.user_nametoken);
    sql.push_str(&vec!["(?, ?)"; tokens.len()].join(", "));
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for tok in &tokens {
        q = q.bind(tok).bind(id);
    }
    q.execute(&mut *tx).await.map_err(e("nametoken"))?;
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (phid, userPHID, address, isVerified, isPrimary, verificationCode, dateCreated, dateModified) \
         VALUES (?, ?, ?, 1, 1, ?, ?, ?)",
        t.user_email
    )))
    .bind(new_phid("EADR"))
    .bind(&phid)
    .bind(&p.user_name)
    .bind(random_chars(24))
    .bind(ts)
    .bind(ts)
    .execute(&mut *tx)
    .await
    .map_err(e("user_email"))?;
    queue_task(
        &mut tx,
        t,
        "PhabricatorSearchWorker",
        &json!({"documentPHID": phid, "parameters": [], "strict": false}),
        3500,
        Some(&phid),
    )
    .await?;
    queue_task(
        &mut tx,
        t,
        "PhabricatorRepositoryIdentityChangeWorker",
        &json!({"emailAddresses": [p.user_name]}),
        2000,
        None,
    )
    .await?;
    tx.commit().await.map_err(e("commit"))?;
    Ok(phid)
}

/// The groups of a SCIM User (`returned: default`, RFC 7643 §4.1.2), from Phabricator's rows:
/// the user's member-of edges (type 14) and the projects' names, one JSON array per user.
fn groups_column(t: &Tables) -> String {
    format!(
        "(SELECT JSON_ARRAYAGG(JSON_ARRAY(CAST(p.phid AS CHAR), p.name)) FROM {} ge \
         JOIN {} p ON p.phid = ge.dst WHERE ge.src = u.phid AND ge.type = 14) AS groupsJson",
        t.user_edge, t.project
    )
}

/// What a server needs to answer a `userName eq` lookup with a whole SCIM User: the account,
/// its primary address (the IdP's userName is the address here) and its groups.
pub async fn lookup_user(db: &Db, user_name: &str) -> R<()> {
    let t = &*db.t;
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT u.id, u.phid, u.userName, u.realName, u.isDisabled, u.dateCreated, u.dateModified, e.address, {} \
         FROM {} e JOIN {} u ON u.phid = e.userPHID WHERE e.address = ?",
        groups_column(t),
        t.user_email,
        t.user
    )))
    .bind(user_name)
    .fetch_optional(&db.pool)
    .await
    .map_err(e("lookup"))?;
    if row.is_none() {
        return Err(format!("lookup: {user_name} not found"));
    }
    Ok(())
}

/// A page of 100 users with their primary addresses and groups, by id. The page's ids come
/// first from `user`'s primary key (the skipped rows cost an index entry each, not a join and a
/// groups subquery each), then the rows for those ids. `STRAIGHT_JOIN` keeps MariaDB walking
/// the page by id: left to itself it scans `user_email` and filesorts.
pub async fn list_page(db: &Db, offset: u64, count: u64) -> R<usize> {
    let t = &*db.t;
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT u.id, u.phid, u.userName, u.realName, u.isDisabled, u.dateCreated, u.dateModified, e.address, {} \
         FROM (SELECT id FROM {} ORDER BY id LIMIT ? OFFSET ?) page STRAIGHT_JOIN {} u ON u.id = page.id \
         STRAIGHT_JOIN {} e ON e.userPHID = u.phid AND e.isPrimary = 1 ORDER BY u.id",
        groups_column(t),
        t.user,
        t.user,
        t.user_email
    )))
    .bind(count)
    .bind(offset)
    .fetch_all(&db.pool)
    .await
    .map_err(e("list"))?;
    Ok(rows.len())
}

/// Disable (docs/write-paths.md#disable-and-enable-a-user): lock, `isDisabled = 1`,
/// `user.disable` transaction, search and publish tasks.
pub async fn deactivate(db: &Db, actor: &str, phid: &str) -> R<()> {
    let t = &*db.t;
    let mut tx = db.pool.begin().await.map_err(e("begin"))?;
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT id, isDisabled FROM {} WHERE phid = ? FOR UPDATE",
        t.user
    )))
    .bind(phid)
    .fetch_optional(&mut *tx)
    .await
    .map_err(e("lock user"))?
    .ok_or_else(|| format!("no user {phid}"))?;
    let _: bool = row.try_get(1).map_err(e("isDisabled"))?;
    let ts = now();
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE {} SET isDisabled = 1, dateModified = ? WHERE phid = ?",
        t.user
    )))
    .bind(ts)
    .bind(phid)
    .execute(&mut *tx)
    .await
    .map_err(e("update user"))?;
    let xphid = new_xaction_phid("USER");
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (phid, authorPHID, objectPHID, viewPolicy, editPolicy, commentPHID, commentVersion, \
         transactionType, oldValue, newValue, metadata, contentSource, dateCreated, dateModified) \
         VALUES (?, ?, ?, 'public', ?, NULL, 0, 'user.disable', 'false', 'true', ?, ?, ?, ?)",
        t.user_transaction
    )))
    .bind(&xphid)
    .bind(actor)
    .bind(phid)
    .bind(actor)
    .bind(json!({"core.groupID": random_chars(32)}).to_string())
    .bind(r#"{"source":"web","params":[]}"#)
    .bind(ts)
    .bind(ts)
    .execute(&mut *tx)
    .await
    .map_err(e("user_transaction"))?;
    queue_task(
        &mut tx,
        t,
        "PhabricatorSearchWorker",
        &json!({"documentPHID": phid, "parameters": [], "strict": false}),
        3500,
        Some(phid),
    )
    .await?;
    let publish = json!({"objectPHID": phid, "actorPHID": actor, "xactionPHIDs": [xphid], "state": user_publish_state(phid, actor)});
    queue_task(
        &mut tx,
        t,
        "PhabricatorApplicationTransactionPublishWorker",
        &publish,
        1000,
        Some(phid),
    )
    .await?;
    tx.commit().await.map_err(e("commit"))?;
    Ok(())
}

fn project_tokens(name: &str) -> Vec<String> {
    name_tokens("", name)
}

/// Create a group (docs/write-paths.md#create-a-group): project, datasource tokens, two
/// transactions, slug, publish task.
pub async fn create_project(db: &Db, actor: &str, name: &str) -> R<(String, u64)> {
    let t = &*db.t;
    let mut tx = db.pool.begin().await.map_err(e("begin"))?;
    let ts = now();
    let phid = new_phid("PROJ");
    let key: String = digest_for_index(&phid).chars().take(4).collect();
    let slug = name.to_lowercase().replace(' ', "_");
    let id = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (name, phid, authorPHID, dateCreated, dateModified, status, viewPolicy, editPolicy, \
         joinPolicy, isMembershipLocked, profileImagePHID, icon, color, mailKey, primarySlug, parentProjectPHID, \
         hasWorkboard, hasMilestones, hasSubprojects, milestoneNumber, projectPath, projectDepth, projectPathKey, \
         properties, spacePHID, subtype) VALUES (?, ?, ?, ?, ?, '0', 'users', 'users', 'no-one', 0, NULL, 'project', \
         'blue', ?, ?, NULL, 0, 0, 0, NULL, ?, 0, ?, '[]', NULL, 'default')",
        t.project
    )))
    .bind(name)
    .bind(&phid)
    .bind(actor)
    .bind(ts)
    .bind(ts)
    .bind(random_chars(20))
    .bind(&slug)
    .bind(&key)
    .bind(&key)
    .execute(&mut *tx)
    .await
    .map_err(e("project"))?
    .last_insert_id();
    write_datasource_tokens(&mut tx, t, id, name, false).await?;
    let group = random_chars(32);
    let mut xphids = Vec::new();
    for (kind, new) in [("core:create", Value::Null), ("project:name", json!(name))] {
        let xphid = new_xaction_phid("PROJ");
        insert_project_xaction(
            &mut tx,
            t,
            &xphid,
            &phid,
            actor,
            kind,
            &Value::Null,
            &new,
            json!({"core.create": true, "core.groupID": group}),
        )
        .await?;
        xphids.push(xphid);
    }
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (projectPHID, slug, dateCreated, dateModified) VALUES (?, ?, ?, ?)",
        t.project_slug
    )))
    .bind(&phid)
    .bind(&slug)
    .bind(ts)
    .bind(ts)
    .execute(&mut *tx)
    .await
    .map_err(e("slug"))?;
    let publish = json!({"objectPHID": phid, "actorPHID": actor, "xactionPHIDs": xphids, "state": project_publish_state(&phid, actor, true)});
    queue_task(
        &mut tx,
        t,
        "PhabricatorApplicationTransactionPublishWorker",
        &publish,
        1000,
        Some(&phid),
    )
    .await?;
    tx.commit().await.map_err(e("commit"))?;
    Ok((phid, id))
}

async fn write_datasource_tokens(
    conn: &mut MySqlConnection,
    t: &Tables,
    project_id: u64,
    name: &str,
    replace: bool,
) -> R<()> {
    if replace {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {} WHERE projectID = ?",
            t.project_datasourcetoken
        )))
        .bind(project_id)
        .execute(&mut *conn)
        .await
        .map_err(e("delete tokens"))?;
    }
    let tokens = project_tokens(name);
    let mut sql = format!(
        "INSERT INTO {} (projectID, token) VALUES ",
        t.project_datasourcetoken
    );
    sql.push_str(&vec!["(?, ?)"; tokens.len()].join(", "));
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for tok in &tokens {
        q = q.bind(project_id).bind(tok);
    }
    q.execute(&mut *conn)
        .await
        .map_err(e("datasource tokens"))?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn insert_project_xaction(
    conn: &mut MySqlConnection,
    t: &Tables,
    xphid: &str,
    phid: &str,
    actor: &str,
    kind: &str,
    old: &Value,
    new: &Value,
    metadata: Value,
) -> R<()> {
    let ts = now();
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (phid, authorPHID, objectPHID, viewPolicy, editPolicy, commentPHID, commentVersion, \
         transactionType, oldValue, newValue, contentSource, metadata, dateCreated, dateModified) \
         VALUES (?, ?, ?, 'public', ?, NULL, 0, ?, ?, ?, ?, ?, ?, ?)",
        t.project_transaction
    )))
    .bind(xphid)
    .bind(actor)
    .bind(phid)
    .bind(actor)
    .bind(kind)
    .bind(old.to_string())
    .bind(new.to_string())
    .bind(r#"{"source":"conduit","params":[]}"#)
    .bind(metadata.to_string())
    .bind(ts)
    .bind(ts)
    .execute(&mut *conn)
    .await
    .map_err(e("project_transaction"))?;
    Ok(())
}

/// Add members (docs/write-paths.md#add-members) for a batch: lock and re-save the project,
/// rewrite its datasource tokens, one `core:edge` transaction, edges 13 and 14 (upsert) and 60
/// (insert ignore), publish task.
pub async fn add_members(
    db: &Db,
    actor: &str,
    project: &(String, u64),
    name: &str,
    members: &[String],
) -> R<()> {
    let t = &*db.t;
    let (phid, id) = project;
    let mut tx = db.pool.begin().await.map_err(e("begin"))?;
    sqlx::query(AssertSqlSafe(format!(
        "SELECT id, dateModified FROM {} WHERE phid = ? FOR UPDATE",
        t.project
    )))
    .bind(phid)
    .fetch_one(&mut *tx)
    .await
    .map_err(e("lock project"))?;
    let ts = now();
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE {} SET dateModified = ? WHERE id = ?",
        t.project
    )))
    .bind(ts)
    .bind(*id)
    .execute(&mut *tx)
    .await
    .map_err(e("resave project"))?;
    write_datasource_tokens(&mut tx, t, *id, name, true).await?;
    let xphid = new_xaction_phid("PROJ");
    insert_project_xaction(
        &mut tx,
        t,
        &xphid,
        phid,
        actor,
        "core:edge",
        &json!([]),
        &json!(members),
        json!({"edge:type": 13, "core.groupID": random_chars(32)}),
    )
    .await?;
    for (table, ty, project_is_src, verb, tail) in [
        (
            &t.project_edge,
            13u32,
            true,
            "INSERT",
            " ON DUPLICATE KEY UPDATE dataID = VALUES(dataID)",
        ),
        (
            &t.user_edge,
            14,
            false,
            "INSERT",
            " ON DUPLICATE KEY UPDATE dataID = VALUES(dataID)",
        ),
        (&t.project_edge, 60, true, "INSERT IGNORE", ""),
    ] {
        let mut sql =
            format!("{verb} INTO {table} (src, type, dst, dateCreated, seq, dataID) VALUES ");
        sql.push_str(&vec!["(?, ?, ?, ?, ?, NULL)"; members.len()].join(", "));
        sql.push_str(tail);
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (seq, m) in members.iter().enumerate() {
            let (src, dst) = if project_is_src {
                (phid.as_str(), m.as_str())
            } else {
                (m.as_str(), phid.as_str())
            };
            // seq numbers edges per source within one edit (docs/phabricator-tables.md#edges).
            let seq = if project_is_src { seq as u32 } else { 0 };
            q = q.bind(src).bind(ty).bind(dst).bind(ts).bind(seq);
        }
        q.execute(&mut *tx).await.map_err(e("edges"))?;
    }
    let publish = json!({"objectPHID": phid, "actorPHID": actor, "xactionPHIDs": [xphid], "state": project_publish_state(phid, actor, false)});
    queue_task(
        &mut tx,
        t,
        "PhabricatorApplicationTransactionPublishWorker",
        &publish,
        1000,
        Some(phid),
    )
    .await?;
    tx.commit().await.map_err(e("commit"))?;
    Ok(())
}

/// Sanity check used after the baseline: rows written as expected.
pub async fn count(db: &Db, table: &str) -> R<i64> {
    let row = (&db.pool)
        .fetch_one(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .await
        .map_err(e("count"))?;
    row.try_get(0).map_err(e("count"))
}
