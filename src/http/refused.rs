//! Requests refused before authentication (no token, a wrong one, an address over its failure
//! limit), counted per client address and reason. Whoever has no token must not cost a
//! database write per request: the counts reach the sync log as one row per address and
//! reason, at most once a minute (`app.rs` writes them).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::provisioning::service::now;
use crate::scim::resource::datetime;

/// Why a request was refused before it reached a handler. A closed set: it is part of the key
/// of the tally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// No `Authorization: Bearer` header.
    MissingToken,
    /// A token that is malformed, unknown, revoked, expired or wrong.
    InvalidToken,
    /// The address is over `auth_failures_per_minute`.
    RateLimited,
}

impl Refusal {
    /// The status the client got.
    pub fn status(self) -> u16 {
        match self {
            Refusal::MissingToken | Refusal::InvalidToken => 401,
            Refusal::RateLimited => 429,
        }
    }

    /// A stable name, for the sync log's details.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::MissingToken => "missing-token",
            Refusal::InvalidToken => "invalid-token",
            Refusal::RateLimited => "rate-limited",
        }
    }

    /// What the sync log's summary says.
    fn describe(self) -> &'static str {
        match self {
            Refusal::MissingToken => "no bearer token",
            Refusal::InvalidToken => "invalid, expired or revoked token",
            Refusal::RateLimited => "too many failed attempts from the address",
        }
    }
}

/// Distinct (address, reason) pairs kept between two writes. Beyond it, refusals from further
/// addresses are counted under one key per reason: the tally's memory and the rows it writes
/// stay bounded when the addresses are many (an IPv6 network holds more than anyone can
/// store).
pub const MAX_KEYS: usize = 256;

/// Refusals of one address (or, for `client: None`, of the addresses beyond [`MAX_KEYS`]) for
/// one reason since the last write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedTally {
    pub client: Option<IpAddr>,
    pub reason: Refusal,
    pub count: u64,
    /// Unix time of the first and last refusal counted.
    pub first_seen: u32,
    pub last_seen: u32,
}

impl RefusedTally {
    /// The sync log's one-line summary, e.g. `1000 requests from 192.0.2.7 refused: no bearer
    /// token`.
    pub fn summary(&self) -> String {
        let who = match self.client {
            Some(ip) => ip.to_string(),
            None => "other addresses".to_owned(),
        };
        let requests = if self.count == 1 {
            "request"
        } else {
            "requests"
        };
        format!(
            "{} {requests} from {who} refused: {}",
            self.count,
            self.reason.describe()
        )
    }

    /// The sync log's details: the same facts, for programs (the extension's event list shows
    /// each as a line, so the times are RFC 3339, not epochs).
    pub fn details(&self) -> serde_json::Value {
        serde_json::json!({
            "client": self.client.map_or_else(|| "other".to_owned(), |ip| ip.to_string()),
            "reason": self.reason.as_str(),
            "count": self.count,
            "firstSeen": datetime(self.first_seen),
            "lastSeen": datetime(self.last_seen),
        })
    }
}

/// The tally of refused requests since the last write.
#[derive(Debug, Default)]
pub struct RefusedRequests {
    tallies: Mutex<HashMap<(Option<IpAddr>, Refusal), RefusedTally>>,
}

impl RefusedRequests {
    /// Counts one refusal.
    pub fn record(&self, client: IpAddr, reason: Refusal) {
        let Ok(mut tallies) = self.tallies.lock() else {
            return;
        };
        let mut key = (Some(client), reason);
        if !tallies.contains_key(&key) && tallies.len() >= MAX_KEYS {
            key = (None, reason);
        }
        let ts = now();
        tallies
            .entry(key)
            .or_insert_with(|| RefusedTally {
                client: key.0,
                reason,
                count: 0,
                first_seen: ts,
                last_seen: ts,
            })
            .count += 1;
        if let Some(t) = tallies.get_mut(&key) {
            t.last_seen = ts;
        }
    }

    /// Takes the tallies, ordered by address and reason, leaving none.
    pub fn take(&self) -> Vec<RefusedTally> {
        let Ok(mut tallies) = self.tallies.lock() else {
            return Vec::new();
        };
        let mut out: Vec<RefusedTally> = tallies.drain().map(|(_, t)| t).collect();
        out.sort_by_key(|t| (t.client, t.reason));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_per_address_and_reason() {
        let r = RefusedRequests::default();
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        for _ in 0..1000 {
            r.record(a, Refusal::MissingToken);
        }
        r.record(a, Refusal::RateLimited);
        r.record(b, Refusal::InvalidToken);
        let t = r.take();
        let counts: Vec<(Option<IpAddr>, Refusal, u64)> =
            t.iter().map(|t| (t.client, t.reason, t.count)).collect();
        assert_eq!(
            counts,
            vec![
                (Some(a), Refusal::MissingToken, 1000),
                (Some(a), Refusal::RateLimited, 1),
                (Some(b), Refusal::InvalidToken, 1),
            ]
        );
        assert_eq!(
            t[0].summary(),
            "1000 requests from 192.0.2.7 refused: no bearer token"
        );
        assert_eq!(t[0].details()["count"], 1000);
        assert_eq!(t[2].details()["reason"], "invalid-token");
        assert!(r.take().is_empty());
    }

    #[test]
    fn addresses_beyond_the_cap_share_one_key() {
        let r = RefusedRequests::default();
        for i in 0..(MAX_KEYS as u32 + 5000) {
            r.record(
                IpAddr::from(std::net::Ipv6Addr::from(
                    (0x2001_0db8_u128 << 96) + u128::from(i),
                )),
                Refusal::MissingToken,
            );
        }
        let t = r.take();
        assert_eq!(t.len(), MAX_KEYS + 1);
        let other = t.iter().find(|t| t.client.is_none()).unwrap();
        assert_eq!(other.count, 5000);
        assert_eq!(
            other.summary(),
            "5000 requests from other addresses refused: no bearer token"
        );
        assert_eq!(
            t.iter().map(|t| t.count).sum::<u64>(),
            MAX_KEYS as u64 + 5000
        );
    }
}
