//! `PhabricatorProject`, `PhabricatorProjectSlug` and `PhabricatorProjectDatasourceToken`
//! (docs/phabricator-tables.md#projects; the rows per operation: docs/write-paths.md).

use sqlx::{AssertSqlSafe, FromRow, MySql, QueryBuilder};

use super::{Phid, PhidKind, digest_for_index, random_chars};
use crate::db::{Conns, DbError, DbResult, Tables, now, placeholders};

/// `PhabricatorProjectStatus::STATUS_ACTIVE` (`status` is a text32 column).
pub const STATUS_ACTIVE: &str = "0";
/// `PhabricatorProjectStatus::STATUS_ARCHIVED`.
pub const STATUS_ARCHIVED: &str = "100";

/// `PhabricatorSlug::normalizeProjectSlug` (docs/phabricator-tables.md#hashtags): `/` becomes
/// a space; lower-case; runs of banned characters become one `_`; leading and trailing `_` are
/// trimmed unless the whole slug is `_`; a slug of `.` or `..` becomes `dot` or `dotdot`.
pub fn normalize_slug(name: &str) -> String {
    // The PHP regex works on bytes without the `u` flag; every banned character is ASCII, so
    // testing chars is the same. Control characters are only `\x00-\x19` (not up to `\x1f`).
    fn banned(c: char) -> bool {
        matches!(c, '\u{00}'..='\u{19}')
            || "#%&+=? \\<>{}[]'\"".contains(c)
            || "`~!@$^*,:;(|)".contains(c)
    }
    // `phutil_utf8_strtolower` maps each character on its own (no final-sigma context).
    let lower: String = name
        .replace('/', " ")
        .chars()
        .flat_map(char::to_lowercase)
        .collect();
    let mut slug = String::with_capacity(lower.len());
    for c in lower.chars() {
        let c = if banned(c) { '_' } else { c };
        if c == '_' && slug.ends_with('_') {
            continue;
        }
        slug.push(c);
    }
    if slug != "_" {
        slug = slug.trim_matches('_').to_owned();
    }
    match slug.as_str() {
        "." => "dot".to_owned(),
        ".." => "dotdot".to_owned(),
        _ => slug,
    }
}

/// Is a slug acceptable as a project hashtag? (`PhabricatorProjectNameTransaction` refuses a
/// name whose slug is `_`; an empty name is refused before.)
pub fn is_valid_slug(slug: &str) -> bool {
    !slug.is_empty() && slug != "_"
}

/// `projectPathKey`: the first 4 characters of `digestForIndex(phid)`
/// (docs/phabricator-tables.md#projects, checked against rows Phorge wrote).
pub fn path_key(phid: &str) -> String {
    digest_for_index(phid).chars().take(4).collect()
}

/// Datasource tokens of a project: the typeahead tokenizer over `join(' ', slugs) + ' ' +
/// name` (docs/phabricator-tables.md#datasource-tokens). Callers pass the slugs that exist
/// *before* this save's new slug row, so the tokens lag one save exactly as Phorge's do (a new
/// project's come from its name alone; a rename adds the old slug, not the new one).
pub fn datasource_tokens(slugs: &[String], name: &str) -> Vec<String> {
    super::user::name_tokens(&slugs.join(" "), name)
}

/// The columns of `project` phab-scim reads.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct ProjectRow {
    /// Numeric id (what `project_datasourcetoken.projectID` references).
    pub id: u32,
    /// `PHID-PROJ-…`.
    pub phid: Phid,
    /// The project name.
    pub name: String,
    /// `"0"` active, `"100"` archived.
    pub status: String,
    /// The primary hashtag (NULL for milestones).
    #[sqlx(rename = "primarySlug")]
    pub primary_slug: Option<String>,
    /// Set for milestones only.
    #[sqlx(rename = "milestoneNumber")]
    pub milestone_number: Option<u32>,
    /// Maintained by materialization (docs/phabricator-tables.md#materialized-members).
    #[sqlx(rename = "hasSubprojects")]
    pub has_subprojects: bool,
    /// Path keys of the ancestors and the project, 4 characters each.
    #[sqlx(rename = "projectPath", try_from = "crate::db::Bin")]
    pub project_path: String,
    /// 0 for a root project.
    #[sqlx(rename = "projectDepth")]
    pub project_depth: u32,
    /// Epoch seconds.
    #[sqlx(rename = "dateCreated")]
    pub date_created: u32,
    /// Epoch seconds.
    #[sqlx(rename = "dateModified")]
    pub date_modified: u32,
}

impl ProjectRow {
    /// A milestone (has a `milestoneNumber`).
    pub fn is_milestone(&self) -> bool {
        self.milestone_number.is_some()
    }
}

const PROJECT_COLUMNS: &str = "p.id, p.phid, p.name, p.status, p.primarySlug, \
     p.milestoneNumber, p.hasSubprojects, p.projectPath, p.projectDepth, p.dateCreated, p.dateModified";

/// A new root project, as `PhabricatorProject::initializeNewProject` + the EditEngine write it
/// (docs/write-paths.md#create-a-group): icon `project`, color `blue`, no workboard,
/// `properties []`, subtype `default`.
#[derive(Debug, Clone)]
pub struct NewProject<'a> {
    /// A PHID from `new_project_phid`.
    pub phid: &'a Phid,
    /// The trimmed name.
    pub name: &'a str,
    /// `normalize_slug(name)`.
    pub primary_slug: &'a str,
    /// The actor (the token's bot).
    pub author_phid: &'a Phid,
    /// `viewPolicy`.
    pub view_policy: &'a str,
    /// `editPolicy`.
    pub edit_policy: &'a str,
    /// `joinPolicy`.
    pub join_policy: &'a str,
}

/// A PHID for a new project whose path key is not taken yet. `projectPathKey` is unique and
/// only 4 characters of a digest; Phorge does not retry a collision, phab-scim draws again.
pub async fn new_project_phid(conn: &mut Conns<'_>, t: &Tables) -> DbResult<Phid> {
    for _ in 0..16 {
        let phid = Phid::new(PhidKind::Project);
        let taken = sqlx::query(AssertSqlSafe(format!(
            "SELECT 1 FROM {} WHERE projectPathKey = ?",
            t.project
        )))
        .bind(path_key(&phid))
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
        if !taken {
            return Ok(phid);
        }
    }
    Err(DbError::Inconsistent(
        "no free projectPathKey after 16 draws".into(),
    ))
}

/// Inserts a root project row; returns its id.
pub async fn insert_project(conn: &mut Conns<'_>, t: &Tables, p: &NewProject<'_>) -> DbResult<u32> {
    let ts = now();
    let key = path_key(p.phid);
    let res = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (name, phid, authorPHID, dateCreated, dateModified, status, viewPolicy, \
         editPolicy, joinPolicy, isMembershipLocked, profileImagePHID, icon, color, mailKey, \
         primarySlug, parentProjectPHID, hasWorkboard, hasMilestones, hasSubprojects, \
         milestoneNumber, projectPath, projectDepth, projectPathKey, properties, spacePHID, subtype) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, 'project', 'blue', ?, ?, NULL, 0, 0, 0, NULL, \
         ?, 0, ?, '[]', NULL, 'default')",
        t.project
    )))
    .bind(p.name)
    .bind(p.phid)
    .bind(p.author_phid)
    .bind(ts)
    .bind(ts)
    .bind(STATUS_ACTIVE)
    .bind(p.view_policy)
    .bind(p.edit_policy)
    .bind(p.join_policy)
    .bind(random_chars(20))
    .bind(p.primary_slug)
    .bind(&key)
    .bind(&key)
    .execute(&mut *conn)
    .await?;
    u32::try_from(res.last_insert_id())
        .map_err(|_| DbError::Inconsistent("project id out of range".into()))
}

/// Loads a project by PHID and locks the row (`PhabricatorProjectTransactionEditor` reloads
/// it with `FOR UPDATE`).
pub async fn lock_project(
    conn: &mut Conns<'_>,
    t: &Tables,
    phid: &str,
) -> DbResult<Option<ProjectRow>> {
    Ok(sqlx::query_as::<_, ProjectRow>(AssertSqlSafe(format!(
        "SELECT {PROJECT_COLUMNS} FROM {} p WHERE p.phid = ? FOR UPDATE",
        t.project
    )))
    .bind(phid)
    .fetch_optional(&mut *conn)
    .await?)
}

/// The project owning a slug (any of its hashtags, not only the primary one), locked.
pub async fn lock_project_by_slug(
    conn: &mut Conns<'_>,
    t: &Tables,
    slug: &str,
) -> DbResult<Option<ProjectRow>> {
    Ok(sqlx::query_as::<_, ProjectRow>(AssertSqlSafe(format!(
        "SELECT {PROJECT_COLUMNS} FROM {} s JOIN {} p ON p.phid = s.projectPHID WHERE s.slug = ? FOR UPDATE",
        t.project_slug, t.project
    )))
    .bind(slug)
    .fetch_optional(&mut *conn)
    .await?)
}

/// The ancestors of a project, locked, nearest last: the projects whose `projectPath` is a
/// proper prefix of this one's (4 characters per level), as rematerialization reads them
/// (`SELECT … WHERE projectPath IN (…) FOR UPDATE`, docs/write-paths.md#add-members).
pub async fn lock_ancestors(
    conn: &mut Conns<'_>,
    t: &Tables,
    project: &ProjectRow,
) -> DbResult<Vec<ProjectRow>> {
    let prefixes: Vec<String> = (1..=project.project_depth as usize)
        .filter_map(|level| project.project_path.get(..level * 4).map(str::to_owned))
        .collect();
    if prefixes.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {PROJECT_COLUMNS} FROM {} p WHERE p.projectPath IN {} ORDER BY p.projectDepth FOR UPDATE",
        t.project,
        placeholders(prefixes.len())
    );
    let mut q = sqlx::query_as::<_, ProjectRow>(AssertSqlSafe(sql.as_str()));
    for p in &prefixes {
        q = q.bind(p);
    }
    Ok(q.fetch_all(&mut *conn).await?)
}

/// Does the project have a subproject (a child that is not a milestone)? Members of such a
/// parent cannot be edited (docs/phabricator-tables.md#subprojects-and-milestones).
pub async fn has_subprojects(
    conn: &mut Conns<'_>,
    t: &Tables,
    project: &ProjectRow,
) -> DbResult<bool> {
    if project.has_subprojects {
        return Ok(true);
    }
    Ok(sqlx::query(AssertSqlSafe(format!(
        "SELECT 1 FROM {} WHERE parentProjectPHID = ? AND milestoneNumber IS NULL LIMIT 1",
        t.project
    )))
    .bind(&project.phid)
    .fetch_optional(&mut *conn)
    .await?
    .is_some())
}

/// What a re-save of the project row changes. `PhabricatorProject::save()` always writes
/// `dateModified`, also for membership edits (docs/write-paths.md#add-members).
#[derive(Debug, Clone, Default)]
pub struct ProjectChanges {
    /// A new name.
    pub name: Option<String>,
    /// A new primary hashtag.
    pub primary_slug: Option<String>,
    /// A new status.
    pub status: Option<&'static str>,
}

/// Re-saves the project row: the changed columns and `dateModified`.
pub async fn update_project(
    conn: &mut Conns<'_>,
    t: &Tables,
    id: u32,
    c: &ProjectChanges,
) -> DbResult<()> {
    let mut sets = vec!["dateModified = ?"];
    if c.name.is_some() {
        sets.push("name = ?");
    }
    if c.primary_slug.is_some() {
        sets.push("primarySlug = ?");
    }
    if c.status.is_some() {
        sets.push("status = ?");
    }
    let sql = format!("UPDATE {} SET {} WHERE id = ?", t.project, sets.join(", "));
    let mut q = sqlx::query(AssertSqlSafe(sql.as_str())).bind(now());
    if let Some(v) = &c.name {
        q = q.bind(v);
    }
    if let Some(v) = &c.primary_slug {
        q = q.bind(v);
    }
    if let Some(v) = c.status {
        q = q.bind(v);
    }
    q.bind(id).execute(&mut *conn).await?;
    Ok(())
}

/// Every slug of a project, oldest first (locked, as `PhabricatorProjectNameTransaction`
/// reads them).
pub async fn lock_slugs(
    conn: &mut Conns<'_>,
    t: &Tables,
    project_phid: &str,
) -> DbResult<Vec<String>> {
    Ok(sqlx::query_scalar::<_, String>(AssertSqlSafe(format!(
        "SELECT slug FROM {} WHERE projectPHID = ? ORDER BY id FOR UPDATE",
        t.project_slug
    )))
    .bind(project_phid)
    .fetch_all(&mut *conn)
    .await?)
}

/// The project owning `slug`, if any (locked).
pub async fn lock_slug_owner(
    conn: &mut Conns<'_>,
    t: &Tables,
    slug: &str,
) -> DbResult<Option<Phid>> {
    Ok(sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT projectPHID FROM {} WHERE slug = ? FOR UPDATE",
        t.project_slug
    )))
    .bind(slug)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Inserts a slug row (the primary slug of a new or renamed project,
/// docs/write-paths.md#rename-a-group).
pub async fn insert_slug(
    conn: &mut Conns<'_>,
    t: &Tables,
    project_phid: &Phid,
    slug: &str,
) -> DbResult<()> {
    let ts = now();
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (projectPHID, slug, dateCreated, dateModified) VALUES (?, ?, ?, ?)",
        t.project_slug
    )))
    .bind(project_phid)
    .bind(slug)
    .bind(ts)
    .bind(ts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rewrites `project_datasourcetoken` for a project: delete, then one multi-row insert
/// (`PhabricatorProject::save()` does this on every save). A brand-new project has no rows,
/// so nothing is deleted (the same next-key reasoning as user name tokens,
/// docs/phabricator-tables.md#locking-and-isolation).
pub async fn write_datasource_tokens(
    conn: &mut Conns<'_>,
    t: &Tables,
    project_id: u32,
    tokens: &[String],
    replace_existing: bool,
) -> DbResult<()> {
    if replace_existing {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {} WHERE projectID = ?",
            t.project_datasourcetoken
        )))
        .bind(project_id)
        .execute(&mut *conn)
        .await?;
    }
    if tokens.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::<MySql>::new(format!(
        "INSERT INTO {} (projectID, token) ",
        t.project_datasourcetoken
    ));
    // `token` is varchar(128); a name is at most 128 bytes, so a token always fits.
    q.push_values(tokens, |mut row, tok| {
        row.push_bind(project_id).push_bind(tok);
    });
    q.build().execute(&mut *conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_match_phabricator() {
        assert_eq!(normalize_slug("Oracle Lab"), "oracle_lab");
        assert_eq!(normalize_slug("Oracle Lab Renamed"), "oracle_lab_renamed");
        assert_eq!(normalize_slug("  Back-End / Ops  "), "back-end_ops");
        assert_eq!(normalize_slug("a?"), "a");
        assert_eq!(normalize_slug("??"), "_");
        assert_eq!(normalize_slug("___"), "_");
        assert_eq!(normalize_slug("_a_"), "a");
        assert_eq!(normalize_slug("."), "dot");
        assert_eq!(normalize_slug(".."), "dotdot");
        assert_eq!(normalize_slug("a..b"), "a..b");
        assert_eq!(normalize_slug("C++ & C#"), "c_c");
        assert_eq!(normalize_slug("x(y)|z"), "x_y_z");
        assert_eq!(normalize_slug("Émile's \"Team\""), "émile_s_team");
        assert_eq!(normalize_slug("tab\there"), "tab_here");
        // `\x1a`-`\x1f` are not in Phabricator's control range.
        assert_eq!(normalize_slug("a\u{1f}b"), "a\u{1f}b");
        assert_eq!(normalize_slug("dev.ops-2"), "dev.ops-2");
        assert_eq!(normalize_slug("a/b//c/"), "a_b_c");
        assert!(!is_valid_slug(&normalize_slug("??")));
        assert!(!is_valid_slug(&normalize_slug("")));
    }

    #[test]
    fn tokens_lag_like_phorge() {
        // Creation: tokens come from the name only (docs/write-paths.md#create-a-group).
        assert_eq!(datasource_tokens(&[], "Oracle Lab"), vec!["lab", "oracle"]);
        // Rename: the old slug and the new name's words (docs/write-paths.md#rename-a-group).
        assert_eq!(
            datasource_tokens(&["oracle_lab".into()], "Oracle Lab Renamed"),
            vec!["lab", "oracle", "oracle_lab", "renamed"]
        );
    }

    #[test]
    fn path_key_is_four_digest_chars() {
        assert_eq!(path_key("PHID-USER-af4fgdh6y6lyuy744ofh"), "5A9o");
    }
}
