//! The CLI's side of the operations on an app: `rollback`, `restart`,
//! `env`, `scale`, `ps` and `apps destroy`, each a client of the control
//! socket. Long ones print the daemon's progress lines as they come.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use capstan_config::AppName;
use capstan_control::api::{
    AppsDestroy, EnvList, EnvSet, EnvUnset, Ps, Restart, Rollback, Scale, StreamCall,
};
use capstan_control::Client;

use crate::cli::{AppArg, EnvArgs, EnvCommand, PsArgs, RollbackArgs, ScaleArgs};

pub async fn rollback(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let app = AppName::new(&args.app)?;
    let client = Client::connect(args.root.path()).await?;
    stream(
        &client,
        &Rollback {
            app,
            to: args.release,
        },
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn restart(args: AppArg) -> anyhow::Result<ExitCode> {
    let app = AppName::new(&args.app)?;
    let client = Client::connect(args.root.path()).await?;
    stream(&client, &Restart { app }).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn env(args: EnvArgs) -> anyhow::Result<ExitCode> {
    let app = AppName::new(&args.app)?;
    let client = Client::connect(args.root.path()).await?;
    match args.command {
        None => {
            let list = client.call(&EnvList { app }).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.vars.is_empty() {
                println!(
                    "{} has no variables set on the server (its app file's [env] applies); \
                     `capstan env {} set K=V` sets one",
                    list.app.as_str(),
                    list.app.as_str()
                );
            } else {
                for (name, value) in &list.vars {
                    println!("{name}={value}");
                }
            }
        }
        Some(EnvCommand::Set { vars }) => {
            let vars = vars
                .iter()
                .map(|pair| {
                    let (name, value) = pair.split_once('=').ok_or_else(|| {
                        anyhow!("{pair:?} is not K=V: say `capstan env APP set {pair}=VALUE`")
                    })?;
                    capstan_config::check_env_name(name).map_err(|e| anyhow!("{e}"))?;
                    Ok((name.to_owned(), value.to_owned()))
                })
                .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
            stream(&client, &EnvSet { app, vars }).await?;
        }
        Some(EnvCommand::Unset { names }) => {
            for name in &names {
                capstan_config::check_env_name(name).map_err(|e| anyhow!("{e}"))?;
            }
            stream(&client, &EnvUnset { app, names }).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn scale(args: ScaleArgs) -> anyhow::Result<ExitCode> {
    let app = AppName::new(&args.app)?;
    let counts = args
        .counts
        .iter()
        .map(|pair| {
            let parse = || {
                let (name, count) = pair.split_once('=')?;
                Some((name.to_owned(), count.parse::<u32>().ok()?))
            };
            parse().ok_or_else(|| {
                anyhow!("{pair:?} is not NAME=N: say e.g. `capstan scale APP web=4 tasks=2`")
            })
        })
        .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
    let client = Client::connect(args.root.path()).await?;
    stream(&client, &Scale { app, counts }).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn ps(args: PsArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.as_deref().map(AppName::new).transpose()?;
    let client = Client::connect(args.root.path()).await?;
    let list = client.call(&Ps { app }).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<16} {:<12} {:>8}  {:<8} {:>7} {:>9} {:>8} {:>9}",
        "APP", "PROCESS", "PID", "STATE", "RELEASE", "UPTIME", "RESTARTS", "RSS"
    );
    for app in &list.apps {
        if app.processes.is_empty() {
            println!("{:<16} (nothing running)", app.app.as_str());
        }
        for process in &app.processes {
            let state = serde_json::to_value(process.state)?;
            let dash = || "-".to_owned();
            println!(
                "{:<16} {:<12} {:>8}  {:<8} {:>7} {:>9} {:>8} {:>9}",
                app.app.as_str(),
                process.name,
                process.pid.map_or_else(dash, |p| p.to_string()),
                state.as_str().unwrap_or("?"),
                process.release.map_or_else(dash, |r| r.to_string()),
                process.uptime_secs.map_or_else(dash, duration),
                process.restarts,
                process
                    .rss_bytes
                    .map_or_else(dash, |b| format!("{:.1}M", b as f64 / 1048576.0)),
            );
        }
        for job in app.cron.as_array().into_iter().flatten() {
            println!("{:<16} {}", app.app.as_str(), cron_line(job));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One cron job of `ps`: its schedule, whether a run is going, the last
/// run's outcome and the next fire time.
fn cron_line(job: &serde_json::Value) -> String {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    let mut line = format!(
        "{:<12} {:<14}",
        format!("cron.{}", text(&job["name"])),
        text(&job["schedule"])
    );
    let running = job["running"].as_array().map_or(0, Vec::len);
    if running > 0 {
        line.push_str(&format!(" running now ({running})"));
    }
    match job["last_run"].as_object() {
        Some(last) => line.push_str(&format!(
            " last: {} at {}",
            text(&last["status"]),
            text(&last["started_at"])
        )),
        None => line.push_str(" last: never ran"),
    }
    line.push_str(&format!(" next: {}", text(&job["next_run"])));
    line
}

/// `apps destroy NAME`: with `--yes`, at once; on a terminal, once the name
/// is typed back; otherwise refused.
pub async fn destroy(
    client: &Client,
    name: AppName,
    yes: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!(
                "destroying {} removes its releases, data and env for good; \
                 pass --yes to confirm without a terminal",
                name.as_str()
            );
        }
        print!(
            "This stops {0} and removes its releases, data, env and user for good.\n\
             Type the app's name ({0}) to confirm: ",
            name.as_str()
        );
        std::io::stdout().flush()?;
        let mut typed = String::new();
        std::io::stdin().read_line(&mut typed)?;
        if typed.trim() != name.as_str() {
            bail!("not confirmed: {} is left as it was", name.as_str());
        }
    }
    let destroyed = client.call(&AppsDestroy { name }).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&destroyed)?);
    } else {
        println!("destroyed {}", destroyed.name.as_str());
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the progress lines of `request` as they come.
async fn stream<S: StreamCall>(client: &Client, request: &S) -> anyhow::Result<S::Done> {
    let stream = client.stream(request).await?;
    let done = stream
        .finish(|line| {
            println!("{line}");
            let _ = std::io::stdout().flush();
        })
        .await?;
    Ok(done)
}

fn duration(secs: f64) -> String {
    let secs = secs as u64;
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{}s", secs / 60, secs % 60),
        3600..=86399 => format!("{}h{}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{}h", secs / 86400, secs % 86400 / 3600),
    }
}
