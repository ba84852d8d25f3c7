//! The CLI's side of the daemon: `capstan apps [create]` and the
//! pre-receive hook git runs, each a client of the control socket.

use std::io::{Read as _, Write as _};
use std::process::ExitCode;

use anyhow::{anyhow, Context as _};
use capstan_config::AppName;
use capstan_control::api::{AppsCreate, AppsList, Deploy, Logs, Releases};
use capstan_control::Client;
use capstan_deploy::{AppDir, Repo};

use crate::cli::{AppsArgs, AppsCommand, HookArgs, HookKind, LogsArgs, ReleasesArgs};

/// The git variables the daemon needs to read a push still in quarantine.
const QUARANTINE_ENV: [&str; 3] = [
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_QUARANTINE_PATH",
];

pub async fn apps(args: AppsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::connect(args.root.path()).await?;
    match args.command {
        Some(AppsCommand::Create { name, domains }) => {
            let name = AppName::new(&name)?;
            let domains = domains
                .iter()
                .map(|d| {
                    capstan_config::normalize_domain(d).map_err(|e| anyhow!("--domain {d}: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let created = client.call(&AppsCreate { name, domains }).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&created)?);
            } else {
                println!(
                    "created {}; deploy it with: git push {} main",
                    created.app.name.as_str(),
                    created.repo.display()
                );
            }
        }
        Some(AppsCommand::Destroy { name, yes }) => {
            let name = AppName::new(&name)?;
            return super::ops_client::destroy(&client, name, yes, args.json).await;
        }
        None => {
            let list = client.call(&AppsList {}).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.apps.is_empty() {
                println!("no apps yet: `capstan apps create NAME --domain DOMAIN` makes one");
            } else {
                println!("{:<20} {:<8} {:<10} DOMAINS", "NAME", "RELEASE", "STATE");
                for app in &list.apps {
                    let release = app.live_release.map_or("-".to_owned(), |n| n.to_string());
                    let state = serde_json::to_value(app.state)?;
                    println!(
                        "{:<20} {:<8} {:<10} {}",
                        app.name.as_str(),
                        release,
                        state.as_str().unwrap_or("?"),
                        app.domains.join(", ")
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn releases(args: ReleasesArgs) -> anyhow::Result<ExitCode> {
    let app = AppName::new(&args.app)?;
    let client = Client::connect(args.root.path()).await?;
    let list = client.call(&Releases { app }).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.releases.is_empty() {
        println!(
            "{} has no releases yet: `git push` to its repository deploys one",
            list.app.as_str()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "  {:<4} {:<8} {:<20} {:>7}  {:<8} MESSAGE",
        "#", "COMMIT", "BUILT AT (UTC)", "TOOK", "STATUS"
    );
    for release in &list.releases {
        let status = serde_json::to_value(release.status)?;
        println!(
            "{} {:<4} {:<8} {:<20} {:>6.1}s  {:<8} {}",
            if release.live { "*" } else { " " },
            release.number,
            release.commit.get(..7).unwrap_or(&release.commit),
            release.built_at.format("%Y-%m-%d %H:%M:%S"),
            release.build_secs,
            status.as_str().unwrap_or("?"),
            release.message
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `capstan logs APP`: the daemon reads the files (as root) and streams
/// the lines; with `-f` the stream ends when this client goes away.
pub async fn logs(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let app = AppName::new(&args.app)?;
    let client = Client::connect(args.root.path()).await?;
    let request = Logs {
        app,
        follow: args.follow,
        process: args.process,
        lines: Some(args.lines),
    };
    let json = args.json;
    let stream = client.stream(&request).await?;
    stream
        .finish(|line| {
            let mut out = std::io::stdout().lock();
            let _ = if json {
                writeln!(out, "{}", serde_json::json!({ "line": line }))
            } else {
                writeln!(out, "{line}")
            };
            let _ = out.flush();
        })
        .await?;
    Ok(ExitCode::SUCCESS)
}

/// `capstan hook pre-receive`: its exit status decides the push.
pub async fn hook(args: HookArgs) -> anyhow::Result<ExitCode> {
    let HookKind::PreReceive = args.hook;
    let root = std::env::var_os("CAPSTAN_ROOT").context("CAPSTAN_ROOT is not set for the hook")?;
    let name = std::env::var("CAPSTAN_APP").context("CAPSTAN_APP is not set for the hook")?;
    let name = AppName::new(&name)?;
    let app_dir = AppDir::open(root.as_ref(), &name)?;
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let deploy = match Repo::open(&app_dir).accept(&input)? {
        Ok(deploy) => deploy,
        Err(refused) => {
            eprintln!("{refused}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let git_env = QUARANTINE_ENV
        .iter()
        .filter_map(|name| Some((name.to_string(), std::env::var(name).ok()?)))
        .collect();
    let request = Deploy {
        app: name,
        old: deploy
            .old
            .map_or_else(|| "0".repeat(deploy.new.as_str().len()), |o| o.to_string()),
        new: deploy.new.to_string(),
        refname: format!("refs/heads/{}", deploy.branch),
        git_env,
    };
    let client = Client::connect(&root).await?;
    let stream = client.stream(&request).await;
    let outcome = match stream {
        Ok(stream) => {
            stream
                .finish(|line| {
                    // git shows the hook's output to the pusher as `remote: ...`.
                    println!("{line}");
                    let _ = std::io::stdout().flush();
                })
                .await
        }
        Err(error) => Err(error),
    };
    match outcome {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(error) => {
            println!("{error}");
            Ok(ExitCode::FAILURE)
        }
    }
}
