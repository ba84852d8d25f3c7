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
];

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
