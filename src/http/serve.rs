//! Accepting and serving connections (HTTP/1.1, hyper): at most `max_connections` at once, a
//! request's head within `header_read_timeout_secs` of its first byte, and no connection left
//! waiting for a request longer than `idle_timeout_secs`. A client needs no token to open a
//! connection, so without these a few hundred slow or silent connections hold the service's
//! descriptors for as long as they like.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};

/// The limits of [`serve`], from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// From a request's first byte to the end of its head.
    pub header_read_timeout: Duration,
    /// Waiting for the next (or first) request, with nothing read or written.
    pub idle_timeout: Duration,
    /// Connections served at once; further ones are closed when accepted.
    pub max_connections: usize,
}

impl ConnLimits {
    /// The limits `cfg` sets.
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(cfg.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(cfg.idle_timeout_secs),
            max_connections: cfg.max_connections,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, lets requests
/// in flight finish (idle connections close at once) and returns when every connection has
/// ended.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let max = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let slots = Arc::new(Semaphore::new(max as usize));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Over the cap: closed before anything is read, so it costs one accept.
            metrics::counter!("phab_scim_connections_refused_total").increment(1);
            tracing::debug!(%peer, "connection refused: max_connections reached");
            drop(stream);
            continue;
        };
        let app = app.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, app, limits, stop).await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every slot back: every connection has ended.
    let _ = slots.acquire_many(max).await;
    Ok(())
}

/// Errors of `accept` that concern one connection are skipped; others (out of descriptors)
/// are logged and waited out for a moment, as a busy loop would not help.
async fn accept_failed(e: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Largest request head (start line and headers; 431 beyond), and the read buffer of a
/// connection. hyper's default buffer (about 400 KiB) lets each of `max_connections` hold that
/// much before any token is checked; SCIM requests carry a few short headers.
const MAX_HEAD: usize = 32 * 1024;
const MAX_BUF: usize = 64 * 1024;

/// No value yet (for [`ConnState::head_started`]).
const NONE: u64 = u64::MAX;

/// What one connection is doing, shared by its IO, its service and its watchdog. Times are
/// milliseconds since `opened`.
struct ConnState {
    opened: Instant,
    /// Requests whose response is not ready yet: no timeout applies meanwhile (the router's
    /// own timeout bounds a request).
    busy: AtomicUsize,
    /// The last byte read or written.
    last_io: AtomicU64,
    /// The first byte read while no request was being served: a head is arriving.
    head_started: AtomicU64,
    /// Wakes the watchdog when its deadline changes kind: a head started, or the last
    /// request's response is ready.
    wake: Notify,
}

impl ConnState {
    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn read(&self, n: usize) {
        if n == 0 {
            return;
        }
        let now = self.now();
        self.last_io.store(now, Ordering::Relaxed);
        if self.busy.load(Ordering::Acquire) == 0
            && self
                .head_started
                .compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.wake.notify_one();
        }
    }

    fn wrote(&self, n: usize) {
        if n > 0 {
            self.last_io.store(self.now(), Ordering::Relaxed);
        }
    }

    /// A head is complete (hyper calls the service): the request is being served.
    fn request_started(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(NONE, Ordering::Release);
        Busy(self.clone())
    }

    /// What the watchdog should do now: wait until the returned deadline (ms), or close.
    fn check(&self, limits: &ConnLimits) -> Watch {
        let now = self.now();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(NONE - 1);
        if self.busy.load(Ordering::Acquire) > 0 {
            return Watch::Until(now.saturating_add(ms(limits.idle_timeout)));
        }
        let head = self.head_started.load(Ordering::Acquire);
        if head != NONE {
            let due = head.saturating_add(ms(limits.header_read_timeout));
            return if now >= due {
                Watch::HeadTooSlow
            } else {
                Watch::Until(due)
            };
        }
        let due = self
            .last_io
            .load(Ordering::Relaxed)
            .saturating_add(ms(limits.idle_timeout));
        if now >= due {
            Watch::Idle
        } else {
            Watch::Until(due)
        }
    }
}

/// The watchdog's verdict.
enum Watch {
    Until(u64),
    HeadTooSlow,
    Idle,
}

/// A request being served; the connection is idle again when the last one's response is ready.
struct Busy(Arc<ConnState>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.last_io.store(self.0.now(), Ordering::Relaxed);
        if self.0.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.wake.notify_one();
        }
    }
}

/// The socket, reporting every byte to the connection's state.
struct WatchedIo {
    inner: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.state.read(buf.filled().len() - before);
        }
        polled
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.state.wrote(n);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            self.state.wrote(n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves one connection until it ends, a timeout closes it, or shutdown lets it finish.
async fn serve_connection<S>(
    stream: TcpStream,
    peer: SocketAddr,
    app: S,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let state = Arc::new(ConnState {
        opened: Instant::now(),
        busy: AtomicUsize::new(0),
        last_io: AtomicU64::new(0),
        head_started: AtomicU64::new(NONE),
        wake: Notify::new(),
    });
    let io = TokioIo::new(WatchedIo {
        inner: stream,
        state: state.clone(),
    });
    let requests = state.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        let busy = requests.request_started();
        req.extensions_mut().insert(ConnectInfo(peer));
        let call = tower::ServiceExt::oneshot(app.clone(), req.map(axum::body::Body::new));
        async move {
            let resp = call.await;
            drop(busy);
            resp
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The watchdog below applies the header timeout (from the head's first byte, not from the
    // end of the previous response as hyper's own would).
    builder.header_read_timeout(None);
    builder.max_header_size(MAX_HEAD).max_buf_size(MAX_BUF);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    // Set once the connection was told to close: idle, or the service is stopping.
    let mut grace: Option<Instant> = None;
    let mut stopping = false;
    loop {
        let deadline = match state.check(&limits) {
            Watch::Until(ms) => state.opened + Duration::from_millis(ms),
            Watch::HeadTooSlow => {
                tracing::debug!(%peer, "closing a connection: request head too slow");
                return;
            }
            Watch::Idle => match grace {
                Some(g) if Instant::now() >= g => return,
                Some(g) => g,
                None => {
                    // Nothing in flight: hyper closes at once; else after the response.
                    conn.as_mut().graceful_shutdown();
                    let g = Instant::now() + limits.header_read_timeout;
                    grace = Some(g);
                    g
                }
            },
        };
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(deadline.into()) => {}
            () = state.wake.notified() => {}
            changed = stop.changed(), if !stopping => {
                if changed.is_err() || *stop.borrow() {
                    conn.as_mut().graceful_shutdown();
                    stopping = true;
                }
            }
        }
    }
}
