//! HTTPS in `capstan daemon` against a real ACME server (Pebble on
//! loopback): a certificate per app's domain chosen by SNI, plain HTTP
//! redirected once a domain has one, certificates loaded back after a
//! restart without a new order; the errors a person can make; and the
//! systemd unit checked by `systemd-analyze verify`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon_support::{flask_app, AppUserGuard, Checkout, Daemon};
use crate::fixture::{self, free_port};
use crate::pebble::{Pebble, PebbleOpts};

const ONE: &str = "one.capstan.test";
const TWO: &str = "two.capstan.test";

/// A temp folder the apps' users can reach (as root they run as capstan-<app>).
fn reachable_temp() -> tempfile::TempDir {
    let temp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    temp
}

/// `<root>/capstan.toml` naming `directory` as the ACME server, with its CA
/// root copied beside it (a relative path, read from the root).
fn write_settings(root: &Path, directory: &str, ca_root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    std::fs::copy(ca_root, root.join("acme-ca.pem")).unwrap();
    std::fs::write(
        root.join("capstan.toml"),
        format!(
            "# HTTPS from the test ACME server\n[acme]\nemail = \"ops@capstan.test\"\n\
             directory = \"{directory}\"\nca_root = \"acme-ca.pem\"\n"
        ),
    )
    .unwrap();
}

/// A client that trusts only `root_pem` and finds every test name on loopback.
fn trusting(root_pem: &str, https_port: u16) -> reqwest::Client {
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], https_port));
    reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root_pem.as_bytes()).unwrap())
        .resolve(ONE, loopback)
        .resolve(TWO, loopback)
        .resolve("three.capstan.test", loopback)
        .tls_info(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// GET https://NAME/ with a fresh handshake: the served leaf and the response.
async fn fetch(
    root_pem: &str,
    https_port: u16,
    name: &str,
) -> Result<(Vec<u8>, reqwest::Response), reqwest::Error> {
    let client = trusting(root_pem, https_port);
    crate::pebble::get_with_leaf(&client, &format!("https://{name}:{https_port}/")).await
}

/// Polls until `name` is served with a certificate the test CA issued.
async fn wait_for_certificate(
    root_pem: &str,
    https_port: u16,
    name: &str,
    daemon: &Daemon,
) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok((leaf, response)) = fetch(root_pem, https_port, name).await {
            drop(response.text().await);
            return leaf;
        }
        assert!(
            Instant::now() < deadline,
            "no certificate for {name} in time:\n{}",
            daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The DNS names in a DER certificate's subjectAltName.
fn san_names(der: &[u8]) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let san = cert
        .subject_alternative_name()
        .unwrap()
        .expect("a subjectAltName");
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_string()),
            _ => None,
        })
        .collect()
}

/// A plain HTTP GET of / on the daemon's port as `host`, redirects not followed.
async fn plain(daemon: &Daemon, host: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{}/", daemon.port))
        .header("host", host)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn two_apps_get_their_own_certificates_by_sni_plain_http_redirects_and_a_restart_reuses_them()
{
    let temp = reachable_temp();
    let root = temp.path().join("root");
    let (http_port, https_port) = (free_port(), free_port());
    let pebble = Pebble::start(PebbleOpts::checking(http_port, https_port));
    write_settings(&root, &pebble.directory, &pebble.ca_root());
    let _users = (AppUserGuard("tlsone"), AppUserGuard("tlstwo"));
    let tls_listen = format!("127.0.0.1:{https_port}");
    let daemon = Daemon::start_with(&root, http_port, &["--tls-listen", &tls_listen]);
    assert!(
        daemon.stderr().contains(&format!(
            "serving every app at http://127.0.0.1:{http_port} and https://{tls_listen}"
        )),
        "{}",
        daemon.stderr()
    );

    // Certificates are asked for at `apps create`, before any deploy.
    let created = Instant::now();
    let repo_one = daemon.create_app("tlsone", ONE);
    let repo_two = daemon.create_app("tlstwo", TWO);
    let issuing_root = pebble.issuing_root().await;
    let leaf_one = wait_for_certificate(&issuing_root, https_port, ONE, &daemon).await;
    let leaf_two = wait_for_certificate(&issuing_root, https_port, TWO, &daemon).await;
    eprintln!(
        "both certificates served {:?} after apps create",
        created.elapsed()
    );
    assert_eq!(san_names(&leaf_one), [ONE]);
    assert_eq!(san_names(&leaf_two), [TWO]);
    let log = daemon.stderr();
    for name in [ONE, TWO] {
        // Over HTTP-01: the front answered the challenge on plain HTTP.
        assert!(
            log.contains(&format!("{name}: certificate issued (http-01)")),
            "{log}"
        );
    }

    // Keys and account on disk, owner-only, under <root>/certs.
    let store = root.join("certs").join(
        pebble
            .directory
            .replace("https://", "")
            .replace([':', '/'], "_"),
    );
    for file in [
        "account.json".to_owned(),
        format!("{ONE}/privkey.pem"),
        format!("{TWO}/privkey.pem"),
        format!("{ONE}/fullchain.pem"),
    ] {
        let mode = std::fs::metadata(store.join(&file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }

    // Each app deployed: its last line names its https URL.
    for (dir, repo, text) in [("one", &repo_one, "one"), ("two", &repo_two, "two")] {
        let checkout = Checkout::new(&temp.path().join(dir), &flask_app(text), "");
        let (pushed, output) = checkout.push(repo);
        assert!(pushed, "{output}\n{}", daemon.stderr());
        let name = if text == "one" { ONE } else { TWO };
        assert!(
            output.contains(&format!("release 1 is live at https://{name}:{https_port}")),
            "{output}"
        );
        assert!(!output.contains("no certificate yet"), "{output}");
    }
    for (name, text) in [(ONE, "one"), (TWO, "two")] {
        let (_, response) = fetch(&issuing_root, https_port, name).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=31536000"
        );
        assert_eq!(response.text().await.unwrap(), text);
        // Plain HTTP for a domain with a certificate goes to HTTPS, no HSTS.
        let redirected = plain(&daemon, name).await;
        assert_eq!(redirected.status(), 301);
        assert_eq!(
            redirected.headers()["location"],
            format!("https://{name}:{https_port}/").as_str()
        );
        assert!(redirected
            .headers()
            .get("strict-transport-security")
            .is_none());
    }
    // An unknown Host keeps its plain HTTP 404; an unknown SNI name gets no
    // certificate at all: the handshake fails.
    assert_eq!(plain(&daemon, "three.capstan.test").await.status(), 404);
    let unknown = fetch(&issuing_root, https_port, "three.capstan.test").await;
    assert!(
        unknown.is_err(),
        "a handshake for an unknown name succeeded"
    );

    // A restart loads both back: the same certificates, no new order.
    let issued = pebble.output().matches("Issued certificate serial").count();
    assert_eq!(issued, 2, "{}", pebble.output());
    daemon.stop();
    let daemon = Daemon::start_with(&root, http_port, &["--tls-listen", &tls_listen]);
    for name in [ONE, TWO] {
        assert!(
            daemon
                .stderr()
                .contains(&format!("{name}: using the stored certificate")),
            "{}",
            daemon.stderr()
        );
    }
    let (again_one, response) = fetch(&issuing_root, https_port, ONE).await.unwrap();
    assert_eq!(response.text().await.unwrap(), "one");
    let (again_two, _) = fetch(&issuing_root, https_port, TWO).await.unwrap();
    assert_eq!((again_one, again_two), (leaf_one, leaf_two));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        pebble.output().matches("Issued certificate serial").count(),
        2,
        "{}",
        pebble.output()
    );
    assert!(
        !daemon.stderr().contains("certificate issued"),
        "{}",
        daemon.stderr()
    );
    daemon.stop();
}

#[tokio::test]
async fn an_unreachable_acme_server_is_retried_and_the_app_serves_plain_http_meanwhile() {
    let temp = reachable_temp();
    let root = temp.path().join("root");
    // Nothing listens on the ACME server's port.
    let directory = format!("https://127.0.0.1:{}/dir", free_port());
    let identity = tempfile::tempdir().unwrap();
    crate::pebble::write_https_identity(identity.path());
    write_settings(&root, &directory, &identity.path().join("ca.crt"));
    let _user = AppUserGuard("tlsdown");
    let (http_port, https_port) = (free_port(), free_port());
    let tls_listen = format!("127.0.0.1:{https_port}");
    let daemon = Daemon::start_with(&root, http_port, &["--tls-listen", &tls_listen]);
    let repo = daemon.create_app("tlsdown", ONE);
    let expected = format!(
        "{ONE}: could not get a certificate: could not reach the ACME server at {directory}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !daemon.stderr().contains(&expected) {
        assert!(Instant::now() < deadline, "{}", daemon.stderr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        daemon.stderr().contains("Trying again in 10s."),
        "{}",
        daemon.stderr()
    );

    let checkout = Checkout::new(&temp.path().join("app"), &flask_app("plain"), "");
    let (pushed, output) = checkout.push(&repo);
    assert!(pushed, "{output}\n{}", daemon.stderr());
    assert!(
        output.contains(&format!(
            "{ONE} has no certificate yet (the daemon's log says how its order goes); \
             until it has one it is served at http://{ONE}:{http_port}"
        )),
        "{output}"
    );
    assert!(
        output.contains(&format!(
            "tlsdown release 1 is live at https://{ONE}:{https_port}"
        )),
        "{output}"
    );
    // No redirect to a handshake that would fail: plain HTTP serves the app.
    let response = plain(&daemon, ONE).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "plain");
    daemon.stop();
}

/// `capstan daemon --root ROOT ARGS...`, which must exit: its status and stderr.
fn daemon_exit(root: &Path, args: &[&str]) -> (std::process::ExitStatus, String) {
    let root = root.to_str().unwrap();
    let mut all = vec!["daemon", "--root", root];
    all.extend_from_slice(args);
    fixture::run_to_exit(&all, Duration::from_secs(30))
}

#[test]
fn bad_acme_settings_stop_the_daemon_naming_the_file_and_line() {
    let temp = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let tls_listen = format!("127.0.0.1:{}", free_port());
    let args = [
        "--listen",
        listen.as_str(),
        "--tls-listen",
        tls_listen.as_str(),
    ];
    let file = temp.path().join("capstan.toml");
    for (settings, expected) in [
        (
            "[acme]\nemail = \"ops@capstan.test\"\ndirectory = \"http://127.0.0.1:14000/dir\"\n",
            "capstan.toml:3: bad value for `directory`: \"http://127.0.0.1:14000/dir\" is not an https:// URL",
        ),
        (
            "[acme]\nca_root = \"missing.pem\"\n",
            "capstan.toml:2: bad value for `ca_root`: ",
        ),
        (
            "[acme]\nemail = \"ops at capstan.test\"\n",
            "capstan.toml:2: bad value for `email`: \"ops at capstan.test\" is not an email address",
        ),
        ("[acme]\ncontact = \"ops@capstan.test\"\n", "capstan.toml:2: unknown key `contact`"),
    ] {
        std::fs::write(&file, settings).unwrap();
        let (status, stderr) = daemon_exit(temp.path(), &args);
        assert!(!status.success(), "{settings}");
        assert!(stderr.contains(expected), "{settings}:\n{stderr}");
    }
    // A CA root that is there but holds no certificate.
    std::fs::write(temp.path().join("ca.pem"), "not a certificate").unwrap();
    std::fs::write(&file, "[acme]\nca_root = \"ca.pem\"\n").unwrap();
    let (status, stderr) = daemon_exit(temp.path(), &args);
    assert!(!status.success());
    assert!(
        stderr.contains("has no certificate in it; fix [acme] ca_root in"),
        "{stderr}"
    );
    assert!(!temp.path().join("control.sock").exists());
}

#[test]
fn a_busy_tls_port_stops_the_daemon_before_anything_starts() {
    let temp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let listen = format!("127.0.0.1:{}", free_port());
    let (status, stderr) = daemon_exit(temp.path(), &["--listen", &listen, "--tls-listen", &addr]);
    assert!(!status.success());
    assert!(
        stderr.contains(&format!("{addr} is already in use")) && stderr.contains("--tls-listen"),
        "{stderr}"
    );
    assert!(!temp.path().join("control.sock").exists());
    // The same from the settings file, which the flag overrides.
    std::fs::write(
        temp.path().join("capstan.toml"),
        format!("tls_listen = \"{addr}\"\n"),
    )
    .unwrap();
    let (status, stderr) = daemon_exit(temp.path(), &["--listen", &listen]);
    assert!(!status.success());
    assert!(
        stderr.contains(&format!("{addr} is already in use")),
        "{stderr}"
    );
    let free = format!("127.0.0.1:{}", free_port());
    let daemon = Daemon::start_with(temp.path(), free_port(), &["--tls-listen", &free]);
    assert!(
        daemon.stderr().contains(&format!("and https://{free};")),
        "{}",
        daemon.stderr()
    );
    daemon.stop();
}

#[test]
fn the_systemd_unit_runs_this_binary_and_passes_systemd_analyze_verify() {
    let out = Command::new(fixture::capstan())
        .args([
            "daemon",
            "--systemd-unit",
            "--root",
            "/var/lib/capstan-unit-test",
            "--listen",
            "0.0.0.0:80",
            "--tls-listen",
            "[::]:443",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let unit = String::from_utf8(out.stdout).unwrap();
    let program = fixture::capstan().canonicalize().unwrap();
    assert!(
        unit.lines().any(|line| line
            == format!(
                "ExecStart={} daemon --root /var/lib/capstan-unit-test --listen 0.0.0.0:80 \
                 --tls-listen [::]:443",
                program.display()
            )),
        "{unit}"
    );
    for line in [
        "Restart=always",
        "KillMode=mixed",
        "After=network-online.target",
        "Wants=network-online.target",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
    }
    // Nothing was made: printing the unit touches no state.
    assert!(!Path::new("/var/lib/capstan-unit-test").exists());

    // systemd's own check, offline (systemd need not be PID 1): every key
    // known and well-formed, ExecStart an executable. Any warning fails.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capstan.service");
    std::fs::write(&path, &unit).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs (apt-get install systemd)");
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "{stderr}");
    assert_eq!(stderr.trim(), "", "systemd-analyze warned");

    // And it does catch a broken unit, so a pass means something.
    std::fs::write(&path, unit.replace("KillMode=mixed", "KillMode=gently")).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&verify.stderr).contains("kill mode specification"),
        "{verify:?}"
    );
}
