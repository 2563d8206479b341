//! Client addresses behind reverse proxies: IP networks (`10.0.0.0/8`, `fd00::/8`) for the
//! `trusted_proxies` setting, and the `X-Forwarded-For` walk that finds the client a trusted
//! proxy saw. Pure, no IO.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An IP network: an address and a prefix length. A bare address is a network of one
/// (`/32`, `/128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Why a network or address did not parse. The message names the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NetParseError(String);

impl IpNet {
    /// Whether `ip` is inside this network. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what
    /// a dual-stack listener reports for IPv4 peers) match as the IPv4 address they carry.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask_v4(self.prefix);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask_v6(self.prefix);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for IpNet {
    type Err = NetParseError;

    /// `a.b.c.d`, `a.b.c.d/n` (n ≤ 32), an IPv6 address, or one with `/n` (n ≤ 128). Bits
    /// set below the prefix (`10.0.0.1/8`) are refused rather than guessed at: the entry is
    /// either a typo for a host or for a network. IPv4-mapped IPv6 networks become the IPv4
    /// network they denote, so that both spellings match the same peers.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| NetParseError(format!("{s:?}: {why}"));
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| bad("not an IPv4 or IPv6 address or network"))?;
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            // Digits only: `u8::from_str` would accept `+8`.
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| bad(&format!("prefix length must be 0..={max}")))?,
            Some(_) => return Err(bad(&format!("prefix length must be 0..={max}"))),
        };
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (addr, prefix),
            },
            _ => (addr, prefix),
        };
        let host_bits_set = match addr {
            IpAddr::V4(a) => u32::from(a) & !mask_v4(prefix) != 0,
            IpAddr::V6(a) => u128::from(a) & !mask_v6(prefix) != 0,
        };
        if host_bits_set {
            return Err(bad("bits are set below the prefix length"));
        }
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for IpNet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.trim().parse().map_err(serde::de::Error::custom)
    }
}

/// Parses a comma-separated list of networks (the environment form of `trusted_proxies`).
/// Empty items are skipped, so an empty string is an empty list.
pub fn parse_net_list(list: &str) -> Result<Vec<IpNet>, NetParseError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect()
}

/// Whether any network in `trusted` contains `ip`.
pub fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    trusted.iter().any(|n| n.contains(ip))
}

/// One `X-Forwarded-For` entry: an address, optionally bracketed (IPv6) or with a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`, as Azure's gateways write). Anything else
/// (`unknown`, obfuscated identifiers, zone ids) is `None`.
fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = entry.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|e| e.parse::<Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

/// The client's address. With an untrusted `peer` (or no trusted proxies) it is the peer:
/// its `X-Forwarded-For` is ignored, since a client must not pick its own address. With a
/// trusted peer, `forwarded_for` (the `X-Forwarded-For` values in the order they arrived) is
/// walked from the right: each trusted address vouches for the entry to its left, and the
/// first untrusted one is the client. When the walk runs out (every entry is a trusted
/// proxy) or meets an entry it cannot read, the answer is the last address it reached: a
/// trusted proxy whose report cannot be used, never a value only the client wrote.
/// Addresses come back canonical (IPv4-mapped IPv6 as IPv4), so one client has one address.
pub fn client_addr<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let mut current = peer.to_canonical();
    if !is_trusted(trusted, current) {
        return current;
    }
    let entries: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|v| v.split(','))
        .collect();
    for entry in entries.into_iter().rev() {
        let Some(ip) = parse_forwarded_entry(entry) else {
            return current;
        };
        current = ip.to_canonical();
        if !is_trusted(trusted, current) {
            return current;
        }
    }
    current
}

/// The unspecified IPv4 address, for requests without connection information.
pub const UNKNOWN_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_match() {
        let n = net("10.0.0.0/8");
        assert!(n.contains(ip("10.0.0.0")));
        assert!(n.contains(ip("10.255.255.255")));
        assert!(!n.contains(ip("11.0.0.0")));
        assert!(!n.contains(ip("9.255.255.255")));
        let host = net("192.0.2.7");
        assert_eq!(host.to_string(), "192.0.2.7/32");
        assert!(host.contains(ip("192.0.2.7")));
        assert!(!host.contains(ip("192.0.2.8")));
        let odd = net("172.16.0.0/12");
        assert!(odd.contains(ip("172.31.255.255")));
        assert!(!odd.contains(ip("172.32.0.0")));
        let all4 = net("0.0.0.0/0");
        assert!(all4.contains(ip("203.0.113.9")));
        assert!(!all4.contains(ip("2001:db8::1")));
        let v6 = net("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("32.1.13.184")));
        assert!(net("::1").contains(ip("::1")));
        assert!(!net("::1").contains(ip("::2")));
        assert!(net("::/0").contains(ip("fe80::1")));
        assert!(net("fd00::/8").contains(ip("fdff::1")));
        assert!(!net("fd00::/8").contains(ip("fe00::1")));
        assert_eq!(
            net("2001:db8::1/128"),
            IpNet {
                addr: ip("2001:db8::1"),
                prefix: 128
            }
        );
    }

    #[test]
    fn ipv4_mapped_addresses_match_ipv4_networks() {
        // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
        assert!(net("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        assert!(net("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        // A mapped network is the IPv4 network it denotes.
        assert_eq!(net("::ffff:10.0.0.0/104"), net("10.0.0.0/8"));
        assert_eq!(net("::ffff:127.0.0.1"), net("127.0.0.1"));
        assert!(net("::ffff:10.0.0.0/104").contains(ip("10.9.9.9")));
    }

    #[test]
    fn invalid_networks_are_refused() {
        for bad in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "10.0.0.0/ 8",
            "10.0.0.0/0008",
            "2001:db8::/129",
            "10.0.0.1/8",
            "2001:db8::1/32",
            "10.0.0",
            "10.0.0.256",
            "localhost",
            "10.0.0.0/8,",
            "[::1]",
            "fe80::1%eth0",
            "1.2.3.4:80",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad:?} parsed");
        }
        let e = "10.0.0.1/8".parse::<IpNet>().unwrap_err().to_string();
        assert!(
            e.contains("10.0.0.1/8") && e.contains("below the prefix"),
            "{e}"
        );
    }

    #[test]
    fn lists_are_comma_separated() {
        assert_eq!(parse_net_list("").unwrap(), vec![]);
        assert_eq!(
            parse_net_list(" 10.0.0.0/8 , ::1,").unwrap(),
            vec![net("10.0.0.0/8"), net("::1")]
        );
        let e = parse_net_list("10.0.0.0/8, nope").unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
    }

    fn walk(peer: &str, xff: &[&str], trusted: &[&str]) -> IpAddr {
        let trusted: Vec<IpNet> = trusted.iter().map(|t| net(t)).collect();
        client_addr(ip(peer), xff.iter().copied(), &trusted)
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        assert_eq!(walk("192.0.2.1", &["198.51.100.1"], &[]), ip("192.0.2.1"));
        assert_eq!(walk("192.0.2.1", &[], &[]), ip("192.0.2.1"));
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address() {
        let trusted = ["10.0.0.0/8"];
        assert_eq!(
            walk("192.0.2.1", &["10.0.0.1, 198.51.100.1"], &trusted),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn a_trusted_proxy_reports_its_peer() {
        let trusted = ["10.0.0.1"];
        assert_eq!(
            walk("10.0.0.1", &["203.0.113.5"], &trusted),
            ip("203.0.113.5")
        );
        // Absent header: the proxy itself.
        assert_eq!(walk("10.0.0.1", &[], &trusted), ip("10.0.0.1"));
        assert_eq!(walk("10.0.0.1", &[""], &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn spoofed_leftmost_entries_are_ignored() {
        // The client sent `X-Forwarded-For: 1.1.1.1, 10.0.0.9`; the proxy appended its peer.
        let trusted = ["10.0.0.0/8"];
        assert_eq!(
            walk("10.0.0.1", &["1.1.1.1, 10.0.0.9, 203.0.113.5"], &trusted),
            ip("203.0.113.5")
        );
        // The same spoof split over several header lines.
        assert_eq!(
            walk(
                "10.0.0.1",
                &["1.1.1.1", "10.0.0.9", "203.0.113.5"],
                &trusted
            ),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn chains_of_trusted_proxies_are_walked() {
        // CDN (10.1.0.0/16) -> load balancer (10.2.0.1) -> nginx (peer 10.3.0.1).
        let trusted = ["10.1.0.0/16", "10.2.0.1", "10.3.0.1"];
        assert_eq!(
            walk(
                "10.3.0.1",
                &["6.6.6.6, 203.0.113.5, 10.1.4.4, 10.2.0.1"],
                &trusted
            ),
            ip("203.0.113.5")
        );
        // A hop that is not trusted ends the walk, even if it claims to forward for others.
        assert_eq!(
            walk("10.3.0.1", &["203.0.113.5, 198.51.100.7"], &trusted),
            ip("198.51.100.7")
        );
        // Every entry trusted: the leftmost, which a trusted proxy wrote.
        assert_eq!(
            walk("10.3.0.1", &["10.1.0.9, 10.2.0.1"], &trusted),
            ip("10.1.0.9")
        );
    }

    #[test]
    fn ipv6_clients_and_proxies() {
        let trusted = ["2001:db8:1::/48", "127.0.0.1"];
        assert_eq!(
            walk("2001:db8:1::10", &["2001:db8:ffff::7"], &trusted),
            ip("2001:db8:ffff::7")
        );
        assert_eq!(
            walk("::ffff:127.0.0.1", &["[2001:db8:ffff::7]:4711"], &trusted),
            ip("2001:db8:ffff::7")
        );
        assert_eq!(
            walk("127.0.0.1", &["2001:db8:ffff::7, 2001:db8:1::3"], &trusted),
            ip("2001:db8:ffff::7")
        );
        // Mapped addresses come back as IPv4, so one client has one bucket.
        assert_eq!(
            walk("127.0.0.1", &["::ffff:203.0.113.5"], &trusted),
            ip("203.0.113.5")
        );
        assert_eq!(walk("::ffff:192.0.2.1", &[], &[]), ip("192.0.2.1"));
        assert_eq!(walk("127.0.0.1", &["[::1]"], &trusted), ip("::1"));
        assert_eq!(
            walk("127.0.0.1", &["203.0.113.5:51000"], &trusted),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn garbage_stops_at_the_last_trusted_hop() {
        let trusted = ["10.0.0.0/8"];
        for xff in [
            "unknown",
            "not an address",
            "203.0.113.5 198.51.100.1",
            "300.1.1.1",
            "_hidden",
            "fe80::1%eth0",
            "203.0.113.5,",
            ",",
        ] {
            assert_eq!(
                walk("10.0.0.1", &[xff], &trusted),
                ip("10.0.0.1"),
                "{xff:?}"
            );
        }
        // Garbage behind a readable trusted hop: that hop, not what lies left of the garbage.
        assert_eq!(
            walk("10.0.0.1", &["203.0.113.5, unknown, 10.0.0.2"], &trusted),
            ip("10.0.0.2")
        );
        // Garbage left of the client is never reached.
        assert_eq!(
            walk("10.0.0.1", &["unknown, 203.0.113.5"], &trusted),
            ip("203.0.113.5")
        );
    }
}
