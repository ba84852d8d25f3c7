//! Who the client is, from the peer address and the X-Forwarded-* headers.
//! No header may panic it; an untrusted peer is always the client, whatever it
//! sends; the scheme is only ever http or https.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use capstan_edge::forwarded::resolve;
use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let peer_ip = match flags & 3 {
        0 => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        1 => IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)),
        2 => IpAddr::V6(Ipv4Addr::new(10, 0, 0, 2).to_ipv6_mapped()),
        _ => IpAddr::V6(Ipv6Addr::LOCALHOST),
    };
    let peer = SocketAddr::new(peer_ip, 40000);
    let tls = flags & 4 != 0;
    let trusted: Vec<IpNet> = match (flags >> 3) & 3 {
        0 => vec![],
        1 => vec!["10.0.0.0/8".parse().unwrap()],
        2 => vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        _ => vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
    };
    // The rest: header values separated by NUL, for these names in turn.
    let names = [
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-for",
        "x-real-ip",
    ];
    let mut headers = HeaderMap::new();
    for (name, value) in names.iter().zip(rest.split(|&b| b == 0)) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(HeaderName::from_static(name), value);
        }
    }
    let client = resolve(peer, tls, &headers, &trusted);
    assert!(client.scheme == "http" || client.scheme == "https");
    assert_eq!(client.port, 40000);
    let canonical_peer = match peer_ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer_ip, IpAddr::V4),
        v4 => v4,
    };
    if !trusted.iter().any(|net| net.contains(&canonical_peer)) {
        assert_eq!(client.ip, canonical_peer);
        assert_eq!(client.scheme, if tls { "https" } else { "http" });
        assert_eq!(client.forwarded_for, canonical_peer.to_string());
    }
    // What goes to the app must be a valid header value (the proxy sends it as one).
    assert!(
        HeaderValue::from_str(&client.forwarded_for).is_ok(),
        "{:?}",
        client.forwarded_for
    );
    assert!(client.forwarded_for.ends_with(&canonical_peer.to_string()));
});
