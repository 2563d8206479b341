//! Gauges of what the database says about the deployment (replicas, drift, tokens, the
//! deprovision guard), appended to `/metrics`.
//!
//! They are kept here rather than in the Prometheus recorder: the recorder cannot drop a
//! series, and a token that is revoked or expires must leave `/metrics` (its `token_id` label
//! is bounded by the active tokens only). Each refresh replaces the whole set; a refresh that
//! fails clears it, so Prometheus sees the series go stale instead of old values.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::db::status::{self, Gauges, GuardSettings};
use crate::db::{Db, DbResult};

/// The last gauges read, and when this replica last wrote its heartbeat.
#[derive(Debug, Default)]
pub struct StatusGauges {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    heartbeat: Option<u32>,
    gauges: Option<Gauges>,
}

impl StatusGauges {
    /// Records that this replica wrote its heartbeat at `ts`.
    pub fn heartbeat_written(&self, ts: u32) {
        self.lock().heartbeat = Some(ts);
    }

    /// Reads the gauges from the database; on an error they are cleared (and the error
    /// returned), so `/metrics` never shows values the database no longer confirms.
    pub async fn refresh(&self, db: &Db, guard: GuardSettings) -> DbResult<()> {
        let read = status::gauges(db, guard).await;
        let mut inner = self.lock();
        match read {
            Ok(g) => {
                inner.gauges = Some(g);
                Ok(())
            }
            Err(e) => {
                inner.gauges = None;
                Err(e)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The data is replaced whole, never left half-written: a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The gauges in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        if let Some(ts) = inner.heartbeat {
            gauge(
                &mut out,
                "phab_scim_heartbeat_timestamp_seconds",
                "When this replica last wrote its heartbeat row (Unix time).",
                &[("", i64::from(ts))],
            );
        }
        let Some(g) = &inner.gauges else {
            return out;
        };
        gauge(
            &mut out,
            "phab_scim_replicas_live",
            "Replicas of the namespace with a heartbeat in the last minute, as the database shows them.",
            &[("", g.replicas_live)],
        );
        gauge(
            &mut out,
            "phab_scim_replicas_not_seen",
            "Replicas whose heartbeat stopped over a minute ago without a clean shutdown (pruned after a day).",
            &[("", g.replicas_not_seen)],
        );
        let drift: Vec<(String, i64)> = g
            .drift
            .iter()
            .map(|(kind, n)| (format!("kind=\"{kind}\""), *n))
            .collect();
        gauge(
            &mut out,
            "phab_scim_drift_findings",
            "Findings of the last drift run, by kind.",
            &drift
                .iter()
                .map(|(l, n)| (l.as_str(), *n))
                .collect::<Vec<_>>(),
        );
        gauge(
            &mut out,
            "phab_scim_tokens_active",
            "SCIM tokens neither revoked nor expired.",
            &[("", g.tokens_active)],
        );
        let expiry: Vec<(String, i64)> = g
            .token_expiry
            .iter()
            .map(|(id, exp)| (format!("token_id=\"{id}\""), i64::from(*exp)))
            .collect();
        gauge(
            &mut out,
            "phab_scim_token_expiry_timestamp_seconds",
            "When each active token that expires does so (Unix time); tokens without an expiry have no series.",
            &expiry
                .iter()
                .map(|(l, n)| (l.as_str(), *n))
                .collect::<Vec<_>>(),
        );
        let guard = &g.guard;
        let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        gauge(
            &mut out,
            "phab_scim_deprovision_guard_refusing",
            "1 when the deprovision guard refuses the next deprovision of an established user, else 0.",
            &[("", i64::from(guard.refusing()))],
        );
        gauge(
            &mut out,
            "phab_scim_deprovision_guard_deprovisions",
            "Deprovisions of established users in the guard's window.",
            &[("", to_i64(guard.deprovisions))],
        );
        gauge(
            &mut out,
            "phab_scim_deprovision_guard_limit",
            "Deprovisions the guard allows in its window (the next one is refused).",
            &[("", to_i64(guard.limit))],
        );
        gauge(
            &mut out,
            "phab_scim_deprovision_guard_refusals",
            "Deprovisions the guard refused in its window.",
            &[("", guard.refusals)],
        );
        out
    }
}

/// Writes one gauge family: `samples` are (label set without braces, value).
fn gauge(out: &mut String, name: &str, help: &str, samples: &[(&str, i64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// Middleware: appends the gauges to a successful `GET /metrics` (the recorder's text, served
/// by `http::health::metrics`, which also checks the scrape's token).
pub async fn append_to_metrics(
    State(gauges): State<Arc<StatusGauges>>,
    req: Request,
    next: Next,
) -> Response {
    let scrape = req.method() == Method::GET && req.uri().path() == "/metrics";
    let resp = next.run(req).await;
    if !scrape || resp.status() != StatusCode::OK {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(text) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut text = text.to_vec();
    if !text.is_empty() && !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    text.extend_from_slice(gauges.render().as_bytes());
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_labels() {
        let mut out = String::new();
        gauge(
            &mut out,
            "x",
            "An x.",
            &[("kind=\"a\"", 2), ("kind=\"b\"", 0)],
        );
        gauge(&mut out, "y", "A y.", &[("", 7)]);
        assert_eq!(
            out,
            "# HELP x An x.\n# TYPE x gauge\nx{kind=\"a\"} 2\nx{kind=\"b\"} 0\n\
             # HELP y A y.\n# TYPE y gauge\ny 7\n"
        );
    }

    #[test]
    fn nothing_before_the_first_refresh() {
        assert_eq!(StatusGauges::default().render(), "");
    }
}
