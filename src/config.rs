//! Service configuration: defaults < TOML file (`--config`) < `PHAB_SCIM_*` environment.
//! With `phabricator_root`, the database settings default to the checkout's own
//! (`phabricator` module) instead of the built-in defaults.

pub mod cluster;
pub mod phabricator;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use phabricator::{DatabaseSources, SettingSource};

use crate::net::{IpNet, parse_net_list};

/// A secret string (DSN password, token). Its `Debug` and `Display` never show the value.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Phabricator's storage namespace (`storage.default-namespace`): the prefix of every database.
/// It is rendered into SQL as an identifier, so it is checked against `[a-z0-9_]{1,40}`.
/// Shared, not copied: the state every request clones holds one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace(std::sync::Arc<str>);

impl Serialize for Namespace {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl Namespace {
    /// Checks and wraps a namespace name.
    pub fn parse(name: &str) -> Result<Self, ConfigError> {
        let ok = !name.is_empty()
            && name.len() <= 40
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(name.into()))
        } else {
            Err(ConfigError::Invalid(format!(
                "namespace {name:?} must match [a-z0-9_]{{1,40}}"
            )))
        }
    }
    /// Wraps a literal known to be valid (crate-internal constants only).
    pub(crate) fn from_checked(name: &'static str) -> Self {
        Self(name.into())
    }
    /// The bare name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The quoted database name of one Phabricator application, e.g. `` `phabricator_user` ``.
    pub fn db(&self, app: &str) -> String {
        format!("`{}_{}`", self.0, app)
    }
}

impl<'de> Deserialize<'de> for Namespace {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Namespace::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// What to do when a POST names an email that belongs to an account SCIM does not manage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdoptionPolicy {
    /// Adopt an account when the address is its verified primary one (docs/design.md#adoption).
    VerifiedEmail,
    /// Never adopt: answer 409 uniqueness.
    Never,
}

/// How the service's writes reach Phabricator (README.md, First rollout).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutMode {
    /// Every SCIM write changes Phabricator at once.
    #[default]
    Live,
    /// A staged rollout (`phab-scim stage`): the IdP's writes become a plan that
    /// `phab-scim apply` carries out; once applied, the service writes Phabricator at once.
    Staged,
}

/// How a Phabricator username is derived from a SCIM `userName`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UsernamePolicy {
    /// The local part of an email-shaped userName, else the whole userName, made valid.
    LocalPart,
    /// The whole userName, made valid (`@` becomes `.`... see provisioning::username).
    Full,
}

/// What deprovisioning (active=false or DELETE) revokes besides disabling the account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RevokeConfig {
    /// Delete the user's web and Conduit sessions.
    pub sessions: bool,
    /// Expire the user's Conduit API tokens.
    pub api_tokens: bool,
    /// Expire the user's temporary tokens (one-time login and password reset links).
    pub temporary_tokens: bool,
}

impl Default for RevokeConfig {
    fn default() -> Self {
        Self {
            sessions: true,
            api_tokens: true,
            temporary_tokens: true,
        }
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `mysql://user:pass@host:port` (no database: the namespace picks them).
    pub database_url: Secret,
    /// Phabricator's storage namespace.
    pub namespace: Namespace,
    /// A Phorge/Phabricator checkout: `database_url` and `namespace`, unless set explicitly,
    /// come from its `conf/local/local.json`.
    pub phabricator_root: Option<PathBuf>,
    /// Where `database_url` and `namespace` came from (set by [`Config::load`]).
    #[serde(skip)]
    pub database_sources: DatabaseSources,
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Public base URL of the SCIM endpoint as the IdP sees it, e.g.
    /// `https://phab.example.com/scim/v2`. Used for `meta.location`.
    pub public_url: Option<String>,
    /// Request-serving threads. Unset: half the machine's cores, at least one, because the
    /// service always shares its host with Phabricator (and usually its MySQL): on a 2-core
    /// host one thread served a third more requests per CPU second than two, which spent it
    /// handing connections between each other (README.md, Performance).
    pub worker_threads: Option<usize>,
    /// Database connections per replica.
    pub pool_size: u32,
    /// Seconds to wait for a pooled connection, for a row lock on the server
    /// (`innodb_lock_wait_timeout` of the service's sessions) and for `/readyz`'s check.
    pub statement_timeout_secs: u64,
    /// Seconds one database operation may take as a whole: a read, or a write transaction
    /// from BEGIN to COMMIT with its retries. Then the connection is closed (the server rolls
    /// the transaction back) and the request answers 503 with Retry-After.
    pub transaction_timeout_secs: u64,
    /// Seconds a whole request may take (a Bulk request runs many operations); then 503.
    pub request_timeout_secs: u64,
    /// `live`, or `staged` for a first rollout that an administrator reviews and applies.
    pub mode: RolloutMode,
    /// Username derivation policy.
    pub username_policy: UsernamePolicy,
    /// Adoption of existing accounts on POST.
    pub adoption: AdoptionPolicy,
    /// Let `adoption` take over Phabricator administrators too (off: 409). Whoever holds a
    /// token can then rename an adopted administrator and add it to projects, never change its
    /// addresses, bot flag, login links or userName (README.md, Security).
    pub adopt_administrators: bool,
    /// Adoption of existing projects on Group POST (by name).
    pub group_adoption: bool,
    /// Mark IdP-provided addresses verified (the IdP owns them).
    pub trust_idp_emails: bool,
    /// When set, a user without any email gets `<username>@<domain>` (unverified).
    pub placeholder_email_domain: Option<String>,
    /// `userType` values (case-insensitive) that make a bot account.
    pub bot_user_types: Vec<String>,
    /// Login provider to link users to: an `auth_providerconfig` PHID or `type:domain`.
    pub login_provider: Option<String>,
    /// Template of the login identifier: `{userName}`, `{externalId}`, `{email}`, `{userNameLocalPart}`.
    pub login_identifier: String,
    /// What deprovisioning revokes.
    pub revoke: RevokeConfig,
    /// Join policy of projects created for groups.
    pub project_join_policy: String,
    /// Largest page of a list response.
    pub max_results: u32,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Days to keep `scim_event` rows.
    pub event_retention_days: u32,
    /// Refuse deprovisioning more than this share (0..1) of managed users within the window.
    pub deprovision_guard_share: f64,
    /// Minimum number of deprovisions in the window before the share guard applies.
    pub deprovision_guard_min: u32,
    /// The guard's window in seconds.
    pub deprovision_guard_window_secs: u64,
    /// Seconds a verified token stays trusted before its row is read again.
    pub token_recheck_secs: u64,
    /// Failed authentications allowed per client address per minute.
    pub auth_failures_per_minute: u32,
    /// Reverse proxies (addresses or networks) whose `X-Forwarded-For` names the client.
    /// Empty: the TCP peer is the client. A TOML list, or a comma-separated string (the
    /// environment form, `PHAB_SCIM_TRUSTED_PROXIES=10.0.0.1,fd00::/8`).
    #[serde(deserialize_with = "net_list")]
    pub trusted_proxies: Vec<IpNet>,
    /// Seconds between drift checks (0 disables).
    pub drift_interval_secs: u64,
    /// Seconds a client has to send a request's head (request line and headers), counted from
    /// its first byte. Slower connections are closed.
    pub header_read_timeout_secs: u64,
    /// Seconds a connection may wait for its next request (or its first) before it is closed.
    pub idle_timeout_secs: u64,
    /// Connections served at once; further ones are closed as soon as they are accepted.
    pub max_connections: usize,
}

impl Config {
    /// The number of request-serving threads: [`Config::worker_threads`], or half the cores.
    pub fn worker_threads(&self) -> usize {
        self.worker_threads.filter(|&n| n > 0).unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: Secret::new("mysql://root@127.0.0.1:3306"),
            namespace: Namespace::from_checked("phabricator"),
            phabricator_root: None,
            database_sources: DatabaseSources::default(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            public_url: None,
            worker_threads: None,
            pool_size: 16,
            statement_timeout_secs: 5,
            transaction_timeout_secs: 10,
            request_timeout_secs: 60,
            mode: RolloutMode::Live,
            username_policy: UsernamePolicy::LocalPart,
            adoption: AdoptionPolicy::VerifiedEmail,
            adopt_administrators: false,
            group_adoption: true,
            trust_idp_emails: true,
            placeholder_email_domain: None,
            bot_user_types: vec!["Bot".into(), "Agent".into()],
            login_provider: None,
            login_identifier: "{userNameLocalPart}".into(),
            revoke: RevokeConfig::default(),
            project_join_policy: "no-one".into(),
            max_results: 1000,
            max_body_bytes: 2 * 1024 * 1024,
            event_retention_days: 90,
            deprovision_guard_share: 0.25,
            deprovision_guard_min: 20,
            deprovision_guard_window_secs: 3600,
            token_recheck_secs: 2,
            auth_failures_per_minute: 20,
            trusted_proxies: Vec::new(),
            drift_interval_secs: 600,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: 512,
        }
    }
}

/// The top-level setting names, as `PHAB_SCIM_*` variables spell them in lowercase.
fn setting_names() -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Variables `PHAB_SCIM_<X>` whose `<X>` names no setting but is within two edits of one
/// (`PHAB_SCIM_LISTN`), each as a warning naming the closest setting. Variables far from every
/// setting are the scripts' own (`PHAB_SCIM_TEST_DATABASE_URL`) and pass without a word.
pub fn misspelled_variables(vars: impl Iterator<Item = String>, known: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for var in vars {
        let Some(rest) = var.strip_prefix("PHAB_SCIM_") else {
            continue;
        };
        let top = rest.split("__").next().unwrap_or("").to_ascii_lowercase();
        if top.is_empty() || top == "config" || known.contains(&top) {
            continue;
        }
        let closest = known
            .iter()
            .map(|k| (strsim::levenshtein(k, &top), k))
            .min();
        if let Some((distance, name)) = closest
            && distance <= 2
        {
            out.push(format!(
                "{var} is not a setting and is ignored; did you mean PHAB_SCIM_{}?",
                name.to_ascii_uppercase()
            ));
        }
    }
    out.sort();
    out
}

/// `trusted_proxies`: a list of networks, or one comma-separated string. Errors name the
/// setting, since serde's own would only name the type.
fn net_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    struct Nets;
    impl<'de> serde::de::Visitor<'de> for Nets {
        type Value = Vec<IpNet>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of IP addresses or CIDR networks, or a comma-separated string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            parse_net_list(v).map_err(|e| E::custom(format!("trusted_proxies: {e}")))
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut nets = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                let net = item
                    .trim()
                    .parse::<IpNet>()
                    .map_err(|e| serde::de::Error::custom(format!("trusted_proxies: {e}")))?;
                nets.push(net);
            }
            Ok(nets)
        }
    }
    d.deserialize_any(Nets)
}

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is out of its domain.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// The configuration file named by `--config` or `PHAB_SCIM_CONFIG` is not there: running
    /// on defaults instead would serve the wrong database or address without a word.
    #[error("configuration file {0} does not exist or is not a file")]
    MissingFile(PathBuf),
    /// The file or environment could not be read. Not a `#[source]`: the message already
    /// holds figment's, and `{:#}` would print it twice.
    #[error("configuration: {0}")]
    Load(Box<figment::Error>),
    /// The databases the service uses are partitioned between several masters
    /// (`cluster.databases`), and the command works on one server only (`demo`): refused
    /// before a write could land on one master and not the other
    /// (docs/design.md#partitioned-databases; `serve` writes across them by XA).
    #[error(
        "the databases phab-scim uses are on {masters} masters ({routes}): this command works \
         on one server only, and refuses rather than make a write one-sided; `phab-scim check` \
         shows the routing and checks each master"
    )]
    Partitioned {
        /// How many masters.
        masters: usize,
        /// `database -> host:port`, comma-separated.
        routes: String,
    },
    /// Phabricator's configuration (`phabricator_root`) could not be used.
    #[error("Phabricator configuration {file}: {msg}")]
    Phabricator {
        /// The file (or checkout) at fault.
        file: String,
        /// What is wrong, naming the key; never a value of `mysql.pass`.
        msg: String,
    },
}

impl From<Box<figment::Error>> for ConfigError {
    fn from(e: Box<figment::Error>) -> Self {
        ConfigError::Load(e)
    }
}

impl Config {
    /// Loads defaults, then the TOML file if given, then `PHAB_SCIM_*` variables; then, with
    /// `phabricator_root`, the database settings neither of them set.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        // What the operator set, without the defaults: tells explicit settings apart.
        let mut explicit = Figment::new();
        if let Some(path) = file {
            // figment reads a missing file as an empty one.
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path.to_path_buf()));
            }
            explicit = explicit.merge(Toml::file(path));
        }
        // Only variables naming a setting: scripts set others (PHAB_SCIM_TEST_DATABASE_URL...)
        // and `deny_unknown_fields` would refuse them. One close to a setting's name is a typo,
        // said once at start, since it would otherwise be ignored without a word.
        let known = setting_names();
        for warning in misspelled_variables(std::env::vars().map(|(k, _)| k), &known) {
            tracing::warn!("{warning}");
        }
        explicit = explicit.merge(Env::prefixed("PHAB_SCIM_").split("__").filter(move |k| {
            let top = k.as_str().split('.').next().unwrap_or("");
            known.iter().any(|n| n.eq_ignore_ascii_case(top))
        }));
        let fig = Figment::from(Serialized::defaults(Config::default())).merge(explicit.clone());
        let mut cfg: Config = fig.extract().map_err(Box::new)?;
        cfg.apply_phabricator_root(
            explicit.contains("database_url"),
            explicit.contains("namespace"),
        )?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Fills `database_url` and `namespace` from `phabricator_root` where they were not set
    /// explicitly (in the TOML file or the environment), and records where each came from.
    fn apply_phabricator_root(
        &mut self,
        explicit_url: bool,
        explicit_namespace: bool,
    ) -> Result<(), ConfigError> {
        let source = |explicit| {
            if explicit {
                SettingSource::Explicit
            } else {
                SettingSource::Default
            }
        };
        self.database_sources = DatabaseSources {
            database_url: source(explicit_url),
            namespace: source(explicit_namespace),
            warning: None,
            cluster: None,
            routing: None,
        };
        let Some(root) = self.phabricator_root.as_deref() else {
            return Ok(());
        };
        if explicit_url && explicit_namespace {
            // Nothing to read: an unusable checkout must not stop a fully explicit setup.
            return Ok(());
        }
        let phab = phabricator::read(root, !explicit_url)?;
        let from_file = SettingSource::PhabricatorFile(phab.file.clone());
        if !explicit_url {
            self.database_url = phab.database_url;
            self.database_sources.database_url = from_file.clone();
            self.database_sources.cluster = phab.cluster;
            self.database_sources.routing = phab.routing;
        }
        if !explicit_namespace {
            self.namespace = phab.namespace;
            self.database_sources.namespace = from_file;
        }
        let mut warnings = Vec::new();
        if !phab.file_exists {
            warnings.push(format!(
                "{} does not exist: using Phabricator's defaults (root@localhost, namespace \
                 phabricator)",
                phab.file.display()
            ));
        }
        if let Some(env) = phab.environment {
            warnings.push(format!(
                "Phabricator environment {env:?} is selected (PHABRICATOR_ENV or \
                 conf/local/ENVIRONMENT): settings in conf/{env}.conf.php are not read, only \
                 {} and Phabricator's defaults; set database_url and namespace explicitly if \
                 that file holds them",
                phab.file.display()
            ));
        }
        if !warnings.is_empty() {
            let warning = warnings.join("; ");
            tracing::warn!("{warning}");
            self.database_sources.warning = Some(warning);
        }
        Ok(())
    }

    /// Where each database the service uses lives: the routing of `cluster.databases`, or
    /// every database on `database_url`.
    pub fn routing(&self) -> cluster::Routing {
        match &self.database_sources.routing {
            Some(routing) => routing.clone(),
            None => cluster::Routing::single(
                phabricator::redacted_url(&self.database_url)
                    .rsplit('@')
                    .next()
                    .unwrap_or("database_url")
                    .to_owned(),
                self.database_url.clone(),
            ),
        }
    }

    /// `database_url`, when it holds every database the service uses, for a command that works
    /// on one server only (`demo`): with partitioned `cluster.databases` spreading them over
    /// several masters, refused (`Db::connect_config` connects to each instead).
    pub fn one_master_url(&self) -> Result<&Secret, ConfigError> {
        let routing = self.routing();
        if routing.one_master().is_some() {
            return Ok(&self.database_url);
        }
        Err(ConfigError::Partitioned {
            masters: routing.masters.len(),
            routes: routing
                .routes
                .iter()
                .map(|(d, i)| format!("{d} -> {}", routing.masters[*i].key))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Checks cross-field rules that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.database_url.expose().starts_with("mysql://") {
            return Err(ConfigError::Invalid(
                "database_url must start with mysql://".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.deprovision_guard_share) {
            return Err(ConfigError::Invalid(
                "deprovision_guard_share must be within 0..1".into(),
            ));
        }
        if self.max_results == 0 {
            return Err(ConfigError::Invalid("max_results must be positive".into()));
        }
        if let Some(domain) = &self.placeholder_email_domain {
            // Placeholders (and the bot's address) are `<username>@<domain>`: with the longest
            // username they must still be an address `user_email` holds and Phabricator
            // accepts (`PhabricatorUserEmail::isValidAddress`).
            let longest = format!(
                "{}@{domain}",
                "a".repeat(crate::provisioning::username::MAX_USERNAME_BYTES)
            );
            if !crate::scim::user::is_valid_email(&longest) {
                return Err(ConfigError::Invalid(format!(
                    "placeholder_email_domain must be a domain of at most {} characters from a-z, 0-9, '.', '-', '_', '+' and ':'",
                    crate::scim::user::MAX_EMAIL_BYTES
                        - crate::provisioning::username::MAX_USERNAME_BYTES
                        - 1
                )));
            }
        }
        if self.request_timeout_secs < self.transaction_timeout_secs {
            // A request cut off inside its transaction would drop the connection mid-statement
            // instead of closing it as a timed-out operation does.
            return Err(ConfigError::Invalid(
                "request_timeout_secs must be at least transaction_timeout_secs".into(),
            ));
        }
        if self.statement_timeout_secs == 0
            || self.transaction_timeout_secs == 0
            || self.request_timeout_secs == 0
        {
            return Err(ConfigError::Invalid(
                "statement_timeout_secs, transaction_timeout_secs and request_timeout_secs must be positive".into(),
            ));
        }
        for (name, value) in [
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("max_connections", self.max_connections as u64),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be positive")));
            }
        }
        Ok(())
    }

    /// The database time limits of `statement_timeout_secs` and `transaction_timeout_secs`.
    pub fn db_timeouts(&self) -> crate::db::Timeouts {
        crate::db::Timeouts {
            statement: std::time::Duration::from_secs(self.statement_timeout_secs),
            operation: std::time::Duration::from_secs(self.transaction_timeout_secs),
        }
    }

    /// The base URL used in `meta.location`.
    pub fn base_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}/scim/v2", self.listen),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_rejects_sql_metacharacters() {
        assert!(Namespace::parse("phabricator").is_ok());
        assert!(Namespace::parse("t_abc123").is_ok());
        assert!(Namespace::parse("a`b").is_err());
        assert!(Namespace::parse("").is_err());
        assert!(Namespace::parse("Phab").is_err());
    }

    #[test]
    // figment's Jail API fixes the closure's error type.
    #[allow(clippy::result_large_err)]
    fn environment_overrides_and_unknown_variables_are_ignored() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("PHAB_SCIM_NAMESPACE", "acme");
            jail.set_env("PHAB_SCIM_REVOKE__SESSIONS", "false");
            jail.set_env("PHAB_SCIM_TEST_DATABASE_URL", "mysql://x@y");
            jail.create_file("c.toml", "max_results = 50\nlisten = \"127.0.0.1:9999\"")?;
            let cfg = Config::load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(cfg.namespace.as_str(), "acme");
            assert!(!cfg.revoke.sessions);
            assert_eq!(cfg.max_results, 50);
            assert_eq!(cfg.listen.port(), 9999);
            Ok(())
        });
    }

    #[test]
    fn misspelled_variables_name_the_closest_setting() {
        let known = setting_names();
        let vars = [
            "PHAB_SCIM_LISTN",
            "PHAB_SCIM_NAMESPCE",
            "PHAB_SCIM_LISTEN",
            "PHAB_SCIM_REVOKE__SESSIONS",
            "PHAB_SCIM_TEST_DATABASE_URL",
            "PHAB_SCIM_CONFIG",
            "PHAB_SCIM_KEEP",
            "HOME",
        ]
        .map(String::from);
        let warnings = misspelled_variables(vars.into_iter(), &known);
        assert_eq!(
            warnings,
            [
                "PHAB_SCIM_LISTN is not a setting and is ignored; did you mean PHAB_SCIM_LISTEN?",
                "PHAB_SCIM_NAMESPCE is not a setting and is ignored; did you mean \
                 PHAB_SCIM_NAMESPACE?",
            ]
        );
    }

    #[test]
    // figment's Jail API fixes the closure's error type.
    #[allow(clippy::result_large_err)]
    fn a_missing_configuration_file_is_an_error() {
        figment::Jail::expect_with(|_jail| {
            match Config::load(Some(Path::new("no-such.toml"))) {
                Err(ConfigError::MissingFile(p)) => assert_eq!(p, Path::new("no-such.toml")),
                other => panic!("expected MissingFile, got {other:?}"),
            }
            Ok(())
        });
    }

    #[test]
    // figment's Jail API fixes the closure's error type.
    #[allow(clippy::result_large_err)]
    fn worker_threads_default_to_half_the_cores() {
        figment::Jail::expect_with(|jail| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.worker_threads(), (cores / 2).max(1));
            jail.set_env("PHAB_SCIM_WORKER_THREADS", "3");
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.worker_threads(), 3);
            // Zero means the default, not a runtime without workers.
            jail.set_env("PHAB_SCIM_WORKER_THREADS", "0");
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.worker_threads(), (cores / 2).max(1));
            Ok(())
        });
    }

    #[test]
    // figment's Jail API fixes the closure's error type.
    #[allow(clippy::result_large_err)]
    fn trusted_proxies_load_from_toml_and_environment() {
        figment::Jail::expect_with(|jail| {
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert!(cfg.trusted_proxies.is_empty());
            jail.create_file(
                "c.toml",
                "trusted_proxies = [\"10.0.0.0/8\", \"::1\", \"192.0.2.7\"]",
            )?;
            let cfg = Config::load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            let shown: Vec<String> = cfg.trusted_proxies.iter().map(|n| n.to_string()).collect();
            assert_eq!(shown, ["10.0.0.0/8", "::1/128", "192.0.2.7/32"]);
            jail.set_env("PHAB_SCIM_TRUSTED_PROXIES", "127.0.0.1, fd00::/8");
            let cfg = Config::load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            let shown: Vec<String> = cfg.trusted_proxies.iter().map(|n| n.to_string()).collect();
            assert_eq!(shown, ["127.0.0.1/32", "fd00::/8"]);
            jail.set_env("PHAB_SCIM_TRUSTED_PROXIES", "10.0.0.1");
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.trusted_proxies.len(), 1);
            jail.set_env("PHAB_SCIM_TRUSTED_PROXIES", "");
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert!(cfg.trusted_proxies.is_empty());
            Ok(())
        });
    }

    #[test]
    // figment's Jail API fixes the closure's error type.
    #[allow(clippy::result_large_err)]
    fn invalid_trusted_proxies_fail_loading_and_name_the_setting() {
        figment::Jail::expect_with(|jail| {
            for bad in ["10.0.0.0/33", "10.0.0.1, proxy.local", "10.0.0.1/8", "1"] {
                jail.set_env("PHAB_SCIM_TRUSTED_PROXIES", bad);
                let e = Config::load(None).map(|_| ()).map_err(|e| e.to_string());
                let Err(e) = e else {
                    return Err(format!("{bad:?} was accepted").into());
                };
                // figment names the variable's key in capitals.
                assert!(e.to_lowercase().contains("trusted_proxies"), "{bad:?}: {e}");
            }
            jail.clear_env();
            jail.create_file("c.toml", "trusted_proxies = [\"10.0.0.0/8\", \"nope\"]")?;
            let e = Config::load(Some(Path::new("c.toml")))
                .map(|_| ())
                .map_err(|e| e.to_string());
            let Err(e) = e else {
                return Err("a bad TOML entry was accepted".into());
            };
            assert!(e.contains("trusted_proxies") && e.contains("nope"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn placeholder_domains_must_make_addresses_phabricator_holds() {
        let with = |domain: &str| Config {
            placeholder_email_domain: Some(domain.to_owned()),
            ..Config::default()
        };
        assert!(with("corp.example").validate().is_ok());
        assert!(with(&"d".repeat(63)).validate().is_ok());
        assert!(with(&"d".repeat(64)).validate().is_err());
        assert!(with("corp example").validate().is_err());
        assert!(with("").validate().is_err());
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        let cfg = Config {
            database_url: Secret::new("mysql://u:hunter2@h:1"),
            ..Config::default()
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}

#[cfg(test)]
// figment's Jail API fixes the closures' error type.
#[allow(clippy::result_large_err)]
mod phabricator_root_tests {
    use super::*;

    const LOCAL_JSON: &str = "phab/conf/local/local.json";

    /// A checkout `phab/` in the jail's directory with this local.json, selected by the
    /// environment; no environment variable of another test leaks in.
    fn checkout(jail: &mut figment::Jail, local_json: Option<&str>) -> figment::error::Result<()> {
        jail.clear_env();
        jail.create_dir("phab/conf/local")?;
        if let Some(text) = local_json {
            jail.create_file(LOCAL_JSON, text)?;
        }
        jail.set_env("PHAB_SCIM_PHABRICATOR_ROOT", "phab");
        Ok(())
    }

    fn from_file() -> SettingSource {
        SettingSource::PhabricatorFile(PathBuf::from(LOCAL_JSON))
    }

    #[test]
    fn a_full_local_json_gives_url_and_namespace() {
        figment::Jail::expect_with(|jail| {
            checkout(
                jail,
                Some(
                    r#"{"mysql.host": "db.internal", "mysql.port": "3307", "mysql.user": "phab",
                        "mysql.pass": "s3cret", "storage.default-namespace": "acme",
                        "cluster.databases": [], "phabricator.base-uri": "https://p.example"}"#,
                ),
            )?;
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                cfg.database_url.expose(),
                "mysql://phab:s3cret@db.internal:3307"
            );
            assert_eq!(cfg.namespace.as_str(), "acme");
            assert_eq!(cfg.database_sources.database_url, from_file());
            assert_eq!(cfg.database_sources.namespace, from_file());
            assert_eq!(cfg.database_sources.warning, None);
            let opts = crate::db::connect_options(&cfg.database_url).map_err(|e| e.to_string())?;
            assert_eq!(
                (opts.get_host(), opts.get_port(), opts.get_username()),
                ("db.internal", 3307, "phab")
            );
            Ok(())
        });
    }

    #[test]
    fn missing_keys_take_phabricators_defaults_over_tcp() {
        figment::Jail::expect_with(|jail| {
            checkout(jail, Some("{}"))?;
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            // localhost without a port is a socket for PHP; this service goes to 127.0.0.1:3306.
            assert_eq!(cfg.database_url.expose(), "mysql://root@127.0.0.1:3306");
            assert_eq!(cfg.namespace.as_str(), "phabricator");
            assert_eq!(cfg.database_sources.database_url, from_file());
            assert_eq!(cfg.database_sources.warning, None);

            // Port as a number, null keys, the deprecated host:port form.
            jail.create_file(
                LOCAL_JSON,
                r#"{"mysql.host": "localhost", "mysql.port": 3310, "mysql.pass": null}"#,
            )?;
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.database_url.expose(), "mysql://root@127.0.0.1:3310");
            jail.create_file(LOCAL_JSON, r#"{"mysql.host": "db:3311"}"#)?;
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.database_url.expose(), "mysql://root@db:3311");

            // No local.json at all: Phabricator reads it as empty; a warning says so.
            std::fs::remove_file(LOCAL_JSON).map_err(|e| e.to_string())?;
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.database_url.expose(), "mysql://root@127.0.0.1:3306");
            assert!(
                cfg.database_sources
                    .warning
                    .as_deref()
                    .is_some_and(|w| w.contains("does not exist")),
                "{:?}",
                cfg.database_sources
            );
            Ok(())
        });
    }

    #[test]
    fn explicit_settings_win_over_the_checkout() {
        figment::Jail::expect_with(|jail| {
            checkout(
                jail,
                Some(
                    r#"{"mysql.host": "db", "mysql.user": "phab", "storage.default-namespace": "acme"}"#,
                ),
            )?;
            jail.set_env("PHAB_SCIM_DATABASE_URL", "mysql://other@h:1");
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.database_url.expose(), "mysql://other@h:1");
            assert_eq!(cfg.database_sources.database_url, SettingSource::Explicit);
            assert_eq!(cfg.namespace.as_str(), "acme");
            assert_eq!(cfg.database_sources.namespace, from_file());

            // The same from the TOML file, and for the namespace; explicitly set to the
            // built-in default value still counts as explicit.
            jail.clear_env();
            jail.create_file(
                "c.toml",
                "phabricator_root = \"phab\"\nnamespace = \"phabricator\"\n",
            )?;
            let cfg = Config::load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(cfg.namespace.as_str(), "phabricator");
            assert_eq!(cfg.database_sources.namespace, SettingSource::Explicit);
            assert_eq!(cfg.database_url.expose(), "mysql://phab@db:3306");
            assert_eq!(cfg.database_sources.database_url, from_file());

            // Without phabricator_root nothing changes.
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.database_url.expose(), "mysql://root@127.0.0.1:3306");
            assert_eq!(cfg.database_sources.database_url, SettingSource::Default);
            Ok(())
        });
    }

    #[test]
    fn one_master_with_replicas_is_where_the_service_writes() {
        figment::Jail::expect_with(|jail| {
            checkout(
                jail,
                Some(
                    r#"{"mysql.user": "phab", "mysql.pass": "default-pw", "mysql.port": "3307",
                        "cluster.databases": [
                          {"host": "db-replica", "role": "replica", "master": "db-master:3307"},
                          {"host": "db-master", "role": "master", "user": "writer"}
                        ]}"#,
                ),
            )?;
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            // The master's own keys win; the others fall back to mysql.* as in Phorge.
            assert_eq!(
                cfg.database_url.expose(),
                "mysql://writer:default-pw@db-master:3307"
            );
            let cluster = cfg.database_sources.cluster.clone().unwrap_or_default();
            assert!(cluster.contains("master db-master:3307"), "{cluster}");
            assert!(
                cluster.contains("db-replica:3307 are never written"),
                "{cluster}"
            );
            Ok(())
        });
    }

    #[test]
    fn partitioned_clusters_are_routed_and_serving_them_is_refused() {
        figment::Jail::expect_with(|jail| {
            checkout(
                jail,
                Some(
                    r#"{"mysql.pass": "pw", "cluster.databases": [
                          {"host": "db1", "role": "master", "partition": ["default"]},
                          {"host": "db2", "role": "master", "partition": ["project"]},
                          {"host": "db2r", "role": "replica", "master": "db2:3306"}
                        ]}"#,
                ),
            )?;
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            let routing = cfg.routing();
            assert_eq!(routing.master_of("project").key, "db2:3306");
            assert_eq!(routing.master_of("user").key, "db1:3306");
            assert_eq!(routing.master_of("scim").key, "db1:3306");
            let note = cfg.database_sources.cluster.clone().unwrap_or_default();
            assert!(note.contains("db1:3306, db2:3306"), "{note}");
            assert!(note.contains("db2r:3306 are never written"), "{note}");
            // Connecting anywhere for a write is refused, naming the routing.
            let e = cfg
                .one_master_url()
                .err()
                .ok_or("writes across partitions accepted")?
                .to_string();
            for part in ["2 masters", "project -> db2:3306", "one-sided", "check"] {
                assert!(e.contains(part), "{part:?} not in {e}");
            }
            assert!(!e.contains("pw"), "{e}");
            // With the URL set explicitly the cluster is not read; the namespace still is.
            jail.set_env("PHAB_SCIM_DATABASE_URL", "mysql://root@db1:3306");
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.database_url.expose(), "mysql://root@db1:3306");
            assert!(cfg.one_master_url().is_ok());
            Ok(())
        });
    }

    #[test]
    fn partitions_leaving_every_used_database_on_one_master_are_served() {
        figment::Jail::expect_with(|jail| {
            checkout(
                jail,
                Some(
                    r#"{"mysql.user": "phab", "cluster.databases": [
                          {"host": "main", "role": "master", "partition": ["default"]},
                          {"host": "code", "port": 3307, "role": "master",
                           "partition": ["differential", "repository"]}
                        ]}"#,
                ),
            )?;
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            let url = cfg.one_master_url().map_err(|e| e.to_string())?;
            assert_eq!(url.expose(), "mysql://phab@main:3306");
            let note = cfg.database_sources.cluster.clone().unwrap_or_default();
            assert!(note.contains("writes go to the master main:3306"), "{note}");
            Ok(())
        });
    }

    #[test]
    fn clusters_without_a_usable_master_are_refused() {
        figment::Jail::expect_with(|jail| {
            for (json, says) in [
                (
                    r#"[{"host": "r", "role": "replica"}]"#,
                    "no server with the role",
                ),
                (
                    r#"[{"host": "m", "role": "master", "disabled": true}]"#,
                    "is disabled",
                ),
                (r#"[{"host": "m", "role": "boss"}]"#, "\"role\" must be"),
                (r#"[{"role": "master"}]"#, "\"host\" is required"),
                (
                    r#"[{"host": "m", "role": "master", "pass": 5}]"#,
                    "\"pass\" must be a string",
                ),
            ] {
                checkout(jail, Some(&format!(r#"{{"cluster.databases": {json}}}"#)))?;
                let e = Config::load(None).err().ok_or(json)?.to_string();
                assert!(e.contains(says), "{says:?} not in {e}");
            }
            Ok(())
        });
    }

    #[test]
    fn unusable_files_are_errors_naming_file_and_key() {
        figment::Jail::expect_with(|jail| {
            checkout(jail, Some("{\"mysql.host\": \"db\",\n"))?;
            let e = Config::load(None)
                .err()
                .ok_or("bad JSON accepted")?
                .to_string();
            assert!(
                e.contains(LOCAL_JSON) && e.contains("not valid JSON"),
                "{e}"
            );

            for (json, key) in [
                (r#"{"mysql.port": "x"}"#, "mysql.port"),
                (r#"{"mysql.port": 70000}"#, "mysql.port"),
                (r#"{"mysql.user": 5}"#, "mysql.user"),
                (
                    r#"{"storage.default-namespace": "Bad-NS"}"#,
                    "storage.default-namespace",
                ),
            ] {
                jail.create_file(LOCAL_JSON, json)?;
                let e = Config::load(None).err().ok_or(json)?.to_string();
                assert!(e.contains(LOCAL_JSON) && e.contains(key), "{json}: {e}");
            }
            jail.create_file(LOCAL_JSON, "[]")?;
            assert!(Config::load(None).is_err());

            jail.set_env("PHAB_SCIM_PHABRICATOR_ROOT", "nowhere");
            let e = Config::load(None)
                .err()
                .ok_or("no checkout accepted")?
                .to_string();
            assert!(e.contains("nowhere") && e.contains("conf/"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn a_selected_environment_is_warned_about() {
        figment::Jail::expect_with(|jail| {
            checkout(jail, Some(r#"{"mysql.host": "db"}"#))?;
            jail.create_file("phab/conf/local/ENVIRONMENT", "production\n")?;
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            let w = cfg.database_sources.warning.unwrap_or_default();
            assert!(
                w.contains("conf/production.conf.php") && w.contains("not read"),
                "{w}"
            );
            // Local.json is still read.
            assert_eq!(cfg.database_url.expose(), "mysql://root@db:3306");

            std::fs::remove_file("phab/conf/local/ENVIRONMENT").map_err(|e| e.to_string())?;
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.database_sources.warning, None);
            jail.set_env("PHABRICATOR_ENV", "staging");
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            let w = cfg.database_sources.warning.unwrap_or_default();
            assert!(w.contains("conf/staging.conf.php"), "{w}");
            Ok(())
        });
    }

    #[test]
    fn passwords_round_trip_and_never_show() {
        const PASS: &str = "p@ss:w/rd%25#?&é \"q\"+";
        figment::Jail::expect_with(|jail| {
            let json = serde_json::json!({
                "mysql.user": "ph ab@x",
                "mysql.pass": PASS,
                "mysql.host": "db",
            });
            checkout(jail, Some(&json.to_string()))?;
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            let url = cfg.database_url.expose();
            // The user information is percent-encoded: what is between `:` and `@` decodes
            // back to the password, and sqlx parses the whole.
            let userinfo = url
                .strip_prefix("mysql://")
                .and_then(|r| r.strip_suffix("@db:3306"))
                .ok_or(url)?;
            let (user, pass) = userinfo.split_once(':').ok_or(userinfo)?;
            assert_eq!(
                urlencoding::decode(user).map_err(|e| e.to_string())?,
                "ph ab@x"
            );
            assert_eq!(urlencoding::decode(pass).map_err(|e| e.to_string())?, PASS);
            let opts = crate::db::connect_options(&cfg.database_url).map_err(|e| e.to_string())?;
            assert_eq!((opts.get_username(), opts.get_host()), ("ph ab@x", "db"));

            let encoded = urlencoding::encode(PASS).into_owned();
            let shown = [
                format!("{cfg:?}"),
                format!("{:?}", cfg.database_sources),
                phabricator::redacted_url(&cfg.database_url),
            ];
            for text in &shown {
                assert!(!text.contains(PASS) && !text.contains(&encoded), "{text}");
            }
            assert_eq!(shown[2], "mysql://ph%20ab%40x:<redacted>@db:3306");

            // A password of the wrong type is not quoted in the error.
            jail.create_file(LOCAL_JSON, r#"{"mysql.pass": 123456789}"#)?;
            let e = Config::load(None).err().ok_or("number accepted")?;
            for text in [e.to_string(), format!("{e:?}")] {
                assert!(
                    text.contains("mysql.pass") && !text.contains("123456789"),
                    "{text}"
                );
            }
            // Nor in a JSON syntax error after it.
            jail.create_file(LOCAL_JSON, "{\"mysql.pass\": \"hunter2\" \"x\"}")?;
            let e = Config::load(None).err().ok_or("bad JSON accepted")?;
            for text in [e.to_string(), format!("{e:?}")] {
                assert!(!text.contains("hunter2"), "{text}");
            }
            Ok(())
        });
    }
}
