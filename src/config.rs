//! Service configuration: defaults < TOML file (`--config`) < `PHAB_SCIM_*` environment.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

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
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Namespace(String);

impl Namespace {
    /// Checks and wraps a namespace name.
    pub fn parse(name: &str) -> Result<Self, ConfigError> {
        let ok = !name.is_empty()
            && name.len() <= 40
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(ConfigError::Invalid(format!(
                "namespace {name:?} must match [a-z0-9_]{{1,40}}"
            )))
        }
    }
    /// Wraps a literal known to be valid (crate-internal constants only).
    pub(crate) fn from_checked(name: &'static str) -> Self {
        Self(name.to_owned())
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
    /// Adopt the account when the address is its verified primary address (design §3).
    VerifiedEmail,
    /// Never adopt: answer 409 uniqueness.
    Never,
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
    /// Username derivation policy.
    pub username_policy: UsernamePolicy,
    /// Adoption of existing accounts on POST.
    pub adoption: AdoptionPolicy,
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
            namespace: Namespace("phabricator".into()),
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            public_url: None,
            worker_threads: None,
            pool_size: 16,
            username_policy: UsernamePolicy::LocalPart,
            adoption: AdoptionPolicy::VerifiedEmail,
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
        }
    }
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
    /// The file or environment could not be read.
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
}

impl Config {
    /// Loads defaults, then the TOML file if given, then `PHAB_SCIM_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            fig = fig.merge(Toml::file(path));
        }
        // Only variables naming a setting: scripts set others (PHAB_SCIM_TEST_DATABASE_URL...)
        // and `deny_unknown_fields` would refuse them.
        let known: Vec<String> = match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
            _ => Vec::new(),
        };
        fig = fig.merge(Env::prefixed("PHAB_SCIM_").split("__").filter(move |k| {
            let top = k.as_str().split('.').next().unwrap_or("");
            known.iter().any(|n| n.eq_ignore_ascii_case(top))
        }));
        let cfg: Config = fig.extract().map_err(Box::new)?;
        cfg.validate()?;
        Ok(cfg)
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
        Ok(())
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
