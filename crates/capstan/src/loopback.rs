//! Keeping a `command` web app on loopback: it is proxied to at 127.0.0.1:$PORT,
//! and one that listens on every interface is reachable directly, without TLS,
//! limits or logs. The variables the usual servers read for their address are
//! set for it, and what it really listens on is read from /proc/net/tcp{,6}.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The variables that make the usual servers listen on 127.0.0.1:`port`, each
/// only when the app's own environment does not set it: `PORT` and `HOST`
/// (Heroku's convention), `GUNICORN_CMD_ARGS` (gunicorn binds 0.0.0.0:$PORT
/// when PORT is set and no bind is given), `UVICORN_HOST`, and `FLASK_RUN_HOST`
/// / `FLASK_RUN_PORT` (`flask run`).
pub fn command_env(env: &[(OsString, OsString)], port: u16) -> Vec<(OsString, OsString)> {
    let loopback = "127.0.0.1";
    let wanted = [
        ("PORT", port.to_string()),
        ("HOST", loopback.to_owned()),
        ("GUNICORN_CMD_ARGS", format!("--bind={loopback}:{port}")),
        ("UVICORN_HOST", loopback.to_owned()),
        ("FLASK_RUN_HOST", loopback.to_owned()),
        ("FLASK_RUN_PORT", port.to_string()),
    ];
    let mut out = env.to_vec();
    for (key, value) in wanted {
        // PORT is capstan's to give: the proxy connects there.
        if key == "PORT" || !env.iter().any(|(k, _)| k == key) {
            out.retain(|(k, _)| k != key);
            out.push((key.into(), value.into()));
        }
    }
    out
}

/// A listening socket on `port` that is not on loopback (0.0.0.0, ::, or an
/// interface's address), if there is one.
pub fn exposed(port: u16) -> Option<SocketAddr> {
    let mut found = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        if let Ok(text) = std::fs::read_to_string(file) {
            found.extend(listening(&text, v6, port));
        }
    }
    found
        .into_iter()
        .find(|ip| !is_loopback(*ip))
        .map(|ip| SocketAddr::new(ip, port))
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The local addresses of the LISTEN sockets on `port` in a /proc/net/tcp{,6} table.
fn listening(table: &str, v6: bool, port: u16) -> Vec<IpAddr> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            let (addr, local_port) = local.split_once(':')?;
            (state == LISTEN && u16::from_str_radix(local_port, 16).ok()? == port)
                .then(|| parse_addr(addr, v6))
                .flatten()
        })
        .collect()
}

/// The kernel prints each 32-bit word of the address as a hex number in the
/// machine's byte order.
fn parse_addr(hex: &str, v6: bool) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let text = hex.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(text, 16).ok()?.to_ne_bytes())
    };
    if !v6 {
        return (hex.len() == 8)
            .then(|| word(0))
            .flatten()
            .map(|b| Ipv4Addr::from(b).into());
    }
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for i in 0..4 {
        bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
    }
    Some(Ipv6Addr::from(bytes).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_entries_for_the_port_are_read_from_the_tables() {
        // 127.0.0.1:8080 and 0.0.0.0:8080 listening, one connection on 8080.
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0 100 0 0 10 0\n\
   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2 1 0 100 0 0 10 0\n\
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 3 1 0 100 0 0 10 0\n\
   3: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4 1 0 100 0 0 10 0\n";
        let ips = listening(tcp, false, 8080);
        assert_eq!(
            ips,
            [IpAddr::from([127, 0, 0, 1]), IpAddr::from([0, 0, 0, 0])]
        );
        let tcp6 = "  sl  local_address                         remote_address                        st\n\
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 5\n\
   1: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 6\n";
        assert_eq!(
            listening(tcp6, true, 8080),
            [
                IpAddr::from(Ipv6Addr::UNSPECIFIED),
                IpAddr::from(Ipv6Addr::LOCALHOST)
            ]
        );
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_loopback("0.0.0.0".parse().unwrap()));
    }

    #[test]
    fn a_socket_bound_here_is_seen_with_its_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(exposed(port), None);
        let text = std::fs::read_to_string("/proc/net/tcp").unwrap();
        assert_eq!(
            listening(&text, false, port),
            [IpAddr::from([127, 0, 0, 1])]
        );
    }

    #[test]
    fn the_app_s_own_values_are_kept_but_port_is_capstan_s() {
        let env = vec![
            (OsString::from("HOST"), OsString::from("0.0.0.0")),
            (OsString::from("PORT"), OsString::from("1")),
        ];
        let out = command_env(&env, 4000);
        let get = |key: &str| {
            out.iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.to_str().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("HOST"), ["0.0.0.0"]);
        assert_eq!(get("PORT"), ["4000"]);
        assert_eq!(get("GUNICORN_CMD_ARGS"), ["--bind=127.0.0.1:4000"]);
        assert_eq!(get("UVICORN_HOST"), ["127.0.0.1"]);
        assert_eq!(get("FLASK_RUN_HOST"), ["127.0.0.1"]);
        assert_eq!(get("FLASK_RUN_PORT"), ["4000"]);
    }
}
