//! Fast seeding by SQL: the rows the service writes for a created user, in multi-row
//! statements, for the extras and the growth runs where what is measured is a read.
//!
//! Per user: `user` (as `insert_user`), `user_email` (verified primary), `user_nametoken`
//! (the service's tokenizer), `scim_user` (attributes from the service's own normaliser, so a
//! GET renders them like a created user) and `scim_useremail`. Not written: the two worker
//! tasks and the `scim_event` row of a create, which no read touches.

use std::ops::Range;

use phab_scim::db::Tables;
use phab_scim::db::phabricator::user::name_tokens;
use phab_scim::db::phabricator::{new_phid, random_chars};
use phab_scim::scim::resource::normalize;
use phab_scim::scim::schema::Resource;
use phab_scim::scim::user::UserSpec;
use sqlx::{AssertSqlSafe, MySqlPool};

use crate::model::{Person, entra_user_body, person};

const BATCH: usize = 500;

fn rows(n: usize, one: &str) -> String {
    let mut s = String::with_capacity(n * (one.len() + 2));
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(one);
    }
    s
}

/// Seeds users `prefix{i}` for `i` in `range`; returns their PHIDs in order. With `scim` false
/// only Phabricator's rows are written (the plain-SQL baseline's namespace).
pub async fn users(
    pool: &MySqlPool,
    t: &Tables,
    prefix: &str,
    range: Range<usize>,
    scim: bool,
) -> Result<Vec<String>, String> {
    let mut phids = Vec::with_capacity(range.len());
    let ts = phab_scim::db::now();
    let mut start = range.start;
    while start < range.end {
        let end = (start + BATCH).min(range.end);
        let people: Vec<Person> = (start..end).map(|i| person(prefix, i)).collect();
        let batch_phids: Vec<String> = people.iter().map(|_| new_phid("USER")).collect();
        let mut tx = pool.begin().await.map_err(|e| e.to_string())?;

        let sql = format!(
            "INSERT INTO {} (phid, userName, realName, dateCreated, dateModified, profileImagePHID, \
             conduitCertificate, isSystemAgent, isDisabled, isAdmin, isEmailVerified, isApproved, \
             accountSecret, isEnrolledInMultiFactor, availabilityCache, availabilityCacheTTL, \
             isMailingList, defaultProfileImagePHID, defaultProfileImageVersion) VALUES {}",
            t.user,
            rows(
                people.len(),
                "(?, ?, ?, ?, ?, NULL, ?, 0, 0, 0, 1, 1, ?, 0, NULL, NULL, 0, NULL, NULL)"
            )
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (p, phid) in people.iter().zip(&batch_phids) {
            q = q
                .bind(phid)
                .bind(&p.username)
                .bind(&p.display)
                .bind(ts)
                .bind(ts)
                .bind(random_chars(255))
                .bind(random_chars(64));
        }
        let first_id = q
            .execute(&mut *tx)
            .await
            .map_err(|e| format!("seed user: {e}"))?
            .last_insert_id();

        let sql = format!(
            "INSERT INTO {} (phid, userPHID, address, isVerified, isPrimary, verificationCode, dateCreated, dateModified) VALUES {}",
            t.user_email,
            rows(people.len(), "(?, ?, ?, 1, 1, ?, ?, ?)")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (p, phid) in people.iter().zip(&batch_phids) {
            q = q
                .bind(new_phid("EADR"))
                .bind(phid)
                .bind(&p.user_name)
                .bind(random_chars(24))
                .bind(ts)
                .bind(ts);
        }
        q.execute(&mut *tx)
            .await
            .map_err(|e| format!("seed user_email: {e}"))?;

        // One multi-row insert of a single statement gets consecutive ids (no other writer).
        let mut tokens: Vec<(String, u64)> = Vec::new();
        for (k, p) in people.iter().enumerate() {
            for tok in name_tokens(&p.username, &p.display) {
                tokens.push((tok, first_id + k as u64));
            }
        }
        let sql = format!(
            "INSERT INTO {} (token, userID) VALUES {}",
            t.user_nametoken,
            rows(tokens.len(), "(?, ?)")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (tok, id) in &tokens {
            q = q.bind(tok).bind(*id);
        }
        q.execute(&mut *tx)
            .await
            .map_err(|e| format!("seed user_nametoken: {e}"))?;

        if scim {
            let sql = format!(
                "INSERT INTO {} (userPHID, userName, externalID, attributes, version, isDeprovisioned, dateCreated, dateModified) VALUES {}",
                t.scim_user,
                rows(people.len(), "(?, ?, ?, ?, 1, 0, ?, ?)")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (p, phid) in people.iter().zip(&batch_phids) {
                let doc = normalize(Resource::User, &entra_user_body(p))
                    .map_err(|e| format!("normalize: {e:?}"))?;
                let spec = UserSpec::from_doc(doc).map_err(|e| format!("spec: {e:?}"))?;
                q = q
                    .bind(phid)
                    .bind(&p.user_name)
                    .bind(&p.external_id)
                    .bind(serde_json::Value::Object(spec.attributes).to_string())
                    .bind(ts)
                    .bind(ts);
            }
            q.execute(&mut *tx)
                .await
                .map_err(|e| format!("seed scim_user: {e}"))?;

            let sql = format!(
                "INSERT INTO {} (userPHID, address, emailType, isPrimary) VALUES {}",
                t.scim_useremail,
                rows(people.len(), "(?, ?, 'work', 1)")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (p, phid) in people.iter().zip(&batch_phids) {
                q = q.bind(phid).bind(&p.user_name);
            }
            q.execute(&mut *tx)
                .await
                .map_err(|e| format!("seed scim_useremail: {e}"))?;
        }
        tx.commit().await.map_err(|e| e.to_string())?;
        phids.extend(batch_phids);
        start = end;
    }
    Ok(phids)
}

/// Makes `members` members of project `project_phid` the way the editor leaves them: edges 13
/// and 60 (project DB) and 14 (user DB), `seq` 0, no edge data.
pub async fn memberships(
    pool: &MySqlPool,
    t: &Tables,
    project_phid: &str,
    members: &[String],
) -> Result<(), String> {
    let ts = phab_scim::db::now();
    for chunk in members.chunks(1000) {
        let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
        for (table, ty, project_is_src) in [
            (&t.project_edge, 13u32, true),
            (&t.project_edge, 60, true),
            (&t.user_edge, 14, false),
        ] {
            let sql = format!(
                "INSERT IGNORE INTO {table} (src, type, dst, dateCreated, seq, dataID) VALUES {}",
                rows(chunk.len(), "(?, ?, ?, ?, 0, NULL)")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for m in chunk {
                let (src, dst) = if project_is_src {
                    (project_phid, m.as_str())
                } else {
                    (m.as_str(), project_phid)
                };
                q = q.bind(src).bind(ty).bind(dst).bind(ts);
            }
            q.execute(&mut *tx)
                .await
                .map_err(|e| format!("seed edge {ty}: {e}"))?;
        }
        tx.commit().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}
