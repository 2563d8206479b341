//! The database settings of a Phabricator checkout (`phabricator_root`): its MySQL server and
//! storage namespace, read from `<root>/conf/local/local.json`
//! (docs/phabricator-tables.md#reading-the-mysql-settings-of-a-checkout).
//!
//! Only local.json is read. The settings used here are locked (`mysql.*`,
//! `storage.default-namespace`) or hidden (`mysql.pass`, `cluster.databases`), so they never
//! come from Phabricator's database; they could come from `conf/<env>.conf.php` when an
//! environment is selected, which is PHP and is not evaluated here (a warning says so).

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{ConfigError, Namespace, Secret};

/// Phabricator's defaults for the keys this service reads.
const DEFAULT_HOST: &str = "localhost";
const DEFAULT_USER: &str = "root";
const DEFAULT_NAMESPACE: &str = "phabricator";
/// The service always connects over TCP, where MySQL's port is 3306.
const DEFAULT_PORT: u16 = 3306;

/// What a Phabricator checkout says about its database.
#[derive(Clone, Debug)]
pub struct PhabricatorDatabase {
    /// `mysql://user:pass@host:port`, user and password percent-encoded.
    pub database_url: Secret,
    /// `storage.default-namespace`.
    pub namespace: Namespace,
    /// The file the settings came from (`<root>/conf/local/local.json`).
    pub file: PathBuf,
    /// Whether that file exists (when it does not, every setting is Phabricator's default).
    pub file_exists: bool,
    /// The selected environment (`PHABRICATOR_ENV` or `conf/local/ENVIRONMENT`), whose PHP
    /// file is not read.
    pub environment: Option<String>,
    /// With `cluster.databases`: which master is written and which replicas are not.
    pub cluster: Option<String>,
}

/// Where a database setting came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SettingSource {
    /// The built-in default of this service.
    #[default]
    Default,
    /// The TOML file or a `PHAB_SCIM_*` variable.
    Explicit,
    /// This file of the Phabricator checkout.
    PhabricatorFile(PathBuf),
}

impl fmt::Display for SettingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("phab-scim's default"),
            Self::Explicit => f.write_str("explicit setting"),
            Self::PhabricatorFile(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Where `database_url` and `namespace` came from, for `phab-scim check`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatabaseSources {
    /// Source of `database_url`.
    pub database_url: SettingSource,
    /// Source of `namespace`.
    pub namespace: SettingSource,
    /// A note about the Phabricator configuration (selected environment not read...).
    pub warning: Option<String>,
    /// With `cluster.databases`: the master written to and the replicas never written.
    pub cluster: Option<String>,
}

fn err(file: &Path, msg: impl Into<String>) -> ConfigError {
    ConfigError::Phabricator {
        file: file.display().to_string(),
        msg: msg.into(),
    }
}

/// The environment Phabricator would select: `PHABRICATOR_ENV`, else the first line of
/// `conf/local/ENVIRONMENT`.
fn selected_environment(root: &Path) -> Option<String> {
    if let Some(env) = std::env::var_os("PHABRICATOR_ENV").filter(|v| !v.is_empty()) {
        return Some(env.to_string_lossy().into_owned());
    }
    let text = std::fs::read_to_string(root.join("conf/local/ENVIRONMENT")).ok()?;
    let name = text.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// A string key, `None` when absent or null.
fn string_key<'a>(
    file: &Path,
    json: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, ConfigError> {
    match json.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        // The value is not quoted: it may be the password.
        Some(_) => Err(err(file, format!("key {key:?} must be a string"))),
    }
}

/// `mysql.port`: Phabricator stores a string; a number is accepted too.
fn port_key(file: &Path, json: &Map<String, Value>) -> Result<Option<u16>, ConfigError> {
    const KEY: &str = "mysql.port";
    let bad = || err(file, format!("key {KEY:?} must be a port number (1-65535)"));
    let port = match json.get(KEY) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().parse::<u16>().map_err(|_| bad())?,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(bad)?,
        Some(_) => return Err(bad()),
    };
    if port == 0 {
        return Err(bad());
    }
    Ok(Some(port))
}

/// Reads `<root>/conf/local/local.json` and builds the database URL and namespace from it.
/// `need_url`: the URL will be used (else `cluster.databases` is not read).
pub fn read(root: &Path, need_url: bool) -> Result<PhabricatorDatabase, ConfigError> {
    let conf = root.join("conf");
    if !conf.is_dir() {
        return Err(err(
            root,
            "phabricator_root is not a Phabricator checkout (it has no conf/ directory)",
        ));
    }
    let file = conf.join("local").join("local.json");
    let (json, file_exists) = match std::fs::read_to_string(&file) {
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            // The parser's message has a line and column, never the text itself.
            Ok(Value::Object(map)) => (map, true),
            Ok(_) => return Err(err(&file, "is not a JSON object")),
            Err(e) => return Err(err(&file, format!("is not valid JSON: {e}"))),
        },
        // Phabricator reads a missing local.json as empty: every setting is its default.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Map::new(), false),
        Err(e) => return Err(err(&file, format!("cannot be read: {e}"))),
    };

    let mut host = string_key(&file, &json, "mysql.host")?
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .unwrap_or(DEFAULT_HOST)
        .to_owned();
    let mut port = port_key(&file, &json)?;
    // The deprecated `host:port` form (one colon: an IPv6 address has several).
    if let Some((h, p)) = host.split_once(':')
        && !p.contains(':')
    {
        let p = p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| err(&file, "key \"mysql.host\" has an invalid :port"))?;
        if port.is_none() {
            port = Some(p);
        }
        host = h.to_owned();
    }
    let host = host_for_tcp(&host);
    let port = port.unwrap_or(DEFAULT_PORT);
    let user = string_key(&file, &json, "mysql.user")?
        .filter(|u| !u.is_empty())
        .unwrap_or(DEFAULT_USER);
    let pass = string_key(&file, &json, "mysql.pass")?.unwrap_or("");
    let mut endpoint = Endpoint {
        host,
        port,
        user: user.to_owned(),
        pass: pass.to_owned(),
    };
    let cluster = if need_url {
        cluster_master(&file, &json, &mut endpoint)?
    } else {
        None
    };
    let namespace = match string_key(&file, &json, "storage.default-namespace")? {
        None => Namespace::from_checked(DEFAULT_NAMESPACE),
        Some(ns) => Namespace::parse(ns).map_err(|e| {
            let detail = match e {
                ConfigError::Invalid(m) => m,
                other => other.to_string(),
            };
            err(
                &file,
                format!("key \"storage.default-namespace\": {detail}"),
            )
        })?,
    };

    Ok(PhabricatorDatabase {
        database_url: endpoint.url(),
        namespace,
        file,
        file_exists,
        environment: selected_environment(root),
        cluster,
    })
}

/// One MySQL server as Phabricator's settings describe it.
struct Endpoint {
    /// Host name or address, IPv6 in brackets, `localhost` already made `127.0.0.1`.
    host: String,
    port: u16,
    user: String,
    pass: String,
}

impl Endpoint {
    /// `mysql://user[:pass]@host:port`, user and password percent-encoded.
    fn url(&self) -> Secret {
        let mut url = format!("mysql://{}", urlencoding::encode(&self.user));
        if !self.pass.is_empty() {
            url.push(':');
            url.push_str(&urlencoding::encode(&self.pass));
        }
        url.push_str(&format!("@{}:{}", self.host, self.port));
        Secret::new(url)
    }
}

/// `cluster.databases`, read as Phorge's `PhabricatorDatabaseRefParser::newRefs` reads it:
/// with one master, that master is where every application database lives (replicas are only
/// read from, and never by this service), so `endpoint` becomes the master, each of its keys
/// falling back to the `mysql.*` value as in Phorge. Several masters partition the
/// applications between them, which this service does not follow yet: refused, saying what to
/// set. Returns what `check` should say about the cluster, `None` without one.
fn cluster_master(
    file: &Path,
    json: &Map<String, Value>,
    endpoint: &mut Endpoint,
) -> Result<Option<String>, ConfigError> {
    let servers = match json.get(CLUSTER_KEY) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) if a.is_empty() => return Ok(None),
        Some(Value::Object(o)) if o.is_empty() => return Ok(None),
        Some(Value::Array(a)) => a.iter().collect::<Vec<_>>(),
        // PHP reads a JSON object as a list keyed by its names.
        Some(Value::Object(o)) => o.values().collect(),
        Some(_) => {
            return Err(err(
                file,
                format!("key {CLUSTER_KEY:?} must be a list of servers"),
            ));
        }
    };
    let mut masters = Vec::new();
    let mut replicas = Vec::new();
    for (index, server) in servers.iter().enumerate() {
        let server = cluster_server(file, index, server, endpoint.port)?;
        if server.master {
            masters.push(server);
        } else {
            replicas.push(server.shown);
        }
    }
    let master = one_master(file, masters)?;
    if master.disabled {
        return Err(err(
            file,
            format!(
                "key {CLUSTER_KEY:?}: the master {} is disabled (Phabricator itself does not \
                 write to it)",
                master.shown
            ),
        ));
    }
    master.apply_to(endpoint);
    let replicas = if replicas.is_empty() {
        "no replicas".to_owned()
    } else {
        format!("replicas {} are never written", replicas.join(", "))
    };
    Ok(Some(format!(
        "cluster.databases: writes go to the master {}; {replicas}",
        master.shown
    )))
}

/// The key of Phorge's configuration that lists the database servers.
const CLUSTER_KEY: &str = "cluster.databases";

/// One server of `cluster.databases`, checked.
struct ClusterServer<'a> {
    server: &'a Map<String, Value>,
    host: &'a str,
    port: Option<u16>,
    master: bool,
    disabled: bool,
    /// `host:port`, as `check` and errors name it.
    shown: String,
}

impl ClusterServer<'_> {
    /// Points `endpoint` at this server; each key it lacks keeps the `mysql.*` value, as in
    /// Phorge's `PhabricatorDatabaseRefParser`.
    fn apply_to(&self, endpoint: &mut Endpoint) {
        endpoint.host = host_for_tcp(self.host);
        if let Some(port) = self.port {
            endpoint.port = port;
        }
        if let Some(user) = self
            .server
            .get("user")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
        {
            endpoint.user = user.to_owned();
        }
        // Phorge takes the server's password when it is truthy in PHP ("" and "0" are not).
        if let Some(pass) = self
            .server
            .get("pass")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty() && *p != "0")
        {
            endpoint.pass = pass.to_owned();
        }
    }
}

/// Reads and checks server `index` of `cluster.databases`.
fn cluster_server<'a>(
    file: &Path,
    index: usize,
    server: &'a Value,
    default_port: u16,
) -> Result<ClusterServer<'a>, ConfigError> {
    let bad = |what: &str| err(file, format!("key {CLUSTER_KEY:?}, server {index}: {what}"));
    let Value::Object(server) = server else {
        return Err(bad("must be an object"));
    };
    let field = |name: &str| -> Result<Option<&'a str>, ConfigError> {
        match server.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            // Not quoted: it may be the password.
            Some(_) => Err(bad(&format!("\"{name}\" must be a string"))),
        }
    };
    let host = field("host")?
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("\"host\" is required"))?;
    let bad_port = || bad("\"port\" must be a port number (1-65535)");
    let port = match server.get("port") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|&p| p != 0)
                .ok_or_else(bad_port)?,
        ),
        Some(Value::String(s)) => Some(
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(bad_port)?,
        ),
        Some(_) => return Err(bad_port()),
    };
    // Checked on every server, though only the master's are used: a typo is a typo.
    field("user")?;
    field("pass")?;
    let disabled = matches!(server.get("disabled"), Some(Value::Bool(true)));
    let shown = format!("{host}:{}", port.unwrap_or(default_port));
    let master = match field("role")? {
        Some("master") => true,
        Some("replica") => false,
        _ => return Err(bad("\"role\" must be \"master\" or \"replica\"")),
    };
    Ok(ClusterServer {
        server,
        host,
        port,
        master,
        disabled,
        shown,
    })
}

/// The one master of `cluster.databases`; none, or several (a partitioned install), is
/// refused, saying what to set.
fn one_master<'a>(
    file: &Path,
    mut masters: Vec<ClusterServer<'a>>,
) -> Result<ClusterServer<'a>, ConfigError> {
    match masters.len() {
        1 => Ok(masters.remove(0)),
        0 => Err(err(
            file,
            format!("key {CLUSTER_KEY:?} lists no server with the role \"master\""),
        )),
        n => {
            let names: Vec<&str> = masters.iter().map(|m| m.shown.as_str()).collect();
            Err(err(
                file,
                format!(
                    "key {CLUSTER_KEY:?} lists {n} masters ({}): Phabricator partitions its \
                     databases between them, and phab-scim does not follow partitions yet. \
                     It needs the user, project, worker, auth, conduit and scim databases of \
                     the namespace on one server: if one master holds them all, set \
                     database_url (PHAB_SCIM_DATABASE_URL) to it explicitly",
                    names.join(", ")
                ),
            ))
        }
    }
}

/// A host as this service connects to it. Without a port, PHP reaches `localhost` through the
/// Unix socket; this service connects over TCP, to 127.0.0.1 (which is where PHP goes too once
/// a port is set). IPv6 addresses are bracketed for the URL.
fn host_for_tcp(host: &str) -> String {
    if host.eq_ignore_ascii_case("localhost") {
        "127.0.0.1".into()
    } else if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// A database URL without its password, for messages: `mysql://user:<redacted>@host:port`.
pub fn redacted_url(url: &Secret) -> String {
    let url = url.expose();
    let Some(rest) = url.strip_prefix("mysql://") else {
        return "<not a mysql:// URL>".into();
    };
    // Everything up to the last `@` is user information: the password ends there even when
    // it holds an unencoded `@` or `/`.
    match rest.rfind('@') {
        None => url.to_owned(),
        Some(at) => {
            let (userinfo, hostpart) = (&rest[..at], &rest[at..]);
            match userinfo.split_once(':') {
                Some((user, _)) => format!("mysql://{user}:<redacted>{hostpart}"),
                None => url.to_owned(),
            }
        }
    }
}
