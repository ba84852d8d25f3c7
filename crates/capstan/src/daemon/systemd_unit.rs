//! `capstan daemon --systemd-unit`: the unit file that runs this daemon
//! under systemd, with the root and addresses it was given.
//!
//! The hardening is only what leaves the daemon's root work working: it
//! makes system users (useradd writes /etc/passwd, /etc/group, /etc/shadow),
//! chowns app folders, switches each app's processes to its user, builds
//! venvs (pip's cache under /root) and keeps everything under its root. So
//! /etc and the homes stay writable (`ProtectSystem=true`, not `full` or
//! `strict`), and nothing that an app's Python may need is taken away
//! (no `MemoryDenyWriteExecute`: ctypes and cffi callbacks map writable
//! code; no `RestrictNamespaces` or system call filter: apps run arbitrary
//! programs; no `PrivateDevices`: an app may use a GPU).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

/// What the unit's `ExecStart` runs.
pub struct UnitArgs<'a> {
    /// This binary, absolute.
    pub program: &'a Path,
    /// The daemon's root, absolute.
    pub root: &'a Path,
    /// `--listen`, when it was given (else `<root>/capstan.toml` or the default).
    pub listen: Option<SocketAddr>,
    /// `--tls-listen`, when it was given.
    pub tls_listen: Option<SocketAddr>,
}

/// The unit file's text.
pub fn unit(args: &UnitArgs<'_>) -> String {
    let mut exec = vec![
        args.program.display().to_string(),
        "daemon".to_owned(),
        "--root".to_owned(),
        args.root.display().to_string(),
    ];
    if let Some(listen) = args.listen {
        exec.extend(["--listen".to_owned(), listen.to_string()]);
    }
    if let Some(tls_listen) = args.tls_listen {
        exec.extend(["--tls-listen".to_owned(), tls_listen.to_string()]);
    }
    let exec: Vec<String> = exec.iter().map(|arg| quote(arg)).collect();
    let mut text = String::new();
    let _ = write!(
        text,
        "\
# capstan daemon: every Python web app of this server, with their workers,
# processes, cron jobs, certificates and the control socket.
#   capstan daemon --systemd-unit > /etc/systemd/system/capstan.service
#   systemctl daemon-reload && systemctl enable --now capstan
[Unit]
Description=capstan: the web apps of this server
After=network-online.target
Wants=network-online.target

[Service]
Type=exec
ExecStart={exec}
# SIGTERM goes to the daemon alone: it lets requests in flight finish and
# stops every app's processes itself; whatever is left after
# TimeoutStopSec is killed.
KillMode=mixed
TimeoutStopSec=90
Restart=always
RestartSec=5
LimitNOFILE=65536
# Hardening that keeps what the daemon does as root working: /etc stays
# writable (it makes each app's system user), and so do the homes.
NoNewPrivileges=true
ProtectSystem=true
PrivateTmp=true
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectKernelLogs=true
ProtectControlGroups=true
ProtectClock=true
ProtectHostname=true
RestrictRealtime=true
RestrictSUIDSGID=true
LockPersonality=true

[Install]
WantedBy=multi-user.target
",
        exec = exec.join(" ")
    );
    text
}

/// One word of a systemd command line: specifiers (`%`) and variables
/// (`$`) are doubled so they stay literal, and a word with a space, quote
/// or backslash is double-quoted with C escapes (systemd.service(5),
/// "Command lines").
fn quote(word: &str) -> String {
    let literal = word.replace('%', "%%").replace('$', "$$");
    if literal.is_empty()
        || literal
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';'))
    {
        let mut quoted = String::from("\"");
        for c in literal.chars() {
            match c {
                '"' => quoted.push_str("\\\""),
                '\\' => quoted.push_str("\\\\"),
                '\n' => quoted.push_str("\\n"),
                '\t' => quoted.push_str("\\t"),
                c => quoted.push(c),
            }
        }
        quoted.push('"');
        quoted
    } else {
        literal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_start_names_the_binary_root_and_the_addresses_given() {
        let text = unit(&UnitArgs {
            program: Path::new("/usr/local/bin/capstan"),
            root: Path::new("/var/lib/capstan"),
            listen: Some("0.0.0.0:80".parse().unwrap()),
            tls_listen: Some("[::]:443".parse().unwrap()),
        });
        assert!(text.contains(
            "\nExecStart=/usr/local/bin/capstan daemon --root /var/lib/capstan \
             --listen 0.0.0.0:80 --tls-listen [::]:443\n"
        ));
        for line in [
            "Restart=always",
            "KillMode=mixed",
            "After=network-online.target",
            "Wants=network-online.target",
            "WantedBy=multi-user.target",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}");
        }
        // /etc must stay writable: the daemon makes users.
        assert!(!text.contains("ProtectSystem=full") && !text.contains("ProtectSystem=strict"));
        let bare = unit(&UnitArgs {
            program: Path::new("/usr/bin/capstan"),
            root: Path::new("/srv/capstan"),
            listen: None,
            tls_listen: None,
        });
        assert!(bare.contains("\nExecStart=/usr/bin/capstan daemon --root /srv/capstan\n"));
    }

    #[test]
    fn odd_paths_are_quoted_for_systemd() {
        assert_eq!(quote("/srv/my apps"), "\"/srv/my apps\"");
        assert_eq!(quote("/srv/100%"), "/srv/100%%");
        assert_eq!(quote("/srv/$HOME"), "/srv/$$HOME");
        assert_eq!(quote("/srv/a\"b\\c"), "\"/srv/a\\\"b\\\\c\"");
        assert_eq!(quote("/srv/a;b"), "\"/srv/a;b\"");
    }
}
