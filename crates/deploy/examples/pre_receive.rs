//! A small pre-receive program built on this crate, as the daemon's
//! `capstan hook pre-receive` will be: the tests install it as an app's hook.
//!
//! `pre_receive hook [--fail-build] [--keep N] [--drop-quarantine-env]`, with
//! `CAPSTAN_ROOT` and `CAPSTAN_APP` set: reads git's ref updates on stdin,
//! applies the branch rules, takes the deploy lock, checks the commit out into
//! a new release, seals it, makes it live and prunes. Exits non-zero, which
//! rejects the push, on any refusal or failure.
//!
//! `pre_receive hold-lock ROOT APP COMMIT`: takes the app's deploy lock, prints
//! `locked`, and holds it until killed.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use capstan_config::AppName;
use capstan_deploy::{AppDir, DeployLock, Releases, Repo, DEFAULT_KEEP};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("hook") => hook(&args[1..]),
        Some("hold-lock") => hold_lock(&args[1..]),
        _ => Err("usage: pre_receive hook [OPTIONS] | hold-lock ROOT APP COMMIT".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn hook(args: &[String]) -> Result<(), String> {
    let fail_build = args.iter().any(|a| a == "--fail-build");
    let keep = args
        .iter()
        .position(|a| a == "--keep")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(DEFAULT_KEEP), |n| n.parse().map_err(|_| "bad --keep"))?;
    if args.iter().any(|a| a == "--drop-quarantine-env") {
        // What a hook that cleaned its environment would do: git can then no
        // longer see the objects of the push it is judging.
        for name in [
            "GIT_OBJECT_DIRECTORY",
            "GIT_ALTERNATE_OBJECT_DIRECTORIES",
            "GIT_QUARANTINE_PATH",
        ] {
            std::env::remove_var(name);
        }
    }
    let root = PathBuf::from(std::env::var_os("CAPSTAN_ROOT").ok_or("CAPSTAN_ROOT is not set")?);
    let name = std::env::var("CAPSTAN_APP").map_err(|_| "CAPSTAN_APP is not set")?;
    let name = AppName::new(&name).map_err(|e| e.to_string())?;
    let app = AppDir::open(&root, &name).map_err(|e| e.to_string())?;
    let repo = Repo::open(&app);

    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| e.to_string())?;
    let deploy = repo
        .accept(&input)
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    eprintln!("deploy {} {}", deploy.branch, deploy.new);

    let lock = DeployLock::acquire(&app, deploy.new.short()).map_err(|e| e.to_string())?;
    let releases = Releases::open(&app);
    let building = releases
        .begin(&lock, repo.git(), &deploy.new)
        .map_err(|e| e.to_string())?;
    let number = building.id().number;
    eprintln!("building release {number} ({})", deploy.new.short());
    if fail_build {
        building
            .fail("the build command failed")
            .map_err(|e| e.to_string())?;
        let live = releases.live().map_err(|e| e.to_string())?;
        let serving = live.map_or("nothing".to_owned(), |id| format!("release {}", id.number));
        return Err(format!(
            "build of release {number} failed; {serving} is still serving"
        ));
    }
    building.finish().map_err(|e| e.to_string())?;
    releases
        .activate(&lock, number)
        .map_err(|e| e.to_string())?;
    if deploy.first {
        repo.remember_deploy_branch(&deploy.branch)
            .map_err(|e| e.to_string())?;
    }
    let pruned = releases.prune(&lock, keep).map_err(|e| e.to_string())?;
    for id in pruned {
        eprintln!("pruned release {}", id.number);
    }
    eprintln!("release {number} is live");
    Ok(())
}

fn hold_lock(args: &[String]) -> Result<(), String> {
    let [root, name, commit] = args else {
        return Err("usage: pre_receive hold-lock ROOT APP COMMIT".into());
    };
    let name = AppName::new(name).map_err(|e| e.to_string())?;
    let app = AppDir::open(root.as_ref(), &name).map_err(|e| e.to_string())?;
    let _lock = DeployLock::acquire(&app, commit).map_err(|e| e.to_string())?;
    println!("locked");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    loop {
        std::thread::park();
    }
}
