//! The algorithm lists of ssh-audit's hardening guides, cut to what one OpenSSH
//! version knows: sshd refuses to start on a name it has never heard of, so each
//! name carries the release that brought it.
//!
//! The guides' choices: no NIST curves, no SHA-1, no CBC, no chacha20-poly1305
//! (Terrapin), no ECDSA or DSA keys; RSA only with SHA-2.

type Version = (u32, u32);

/// `(name, first OpenSSH release that has it)`, in order of preference.
const KEX: &[(&str, Version)] = &[
    ("mlkem768x25519-sha256", (9, 9)),
    ("sntrup761x25519-sha512", (9, 9)),
    ("sntrup761x25519-sha512@openssh.com", (8, 5)),
    ("curve25519-sha256", (7, 4)),
    ("curve25519-sha256@libssh.org", (6, 5)),
    ("diffie-hellman-group16-sha512", (7, 3)),
    ("diffie-hellman-group18-sha512", (7, 3)),
    ("diffie-hellman-group-exchange-sha256", (4, 4)),
];

const CIPHERS: &[(&str, Version)] = &[
    ("aes256-gcm@openssh.com", (6, 2)),
    ("aes128-gcm@openssh.com", (6, 2)),
    ("aes256-ctr", (3, 7)),
    ("aes192-ctr", (3, 7)),
    ("aes128-ctr", (3, 7)),
];

const MACS: &[(&str, Version)] = &[
    ("hmac-sha2-256-etm@openssh.com", (6, 2)),
    ("hmac-sha2-512-etm@openssh.com", (6, 2)),
    ("umac-128-etm@openssh.com", (6, 2)),
];

const HOST_KEY: &[(&str, Version)] = &[
    ("sk-ssh-ed25519-cert-v01@openssh.com", (8, 2)),
    ("ssh-ed25519-cert-v01@openssh.com", (6, 5)),
    ("rsa-sha2-512-cert-v01@openssh.com", (7, 8)),
    ("rsa-sha2-256-cert-v01@openssh.com", (7, 8)),
    ("sk-ssh-ed25519@openssh.com", (8, 2)),
    ("ssh-ed25519", (6, 5)),
    ("rsa-sha2-512", (7, 2)),
    ("rsa-sha2-256", (7, 2)),
];

const CA_SIGNATURE: &[(&str, Version)] = &[
    ("sk-ssh-ed25519@openssh.com", (8, 2)),
    ("ssh-ed25519", (6, 5)),
    ("rsa-sha2-512", (7, 2)),
    ("rsa-sha2-256", (7, 2)),
];

/// Keys users and hosts may log in with (PubkeyAcceptedAlgorithms,
/// HostbasedAcceptedAlgorithms).
const ACCEPTED_KEYS: &[(&str, Version)] = &[
    ("sk-ssh-ed25519-cert-v01@openssh.com", (8, 2)),
    ("ssh-ed25519-cert-v01@openssh.com", (6, 5)),
    ("sk-ssh-ed25519@openssh.com", (8, 2)),
    ("ssh-ed25519", (6, 5)),
    ("rsa-sha2-512-cert-v01@openssh.com", (7, 8)),
    ("rsa-sha2-512", (7, 2)),
    ("rsa-sha2-256-cert-v01@openssh.com", (7, 8)),
    ("rsa-sha2-256", (7, 2)),
];

fn pick(list: &[(&'static str, Version)], version: Version) -> Vec<&'static str> {
    list.iter()
        .filter(|(_, since)| *since <= version)
        .map(|(name, _)| *name)
        .collect()
}

pub(crate) fn kex(v: Version) -> Vec<&'static str> {
    pick(KEX, v)
}
pub(crate) fn ciphers(v: Version) -> Vec<&'static str> {
    pick(CIPHERS, v)
}
pub(crate) fn macs(v: Version) -> Vec<&'static str> {
    pick(MACS, v)
}
pub(crate) fn host_key(v: Version) -> Vec<&'static str> {
    pick(HOST_KEY, v)
}
pub(crate) fn ca_signature(v: Version) -> Vec<&'static str> {
    pick(CA_SIGNATURE, v)
}
pub(crate) fn accepted_keys(v: Version) -> Vec<&'static str> {
    pick(ACCEPTED_KEYS, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_quantum_kex_only_where_it_exists() {
        assert!(!kex((8, 4)).contains(&"sntrup761x25519-sha512@openssh.com"));
        assert!(kex((8, 5)).contains(&"sntrup761x25519-sha512@openssh.com"));
        assert!(!kex((9, 8)).contains(&"mlkem768x25519-sha256"));
        assert_eq!(kex((9, 9))[0], "mlkem768x25519-sha256");
        assert_eq!(kex((10, 0))[0], "mlkem768x25519-sha256");
    }

    #[test]
    fn security_keys_from_8_2() {
        assert!(!host_key((8, 1)).contains(&"sk-ssh-ed25519@openssh.com"));
        assert!(host_key((8, 2)).contains(&"sk-ssh-ed25519@openssh.com"));
    }

    #[test]
    fn nothing_weak_ever() {
        for v in [(7, 4), (8, 4), (9, 2), (9, 9)] {
            for list in [kex(v), ciphers(v), macs(v), host_key(v), accepted_keys(v)] {
                for name in list {
                    assert!(!name.contains("nistp"), "{name}");
                    assert!(!name.contains("sha1"), "{name}");
                    assert!(!name.contains("cbc"), "{name}");
                    assert!(!name.contains("chacha20"), "{name}");
                    assert!(name != "ssh-rsa", "{name}");
                }
            }
        }
    }
}
