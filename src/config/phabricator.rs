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

use super::cluster::{CLUSTER_KEY, Cluster, Endpoint, Routing, host_for_tcp};
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
    /// With `cluster.databases`: the master of each database.
    pub routing: Option<Routing>,
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
    /// With `cluster.databases`: the master of each database (`Config::routing`).
    pub routing: Option<Routing>,
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
    let endpoint = Endpoint {
        host,
        port,
        user: user.to_owned(),
        pass: pass.to_owned(),
    };
    let (database_url, cluster, routing) = if need_url {
        cluster_routing(&file, &json, &endpoint)?
    } else {
        (endpoint.url(), None, None)
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
        database_url,
        namespace,
        file,
        file_exists,
        environment: selected_environment(root),
        cluster,
        routing,
    })
}

/// `cluster.databases`, read as Phorge's `PhabricatorDatabaseRefParser::newRefs` reads it
/// (`cluster` module), each server's missing keys falling back to the `mysql.*` server
/// `endpoint`. Returns the URL of the master holding `<ns>_scim` (with one master, or
/// partitions that leave every database the service uses on one master, the only server it
/// connects to), what `check` says about the cluster, and the routing; without a cluster,
/// `endpoint` alone.
fn cluster_routing(
    file: &Path,
    json: &Map<String, Value>,
    endpoint: &Endpoint,
) -> Result<(Secret, Option<String>, Option<Routing>), ConfigError> {
    let Some(cluster) =
        Cluster::parse(json.get(CLUSTER_KEY), endpoint).map_err(|e| err(file, e))?
    else {
        return Ok((endpoint.url(), None, None));
    };
    let routing = cluster.routing().map_err(|e| err(file, e))?;
    let replicas = if routing.replicas.is_empty() {
        "no replicas".to_owned()
    } else {
        format!("replicas {} are never written", routing.replicas.join(", "))
    };
    let note = match routing.one_master() {
        Some(master) => format!(
            "{CLUSTER_KEY}: writes go to the master {}; {replicas}",
            master.key
        ),
        None => format!(
            "{CLUSTER_KEY}: the databases phab-scim uses are partitioned between the masters \
             {}; {replicas}",
            routing
                .masters
                .iter()
                .map(|m| m.key.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Ok((
        routing.master_of("scim").url.clone(),
        Some(note),
        Some(routing),
    ))
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
