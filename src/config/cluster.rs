//! `cluster.databases` and the routing it implies: which MySQL master holds each Phabricator
//! database the service touches (docs/phabricator-tables.md#partitioned-databases).
//!
//! The host decides, and this module only repeats its decision: `PhabricatorDatabaseRefParser`
//! reads the servers (a master per partition, `default` for every application no partition
//! names; replicas follow one master and are never written), and
//! `PhabricatorDatabaseRef::getMasterDatabaseRefForApplication` picks, for an application
//! database name (`user` of `<ns>_user`, what a DAO's `getApplicationName` returns), the
//! enabled master whose partition names it, else the default partition's master. Two
//! departures, both refusals rather than different writes: a role other than `master` or
//! `replica` is refused as a typo (Phorge reads it as a replica), and a database whose own
//! partition master is disabled is refused (Phorge would fall through to the default master,
//! whose copy of that database `bin/storage upgrade` created empty and nobody uses).

use std::fmt;

use serde_json::Value;

use super::Secret;

/// The key of Phorge's configuration that lists the database servers.
pub const CLUSTER_KEY: &str = "cluster.databases";

/// Every database of the namespace the service reads or writes, by application name, in the
/// order `phab-scim check` lists them.
pub const DATABASES: &[&str] = &[
    "user",
    "project",
    "worker",
    "auth",
    "conduit",
    "meta_data",
    "metamta",
    "system",
    "cache",
    "scim",
    "scimstage",
];

/// The application whose partition decides where `database` lives. `scimstage` (a staged
/// rollout's copies, `db::stage`) goes with `scim`, whose rows it is staged next to. So does
/// `meta_data`: `bin/storage upgrade` keeps one on every master, recording there the patches
/// it applied on that master, and the only rows the service touches in it are its own
/// patches' (`db::migrate`), which belong with the `<ns>_scim` tables they create.
pub fn partition_of(database: &str) -> &str {
    match database {
        "scimstage" | "meta_data" => "scim",
        other => other,
    }
}

/// One MySQL server as Phabricator's settings describe it.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address, IPv6 in brackets, `localhost` already made `127.0.0.1`.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub pass: String,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.user, self.host, self.port)
    }
}

impl Endpoint {
    /// `mysql://user[:pass]@host:port`, user and password percent-encoded.
    pub fn url(&self) -> Secret {
        let mut url = format!("mysql://{}", urlencoding::encode(&self.user));
        if !self.pass.is_empty() {
            url.push(':');
            url.push_str(&urlencoding::encode(&self.pass));
        }
        url.push_str(&format!("@{}:{}", self.host, self.port));
        Secret::new(url)
    }
}

/// A host as this service connects to it. Without a port, PHP reaches `localhost` through the
/// Unix socket; this service connects over TCP, to 127.0.0.1 (which is where PHP goes too once
/// a port is set). IPv6 addresses are bracketed for the URL.
pub fn host_for_tcp(host: &str) -> String {
    if host.eq_ignore_ascii_case("localhost") {
        "127.0.0.1".into()
    } else if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// One server of `cluster.databases`, read as `PhabricatorDatabaseRefParser::newRefs` reads it.
#[derive(Clone, Debug)]
pub struct Server {
    /// Phorge's ref key, `host:port` as configured: what a replica's `master` names, and what
    /// `check` and errors show.
    pub key: String,
    /// Where to connect, each key the server lacks taken from `mysql.*`.
    pub endpoint: Endpoint,
    pub master: bool,
    pub disabled: bool,
    /// A master's `partition`: application names, `default` among them for the default one.
    pub partition: Vec<String>,
    /// A replica's `master`: the key of the master it follows.
    pub follows: Option<String>,
}

/// `cluster.databases`, parsed and checked as Phorge checks it.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub servers: Vec<Server>,
    /// More than one master: each names its partition.
    pub partitioned: bool,
    /// The setting as `bin/storage partition` records it on every master (see [`Routing::state`]).
    pub state: Value,
}

/// Why `cluster.databases` cannot be used; the caller adds the file.
pub type ClusterError = String;

impl Cluster {
    /// Reads `cluster.databases`; `Ok(None)` when it is absent or empty (Phabricator then uses
    /// `mysql.*` alone). `defaults` is the `mysql.*` server, whose keys each server inherits.
    pub fn parse(value: Option<&Value>, defaults: &Endpoint) -> Result<Option<Self>, ClusterError> {
        let servers = match value {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Array(a)) if a.is_empty() => return Ok(None),
            Some(Value::Object(o)) if o.is_empty() => return Ok(None),
            Some(Value::Array(a)) => a.iter().collect::<Vec<_>>(),
            // PHP reads a JSON object as a list keyed by its names.
            Some(Value::Object(o)) => o.values().collect(),
            Some(_) => return Err(format!("key {CLUSTER_KEY:?} must be a list of servers")),
        };
        let mut parsed = Vec::with_capacity(servers.len());
        for (index, server) in servers.into_iter().enumerate() {
            parsed.push(read_server(index, server, defaults)?);
        }
        let masters: Vec<&Server> = parsed.iter().filter(|s| s.master).collect();
        if masters.is_empty() {
            return Err(format!(
                "key {CLUSTER_KEY:?} lists no server with the role \"master\""
            ));
        }
        let partitioned = masters.len() > 1;
        if partitioned {
            check_partitions(&masters)?;
        }
        let mut keys = std::collections::BTreeSet::new();
        for s in &parsed {
            if !keys.insert(s.key.as_str()) {
                return Err(format!(
                    "key {CLUSTER_KEY:?} lists the server {} twice",
                    s.key
                ));
            }
        }
        let master_keys: Vec<&str> = masters.iter().map(|m| m.key.as_str()).collect();
        for replica in parsed.iter().filter(|s| !s.master) {
            match replica.follows.as_deref() {
                None if partitioned => {
                    return Err(format!(
                        "key {CLUSTER_KEY:?}: the replica {} does not say which \"master\" it \
                         follows (masters: {})",
                        replica.key,
                        master_keys.join(", ")
                    ));
                }
                None => {}
                Some(m) if master_keys.contains(&m) => {}
                Some(m) => {
                    return Err(format!(
                        "key {CLUSTER_KEY:?}: the replica {} follows {m:?}, which is not a \
                         master (masters: {})",
                        replica.key,
                        master_keys.join(", ")
                    ));
                }
            }
        }
        Ok(Some(Self {
            servers: parsed,
            partitioned,
            state: committed_state(value),
        }))
    }

    /// `PhabricatorDatabaseRef::getMasterDatabaseRefForApplication`: among the masters, the one
    /// whose partition names `application`, else the default partition's (with one master,
    /// that master). `Err` says why there is none the service may write.
    pub fn master_for(&self, application: &str) -> Result<&Server, ClusterError> {
        let masters = self.servers.iter().filter(|s| s.master);
        let (own, default): (Vec<&Server>, Vec<&Server>) = if self.partitioned {
            (
                masters
                    .clone()
                    .filter(|m| m.partition.iter().any(|p| p == application))
                    .collect(),
                masters
                    .filter(|m| m.partition.iter().any(|p| p == "default"))
                    .collect(),
            )
        } else {
            (Vec::new(), masters.collect())
        };
        let (chosen, whose) = match (own.first(), default.first()) {
            (Some(m), _) => (*m, "its partition"),
            (None, Some(m)) => (*m, "the default partition"),
            (None, None) => {
                return Err(format!(
                    "no master holds {application:?}: no partition names it and no master is \
                     the \"default\" partition"
                ));
            }
        };
        if chosen.disabled {
            return Err(format!(
                "the master of {application:?} ({whose}), {}, is disabled",
                chosen.key
            ));
        }
        Ok(chosen)
    }

    /// The keys of the replicas, which the service never writes (nor reads).
    pub fn replicas(&self) -> Vec<&str> {
        self.servers
            .iter()
            .filter(|s| !s.master)
            .map(|s| s.key.as_str())
            .collect()
    }

    /// Where each of [`DATABASES`] lives.
    pub fn routing(&self) -> Result<Routing, ClusterError> {
        let mut routing = Routing {
            masters: Vec::new(),
            routes: Vec::new(),
            replicas: self.replicas().into_iter().map(str::to_owned).collect(),
            state: self.partitioned.then(|| self.state.clone()),
        };
        for &database in DATABASES {
            let master = self.master_for(partition_of(database)).map_err(|e| {
                format!("key {CLUSTER_KEY:?}: {e} (needed for the database {database:?})")
            })?;
            routing.route(database, &master.key, master.endpoint.url());
        }
        let (scim, user) = (routing.master_of("scim"), routing.master_of("user"));
        if scim.key != user.key {
            return Err(format!(
                "key {CLUSTER_KEY:?}: the database \"scim\" is on {} and \"user\" on {}; \
                 phab-scim needs them on one master (add \"scim\" to the \"partition\" of {}): \
                 every SCIM record of a user extends its account row, and every read of a user \
                 (a lookup, a filter, a page) is one statement joining the two",
                scim.key, user.key, user.key
            ));
        }
        Ok(routing)
    }
}

/// `cluster.databases` without the servers' passwords: what
/// `PhabricatorDatabaseRef::getPartitionStateForCommit` encodes into `<ns>_meta_data.hoststate`
/// on every master (`bin/storage partition`), and what Phorge's setup check
/// (`PhabricatorDatabaseSetupCheck`) requires each master to hold before it runs.
fn committed_state(value: Option<&Value>) -> Value {
    let mut state = value.cloned().unwrap_or(Value::Null);
    let servers: Vec<&mut Value> = match &mut state {
        Value::Array(a) => a.iter_mut().collect(),
        Value::Object(o) => o.values_mut().collect(),
        _ => Vec::new(),
    };
    for server in servers {
        if let Value::Object(o) = server {
            o.remove("pass");
        }
    }
    state
}

/// With several masters, each names its partition; `default` and every application at most
/// once (`PhabricatorDatabaseRefParser::newRefs`).
fn check_partitions(masters: &[&Server]) -> Result<(), ClusterError> {
    let mut owner: std::collections::BTreeMap<&str, &str> = Default::default();
    for m in masters {
        if m.partition.is_empty() {
            return Err(format!(
                "key {CLUSTER_KEY:?} lists several masters, and the master {} has no \
                 \"partition\" saying which applications it holds",
                m.key
            ));
        }
        for app in &m.partition {
            if let Some(first) = owner.insert(app.as_str(), m.key.as_str()) {
                return Err(format!(
                    "key {CLUSTER_KEY:?}: the masters {first} and {} both name {app:?} in their \
                     partition; each belongs to one master",
                    m.key
                ));
            }
        }
    }
    Ok(())
}

/// Reads and checks server `index` of `cluster.databases`.
fn read_server(index: usize, server: &Value, defaults: &Endpoint) -> Result<Server, ClusterError> {
    let bad = |what: &str| format!("key {CLUSTER_KEY:?}, server {index}: {what}");
    let Value::Object(server) = server else {
        return Err(bad("must be an object"));
    };
    let field = |name: &str| -> Result<Option<&str>, ClusterError> {
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
        None | Some(Value::Null) => defaults.port,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|&p| p != 0)
            .ok_or_else(bad_port)?,
        Some(Value::String(s)) => s
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(bad_port)?,
        Some(_) => return Err(bad_port()),
    };
    let user = field("user")?
        .filter(|u| !u.is_empty())
        .unwrap_or(&defaults.user);
    // Phorge takes the server's password when it is truthy in PHP ("" and "0" are not).
    let pass = field("pass")?
        .filter(|p| !p.is_empty() && *p != "0")
        .unwrap_or(&defaults.pass);
    let master = match field("role")? {
        Some("master") => true,
        Some("replica") => false,
        _ => return Err(bad("\"role\" must be \"master\" or \"replica\"")),
    };
    let follows = field("master")?.map(str::to_owned);
    let key = format!("{host}:{port}");
    // `persistent` (PHP's persistent connections) means nothing to a pool: accepted, unused.
    let partition = match server.get("partition") {
        None | Some(Value::Null) => Vec::new(),
        Some(_) if !master => {
            return Err(format!(
                "key {CLUSTER_KEY:?}: the replica {key} has a \"partition\"; only masters \
                 have one (a replica follows its master's)"
            ));
        }
        Some(Value::Array(apps)) => apps
            .iter()
            .map(|a| {
                a.as_str()
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| bad("\"partition\" must be a list of application names"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("\"partition\" must be a list of application names")),
    };
    Ok(Server {
        key,
        endpoint: Endpoint {
            host: host_for_tcp(host),
            port,
            user: user.to_owned(),
            pass: pass.to_owned(),
        },
        master,
        disabled: matches!(server.get("disabled"), Some(Value::Bool(true))),
        partition,
        follows,
    })
}

/// One master the service writes, named as `check` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Master {
    /// `host:port` (Phorge's ref key with `cluster.databases`).
    pub key: String,
    /// Its connection URL (credentials included).
    pub url: Secret,
}

/// Which master holds each of [`DATABASES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routing {
    /// The distinct masters, in the order of [`DATABASES`] first routed to them.
    pub masters: Vec<Master>,
    /// Each database and the index of its master in `masters`.
    pub routes: Vec<(&'static str, usize)>,
    /// Replicas, never written.
    pub replicas: Vec<String>,
    /// With several masters: the configuration each must have recorded in
    /// `<ns>_meta_data.hoststate` (`stateKey` `cluster.databases`), passwords left out. Phorge
    /// compares it byte for byte with its own encoding and refuses to run on a difference;
    /// `check` compares the decoded values.
    pub state: Option<Value>,
}

impl Routing {
    /// Every database on the one server of `url` (no `cluster.databases`, or one master).
    pub fn single(key: impl Into<String>, url: Secret) -> Self {
        let mut routing = Self {
            masters: Vec::new(),
            routes: Vec::new(),
            replicas: Vec::new(),
            state: None,
        };
        let key = key.into();
        for &database in DATABASES {
            routing.route(database, &key, url.clone());
        }
        routing
    }

    fn route(&mut self, database: &'static str, key: &str, url: Secret) {
        let index = match self.masters.iter().position(|m| m.key == key) {
            Some(i) => i,
            None => {
                self.masters.push(Master {
                    key: key.to_owned(),
                    url,
                });
                self.masters.len() - 1
            }
        };
        self.routes.push((database, index));
    }

    /// The master of `database` (one of [`DATABASES`]; another goes to the first master).
    pub fn master_of(&self, database: &str) -> &Master {
        let index = self
            .routes
            .iter()
            .find(|(d, _)| *d == database)
            .map_or(0, |(_, i)| *i);
        &self.masters[index.min(self.masters.len().saturating_sub(1))]
    }

    /// The one master every database is on, or `None` when they are spread over several.
    pub fn one_master(&self) -> Option<&Master> {
        match self.masters.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// The databases on master `index`.
    pub fn databases_on(&self, index: usize) -> Vec<&'static str> {
        self.routes
            .iter()
            .filter(|(_, i)| *i == index)
            .map(|(d, _)| *d)
            .collect()
    }

    /// `database → host:port` lines, for `phab-scim check`.
    pub fn table(&self) -> Vec<String> {
        self.routes
            .iter()
            .map(|(d, i)| format!("{d:<10} -> {}", self.masters[*i].key))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn defaults() -> Endpoint {
        Endpoint {
            host: "127.0.0.1".into(),
            port: 3306,
            user: "phab".into(),
            pass: "default-pw".into(),
        }
    }

    fn parse(v: Value) -> Result<Cluster, ClusterError> {
        Cluster::parse(Some(&v), &defaults())?.ok_or_else(|| "no cluster".to_owned())
    }

    fn route_of(routing: &Routing, database: &str) -> String {
        routing.master_of(database).key.clone()
    }

    /// The shape of a large install's local.json: people and projects on masters of their
    /// own, everything else on the default one, a replica behind each.
    fn three_masters() -> Value {
        json!([
            {"host": "db-default", "role": "master", "partition": ["default"]},
            {"host": "db-default-r", "role": "replica", "master": "db-default:3306"},
            {"host": "db-people", "port": 3307, "role": "master", "user": "people",
             "pass": "people-pw", "partition": ["user", "auth", "scim"], "persistent": true},
            {"host": "db-people-r", "port": "3307", "role": "replica", "master": "db-people:3307"},
            {"host": "db-projects", "role": "master", "partition": ["project"]}
        ])
    }

    #[test]
    fn each_database_goes_where_the_host_sends_it() -> Result<(), ClusterError> {
        let routing = parse(three_masters())?.routing()?;
        for (database, master) in [
            ("user", "db-people:3307"),
            ("auth", "db-people:3307"),
            ("project", "db-projects:3306"),
            ("worker", "db-default:3306"),
            ("conduit", "db-default:3306"),
            ("metamta", "db-default:3306"),
            ("system", "db-default:3306"),
            ("cache", "db-default:3306"),
            ("scim", "db-people:3307"),
            ("scimstage", "db-people:3307"),
            ("meta_data", "db-people:3307"),
        ] {
            assert_eq!(route_of(&routing, database), master, "{database}");
        }
        assert_eq!(routing.masters.len(), 3);
        assert!(routing.one_master().is_none());
        assert_eq!(routing.replicas, ["db-default-r:3306", "db-people-r:3307"]);
        // Each master's own credentials; the others inherit mysql.*.
        let people = routing.master_of("user");
        assert_eq!(
            people.url.expose(),
            "mysql://people:people-pw@db-people:3307"
        );
        assert_eq!(
            routing.master_of("worker").url.expose(),
            "mysql://phab:default-pw@db-default:3306"
        );
        Ok(())
    }

    #[test]
    fn scim_and_its_stage_and_patch_records_move_together() -> Result<(), ClusterError> {
        let routing = parse(json!([
            {"host": "a", "role": "master", "partition": ["default"]},
            {"host": "b", "role": "master", "partition": ["user", "scim"]}
        ]))?
        .routing()?;
        assert_eq!(route_of(&routing, "scim"), "b:3306");
        assert_eq!(route_of(&routing, "scimstage"), "b:3306");
        assert_eq!(route_of(&routing, "meta_data"), "b:3306");
        assert_eq!(route_of(&routing, "user"), "b:3306");
        assert_eq!(
            routing.databases_on(0),
            ["user", "meta_data", "scim", "scimstage"]
        );
        Ok(())
    }

    /// The partitioned example the README's configuration section shows routes as it says.
    #[test]
    fn the_readme_example_routes_as_the_readme_says() -> Result<(), ClusterError> {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("{\n    \"cluster.databases\"")
            .ok_or("no cluster.databases example in the README")?;
        let end = start
            + readme[start..]
                .find("\n  }\n")
                .ok_or("unterminated example")?
            + 4;
        let block: String = readme[start..end].lines().map(str::trim).collect();
        let v: Value = serde_json::from_str(&block).map_err(|e| e.to_string())?;
        let routing = parse(v["cluster.databases"].clone())?.routing()?;
        for (database, master) in [
            ("user", "db2.internal:3306"),
            ("scim", "db2.internal:3306"),
            ("project", "db3.internal:3306"),
            ("worker", "db1.internal:3306"),
            ("auth", "db1.internal:3306"),
            ("conduit", "db1.internal:3306"),
        ] {
            assert_eq!(route_of(&routing, database), master, "{database}");
        }
        assert_eq!(routing.replicas, ["db1r.internal:3306"]);
        Ok(())
    }

    #[test]
    fn scim_apart_from_user_is_refused_with_the_fix() {
        for servers in [
            // `user` on a master of its own, `scim` left on the default one.
            json!([{"host": "a", "role": "master", "partition": ["default"]},
                   {"host": "b", "role": "master", "partition": ["user"]}]),
            // `scim` moved, `user` left behind.
            json!([{"host": "a", "role": "master", "partition": ["default"]},
                   {"host": "b", "role": "master", "partition": ["scim"]}]),
        ] {
            let err = parse(servers.clone())
                .and_then(|c| c.routing())
                .expect_err("scim apart from user");
            assert!(
                err.contains("phab-scim needs them on one master")
                    && err.contains("add \"scim\" to the \"partition\""),
                "{servers}: {err}"
            );
        }
    }

    #[test]
    fn partitions_of_other_applications_leave_one_master() -> Result<(), ClusterError> {
        // Differential and the repositories moved off: everything the service touches is on
        // the default master, which is then the one server it uses.
        let routing = parse(json!([
            {"host": "main", "role": "master", "partition": ["default"]},
            {"host": "code", "role": "master", "partition": ["differential", "repository"]}
        ]))?
        .routing()?;
        let only = routing.one_master().ok_or("several masters")?;
        assert_eq!(only.key, "main:3306");
        Ok(())
    }

    #[test]
    fn one_master_takes_everything_and_ignores_partition() -> Result<(), ClusterError> {
        let routing = parse(json!([
            {"host": "m", "role": "master", "partition": ["user"]},
            {"host": "r", "role": "replica"}
        ]))?
        .routing()?;
        assert_eq!(routing.one_master().map(|m| m.key.as_str()), Some("m:3306"));
        assert_eq!(routing.replicas, ["r:3306"]);
        Ok(())
    }

    #[test]
    fn phorge_refusals_are_refusals_here() {
        for (config, says) in [
            (
                json!([{"host": "a", "role": "master", "partition": ["default"]},
                       {"host": "b", "role": "master"}]),
                "b:3306 has no \"partition\"",
            ),
            (
                json!([{"host": "a", "role": "master", "partition": ["default"]},
                       {"host": "b", "role": "master", "partition": ["default"]}]),
                "both name \"default\"",
            ),
            (
                json!([{"host": "a", "role": "master", "partition": ["default", "user"]},
                       {"host": "b", "role": "master", "partition": ["user"]}]),
                "both name \"user\"",
            ),
            (
                json!([{"host": "a", "role": "master", "partition": ["default"]},
                       {"host": "b", "role": "master", "partition": ["user"]},
                       {"host": "r", "role": "replica"}]),
                "does not say which \"master\"",
            ),
            (
                json!([{"host": "a", "role": "master"},
                       {"host": "r", "role": "replica", "master": "z:3306"}]),
                "not a master",
            ),
            (
                json!([{"host": "a", "role": "master"},
                       {"host": "r", "role": "replica", "partition": ["user"]}]),
                "only masters",
            ),
            (
                json!([{"host": "a", "role": "master"}, {"host": "r", "role": "replica"},
                       {"host": "r", "port": "3306", "role": "replica"}]),
                "twice",
            ),
            (
                json!([{"host": "a", "role": "master", "partition": "user"},
                       {"host": "b", "role": "master", "partition": ["default"]}]),
                "list of application names",
            ),
        ] {
            let e = parse(config.clone()).err().unwrap_or_default();
            assert!(e.contains(says), "{config}: {says:?} not in {e:?}");
        }
    }

    #[test]
    fn a_database_without_a_usable_master_is_refused() -> Result<(), ClusterError> {
        // No default partition: Phorge has no master for `worker` either.
        let cluster = parse(json!([
            {"host": "a", "role": "master", "partition": ["user"]},
            {"host": "b", "role": "master", "partition": ["project"]}
        ]))?;
        let e = cluster.routing().err().unwrap_or_default();
        assert!(e.contains("no master holds") && e.contains("worker"), "{e}");
        // A disabled partition master: Phorge would fall through to the default master,
        // whose copy of `user` is not the one in use.
        let cluster = parse(json!([
            {"host": "a", "role": "master", "partition": ["default"]},
            {"host": "b", "role": "master", "partition": ["user"], "disabled": true}
        ]))?;
        let e = cluster.routing().err().unwrap_or_default();
        assert!(e.contains("b:3306") && e.contains("disabled"), "{e}");
        Ok(())
    }

    #[test]
    fn empty_lists_mean_no_cluster() -> Result<(), ClusterError> {
        for v in [json!([]), json!({}), Value::Null] {
            assert!(Cluster::parse(Some(&v), &defaults())?.is_none());
        }
        assert!(Cluster::parse(None, &defaults())?.is_none());
        Ok(())
    }

    #[test]
    fn the_routing_table_names_every_database() {
        let routing = Routing::single("h:1", Secret::new("mysql://root@h:1"));
        let table = routing.table();
        assert_eq!(table.len(), DATABASES.len());
        assert!(table[0].starts_with("user") && table[0].ends_with("-> h:1"));
    }
}
