//! The first connection, made by hand: a pool that cannot connect only says it "timed out
//! waiting for an open connection", while an operator needs the server and the cause.

use std::io::ErrorKind;
use std::time::Duration;

use sqlx::mysql::MySqlConnectOptions;
use sqlx::{ConnectOptions, Connection};

use super::{DbError, DbResult};

/// How long the first connection may take before the server counts as not answering.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);

/// MySQL's "access denied" error number.
const ER_ACCESS_DENIED: u16 = 1045;

/// Opens and closes one connection with `opts`; on failure, names `host:port` and the cause.
pub async fn reach(opts: &MySqlConnectOptions) -> DbResult<()> {
    let addr = format!("{}:{}", opts.get_host(), opts.get_port());
    let unreachable = |cause: String| DbError::Unreachable {
        addr: addr.clone(),
        cause,
    };
    match tokio::time::timeout(REACH_TIMEOUT, opts.connect()).await {
        Err(_) => Err(unreachable(format!(
            "no answer within {} s (a server that is stopped or overloaded, or a firewall \
             dropping packets)",
            REACH_TIMEOUT.as_secs()
        ))),
        Ok(Ok(conn)) => {
            // Closing politely only saves the server a warning; its failure changes nothing.
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(unreachable(cause(&e))),
    }
}

/// The cause of a failed connection in an operator's words, never the password.
fn cause(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => {
                "connection refused (is MySQL running and listening on that address?)".into()
            }
            ErrorKind::TimedOut => "connection timed out".into(),
            ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
                format!("unreachable ({io})")
            }
            // Name resolution failures have no kind of their own; their text says it.
            _ if io.to_string().contains("lookup") => {
                format!("the host name does not resolve ({io})")
            }
            _ => io.to_string(),
        },
        sqlx::Error::Database(db) => {
            let number = db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(|m| m.number());
            if number == Some(ER_ACCESS_DENIED) {
                format!("access denied: {}", db.message())
            } else {
                db.message().to_owned()
            }
        }
        sqlx::Error::Tls(t) => format!("TLS: {t}"),
        other => other.to_string(),
    }
}
