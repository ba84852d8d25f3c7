//! The `[http]` table: settings for capstan's edge.

use std::net::IpAddr;

use crate::app::HttpSettings;
use crate::error::ConfigError;
use crate::toml_tree::Table;

const HTTP_KEYS: &[&str] = &[
    "trusted_proxies",
    "max_body_size",
    "access_log",
    "compression",
    "hsts",
    "https_redirect",
    "client_timeout",
];

/// Reads `[http]`; absent keys keep their defaults.
pub(crate) fn read_http(table: &Table<'_>) -> Result<HttpSettings, ConfigError> {
    table.check_keys(HTTP_KEYS)?;
    let mut http = HttpSettings::default();
    for f in table.fields() {
        match f.key {
            "trusted_proxies" => {
                http.trusted_proxies = f
                    .array()?
                    .iter()
                    .map(|e| parse_net(e.str()?).map_err(|msg| e.bad(msg)))
                    .collect::<Result<_, _>>()?;
            }
            "max_body_size" => http.max_body_size = f.size()?,
            "access_log" => http.access_log = f.bool()?,
            "compression" => http.compression = f.bool()?,
            "hsts" => http.hsts = f.bool()?,
            "https_redirect" => http.https_redirect = f.bool()?,
            "client_timeout" => {
                let timeout = f.duration()?;
                if timeout.is_zero() {
                    return Err(f.bad("must be more than 0 (e.g. \"30s\")"));
                }
                http.client_timeout = timeout;
            }
            _ => unreachable!(),
        }
    }
    Ok(http)
}

/// `"10.0.0.0/8"` or a bare address (a one-address network).
fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    if let Ok(net) = s.parse::<ipnet::IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<IpAddr>().map(ipnet::IpNet::from).map_err(|_| {
        format!(
            "{s:?} is not an IP address or network (use e.g. \"10.0.0.0/8\" or \"192.168.1.10\")"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toml_tree::Doc;
    use std::path::Path;

    fn read(text: &str) -> Result<HttpSettings, ConfigError> {
        let doc = Doc {
            file: Path::new("capstan.toml"),
            text,
        };
        let item = doc.parse()?;
        let top = doc.root(&item);
        read_http(&top.get("http").unwrap().table()?)
    }

    #[test]
    fn absent_keys_keep_their_defaults() {
        assert_eq!(read("[http]\n").unwrap(), HttpSettings::default());
        let http = read("[http]\nhsts = false\nmax_body_size = 1024\n").unwrap();
        assert!(!http.hsts && http.compression && http.access_log && http.https_redirect);
        assert!(
            !read("[http]\nhttps_redirect = false\n")
                .unwrap()
                .https_redirect
        );
        assert_eq!(http.max_body_size, 1024);
    }

    #[test]
    fn proxies_are_networks_or_single_addresses() {
        let http =
            read("[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\", \"192.168.7.9/24\"]\n")
                .unwrap();
        let nets: Vec<String> = http.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["10.0.0.0/8", "::1/128", "192.168.7.0/24"]);
    }

    #[test]
    fn every_mistake_names_file_line_and_key() {
        let cases: &[(&str, &str)] = &[
            ("[http]\ntrusted_proxies = [\"10.0.0.0/33\"]\n", "capstan.toml:2: bad value for `trusted_proxies`: \"10.0.0.0/33\" is not an IP address or network"),
            ("[http]\nmax_body_size = \"lots\"\n", "capstan.toml:2: bad value for `max_body_size`: \"lots\" is not a size"),
            ("[http]\nmax_body_size = true\n", "capstan.toml:2: bad value for `max_body_size`: expected a size like \"100MiB\", found a boolean"),
            ("[http]\nhsts = \"yes\"\n", "capstan.toml:2: bad value for `hsts`: expected true or false, found a string"),
            ("[http]\ngzip = true\n", "capstan.toml:2: unknown key `gzip` in [http]; expected one of: trusted_proxies, max_body_size, access_log, compression, hsts"),
        ];
        for (text, want) in cases {
            let got = read(text).unwrap_err().to_string();
            assert!(
                got.starts_with(want),
                "for {text:?}\n got: {got}\nwant: {want}"
            );
        }
    }
}
