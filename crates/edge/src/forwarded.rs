//! Who the client is: the peer address, or, behind a trusted proxy, what the
//! proxy says in X-Forwarded-For / X-Forwarded-Proto.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

/// The client as the app should see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The client's address (REMOTE_ADDR).
    pub ip: IpAddr,
    /// The client's port (REMOTE_PORT); the peer's port when a proxy is in between.
    pub port: u16,
    /// "http" or "https" as the client used it.
    pub scheme: &'static str,
    /// The X-Forwarded-For value to hand the app: the trusted chain plus the peer.
    pub forwarded_for: String,
}

/// Works out the client of a request that arrived from `peer`.
///
/// SECURITY: forwarding headers are only believed when the peer itself is a
/// trusted proxy; otherwise they are replaced, so a client cannot spoof its
/// address or scheme. Behind trusted proxies, the client is the rightmost
/// address in X-Forwarded-For that is not itself a trusted proxy.
pub fn resolve(peer: SocketAddr, tls: bool, headers: &HeaderMap, trusted: &[IpNet]) -> Client {
    let peer_ip = canonical(peer.ip());
    let own_scheme = if tls { "https" } else { "http" };
    if !is_trusted(peer_ip, trusted) {
        return Client {
            ip: peer_ip,
            port: peer.port(),
            scheme: own_scheme,
            forwarded_for: peer_ip.to_string(),
        };
    }
    let chain: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let mut client_ip = peer_ip;
    for hop in chain.iter().rev() {
        match parse_hop(hop) {
            Some(ip) => {
                client_ip = ip;
                if !is_trusted(ip, trusted) {
                    break;
                }
            }
            // An unparsable hop ends what can be believed.
            None => break,
        }
    }
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.rsplit(',')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        }) {
        Some(proto) if proto == "https" => "https",
        Some(proto) if proto == "http" => "http",
        _ => own_scheme,
    };
    let mut forwarded_for = chain.join(", ");
    if !forwarded_for.is_empty() {
        forwarded_for.push_str(", ");
    }
    forwarded_for.push_str(&peer_ip.to_string());
    Client {
        ip: client_ip,
        port: peer.port(),
        scheme,
        forwarded_for,
    }
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// IPv4 clients of a dual-stack socket show up as ::ffff:a.b.c.d.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A hop is an address, maybe with a port (`1.2.3.4:5678`, `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    hop.parse::<SocketAddr>().ok().map(|s| canonical(s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn an_untrusted_peer_cannot_spoof_its_address_or_scheme() {
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        let client = resolve(
            "9.9.9.9:5000".parse().unwrap(),
            false,
            &h,
            &nets(&["10.0.0.0/8"]),
        );
        assert_eq!(client.ip.to_string(), "9.9.9.9");
        assert_eq!(client.port, 5000);
        assert_eq!(client.scheme, "http");
        assert_eq!(client.forwarded_for, "9.9.9.9");
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client() {
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 1.2.3.4"),
            ("x-forwarded-for", "10.0.0.7"),
            ("x-forwarded-proto", "https"),
        ]);
        let client = resolve(
            "10.0.0.1:4000".parse().unwrap(),
            false,
            &h,
            &nets(&["10.0.0.0/8"]),
        );
        assert_eq!(client.ip.to_string(), "1.2.3.4");
        assert_eq!(client.scheme, "https");
        assert_eq!(client.forwarded_for, "6.6.6.6, 1.2.3.4, 10.0.0.7, 10.0.0.1");
    }

    #[test]
    fn a_trusted_proxy_without_headers_is_the_client_itself() {
        let client = resolve(
            "[::1]:80".parse().unwrap(),
            true,
            &HeaderMap::new(),
            &nets(&["::1/128"]),
        );
        assert_eq!(client.ip.to_string(), "::1");
        assert_eq!(client.scheme, "https");
    }

    #[test]
    fn ipv4_mapped_peers_are_shown_as_ipv4() {
        let client = resolve(
            "[::ffff:127.0.0.1]:80".parse().unwrap(),
            false,
            &HeaderMap::new(),
            &[],
        );
        assert_eq!(client.ip.to_string(), "127.0.0.1");
    }

    #[test]
    fn garbage_in_the_chain_stops_the_walk() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4, not-an-ip")]);
        let client = resolve(
            "10.0.0.1:1".parse().unwrap(),
            false,
            &h,
            &nets(&["10.0.0.0/8"]),
        );
        assert_eq!(client.ip.to_string(), "10.0.0.1");
    }
}
