//! Building and running the service: pool, migrations, router, background tasks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::db::{Db, migrate, now, sidecar};
use crate::http::{AppState, canonical_endpoints, router};
use crate::provisioning::Provisioner;
use crate::token::TokenVerifier;

/// A built application: bound listener and state.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    addr: SocketAddr,
}

impl Application {
    /// Connects, applies pending `<ns>_scim` patches and binds the listener (port 0 allowed).
    pub async fn build(
        cfg: Config,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> anyhow::Result<Self> {
        let db = Db::connect(&cfg.database_url, cfg.namespace.clone(), cfg.pool_size)
            .await
            .context("database")?;
        let report = migrate::migrate(&db)
            .await
            .with_context(|| format!("applying {}_scim patches", cfg.namespace.as_str()))?;
        for key in &report.applied {
            tracing::info!(patch = %key, "applied");
        }
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
        let state = AppState {
            prov: Provisioner {
                db,
                cfg: Arc::new(cfg),
            },
            auth,
            metrics,
            base_url,
        };
        Ok(Self {
            listener,
            state,
            addr,
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

    /// Serves until SIGTERM or Ctrl-C, with the heartbeat and sync-log pruning running.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let bg = spawn_background(self.state.clone());
        // The endpoint-name rewrite wraps the router: it must run before routing.
        let svc = tower::Layer::layer(
            &axum::middleware::from_fn(canonical_endpoints),
            router(self.state),
        );
        let app = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
            SocketAddr,
        >(svc);
        tracing::info!(addr = %self.addr, "phab-scim listening");
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await;
        bg.abort();
        served.context("serving")
    }

    /// Serves until the future resolves (tests).
    pub async fn run_with_shutdown(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let bg = spawn_background(self.state.clone());
        // The endpoint-name rewrite wraps the router: it must run before routing.
        let svc = tower::Layer::layer(
            &axum::middleware::from_fn(canonical_endpoints),
            router(self.state),
        );
        let app = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
            SocketAddr,
        >(svc);
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(stop)
            .await;
        bg.abort();
        served.context("serving")
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

/// Heartbeat every 15 s (the status page calls a replica gone after 60 s), drift every
/// `drift_interval_secs`, and pruning of the sync log once an hour.
fn spawn_background(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let db = state.prov.db.clone();
        let cfg = state.prov.cfg.clone();
        let host = crate::db::phabricator::user::hostname();
        let key = format!(
            "{}:{}:{}",
            host,
            std::process::id(),
            crate::db::phabricator::random_chars(8)
        );
        let key: String = key.chars().take(64).collect();
        let started = now();
        let mut tick = tokio::time::interval(Duration::from_secs(15));
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            if let Ok(mut conn) = db.pool.acquire().await {
                if let Err(e) = sidecar::heartbeat(
                    &mut conn,
                    &db.t,
                    &key,
                    &host,
                    env!("CARGO_PKG_VERSION"),
                    started,
                    &crate::db::status::GuardSettings::of(&cfg),
                )
                .await
                {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
                if n.is_multiple_of(240) {
                    let cutoff =
                        now().saturating_sub(cfg.event_retention_days.saturating_mul(86_400));
                    let _ = sidecar::prune_events(&mut conn, &db.t, cutoff).await;
                    let gone = now().saturating_sub(crate::db::status::INSTANCE_RETENTION_SECS);
                    let _ = sidecar::prune_instances(&mut conn, &db.t, gone).await;
                }
            }
            let drift_every = (cfg.drift_interval_secs / 15).max(1);
            if cfg.drift_interval_secs > 0 && n.is_multiple_of(drift_every) {
                match crate::db::drift::run_once(&db).await {
                    Ok(Some(found)) => tracing::debug!(found, "drift computed"),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "drift check failed"),
                }
            }
            n += 1;
        }
    })
}
