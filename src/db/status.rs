//! The data of the status page (`phab-scim status`, and the extension's Status page reads the
//! same tables).

use sqlx::AssertSqlSafe;
use std::fmt;

use serde::Serialize;

use super::{Db, DbResult, now, sidecar};
use crate::config::Config;

/// A replica's heartbeat.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Replica {
    #[sqlx(rename = "instanceKey")]
    pub key: String,
    pub hostname: String,
    pub version: String,
    #[sqlx(rename = "dateStarted")]
    pub started: u32,
    #[sqlx(rename = "dateModified")]
    pub last_seen: u32,
    /// Set by a clean shutdown; cleared by the next heartbeat under the same key.
    #[sqlx(rename = "dateStopped")]
    pub stopped: Option<u32>,
}

/// A replica is running when its heartbeat is under a minute old (it beats every 15 s) and it
/// has not said it stopped. The extension's `PhabricatorScimInstance::isLive` says the same.
pub const LIVE_WINDOW_SECS: u32 = 60;

/// Heartbeat rows of replicas not seen for this long are pruned.
pub const INSTANCE_RETENTION_SECS: u32 = 86_400;

impl Replica {
    /// Whether the replica is running at `ts`.
    pub fn is_live(&self, ts: u32) -> bool {
        self.stopped.is_none() && ts.saturating_sub(self.last_seen) <= LIVE_WINDOW_SECS
    }

    /// "running", "stopped" (a clean shutdown) or "not seen" (no heartbeat for a minute).
    pub fn state(&self, ts: u32) -> &'static str {
        if self.stopped.is_some() {
            "stopped"
        } else if self.is_live(ts) {
            "running"
        } else {
            "not seen"
        }
    }
}

/// The deprovision guard's settings (`deprovision_guard_share`, `_min`, `_window_secs`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct GuardSettings {
    /// Share (0..1) of managed users; 1 or more turns the guard off.
    pub share: f64,
    /// Deprovisions always allowed in a window, whatever the share.
    pub min: u32,
    /// The window in seconds.
    pub window_secs: u32,
}

impl GuardSettings {
    /// The settings of `cfg`.
    pub fn of(cfg: &Config) -> Self {
        Self {
            share: cfg.deprovision_guard_share,
            min: cfg.deprovision_guard_min,
            window_secs: u32::try_from(cfg.deprovision_guard_window_secs).unwrap_or(u32::MAX),
        }
    }

    /// Whether the guard is on.
    pub fn enabled(&self) -> bool {
        self.share < 1.0
    }

    /// Deprovisions allowed in a window when `managed` users are managed: the share of them,
    /// and never fewer than `min`. `Provisioner::guard_burst` refuses the one past it.
    pub fn limit(&self, managed: u64) -> u64 {
        ((self.share * managed as f64).floor() as u64).max(u64::from(self.min))
    }
}

/// Prefix of the deprovision guard's refusals (the 429 detail and its sync-log row).
pub const GUARD_REFUSAL: &str = "refusing to deprovision";

/// The deprovision guard now: what it counts, its limit, and since when it refuses.
#[derive(Debug, Serialize)]
pub struct GuardState {
    pub settings: GuardSettings,
    /// Established users deprovisioned in the window (users the service created within the
    /// window do not count).
    pub deprovisions: u64,
    /// Managed users the share is taken of: active ones and those deprovisioned in the window.
    pub managed: u64,
    /// Deprovisions allowed in the window; the next one past it is refused.
    pub limit: u64,
    /// Refusals logged in the window.
    pub refusals: i64,
    /// The first refusal in the window, when the guard refuses now.
    pub refusing_since: Option<u32>,
}

impl GuardState {
    /// Whether the next deprovision of an established user would be refused.
    pub fn refusing(&self) -> bool {
        self.settings.enabled() && self.deprovisions >= self.limit
    }
}

/// Reads the deprovision guard's state under `settings`.
pub async fn guard_state(db: &Db, settings: GuardSettings) -> DbResult<GuardState> {
    let ts = now();
    let mut conn = db.pool.acquire().await?;
    // `except_id` 0: no SCIM record has id 0, so every deprovision counts.
    let deprovisions = sidecar::count_deprovisions_since(
        &mut crate::db::Conns::of(db, &mut conn),
        &db.t,
        ts,
        settings.window_secs,
        0,
    )
    .await?;
    let active =
        sidecar::count_active_managed_users(&mut crate::db::Conns::of(db, &mut conn), &db.t)
            .await?;
    let managed = active + deprovisions;
    let (refusals, first): (i64, Option<u32>) = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT COUNT(*), MIN(dateCreated) FROM {} \
         WHERE dateCreated >= ? AND outcome = 'error' AND status = 429 AND summary LIKE ?",
        db.t.scim_event
    )))
    .bind(ts.saturating_sub(settings.window_secs))
    .bind(format!("{GUARD_REFUSAL}%"))
    .fetch_one(&mut *conn)
    .await?;
    let mut state = GuardState {
        settings,
        deprovisions,
        managed,
        limit: settings.limit(managed),
        refusals,
        refusing_since: None,
    };
    if state.refusing() {
        state.refusing_since = first;
    }
    Ok(state)
}

/// Status summary.
#[derive(Debug, Serialize)]
pub struct Status {
    pub namespace: String,
    pub replicas: Vec<Replica>,
    pub live_replicas: usize,
    /// Managed users whose Phabricator account is enabled.
    pub active_users: i64,
    /// Managed users whose account is disabled (`active: false`), still visible over SCIM.
    pub disabled_users: i64,
    /// Users DELETEd over SCIM: disabled in Phabricator and hidden from SCIM.
    pub deleted_users: i64,
    pub managed_groups: i64,
    pub operations_last_hour: i64,
    pub errors_last_hour: i64,
    pub operations_last_day: i64,
    pub errors_last_day: i64,
    pub last_change: Option<u32>,
    pub active_tokens: i64,
    pub drift_findings: i64,
    /// The deprovision guard under the settings `load` was given.
    pub deprovision_guard: GuardState,
    /// The `mode` setting of whoever reads this (`live` unless they say).
    pub mode: crate::config::RolloutMode,
    /// The staged rollout, if one was begun (`phab-scim stage`).
    pub rollout: Option<RolloutStatus>,
}

/// A staged rollout's phase and plan, for `status` (the Plan page shows the entries).
#[derive(Debug, Serialize)]
pub struct RolloutStatus {
    /// `staged`, `applying` or `applied`.
    pub phase: &'static str,
    pub date_staged: u32,
    pub date_applied: Option<u32>,
    /// Operations by state: `staged` (pending), `applied`, `failed`.
    pub operations: Vec<(String, u64)>,
    /// Plan entries by kind (`user.create`, `conflict`...).
    pub entries: Vec<(String, u64)>,
}

/// Reads the status; the deprovision guard's under `guard`.
pub async fn load(db: &Db, guard: GuardSettings) -> DbResult<Status> {
    let t = &db.t;
    let p = &db.pool;
    let ts = now();
    let replicas: Vec<Replica> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT instanceKey, hostname, version, dateStarted, dateModified, dateStopped FROM {} ORDER BY dateModified DESC LIMIT 50",
        t.scim_instance
    )))
    .fetch_all(p)
    .await?;
    let live = replicas.iter().filter(|r| r.is_live(ts)).count();
    // Counted as Phabricator shows them: a user set `active: false` is disabled, not active.
    let (active_users, disabled_users, deleted_users): (i64, i64, i64) =
        sqlx::query_as(AssertSqlSafe(format!(
            "SELECT CAST(COALESCE(SUM(s.isDeprovisioned = 0 AND u.isDisabled = 0), 0) AS SIGNED), \
                    CAST(COALESCE(SUM(s.isDeprovisioned = 0 AND u.isDisabled = 1), 0) AS SIGNED), \
                    CAST(COALESCE(SUM(s.isDeprovisioned = 1), 0) AS SIGNED) \
             FROM {} s JOIN {} u ON u.phid = s.userPHID",
            t.scim_user, t.user
        )))
        .fetch_one(p)
        .await?;
    let count = |sql: String| async move {
        sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.as_str()))
            .fetch_one(p)
            .await
    };
    let hour = ts.saturating_sub(3600);
    let day = ts.saturating_sub(86_400);
    Ok(Status {
        namespace: db.ns.as_str().to_owned(),
        live_replicas: live,
        replicas,
        active_users,
        disabled_users,
        deleted_users,
        managed_groups: count(format!("SELECT COUNT(*) FROM {}", t.scim_group)).await?,
        operations_last_hour: count(format!("SELECT COUNT(*) FROM {} WHERE dateCreated >= {hour}", t.scim_event)).await?,
        errors_last_hour: count(format!("SELECT COUNT(*) FROM {} WHERE dateCreated >= {hour} AND outcome = 'error'", t.scim_event)).await?,
        operations_last_day: count(format!("SELECT COUNT(*) FROM {} WHERE dateCreated >= {day}", t.scim_event)).await?,
        errors_last_day: count(format!("SELECT COUNT(*) FROM {} WHERE dateCreated >= {day} AND outcome = 'error'", t.scim_event)).await?,
        last_change: sqlx::query_scalar::<_, Option<u32>>(AssertSqlSafe(format!("SELECT MAX(dateCreated) FROM {} WHERE outcome = 'ok'", t.scim_event)))
            .fetch_one(p)
            .await?,
        active_tokens: count(format!(
            "SELECT COUNT(*) FROM {} WHERE dateRevoked IS NULL AND (dateExpires IS NULL OR dateExpires > {ts})",
            t.scim_token
        ))
        .await?,
        drift_findings: count(format!("SELECT COUNT(*) FROM {}", t.scim_drift)).await?,
        deprovision_guard: guard_state(db, guard).await?,
        mode: crate::config::RolloutMode::Live,
        rollout: rollout_status(db).await?,
    })
}

async fn rollout_status(db: &Db) -> DbResult<Option<RolloutStatus>> {
    let mut conn = db.pool.acquire().await?;
    let Some(r) = super::stage::rollout(&mut crate::db::Conns::of(db, &mut conn), &db.t).await?
    else {
        return Ok(None);
    };
    let counts = super::stage::plan_counts(&mut crate::db::Conns::of(db, &mut conn), &db.t).await?;
    Ok(Some(RolloutStatus {
        phase: r.phase.as_str(),
        date_staged: r.date_staged,
        date_applied: r.date_applied,
        operations: counts.ops,
        entries: counts.kinds,
    }))
}

impl fmt::Display for RolloutStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[(String, u64)]| {
            if v.is_empty() {
                return "none".to_owned();
            }
            v.iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            f,
            "staged rollout:   {} (staged {})",
            self.phase,
            crate::scim::resource::datetime(self.date_staged)
        )?;
        writeln!(f, "  operations:     {}", list(&self.operations))?;
        write!(f, "  plan entries:   {}", list(&self.entries))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "namespace:        {}", self.namespace)?;
        let mode = match self.mode {
            crate::config::RolloutMode::Live => "live",
            crate::config::RolloutMode::Staged => "staged",
        };
        writeln!(f, "mode:             {mode}")?;
        if let Some(r) = &self.rollout {
            writeln!(f, "{r}")?;
        }
        if self.live_replicas == 0 {
            writeln!(
                f,
                "replicas:         NONE has sent a heartbeat in the last minute"
            )?;
        } else {
            writeln!(f, "replicas:         {} live", self.live_replicas)?;
        }
        let ts = now();
        for r in &self.replicas {
            writeln!(
                f,
                "  {} {} v{} {}, last seen {}",
                r.key,
                r.hostname,
                r.version,
                r.state(ts),
                crate::scim::resource::datetime(r.last_seen)
            )?;
        }
        writeln!(
            f,
            "managed users:    {} active, {} disabled, {} deleted",
            self.active_users, self.disabled_users, self.deleted_users
        )?;
        writeln!(f, "managed groups:   {}", self.managed_groups)?;
        writeln!(
            f,
            "last hour:        {} operations, {} errors",
            self.operations_last_hour, self.errors_last_hour
        )?;
        writeln!(
            f,
            "last day:         {} operations, {} errors",
            self.operations_last_day, self.errors_last_day
        )?;
        writeln!(
            f,
            "last change:      {}",
            self.last_change
                .map(crate::scim::resource::datetime)
                .unwrap_or_else(|| "never".into())
        )?;
        writeln!(f, "active tokens:    {}", self.active_tokens)?;
        writeln!(f, "drift findings:   {}", self.drift_findings)?;
        write!(f, "{}", self.deprovision_guard)
    }
}

impl fmt::Display for GuardState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        if !s.enabled() {
            return write!(
                f,
                "deprovision guard: off (deprovision_guard_share {})",
                s.share
            );
        }
        write!(
            f,
            "deprovision guard: {} of {} deprovisions of established users in the last {}s \
             ({:.0}% of {} managed, at least {})",
            self.deprovisions,
            self.limit,
            s.window_secs,
            s.share * 100.0,
            self.managed,
            s.min
        )?;
        if self.refusing() {
            match self.refusing_since {
                Some(at) => write!(
                    f,
                    "; REFUSING since {} ({} refused)",
                    crate::scim::resource::datetime(at),
                    self.refusals
                ),
                None => write!(f, "; the next one is refused"),
            }
        } else {
            Ok(())
        }
    }
}

/// The kinds of drift finding `db::drift` stores: the closed set of the `kind` label of
/// `phab_scim_drift_findings` (a kind outside it is counted as `other`).
pub const DRIFT_KINDS: [&str; 4] = [
    "project-renamed",
    "project-members",
    "user-reenabled",
    "phantom-account",
];

/// What `/metrics` exports of the database's state (`crate::status_gauges`): replicas, drift,
/// tokens and the deprovision guard, read by the background loop.
#[derive(Debug)]
pub struct Gauges {
    /// Replicas of the namespace with a heartbeat in the last minute (`Replica::is_live`).
    pub replicas_live: i64,
    /// Replicas whose heartbeat stopped without a clean shutdown, not yet pruned.
    pub replicas_not_seen: i64,
    /// Drift findings by kind: every kind of `DRIFT_KINDS` (0 when none), then `other`.
    pub drift: Vec<(&'static str, i64)>,
    /// Tokens neither revoked nor expired.
    pub tokens_active: i64,
    /// (token id, dateExpires) of the active tokens that expire.
    pub token_expiry: Vec<(u32, u32)>,
    /// The deprovision guard now.
    pub guard: GuardState,
}

/// Reads the gauges: one query each for replicas, drift and tokens, and the guard's.
pub async fn gauges(db: &Db, guard: GuardSettings) -> DbResult<Gauges> {
    let t = &db.t;
    let ts = now();
    let seen = ts.saturating_sub(LIVE_WINDOW_SECS);
    let (replicas_live, replicas_not_seen): (i64, i64) = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT CAST(COALESCE(SUM(dateStopped IS NULL AND dateModified >= ?), 0) AS SIGNED), \
                CAST(COALESCE(SUM(dateStopped IS NULL AND dateModified < ?), 0) AS SIGNED) \
         FROM {}",
        t.scim_instance
    )))
    .bind(seen)
    .bind(seen)
    .fetch_one(&db.pool)
    .await?;
    let by_kind: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT driftType, COUNT(*) FROM {} GROUP BY driftType",
        t.scim_drift
    )))
    .fetch_all(&db.pool)
    .await?;
    let mut drift: Vec<(&'static str, i64)> = DRIFT_KINDS.iter().map(|k| (*k, 0)).collect();
    drift.push(("other", 0));
    for (kind, n) in by_kind {
        let slot = DRIFT_KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(DRIFT_KINDS.len());
        drift[slot].1 += n;
    }
    let tokens: Vec<(u32, Option<u32>)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT id, dateExpires FROM {} \
         WHERE dateRevoked IS NULL AND (dateExpires IS NULL OR dateExpires > ?) ORDER BY id",
        t.scim_token
    )))
    .bind(ts)
    .fetch_all(&db.pool)
    .await?;
    Ok(Gauges {
        replicas_live,
        replicas_not_seen,
        drift,
        tokens_active: i64::try_from(tokens.len()).unwrap_or(i64::MAX),
        token_expiry: tokens
            .into_iter()
            .filter_map(|(id, exp)| Some((id, exp?)))
            .collect(),
        guard: guard_state(db, guard).await?,
    })
}
