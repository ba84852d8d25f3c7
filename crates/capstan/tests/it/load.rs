//! Constant load on a daemon's apps while something changes them: client
//! threads, each with its own runtime and keep-alive client, asking one Host
//! in a loop and checking that every answer is a 200 from that app (its body
//! starts with the app's prefix), so a failed request, a reset connection or
//! another app's page all count as failures. Bounded in time and count.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How many failures are kept with their reason.
const KEPT: usize = 20;
/// The most requests one client sends, whatever its deadline.
const MAX_REQUESTS: u32 = 100_000;

/// Load that runs until [`Load::finish`] or its deadline.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<Mutex<Vec<String>>>,
    failures: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

/// What a load saw.
#[derive(Debug)]
pub struct Tally {
    pub ok: u64,
    pub failures: u64,
    /// The first few failures, each with its host and reason.
    pub failed: Vec<String>,
}

impl Load {
    /// `clients` threads per `(host, body prefix)`, on 127.0.0.1:`port`, for
    /// at most `limit`, each keeping its connection alive.
    pub fn start(port: u16, targets: &[(&str, &str)], clients: usize, limit: Duration) -> Load {
        Load::spawn(port, targets, clients, limit, true)
    }

    /// As [`Load::start`], but every request on a new connection, so
    /// connections are accepted all through the change.
    pub fn start_fresh(
        port: u16,
        targets: &[(&str, &str)],
        clients: usize,
        limit: Duration,
    ) -> Load {
        Load::spawn(port, targets, clients, limit, false)
    }

    fn spawn(
        port: u16,
        targets: &[(&str, &str)],
        clients: usize,
        limit: Duration,
        keep_alive: bool,
    ) -> Load {
        let load = Load {
            stop: Arc::new(AtomicBool::new(false)),
            ok: Arc::new(AtomicU64::new(0)),
            failed: Arc::new(Mutex::new(Vec::new())),
            failures: Arc::new(AtomicU64::new(0)),
            threads: Vec::new(),
        };
        let deadline = Instant::now() + limit;
        let mut threads = Vec::new();
        for (host, prefix) in targets {
            for _ in 0..clients {
                let (host, prefix) = (host.to_string(), prefix.to_string());
                let stop = Arc::clone(&load.stop);
                let ok = Arc::clone(&load.ok);
                let failed = Arc::clone(&load.failed);
                let failures = Arc::clone(&load.failures);
                threads.push(std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    runtime.block_on(async move {
                        let client = match keep_alive {
                            true => crate::fixture::client(),
                            false => reqwest::Client::builder()
                                .no_proxy()
                                .timeout(Duration::from_secs(30))
                                .pool_max_idle_per_host(0)
                                .build()
                                .unwrap(),
                        };
                        let url = format!("http://127.0.0.1:{port}/");
                        for _ in 0..MAX_REQUESTS {
                            if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                                break;
                            }
                            let answer = async {
                                let response = client
                                    .get(&url)
                                    .header("Host", &host)
                                    .send()
                                    .await
                                    .map_err(|e| format!("{e:?}"))?;
                                let status = response.status().as_u16();
                                let body = response.text().await.map_err(|e| format!("{e:?}"))?;
                                if status == 200 && body.starts_with(&prefix) {
                                    Ok(())
                                } else {
                                    Err(format!("{status} {:?}", &body[..body.len().min(200)]))
                                }
                            };
                            match answer.await {
                                Ok(()) => {
                                    ok.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(reason) => {
                                    failures.fetch_add(1, Ordering::Relaxed);
                                    let mut kept = failed.lock().unwrap();
                                    if kept.len() < KEPT {
                                        kept.push(format!("{host}: {reason}"));
                                    }
                                }
                            }
                        }
                    });
                }));
            }
        }
        Load { threads, ..load }
    }

    /// Requests answered well so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Stops the clients and says what they saw.
    pub fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().expect("a load thread panicked");
        }
        Tally {
            ok: self.ok.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            failed: std::mem::take(&mut self.failed.lock().unwrap()),
        }
    }
}

impl Tally {
    /// Fails the test unless every request was answered well, and enough were.
    pub fn assert_clean(&self, at_least: u64, what: &str) {
        eprintln!(
            "{what}: {} requests answered, {} failed",
            self.ok, self.failures
        );
        assert_eq!(
            self.failures, 0,
            "{what}: failed requests: {:#?}",
            self.failed
        );
        assert!(
            self.ok >= at_least,
            "{what}: only {} requests were answered; the load did not run",
            self.ok
        );
    }
}
