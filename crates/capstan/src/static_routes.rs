//! The static routes the edge serves: the app file's (`[static]`, a `static/`
//! folder), then the folders the app itself reported at boot (Flask's static
//! folders, Django's STATIC_ROOT), which the front serves with the default
//! 30-day cache instead of the app serving them with `no-cache`.

use std::path::Path;

use capstan_config::{App, DEFAULT_STATIC_MAX_AGE};
use capstan_edge::static_files::{StaticFiles, StaticRoute};
use capstan_runtime::StaticMount;

/// The app file's routes, plus each reported mount that is safe to serve.
/// A reported mount is skipped, with a log line saying why, when the app file
/// already routes its prefix (the file wins), when its folder is missing, or
/// when it is the app's folder or holds it (that would publish the code and
/// `.env`). One line lists the mounts that were added.
pub fn routes(app: &App, reported: &[StaticMount]) -> Vec<StaticRoute> {
    let mut routes: Vec<StaticRoute> = app
        .static_routes
        .iter()
        .map(|route| StaticRoute {
            url_prefix: route.url_prefix.clone(),
            dir: route.dir.clone(),
            max_age: route.max_age,
        })
        .collect();
    let mut added = Vec::new();
    for mount in reported {
        let prefix = mount.url_prefix.trim_end_matches('/');
        let skip = |why: &str| {
            tracing::info!(
                "not serving {} from {} (reported by the app): {why}; the app serves it",
                mount.url_prefix,
                mount.dir.display()
            );
        };
        if let Some(route) = routes
            .iter()
            .find(|r| r.url_prefix.trim_end_matches('/') == prefix)
        {
            // The same folder twice is no news; another folder is worth a line.
            let reported_dir = mount
                .dir
                .canonicalize()
                .unwrap_or_else(|_| mount.dir.clone());
            if reported_dir != route.dir {
                tracing::info!(
                    "the app serves {} from {}, but the app file serves that prefix from {}, \
                     which wins",
                    mount.url_prefix,
                    shown(&app.root, &reported_dir),
                    shown(&app.root, &route.dir)
                );
            }
            continue;
        }
        let dir = match mount.dir.canonicalize() {
            Ok(dir) if dir.is_dir() => dir,
            _ => {
                skip("the folder does not exist");
                continue;
            }
        };
        // SECURITY: the app's folder holds its code, `.env` and `.capstan`;
        // a static route over it would hand them to anyone who asks.
        if app.root.starts_with(&dir) {
            skip("that folder is the app's folder or holds it, which would publish its code");
            continue;
        }
        let route = StaticRoute {
            url_prefix: prefix.to_owned(),
            dir,
            max_age: DEFAULT_STATIC_MAX_AGE,
        };
        // The edge's own checks of the prefix, so a route it would refuse never stops the start.
        if let Err(error) = StaticFiles::new(vec![route.clone()]) {
            skip(&error.to_string());
            continue;
        }
        added.push(format!(
            "{} from {}",
            route.url_prefix,
            shown(&app.root, &route.dir)
        ));
        routes.push(route);
    }
    if !added.is_empty() {
        tracing::info!("serving {} (reported by the app)", added.join(", "));
    }
    routes
}

/// A folder as a person reads it: relative to the app when it is inside it.
fn shown(root: &Path, dir: &Path) -> String {
    match dir.strip_prefix(root) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
        _ => dir.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_in(dir: &Path, toml: &str) -> App {
        std::fs::write(dir.join("capstan.toml"), toml).unwrap();
        std::fs::write(dir.join("site.py"), "app = None\n").unwrap();
        capstan_config::load(dir).unwrap()
    }

    fn mount(prefix: &str, dir: &Path) -> StaticMount {
        StaticMount {
            url_prefix: prefix.into(),
            dir: dir.into(),
        }
    }

    #[test]
    fn a_reported_folder_is_served_with_the_thirty_day_cache() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("app/static")).unwrap();
        let app = app_in(dir.path(), "[web]\nwsgi = \"site:app\"\n");
        let got = routes(&app, &[mount("/static/", &dir.path().join("app/static"))]);
        assert_eq!(
            got,
            [StaticRoute {
                url_prefix: "/static".into(),
                dir: app.root.join("app/static"),
                max_age: DEFAULT_STATIC_MAX_AGE,
            }]
        );
    }

    #[test]
    fn the_app_files_route_for_the_same_prefix_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("public")).unwrap();
        std::fs::create_dir_all(dir.path().join("app/static")).unwrap();
        let app = app_in(
            dir.path(),
            "[web]\nwsgi = \"site:app\"\n[static]\n\"/static\" = \"public\"\n",
        );
        let got = routes(&app, &[mount("/static", &dir.path().join("app/static"))]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].dir, app.root.join("public"));
    }

    #[test]
    fn missing_folders_the_apps_own_folder_and_bad_prefixes_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("assets")).unwrap();
        let app = app_in(dir.path(), "[web]\nwsgi = \"site:app\"\n");
        let parent = app.root.parent().unwrap().to_owned();
        let got = routes(
            &app,
            &[
                mount("/gone", &dir.path().join("gone")),
                mount("/files", dir.path()),
                mount("/up", &parent),
                mount("/a/../b", &dir.path().join("assets")),
                mount("assets", &dir.path().join("assets")),
            ],
        );
        assert!(got.is_empty(), "{got:?}");
    }
}
