//! The connections of one operation: one per master it touches (docs/design.md#partitioned-databases).
//!
//! Every writer and reader takes a [`Conns`] and runs its statements on it as on one
//! connection. With every database on one master that is all it is: each statement goes to the
//! one connection, unchanged. When partitioned `cluster.databases` spread the databases over
//! several masters, each statement goes to the master of the databases it names: the
//! statement's own text decides (every table name is rendered `` `<ns>_<app>`.`table` `` by
//! [`super::Tables`]), so a statement can never be sent to the copy of a database that
//! `bin/storage upgrade` left unused on another master. A statement naming databases of two
//! masters is refused, never run on either. The coordinator (the master of `<ns>_scim`) is the
//! connection the operation began with; another master's connection is taken from its pool on
//! the operation's first statement there and, in a write, opens an XA branch
//! (`db::xa`), which `provisioning::in_transaction` prepares and commits with the rest.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use sqlx::mysql::{MySqlArguments, MySqlQueryResult, MySqlRow, MySqlStatement, MySqlTypeInfo};
use sqlx::{AssertSqlSafe, Either, Execute, Executor, MySql, MySqlConnection, SqlStr};

use super::xa::Branches;
use super::{Db, Masters};

/// The connections of one operation (see the module's documentation).
#[derive(Debug)]
pub struct Conns<'a> {
    /// The coordinator's connection, or the only one.
    first: &'a mut MySqlConnection,
    /// With several masters: the others, taken as the operation reaches them.
    spread: Option<Spread>,
}

/// The masters of a spread configuration and the connections taken on them.
#[derive(Debug)]
pub struct Spread {
    masters: Arc<Masters>,
    /// `` `<ns>_ ``: what begins every database name the statements use.
    prefix: String,
    /// In a write, the XA id each other master's branch is opened with (`db::xa`).
    xid: Option<String>,
    /// Each other master reached (index into `Masters::pools`) and its connection.
    pub(crate) others: Branches,
}

impl Spread {
    /// The master of every database `sql` names; the coordinator (0) for a statement that
    /// names none. `Err` names the databases when they are on more than one master.
    pub(crate) fn route(&self, sql: &str) -> Result<usize, String> {
        let mut found: Option<(usize, &str)> = None;
        for (at, _) in sql.match_indices(self.prefix.as_str()) {
            let rest = &sql[at + self.prefix.len()..];
            let Some(end) = rest.find('`') else { continue };
            let app = &rest[..end];
            let m = self.masters.index_of(app);
            match found {
                None => found = Some((m, app)),
                Some((first, first_app)) if first != m => {
                    return Err(format!(
                        "a statement names {first_app} and {app}, which are on different \
                         masters: it cannot run on either"
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(found.map_or(0, |(m, _)| m))
    }

    /// The connection of master `m` (not the coordinator), taken from its pool and, in a
    /// write, with its XA branch started, the first time the operation reaches it.
    async fn conn(&mut self, m: usize) -> Result<&mut MySqlConnection, sqlx::Error> {
        let at = match self.others.list.iter().position(|(i, _)| *i == m) {
            Some(at) => at,
            None => {
                let pool = self
                    .masters
                    .pools
                    .get(m)
                    .map(|(_, pool)| pool.clone())
                    .ok_or_else(|| sqlx::Error::Protocol(format!("no master {m}")))?;
                let mut lease = pool.acquire().await?;
                if let Some(xid) = &self.xid
                    && let Err(e) = lease
                        .execute(AssertSqlSafe(format!("XA START {xid}")))
                        .await
                {
                    // Its state is unknown: never back to the pool.
                    drop(lease.detach());
                    return Err(e);
                }
                self.others.list.push((m, lease));
                self.others.list.len() - 1
            }
        };
        Ok(&mut *self.others.list[at].1)
    }
}

impl<'a> Conns<'a> {
    /// The operation's connections, `first` being the coordinator's (`db.pool`'s). `xid`: the
    /// XA id of a write's branches (`db::xa`); `None` for reads and autocommit statements.
    /// With one master, `first` alone.
    pub fn new(db: &Db, first: &'a mut MySqlConnection, xid: Option<String>) -> Self {
        let spread = (!db.masters.is_single()).then(|| Spread {
            masters: db.masters.clone(),
            prefix: format!("`{}_", db.ns.as_str()),
            xid,
            others: Default::default(),
        });
        Self { first, spread }
    }

    /// `first` for statements of autocommit work or of a transaction of `first` alone
    /// (background work, the CLI). With several masters, a statement for another one runs
    /// there on its own.
    pub fn of(db: &Db, first: &'a mut MySqlConnection) -> Self {
        Self::new(db, first, None)
    }

    /// The other masters' connections the operation reached, for the caller to commit, roll
    /// back, release or give up (dropped, they are closed).
    pub fn into_others(self) -> Branches {
        self.spread.map(|s| s.others).unwrap_or_default()
    }

    /// The connection of master `m` (0: the coordinator's, the only one with one master), for a
    /// statement that names no database of the namespace (`information_schema`). Another
    /// master's is taken as a statement routed there would take it, and given up with the
    /// operation's others.
    pub async fn on_master(&mut self, m: usize) -> Result<&mut MySqlConnection, sqlx::Error> {
        match &mut self.spread {
            Some(spread) if m != 0 => spread.conn(m).await,
            _ => Ok(&mut *self.first),
        }
    }

    /// Whether the databases of `tables` (rendered names) are all on one master, so that one
    /// statement may join them.
    pub fn together(&self, tables: &[&str]) -> bool {
        match &self.spread {
            None => true,
            Some(s) => s.route(&tables.join(" ")).is_ok(),
        }
    }
}

/// A statement taken apart to be routed, and sent on as it came.
struct Routed {
    sql: SqlStr,
    arguments: Option<MySqlArguments>,
    persistent: bool,
}

impl<'q> Execute<'q, MySql> for Routed {
    fn sql(self) -> SqlStr {
        self.sql
    }
    fn statement(&self) -> Option<&MySqlStatement> {
        None
    }
    fn take_arguments(&mut self) -> Result<Option<MySqlArguments>, sqlx::error::BoxDynError> {
        Ok(self.arguments.take())
    }
    fn persistent(&self) -> bool {
        self.persistent
    }
}

type Step = Either<MySqlQueryResult, MySqlRow>;

impl<'c, 'a: 'c> Executor<'c> for &'c mut Conns<'a> {
    type Database = MySql;

    fn fetch_many<'e, 'q, E>(self, mut query: E) -> BoxStream<'e, Result<Step, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, MySql>,
        'q: 'e,
    {
        let Conns { first, spread } = self;
        let Some(spread) = spread.as_mut() else {
            return (&mut **first).fetch_many(query);
        };
        let arguments = query.take_arguments();
        let persistent = query.persistent();
        let sql = query.sql();
        let route = spread.route(sql.as_str());
        futures_util::stream::once(async move {
            let arguments = arguments.map_err(sqlx::Error::Encode)?;
            let conn: &'c mut MySqlConnection = match route.map_err(sqlx::Error::Protocol)? {
                0 => first,
                m => spread.conn(m).await?,
            };
            Ok::<_, sqlx::Error>(conn.fetch_many(Routed {
                sql,
                arguments,
                persistent,
            }))
        })
        .try_flatten()
        .boxed()
    }

    fn fetch_optional<'e, 'q, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<MySqlRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, MySql>,
        'q: 'e,
    {
        if self.spread.is_none() {
            return (&mut *self.first).fetch_optional(query);
        }
        let mut steps = self.fetch_many(query);
        Box::pin(async move {
            while let Some(step) = steps.try_next().await? {
                if let Either::Right(row) = step {
                    return Ok(Some(row));
                }
            }
            Ok(None)
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [MySqlTypeInfo],
    ) -> BoxFuture<'e, Result<MySqlStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        let Conns { first, spread } = self;
        let Some(spread) = spread.as_mut() else {
            return (&mut **first).prepare_with(sql, parameters);
        };
        let route = spread.route(sql.as_str());
        Box::pin(async move {
            let conn: &'c mut MySqlConnection = match route.map_err(sqlx::Error::Protocol)? {
                0 => first,
                m => spread.conn(m).await?,
            };
            conn.prepare_with(sql, parameters).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(routes: Vec<(&'static str, usize)>) -> Spread {
        Spread {
            masters: Arc::new(Masters {
                pools: Vec::new(),
                routes,
            }),
            prefix: "`ns_".into(),
            xid: None,
            others: Default::default(),
        }
    }

    #[test]
    fn statements_go_to_the_master_of_the_databases_they_name() {
        let s = spread(vec![
            ("scim", 0),
            ("user", 0),
            ("project", 1),
            ("scimstage", 0),
        ]);
        assert_eq!(s.route("SELECT 1"), Ok(0));
        assert_eq!(
            s.route("SELECT * FROM `ns_project`.`edge` WHERE src = ?"),
            Ok(1)
        );
        assert_eq!(
            s.route("SELECT * FROM `ns_scim`.`scim_user` s JOIN `ns_user`.`user` u"),
            Ok(0)
        );
        // The decision log is not routed: the coordinator's.
        assert_eq!(
            s.route("INSERT INTO `ns_scimxa`.`decision` VALUES (?)"),
            Ok(0)
        );
        // Another namespace's names are not this one's (`ns_` is a prefix of `ns_x_`, but the
        // app then reads `x_project`, which is not routed: the coordinator).
        assert_eq!(s.route("SELECT * FROM `other_project`.`edge`"), Ok(0));
        let e = s
            .route("SELECT * FROM `ns_project`.`edge` e JOIN `ns_user`.`user` u")
            .err()
            .unwrap_or_default();
        assert!(e.contains("project and user"), "{e}");
        assert!(s.masters.together(&["scim", "user", "scimstage"]));
        assert!(!s.masters.together(&["scim", "project", "user"]));
    }
}
