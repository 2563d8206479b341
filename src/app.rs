//! Building and running the service: pool, migrations, router, background tasks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::{Config, RolloutMode};
use crate::db::stage::Phase;
use crate::db::{Db, migrate, now, sidecar, xa};
use crate::http::refused::RefusedRequests;
use crate::http::serve::{self, ConnLimits};
use crate::http::{AppState, canonical_endpoints, router};
use crate::provisioning::Provisioner;
use crate::provisioning::rollout::Switch;
use crate::provisioning::service::{RejectedRequest, new_request_id};
use crate::status_gauges::{self, StatusGauges};
use crate::token::TokenVerifier;

/// A built application: bound listener and state.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    addr: SocketAddr,
    gauges: Arc<StatusGauges>,
}

impl Application {
    /// Connects, applies pending `<ns>_scim` patches and binds the listener (port 0 allowed).
    pub async fn build(
        cfg: Config,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> anyhow::Result<Self> {
        // With the databases on several masters, a pool per master and writes by XA
        // (docs/design.md#partitioned-databases).
        let db = Db::connect_config(&cfg, cfg.pool_size, cfg.db_timeouts())
            .await
            .context("database")?;
        let report = migrate::migrate(&db)
            .await
            .with_context(|| format!("applying {}_scim patches", cfg.namespace.as_str()))?;
        for key in &report.applied {
            tracing::info!(patch = %key, "applied");
        }
        // Writes a previous run left prepared (it died between the phases).
        recover_writes(&db)
            .await
            .context("settling writes across masters")?;
        let listener = TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("binding {}", cfg.listen))?;
        let addr = listener.local_addr()?;
        let mut cfg = cfg;
        if cfg.public_url.is_none() {
            cfg.public_url = Some(format!("http://{addr}/scim/v2"));
        }
        let base_url: Arc<str> = Arc::from(cfg.base_url());
        let auth = Arc::new(TokenVerifier::new(
            db.clone(),
            Duration::from_secs(cfg.token_recheck_secs),
            cfg.auth_failures_per_minute,
        ));
        let prov = Provisioner {
            db,
            cfg: Arc::new(cfg),
        };
        let rollout = match prov.cfg.mode {
            RolloutMode::Live => None,
            RolloutMode::Staged => Some(Arc::new(staged_switch(&prov).await?)),
        };
        let state = AppState {
            prov,
            auth,
            metrics,
            base_url,
            refused: Arc::new(RefusedRequests::default()),
            rollout,
        };
        Ok(Self {
            listener,
            state,
            addr,
            gauges: Arc::default(),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The state (tests use its pool).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The gauges `/metrics` shows of the database's state (tests refresh them at will).
    pub fn status_gauges(&self) -> Arc<StatusGauges> {
        self.gauges.clone()
    }

    /// Serves until SIGTERM or Ctrl-C, with the heartbeat and sync-log pruning running.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(addr = %self.addr, "phab-scim listening");
        self.run_with_shutdown(shutdown_signal()).await
    }

    /// Serves until `stop` resolves (SIGTERM for the binary, a channel for tests), with the
    /// background tasks running; then writes what is left of the refused-request tally.
    pub async fn run_with_shutdown(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let instance = instance_key();
        let bg = spawn_background(self.state.clone(), instance.clone(), self.gauges.clone());
        let refused = spawn_refused_writer(self.state.clone());
        let limits = ConnLimits::from_config(&self.state.prov.cfg);
        // The endpoint-name rewrite wraps the router: it must run before routing.
        let app = tower::Layer::layer(
            &axum::middleware::from_fn(canonical_endpoints),
            router(self.state.clone()),
        );
        let app = tower::Layer::layer(
            &axum::middleware::from_fn_with_state(
                self.gauges.clone(),
                status_gauges::append_to_metrics,
            ),
            app,
        );
        let served = serve::serve(self.listener, app, limits, stop).await;
        bg.abort();
        refused.abort();
        flush_refused(&self.state).await;
        mark_stopped(&self.state, &instance).await;
        served.context("serving")
    }
}

/// This replica's heartbeat key: host, process and a random part, so a restart is a new row.
fn instance_key() -> String {
    let key = format!(
        "{}:{}:{}",
        crate::db::phabricator::user::hostname(),
        std::process::id(),
        crate::db::phabricator::random_chars(8)
    );
    key.chars().take(64).collect()
}

/// Settles the writes across masters left prepared by a service that died mid-commit
/// (`xa::recover`), once they are older than an operation may take. Nothing with one master.
async fn recover_writes(db: &Db) -> crate::db::DbResult<()> {
    if db.masters.is_single() {
        return Ok(());
    }
    let settled_after = db.timeouts.operation + Duration::from_secs(1);
    let done = xa::recover(db, settled_after).await?;
    if done.committed + done.rolled_back > 0 {
        tracing::warn!(
            committed = done.committed,
            rolled_back = done.rolled_back,
            "settled writes across masters left prepared"
        );
    }
    Ok(())
}

/// Marks this replica's heartbeat stopped after a clean shutdown, so the Status page does not
/// show it running for another minute. Best effort: a database that is gone leaves the row to
/// age out as "not seen".
async fn mark_stopped(state: &AppState, key: &str) {
    let db = &state.prov.db;
    let marked = async {
        let mut conn = db.pool.acquire().await?;
        sidecar::mark_stopped(&mut crate::db::Conns::of(db, &mut conn), &db.t, key).await
    };
    match tokio::time::timeout(Duration::from_secs(5), marked).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not mark this replica stopped"),
        Err(_) => {
            tracing::warn!("could not mark this replica stopped: the database did not answer")
        }
    }
}

/// Writes the refused-request tally once a minute: a flood of token-less requests costs at
/// most one sync-log row per address and reason per minute.
fn spawn_refused_writer(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            flush_refused(&state).await;
        }
    })
}

/// Writes the tally of refused requests to the sync log: one row per client address and
/// reason, with the count (`http::refused` says why). Returns the rows written.
pub async fn flush_refused(state: &AppState) -> usize {
    let tallies = state.refused.take();
    if tallies.is_empty() {
        return 0;
    }
    let mut rows = Vec::with_capacity(tallies.len());
    for tally in tallies {
        // One line per address and reason: the log shows a flood without growing with it.
        tracing::warn!(
            client = %tally.client.map_or_else(|| "other".to_owned(), |ip| ip.to_string()),
            reason = tally.reason.as_str(),
            count = tally.count,
            "requests refused before authentication"
        );
        rows.push(RejectedRequest {
            request_id: new_request_id(),
            token_id: None,
            method: "*".into(),
            path: "*".into(),
            resource_type: None,
            status: tally.reason.status(),
            summary: tally.summary(),
            details: tally.details(),
        });
    }
    match state.prov.write_rejected(&rows).await {
        Ok(written) => written,
        Err(e) => {
            tracing::warn!(
                error = %e,
                refused = rows.len(),
                "could not write refused requests to the sync log"
            );
            0
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// Heartbeat every 15 s (the status page calls a replica gone after 60 s), the gauges of
/// `/metrics` every minute, drift every `drift_interval_secs`, and pruning of the sync log once
/// an hour.
fn spawn_background(
    state: AppState,
    key: String,
    gauges: Arc<StatusGauges>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let db = state.prov.db.clone();
        let cfg = state.prov.cfg.clone();
        let host = crate::db::phabricator::user::hostname();
        let started = now();
        let mut tick = tokio::time::interval(Duration::from_secs(15));
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            if let Ok(mut conn) = db.pool.acquire().await {
                let instance = sidecar::Instance {
                    key: &key,
                    hostname: &host,
                    version: env!("CARGO_PKG_VERSION"),
                    started,
                };
                if let Err(e) = sidecar::heartbeat(
                    &mut crate::db::Conns::of(&db, &mut conn),
                    &db.t,
                    &instance,
                    &crate::db::status::GuardSettings::of(&cfg),
                )
                .await
                {
                    tracing::warn!(error = %e, "heartbeat failed");
                } else {
                    gauges.heartbeat_written(now());
                }
                if n.is_multiple_of(240) {
                    let cutoff =
                        now().saturating_sub(cfg.event_retention_days.saturating_mul(86_400));
                    let _ = sidecar::prune_events(
                        &mut crate::db::Conns::of(&db, &mut conn),
                        &db.t,
                        cutoff,
                    )
                    .await;
                    let gone = now().saturating_sub(crate::db::status::INSTANCE_RETENTION_SECS);
                    let _ = sidecar::prune_instances(
                        &mut crate::db::Conns::of(&db, &mut conn),
                        &db.t,
                        gone,
                    )
                    .await;
                }
            }
            // An apply asked for on the Plan page, in a task of its own: a large plan takes
            // longer than a heartbeat may wait.
            if state.rollout.is_some() {
                let prov = state.prov.clone();
                tokio::spawn(async move {
                    if let Err(e) = prov.apply_if_requested().await {
                        tracing::warn!(error = %e, "applying the staged plan failed");
                    }
                });
            }
            if let Err(e) = recover_writes(&db).await {
                tracing::warn!(error = %e, "settling writes across masters failed");
            }
            let drift_every = (cfg.drift_interval_secs / 15).max(1);
            if cfg.drift_interval_secs > 0 && n.is_multiple_of(drift_every) {
                match crate::db::drift::run_once(&db).await {
                    Ok(Some(found)) => tracing::debug!(found, "drift computed"),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "drift check failed"),
                }
            }
            // After drift, so a new drift run shows at once; every 4th tick, since the alerts
            // built on them (packaging/prometheus/phab-scim.rules.yml) wait minutes anyway.
            if n.is_multiple_of(4) {
                let guard = crate::db::status::GuardSettings::of(&cfg);
                if let Err(e) = gauges.refresh(&db, guard).await {
                    tracing::warn!(error = %e, "reading the status gauges failed");
                }
            }
            n += 1;
        }
    })
}

/// Staged mode's switch, once a staged rollout exists (`phab-scim stage` makes it): serving
/// without one would write nowhere the plan can show.
async fn staged_switch(prov: &Provisioner) -> anyhow::Result<Switch> {
    let switch = Switch::new(prov.clone());
    match switch.phase().await {
        None => anyhow::bail!(
            "mode = \"staged\", but no staged rollout was begun in this namespace: run `phab-scim stage` first (README.md, First rollout)"
        ),
        Some(Phase::Applied) => tracing::info!(
            "mode = \"staged\": the staged rollout was applied, so the service writes Phabricator directly; set mode = \"live\""
        ),
        Some(phase) => tracing::info!(
            phase = phase.as_str(),
            "mode = \"staged\": SCIM writes become a plan (the Plan page)"
        ),
    }
    Ok(switch)
}
