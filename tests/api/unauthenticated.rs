//! What a client without a valid token can cost (issue 11, findings 3, 4, 5 and 7): metric
//! series, sync-log rows, the identity provider's access from a shared address, connections.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use phab_scim::token::TokenVerifier;

use crate::helpers::TestApp;

/// The methods a SCIM client sends; everything else is an invented method.
const KNOWN_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The process-wide Prometheus recorder; only this function installs it (`metrics` uses it too).
pub(crate) fn metrics_handle() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        OnceLock::new();
    HANDLE
        .get_or_init(phab_scim::telemetry::init_metrics)
        .clone()
}

/// The value of `name` in a Prometheus label set such as `{method="GET",path="/x"}`.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let len = labels[start..].find('"')?;
    Some(&labels[start..start + len])
}

/// Label sets of `phab_scim_requests_total`, and the method and path values among them.
/// Other tests of this binary add series of their own while this one runs, but only with the
/// methods a client sends and the routes' paths.
fn request_series(text: &str) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let mut series = BTreeSet::new();
    let mut methods = BTreeSet::new();
    let mut paths = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("phab_scim_requests_total{") else {
            continue;
        };
        let Some(end) = rest.find('}') else { continue };
        let labels = &rest[..end];
        series.insert(labels.to_owned());
        methods.extend(label(labels, "method").map(str::to_owned));
        paths.extend(label(labels, "path").map(str::to_owned));
    }
    (series, methods, paths)
}

/// Sends `reqs` (method, URL) without a token, eight at a time; returns the statuses.
async fn send_all(client: &reqwest::Client, reqs: Vec<(Method, String)>) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(reqs.len());
    for chunk in reqs.chunks(8) {
        let sent = chunk
            .iter()
            .map(|(m, url)| client.request(m.clone(), url).send());
        for r in join_all(sent).await {
            statuses.push(r.map(|r| r.status().as_u16()).unwrap_or(0));
        }
    }
    statuses
}

/// Invented methods and paths, with and without the token's routes, in the shapes the
/// adversarial run used.
fn invented(app: &TestApp, from: usize, to: usize) -> Vec<(Method, String)> {
    let root = app.base.trim_end_matches("/scim/v2");
    let mut reqs = Vec::new();
    for i in from..to {
        let m = Method::from_bytes(format!("X{i:05}Z").as_bytes()).unwrap();
        let url = match i % 4 {
            0 => format!("{}/Users", app.base),
            1 => format!("{}/Invented{i}/more", app.base),
            2 => format!("{root}/healthz"),
            _ => format!("{root}/invented{i}"),
        };
        reqs.push((m, url));
        reqs.push((Method::GET, format!("{root}/nothing/here/{i}")));
    }
    reqs
}

/// Finding 3: label values come from closed sets, so invented methods and paths cannot grow
/// the metrics (and the memory holding them) without bound.
#[tokio::test]
async fn invented_methods_and_paths_add_no_metric_series() {
    let Some(handle) = metrics_handle() else {
        panic!("the Prometheus recorder could not be installed");
    };
    let app = TestApp::spawn_with_metrics(
        |c| c.auth_failures_per_minute = 1_000_000,
        Some(handle.clone()),
    )
    .await;
    let statuses = send_all(&app.client, invented(&app, 0, 40)).await;
    assert!(statuses.iter().all(|s| *s >= 400), "{statuses:?}");
    let (before, _, _) = request_series(&handle.render());
    let statuses = send_all(&app.client, invented(&app, 40, 2040)).await;
    assert!(statuses.iter().all(|s| *s >= 400));
    let (after, methods, paths) = request_series(&handle.render());
    let invented_methods: Vec<&String> = methods
        .iter()
        .filter(|m| !KNOWN_METHODS.contains(&m.as_str()) && *m != "other")
        .collect();
    assert!(
        invented_methods.len() <= 1,
        "method labels: {} invented values, e.g. {:?}",
        invented_methods.len(),
        invented_methods.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        paths
            .iter()
            .all(|p| !p.contains("nvented") && !p.contains("here/")),
        "path labels: {:?}",
        paths.iter().take(10).collect::<Vec<_>>()
    );
    let grew: Vec<&String> = after
        .difference(&before)
        .filter(|s| label(s, "method").is_none_or(|m| !KNOWN_METHODS.contains(&m)))
        .collect();
    assert!(
        grew.is_empty(),
        "{} new series from 4,000 more invented requests, e.g. {:?}",
        grew.len(),
        grew.iter().take(3).collect::<Vec<_>>()
    );
    app.cleanup().await;
}

/// `scim_event` rows, oldest first.
async fn events(app: &TestApp) -> Vec<Value> {
    app.rows("SELECT requestID, status, summary, details FROM {scim}.scim_event ORDER BY id")
        .await
}

/// Finding 4: token-less requests count against the address's failure limit and reach the
/// sync log as one row per address and reason, each with its count, not one row each.
#[tokio::test]
async fn token_less_requests_are_limited_and_logged_as_counts() {
    let app = TestApp::spawn().await;
    let before = events(&app).await.len();
    let url = format!("{}/Users", app.base);
    let reqs = (0..1000).map(|_| (Method::GET, url.clone())).collect();
    let statuses = send_all(&app.client, reqs).await;
    let refused = |code: u16| statuses.iter().filter(|s| **s == code).count();
    assert_eq!(refused(401) + refused(429), 1000, "{statuses:?}");
    // The default limit is 20 failures a minute; parallel requests may pass the check together.
    assert!(
        (20..40).contains(&refused(401)),
        "{} answered 401, {} 429",
        refused(401),
        refused(429)
    );
    // Before the tally is written: nothing per request (give a write that was spawned time).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(events(&app).await.len(), before);
    let written = phab_scim::app::flush_refused(&app.state).await;
    let rows = events(&app).await;
    let new = &rows[before..];
    assert_eq!(written, new.len());
    assert!(new.len() <= 3, "{new:#?}");
    let mut counted = std::collections::BTreeMap::new();
    for row in new {
        let details: Value = serde_json::from_str(row["details"].as_str().unwrap()).unwrap();
        assert_eq!(details["client"], "127.0.0.1", "{row}");
        let summary = row["summary"].as_str().unwrap();
        assert!(summary.contains("127.0.0.1"), "{summary}");
        let status = row["status"].as_i64().unwrap();
        *counted.entry(status).or_insert(0) += details["count"].as_u64().unwrap();
    }
    assert_eq!(counted.get(&401).copied(), Some(refused(401) as u64));
    assert_eq!(counted.get(&429).copied(), Some(refused(429) as u64));
    // Nothing left to write: a second flush in the same minute writes nothing.
    assert_eq!(phab_scim::app::flush_refused(&app.state).await, 0);
    app.cleanup().await;
}

/// Finding 4: a client-chosen `X-Request-Id` is kept only when short and of a safe charset;
/// otherwise the service makes its own, for the response, the logs and the sync log.
#[tokio::test]
async fn client_request_ids_are_bounded_and_sanitized() {
    let app = TestApp::spawn().await;
    let long = "r".repeat(65);
    let sent = [
        "<script>alert(1)</script>",
        "id'); DROP TABLE x; --",
        "a b",
        long.as_str(),
        "Entra-7f3c_2a.9:1",
    ];
    let mut echoed = Vec::new();
    for id in sent {
        // No userName: 400, which is written to the sync log with the request id.
        let (s, headers, _) = app
            .send_with(
                Method::POST,
                "/Users",
                Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]})),
                &[("x-request-id", id)],
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        echoed.push(headers["x-request-id"].to_str().unwrap().to_owned());
    }
    let stored = async {
        for _ in 0..50 {
            let rows = app
                .rows("SELECT requestID FROM {scim}.scim_event WHERE status = 400 ORDER BY id")
                .await;
            if rows.len() == sent.len() {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the sync log did not get its rows");
    };
    let stored: Vec<String> = stored
        .await
        .iter()
        .map(|r| r["requestID"].as_str().unwrap().to_owned())
        .collect();
    let safe = |id: &str| {
        !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    };
    for (id, echo) in sent.iter().zip(&echoed) {
        assert!(safe(echo), "{id:?} echoed as {echo:?}");
    }
    // The rows are written off the response path, in any order.
    let stored: BTreeSet<String> = stored.into_iter().collect();
    assert_eq!(stored, echoed.iter().cloned().collect::<BTreeSet<_>>());
    for garbage in &sent[..sent.len() - 1] {
        assert!(!stored.contains(*garbage), "{garbage:?} was stored as sent");
    }
    assert_eq!(echoed[sent.len() - 1], "Entra-7f3c_2a.9:1");
    app.cleanup().await;
}

/// `GET /Users?count=1` with `token` (or none); the status.
async fn get_users(app: &TestApp, token: Option<&str>) -> u16 {
    let mut req = app.client.get(format!("{}/Users?count=1", app.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Finding 5: failures of other tokens from the identity provider's address (an attacker
/// behind the same egress or proxy) never block a token that verifies, cached or not.
#[tokio::test]
async fn a_blocked_address_still_gets_through_with_a_valid_token() {
    let app = TestApp::spawn_with(|c| c.auth_failures_per_minute = 3).await;
    assert_eq!(get_users(&app, Some(&app.token)).await, 200);
    let (_, fresh) = app.issue_token().await;
    let bad = format!("phscim-1-{}", "a".repeat(40));
    for _ in 0..3 {
        assert_eq!(get_users(&app, Some(&bad)).await, 401);
    }
    assert_eq!(get_users(&app, Some(&bad)).await, 429);
    assert_eq!(get_users(&app, None).await, 429);
    assert_eq!(get_users(&app, Some("garbage")).await, 429);
    // The token the service already verified: served.
    assert_eq!(get_users(&app, Some(&app.token)).await, 200);
    // A token it has not verified yet (a restart, a new token) is checked, and served.
    let verifications = app.state.auth.verifications();
    assert_eq!(get_users(&app, Some(&fresh)).await, 200);
    assert_eq!(app.state.auth.verifications(), verifications + 1);
    assert_eq!(get_users(&app, Some(&fresh)).await, 200);
    // The address stays blocked for everything else.
    assert_eq!(get_users(&app, Some(&bad)).await, 429);
    assert_eq!(get_users(&app, None).await, 429);
    app.cleanup().await;
}

/// Finding 5: repeating one wrong token does not repeat its argon2 run (19 MiB and about
/// 21 ms of CPU each), for a real id and an unknown one alike, so the repeats' timing does not
/// tell which ids exist either; the right token for the same id still verifies.
#[tokio::test]
async fn a_repeated_wrong_token_is_verified_once() {
    let app = TestApp::spawn().await;
    let v = TokenVerifier::new(app.db.clone(), Duration::from_secs(60), 1_000_000);
    let client = "192.0.2.9".parse().unwrap();
    let (id, token) = app.issue_token().await;
    let secret = "a".repeat(phab_scim::token::SECRET_LEN);
    for wrong in [
        format!("phscim-{id}-{secret}"),
        format!("phscim-99999-{secret}"),
    ] {
        let before = v.verifications();
        for _ in 0..5 {
            assert!(v.verify(&wrong, client).await.is_err());
        }
        assert_eq!(v.verifications(), before + 1, "{wrong}");
    }
    assert_eq!(v.verify(&token, client).await.unwrap().token_id, id);
    app.cleanup().await;
}

/// Finding 4: a missing token is a failure for the address's limit, like a wrong one.
#[tokio::test]
async fn missing_tokens_count_as_failures() {
    let app = TestApp::spawn_with(|c| c.auth_failures_per_minute = 3).await;
    for _ in 0..3 {
        assert_eq!(get_users(&app, None).await, 401);
    }
    assert_eq!(get_users(&app, None).await, 429);
    let bad = format!("phscim-1-{}", "a".repeat(40));
    assert_eq!(get_users(&app, Some(&bad)).await, 429);
    assert_eq!(get_users(&app, Some(&app.token)).await, 200);
    app.cleanup().await;
}

/// The service's `host:port`.
fn authority(app: &TestApp) -> String {
    app.base
        .trim_start_matches("http://")
        .trim_end_matches("/scim/v2")
        .to_owned()
}

/// Waits up to `within` for the server to close `conn`: true when it did (end of stream or a
/// reset), false when the connection is still open.
async fn closed_by_server(conn: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(within, conn.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // A response (408, 400) before the close is fine; keep reading.
            Ok(Ok(_)) => {}
        }
    }
}

/// Finding 7: a connection that sends its headers too slowly is closed after the header-read
/// timeout, counted from the head's first byte (not cut short by the idle timeout's clock).
#[tokio::test]
async fn slow_headers_are_closed() {
    let app = TestApp::spawn_with(|c| {
        c.header_read_timeout_secs = 1;
        c.idle_timeout_secs = 30;
    })
    .await;
    let addr = authority(&app);
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    // The head starts after the connection has waited a moment, as a slowloris client's may.
    tokio::time::sleep(Duration::from_millis(300)).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // One byte every half second keeps the connection busy, but the head never completes.
    let mut dribble = TcpStream::connect(&addr).await.unwrap();
    let dribbling = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..30 {
            if dribble.write_all(b"X").await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        false
    });
    assert!(
        closed_by_server(&mut slow, Duration::from_secs(10)).await,
        "a half-sent head stayed open"
    );
    assert!(
        dribbling.await.unwrap(),
        "a head sent a byte at a time stayed open"
    );
    app.cleanup().await;
}

/// Finding 7: a connection that sends nothing, or nothing more after its responses, is closed
/// after the idle timeout; within it, keep-alive works.
#[tokio::test]
async fn idle_connections_are_closed() {
    let app = TestApp::spawn_with(|c| {
        c.header_read_timeout_secs = 30;
        c.idle_timeout_secs = 2;
    })
    .await;
    let addr = authority(&app);
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    let mut keep = TcpStream::connect(&addr).await.unwrap();
    for _ in 0..2 {
        keep.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = keep.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(closed_by_server(&mut idle, Duration::from_secs(10)).await);
    assert!(closed_by_server(&mut keep, Duration::from_secs(10)).await);
    app.cleanup().await;
}

/// Finding 7: a request head over 32 KiB is refused (431) and its connection closed, so slow
/// or silent connections each hold at most a small buffer.
#[tokio::test]
async fn oversized_heads_are_refused() {
    let app = TestApp::spawn().await;
    let mut conn = TcpStream::connect(authority(&app)).await.unwrap();
    let filler = format!("X-Filler: {}\r\n", "f".repeat(5000));
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
        filler.repeat(20)
    );
    // The server may close before it has read everything.
    let _ = conn.write_all(head.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{}",
        text.lines().next().unwrap_or("")
    );
    app.cleanup().await;
}

/// Finding 7: connections over `max_connections` are closed at once; a client within the cap
/// is served.
#[tokio::test]
async fn connections_over_the_cap_are_closed() {
    let app = TestApp::spawn_with(|c| {
        c.max_connections = 4;
        c.header_read_timeout_secs = 30;
        c.idle_timeout_secs = 30;
    })
    .await;
    let addr = authority(&app);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    // Let the server accept them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut over = TcpStream::connect(&addr).await.unwrap();
    assert!(
        closed_by_server(&mut over, Duration::from_secs(5)).await,
        "a fifth connection was kept"
    );
    drop(held.pop());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let root = app.base.trim_end_matches("/scim/v2");
    let mut served = false;
    for _ in 0..50 {
        // The server notices the dropped connection within moments.
        if let Ok(r) = client.get(format!("{root}/healthz")).send().await {
            served = r.status() == 200;
            if served {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "a client within the cap was not served");
    app.cleanup().await;
}
