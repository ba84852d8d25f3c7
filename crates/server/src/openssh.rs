//! The OpenSSH version, read from what `sshd -V` or `ssh -V` print.

/// The `(major, minor)` of an OpenSSH version line such as
/// `OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.11 19 Sep 2023`, or `None` when the
/// text is not one. The portable release (`p1`) and the distribution's patch level
/// do not change which options and algorithms exist, so they are dropped.
pub fn parse_openssh_version(text: &str) -> Option<(u32, u32)> {
    let start = text.find("OpenSSH_")? + "OpenSSH_".len();
    let rest = &text[start..];
    let (major, rest) = leading_number(rest)?;
    let rest = rest.strip_prefix('.')?;
    let (minor, _) = leading_number(rest)?;
    Some((major, minor))
}

fn leading_number(s: &str) -> Option<(u32, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n = s[..end].parse().ok()?;
    Some((n, &s[end..]))
}

#[cfg(test)]
mod tests {
    use super::parse_openssh_version as v;

    #[test]
    fn real_version_lines() {
        assert_eq!(
            v("OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.11 19 Sep 2023"),
            Some((9, 2))
        );
        assert_eq!(v("OpenSSH_9.2, OpenSSL 3.0.19 27 Jan 2026"), Some((9, 2)));
        assert_eq!(
            v("OpenSSH_8.9p1 Ubuntu-3ubuntu0.10, OpenSSL 3.0.2 15 Mar 2022"),
            Some((8, 9))
        );
        assert_eq!(
            v("OpenSSH_9.6p1 Ubuntu-3ubuntu13.5, OpenSSL 3.0.13 30 Jan 2024"),
            Some((9, 6))
        );
        assert_eq!(
            v("OpenSSH_8.4p1 Raspbian-5+deb11u3, OpenSSL 1.1.1w  11 Sep 2023"),
            Some((8, 4))
        );
        assert_eq!(
            v("OpenSSH_10.0p2 Debian-7, OpenSSL 3.5.1 1 Jul 2025"),
            Some((10, 0))
        );
        // sshd prints its usage after the version when given -V on old releases.
        assert_eq!(
            v("unknown option -- V\nOpenSSH_7.4p1, OpenSSL 1.0.2k-fips"),
            Some((7, 4))
        );
    }

    #[test]
    fn not_openssh() {
        assert_eq!(v(""), None);
        assert_eq!(v("dropbear v2022.83"), None);
        assert_eq!(v("OpenSSH_x.2"), None);
        assert_eq!(v("OpenSSH_9"), None);
    }
}
