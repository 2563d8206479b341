//! The MySQL privileges phab-scim needs (README.md, *The database account*): what `serve` does
//! to each table, what `migrate` does in addition, and which of them the connected account
//! lacks, read from `SHOW GRANTS` for `phab-scim check`.
//!
//! The lists follow the SQL of `src/db/`: a table gets a privilege only for a statement that
//! uses it. `UPDATE` and `DELETE` with a `WHERE` also need `SELECT`; `INSERT … ON DUPLICATE KEY
//! UPDATE` needs `UPDATE`; a locking read (`SELECT … FOR UPDATE`) needs `UPDATE` besides
//! `SELECT` on MySQL 8.0.22 and later.

use std::collections::BTreeSet;

use super::{Db, DbResult};
use crate::config::Namespace;

/// Privileges on one table of `<ns>_<app>`, or on the whole database when `table` is `None`.
#[derive(Debug, Clone, Copy)]
pub struct Need {
    /// The application database (`user` for `<ns>_user`).
    pub app: &'static str,
    /// The table, or `None` for every table of the database (also those a later patch adds).
    pub table: Option<&'static str>,
    /// Privilege names as `GRANT` spells them.
    pub privileges: &'static [&'static str],
}

const fn table(app: &'static str, t: &'static str, privileges: &'static [&'static str]) -> Need {
    Need {
        app,
        table: Some(t),
        privileges,
    }
}

const S: &str = "SELECT";
const I: &str = "INSERT";
const U: &str = "UPDATE";
const D: &str = "DELETE";

/// What `phab-scim serve` (and `status`, `check`, `token`) needs.
pub const SERVE: &[Need] = &[
    // Created, locked, renamed, disabled (src/db/phabricator/user.rs).
    table("user", "user", &[S, I, U]),
    table("user", "user_email", &[S, I, U, D]),
    table("user", "user_nametoken", &[S, I, D]),
    table("user", "user_log", &[I]),
    table("user", "user_transaction", &[I]),
    // Memberships from the user's side (src/db/phabricator/edge.rs).
    table("user", "edge", &[S, I, U, D]),
    // Login links (src/db/phabricator/external.rs); identifiers are read FOR UPDATE.
    table("user", "user_externalaccount", &[S, I, U]),
    table("user", "user_externalaccountidentifier", &[S, I, U]),
    // Deprovisioning deletes sessions.
    table("user", "phabricator_session", &[S, D]),
    // Projects (src/db/phabricator/project.rs).
    table("project", "project", &[S, I, U]),
    table("project", "project_slug", &[S, I, U]),
    table("project", "project_datasourcetoken", &[S, I, D]),
    // Written by every group change, read by the drift check (src/db/drift.rs).
    table("project", "project_transaction", &[S, I]),
    table("project", "edge", &[S, I, U, D]),
    table("auth", "auth_providerconfig", &[S]),
    // Deprovisioning expires one-time links and API tokens.
    table("auth", "auth_temporarytoken", &[S, U]),
    table("conduit", "conduit_token", &[S, U]),
    // Tasks inside the transaction (src/db/phabricator/worker.rs).
    table("worker", "worker_taskdata", &[I]),
    table("worker", "worker_activetask", &[I]),
    table("worker", "lisk_counter", &[S, I, U]),
    // `migrate`, run by `serve` at start, reads which patches are applied.
    table("meta_data", "patch_status", &[S]),
    table("metamta", "metamta_applicationemail", &[S]),
    table("system", "system_destructionlog", &[I]),
    Need {
        app: "scim",
        table: None,
        privileges: &[S, I, U, D],
    },
];

/// What `serve` needs in addition to [`SERVE`] with `mode = "staged"`: the staged rollout's
/// copies of the tables it writes (`db::stage`).
pub const STAGED: &[Need] = &[Need {
    app: "scimstage",
    table: None,
    privileges: &[S, I, U, D],
}];

/// What `serve` needs in addition to [`SERVE`] when partitioned `cluster.databases` spread
/// the databases over several masters: the decision log of writes across them (`db::xa`), on
/// the master of `<ns>_scim`.
pub const PARTITIONED: &[Need] = &[Need {
    app: "scimxa",
    table: None,
    privileges: &[S, I, D],
}];

/// What `phab-scim migrate` needs in addition to [`PARTITIONED`] to create that log.
pub const MIGRATE_PARTITIONED: &[Need] = &[Need {
    app: "scimxa",
    table: None,
    privileges: &["CREATE"],
}];

/// What `phab-scim migrate` needs in addition to [`SERVE`]: create `<ns>_scim` and its tables,
/// alter them, and record each patch.
pub const MIGRATE: &[Need] = &[
    Need {
        app: "scim",
        table: None,
        privileges: &["CREATE", "ALTER", "INDEX"],
    },
    table("meta_data", "patch_status", &[I]),
];

/// What `phab-scim stage` and `phab-scim apply` need in addition to [`SERVE`] and [`STAGED`]:
/// make `<ns>_scimstage` and its copies, and drop them once the plan is applied.
pub const STAGE: &[Need] = &[Need {
    app: "scimstage",
    table: None,
    privileges: &["CREATE", "DROP"],
}];

/// Whether `serve` touches table `table` of `<ns>_<app>` (the schema check skips the others).
pub fn used(app: &str, table: &str) -> bool {
    SERVE
        .iter()
        .any(|n| n.app == app && n.table.is_none_or(|t| t == table))
}

/// `<ns>_<app>`, unquoted.
fn db_name(ns: &Namespace, app: &str) -> String {
    format!("{}_{app}", ns.as_str())
}

/// A database name quoted for a database-level `GRANT`, where `_` and `%` are wildcards.
fn db_pattern(name: &str) -> String {
    format!("`{}`", name.replace('_', "\\_").replace('%', "\\%"))
}

/// The `GRANT` statements for `needs` in namespace `ns`, to `account` (`'phabscim'@'%'`).
pub fn statements(needs: &[Need], ns: &Namespace, account: &str) -> Vec<String> {
    needs
        .iter()
        .map(|n| {
            let on = match n.table {
                Some(t) => format!("`{}`.`{t}`", db_name(ns, n.app)),
                None => format!("{}.*", db_pattern(&db_name(ns, n.app))),
            };
            format!("GRANT {} ON {on} TO {account};", n.privileges.join(", "))
        })
        .collect()
}

/// One table- or database-level grant read from `SHOW GRANTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    /// A `LIKE` pattern for database-level grants, a plain name for table-level ones, or `*`.
    db: String,
    /// `None` for `db.*`.
    table: Option<String>,
    /// Upper-case privilege names; `ALL` for `ALL PRIVILEGES`.
    privileges: BTreeSet<String>,
}

/// Parses one line of `SHOW GRANTS` (MySQL and MariaDB spell them alike). Role, proxy and
/// column-level grants give nothing a whole table needs: `None`, or no privileges.
fn parse_grant(line: &str) -> Option<Held> {
    let rest = line.strip_prefix("GRANT ")?;
    // The privilege list ends at the ` ON ` outside parentheses (column lists).
    let mut depth = 0usize;
    let mut split = None;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ' ' if depth == 0 && rest[i..].starts_with(" ON ") => {
                split = Some(i);
                break;
            }
            _ => {}
        }
    }
    let split = split?;
    let privileges = split_privileges(&rest[..split]);
    let target = rest[split + 4..].split(" TO ").next()?.trim();
    let target = target.strip_prefix("TABLE ").unwrap_or(target).trim_start();
    let (db, table) = split_target(target)?;
    Some(Held {
        db,
        table,
        privileges,
    })
}

/// `SELECT, INSERT (a, b), ALL PRIVILEGES` -> {SELECT, ALL}: column-level ones are dropped.
fn split_privileges(list: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut depth = 0usize;
    let mut current = String::new();
    let mut column_level = false;
    let mut push = |p: &str, column_level: bool| {
        let p = p.trim().to_ascii_uppercase();
        if p.is_empty() || column_level {
            return;
        }
        out.insert(if p == "ALL PRIVILEGES" {
            "ALL".into()
        } else {
            p
        });
    };
    for c in list.chars() {
        match c {
            '(' => {
                depth += 1;
                column_level = true;
            }
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                push(&current, column_level);
                current.clear();
                column_level = false;
            }
            _ if depth == 0 => current.push(c),
            _ => {}
        }
    }
    push(&current, column_level);
    out
}

/// `` `db`.`table` ``, `` `db`.* `` or `*.*` -> (db, table).
fn split_target(target: &str) -> Option<(String, Option<String>)> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = target.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' if quoted && chars.peek() == Some(&'`') => {
                chars.next();
                current.push('`');
            }
            '`' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    match parts.as_slice() {
        [db, t] if t == "*" => Some((db.clone(), None)),
        [db, t] => Some((db.clone(), Some(t.clone()))),
        _ => None,
    }
}

/// Whether a database-level grant's `pattern` (`_` and `%` wildcards, `\` escapes) matches
/// `name`, ignoring case as MySQL does on most installations.
fn like(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('%', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('_', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some(('\\', rest)) if !rest.is_empty() => {
                !n.is_empty() && rest[0].eq_ignore_ascii_case(&n[0]) && go(&rest[1..], &n[1..])
            }
            Some((c, rest)) => !n.is_empty() && c.eq_ignore_ascii_case(&n[0]) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

impl Held {
    /// Whether this grant gives `privilege` on `db`.`table` (`None`: every table of `db`).
    fn gives(&self, privilege: &str, db: &str, table: Option<&str>) -> bool {
        if !(self.privileges.contains(privilege) || self.privileges.contains("ALL")) {
            return false;
        }
        match (&self.table, table) {
            // `*.*` or `db`.*: a pattern over database names.
            (None, _) => self.db == "*" || like(&self.db, db),
            // A table-level grant names its database literally, and gives nothing database-wide.
            (Some(t), Some(want)) => self.db.eq_ignore_ascii_case(db) && t == want,
            (Some(_), None) => false,
        }
    }
}

/// The privileges of `needs` that the `grants` lines do not give, as
/// `SELECT on phabricator_user.user` or `CREATE on phabricator_scim.*`.
pub fn missing_from(grants: &[String], needs: &[Need], ns: &Namespace) -> Vec<String> {
    let held: Vec<Held> = grants.iter().filter_map(|g| parse_grant(g)).collect();
    let mut out = Vec::new();
    for n in needs {
        let db = db_name(ns, n.app);
        for p in n.privileges {
            if !held.iter().any(|h| h.gives(p, &db, n.table)) {
                out.push(format!("{p} on {db}.{}", n.table.unwrap_or("*")));
            }
        }
    }
    out
}

/// The grants of the connected account (`SHOW GRANTS FOR CURRENT_USER()`). The lines may hold
/// a password hash (MariaDB's `IDENTIFIED BY PASSWORD`): parse them, never print them.
pub async fn current(db: &Db) -> DbResult<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as("SHOW GRANTS FOR CURRENT_USER()")
        .fetch_all(&db.pool)
        .await?;
    Ok(rows.into_iter().map(|(g,)| g).collect())
}

/// What the connected account lacks of `needs`.
pub async fn missing(db: &Db, needs: &[Need]) -> DbResult<Vec<String>> {
    Ok(missing_from(&current(db).await?, needs, &db.ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns() -> Namespace {
        Namespace::from_checked("phabricator")
    }

    #[test]
    fn statements_escape_database_wildcards_only_at_database_level() {
        let s = statements(SERVE, &ns(), "'phabscim'@'%'");
        assert_eq!(
            s[0],
            "GRANT SELECT, INSERT, UPDATE ON `phabricator_user`.`user` TO 'phabscim'@'%';"
        );
        assert_eq!(
            s.last().map(String::as_str),
            Some(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON `phabricator\\_scim`.* TO 'phabscim'@'%';"
            )
        );
    }

    #[test]
    fn grants_of_mariadb_and_mysql_are_read() {
        let grants: Vec<String> = [
            "GRANT USAGE ON *.* TO `phabscim`@`%` IDENTIFIED BY PASSWORD '*0123'",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON `phabricator\\_%`.* TO `phabscim`@`%`",
            "GRANT CREATE, ALTER ON `phabricator\\_scim`.* TO `phabscim`@`%`",
            "GRANT SELECT (userName), UPDATE ON `phabricator_user`.`user` TO `phabscim`@`%`",
        ]
        .map(str::to_owned)
        .to_vec();
        // The wildcard grant gives every table of every `phabricator_*` database.
        assert!(missing_from(&grants, SERVE, &ns()).is_empty());
        assert_eq!(
            missing_from(&grants, MIGRATE, &ns()),
            ["INDEX on phabricator_scim.*"]
        );
        // Another namespace: `phabricator\_%` does not match `phabricatorx_user`.
        let other = Namespace::from_checked("phabricatorx");
        assert!(missing_from(&grants, SERVE, &other).len() > 10);
        // Column-level SELECT is not table-level.
        let only_table = vec![grants[3].clone()];
        let missing = missing_from(&only_table, &SERVE[..1], &ns());
        assert_eq!(
            missing,
            [
                "SELECT on phabricator_user.user",
                "INSERT on phabricator_user.user"
            ]
        );
        let all =
            vec!["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION".to_owned()];
        assert!(missing_from(&all, SERVE, &ns()).is_empty());
        assert!(missing_from(&all, MIGRATE, &ns()).is_empty());
    }

    #[test]
    fn like_follows_mysql_wildcards() {
        assert!(like("phabricator\\_%", "phabricator_user"));
        assert!(!like("phabricator\\_%", "phabricatorxuser"));
        assert!(like("phabricator_scim", "phabricatorXscim"));
        assert!(like("%", "anything"));
        assert!(!like("phab", "phabricator_user"));
    }
}

#[cfg(test)]
mod readme {
    use super::*;

    /// README.md shows the statements this module renders, so the documentation cannot drift
    /// from what `check` and the tests' service account use.
    #[test]
    fn readme_lists_the_grants() {
        let readme = include_str!("../../README.md");
        let ns = Namespace::from_checked("phabricator");
        for s in statements(SERVE, &ns, "'phabscim'@'%'")
            .into_iter()
            .chain(statements(MIGRATE, &ns, "'phabscim-migrate'@'%'"))
            .chain(statements(STAGED, &ns, "'phabscim'@'%'"))
            .chain(statements(STAGE, &ns, "'phabscim-migrate'@'%'"))
            .chain(statements(PARTITIONED, &ns, "'phabscim'@'%'"))
            .chain(statements(
                MIGRATE_PARTITIONED,
                &ns,
                "'phabscim-migrate'@'%'",
            ))
        {
            assert!(readme.contains(&s), "README.md lacks: {s}");
        }
    }
}
