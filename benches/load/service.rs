//! The service under test: a namespace with Phabricator's tables, a token, and the release
//! binary started as a separate process on 127.0.0.1, killed when this value drops.

use std::io::BufRead;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use phab_scim::config::{Config, Namespace, Secret};
use phab_scim::db::{Db, migrate};
use phab_scim::provisioning::Provisioner;
use reqwest::Method;
use serde_json::Value;
use sqlx::{Connection, MySqlConnection};

/// Creates namespace `ns` with Phabricator's tables and the `<ns>_scim` patches.
pub async fn install_namespace(url: &Secret, ns: &Namespace) -> Result<Db, String> {
    let opts = phab_scim::db::connect_options(url).map_err(|e| e.to_string())?;
    let mut conn = MySqlConnection::connect_with(&opts)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    migrate::install_phabricator_fixture(&mut conn, ns)
        .await
        .map_err(|e| format!("fixture: {e}"))?;
    conn.close().await.ok();
    let db = Db::connect(url, ns.clone(), 8)
        .await
        .map_err(|e| e.to_string())?;
    migrate::migrate(&db)
        .await
        .map_err(|e| format!("migrate: {e}"))?;
    Ok(db)
}

/// A running service and a client for it.
pub struct Service {
    child: Child,
    pub pid: u32,
    pub api: Api,
    pub log: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

impl Service {
    /// Issues a token in `db`'s namespace and starts `bin serve` on it.
    pub async fn start(
        bin: &Path,
        url: &Secret,
        db: &Db,
        pool_size: u32,
        log: PathBuf,
        pid_file: Option<&Path>,
    ) -> Result<Self, String> {
        let cfg = Config {
            database_url: url.clone(),
            namespace: db.ns.clone(),
            ..Config::default()
        };
        let prov = Provisioner {
            db: db.clone(),
            cfg: Arc::new(cfg),
        };
        let bot = prov
            .ensure_bot("scim-bot")
            .await
            .map_err(|e| format!("bot: {e:?}"))?;
        let (_, token) = phab_scim::token::issue(db, &bot, "bench", None)
            .await
            .map_err(|e| format!("token: {e}"))?;

        let port = free_port()?;
        let logfile = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve");
        // Only the variables we mean: the caller's shell may hold PHAB_SCIM_TEST_DATABASE_URL
        // and friends, which the service's configuration would reject as unknown keys.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PHAB_SCIM_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env("PHAB_SCIM_DATABASE_URL", url.expose())
            .env("PHAB_SCIM_NAMESPACE", db.ns.as_str())
            .env("PHAB_SCIM_LISTEN", format!("127.0.0.1:{port}"))
            .env("PHAB_SCIM_POOL_SIZE", pool_size.to_string())
            .stdin(Stdio::null())
            .stdout(logfile.try_clone().map_err(|e| e.to_string())?)
            .stderr(logfile);
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let pid = child.id();
        if let Some(p) = pid_file {
            let _ = std::fs::write(p, format!("{pid}\n"));
        }
        let root = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| e.to_string())?;
        let api = Api {
            client,
            base: format!("{root}/scim/v2"),
            root,
            auth: format!("Bearer {token}"),
        };
        let mut svc = Self {
            child,
            pid,
            api,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = svc.child.try_wait() {
                return Err(format!(
                    "the service exited ({status}) before answering; last log lines:\n{}",
                    svc.log_tail(20)
                ));
            }
            if let Ok(r) = svc
                .api
                .client
                .get(format!("{}/healthz", svc.api.root))
                .send()
                .await
                && r.status().is_success()
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the service did not answer /healthz within 60 s; log:\n{}",
                    svc.log_tail(20)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(svc)
    }

    /// Last lines of the service's log.
    pub fn log_tail(&mut self, n: usize) -> String {
        let Ok(f) = std::fs::File::open(&self.log) else {
            return String::new();
        };
        let lines: Vec<String> = std::io::BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// `VmRSS` and `VmHWM` of the service, in KiB.
    pub fn rss_kib(&self) -> (u64, u64) {
        let text =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let field = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// A SCIM client with the token.
#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    /// `http://127.0.0.1:<port>/scim/v2`
    pub base: String,
    /// `http://127.0.0.1:<port>`
    pub root: String,
    auth: String,
}

/// A response: status and body text.
pub struct Resp {
    pub status: u16,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_str(&self.body)
            .map_err(|e| format!("bad JSON ({e}): {}", snippet(&self.body)))
    }
    /// Checks the status is one of `ok`.
    pub fn expect(self, ok: &[u16], what: &str) -> Result<Self, String> {
        if ok.contains(&self.status) {
            Ok(self)
        } else {
            Err(format!(
                "{what}: HTTP {} {}",
                self.status,
                snippet(&self.body)
            ))
        }
    }
}

fn snippet(s: &str) -> String {
    s.chars().take(300).collect()
}

impl Api {
    /// A request under `/scim/v2` with the token.
    pub async fn scim(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Resp, String> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("authorization", &self.auth);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let r = req.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = r.status().as_u16();
        let body = r.text().await.map_err(|e| format!("{path}: {e}"))?;
        Ok(Resp { status, body })
    }

    /// `GET /healthz` (no token).
    pub async fn healthz(&self) -> Result<Resp, String> {
        let r = self
            .client
            .get(format!("{}/healthz", self.root))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let body = r.text().await.map_err(|e| e.to_string())?;
        Ok(Resp { status, body })
    }
}

/// `"..."` as a SCIM filter string literal, percent-encoded for a query string.
pub fn filter_eq(attr: &str, value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    urlencoding::encode(&format!("{attr} eq \"{escaped}\"")).into_owned()
}
