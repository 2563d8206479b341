//! Logging and metrics.

use std::io::IsTerminal;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use tracing_subscriber::EnvFilter;

/// Installs the tracing subscriber: JSON lines when `json`, else human-readable.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_env("PHAB_SCIM_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // Colour codes only where a person reads them: in a file or journald they are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Installs the Prometheus recorder (no listener: `/metrics` serves it).
pub fn init_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        ])
        .ok()?
        .install_recorder()
        .ok()
}

/// The `method` label: the methods HTTP defines (RFC 9110 §9.3) and PATCH (RFC 5789), else
/// `other`. Label values must come from closed sets: every distinct value is a series kept for
/// the life of the process, and a client without a token chooses the method.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Counts requests and their latency by method, route template and status: route templates
/// are the router's (a closed set; requests no route matched are `other`), statuses the
/// service's own.
pub async fn track_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "other".to_owned());
    let method = method_label(req.method());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let labels = [
        ("method", method.to_owned()),
        ("path", path),
        ("status", status),
    ];
    metrics::counter!("phab_scim_requests_total", &labels).increment(1);
    metrics::histogram!("phab_scim_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_are_other() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for m in ["FOO", "get", "X00001Z", "PROPFIND"] {
            let m = Method::from_bytes(m.as_bytes()).unwrap();
            assert_eq!(method_label(&m), "other", "{m}");
        }
    }
}
