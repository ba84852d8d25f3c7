//! What a push asks for: pre-receive's `<old> <new> <ref>` lines as typed
//! updates, and the branch rules that decide whether it deploys.
//!
//! The rules: the first `main` or `master` pushed becomes the deploy branch;
//! any other branch, a tag alone, a deletion or a shallow history is refused
//! with a message that says what to push instead.

use std::fmt;

use capstan_config::AppName;

/// A git object id: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Oid(String);

impl Oid {
    /// Checks `s` and wraps it.
    pub fn new(s: &str) -> Option<Oid> {
        // SECURITY: the id comes from the push and is passed to git as an
        // argument; hex only, so it can never be read as an option or a path.
        let hex = s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        (hex && (s.len() == 40 || s.len() == 64)).then(|| Oid(s.to_owned()))
    }

    /// The full id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 7 digits, as `git log --oneline` shows them.
    pub fn short(&self) -> &str {
        &self.0[..7]
    }

    fn is_zero(&self) -> bool {
        self.0.bytes().all(|b| b == b'0')
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One line of pre-receive's input: a ref moving from `old` to `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    /// Where the ref pointed before; `None` when the push creates it.
    pub old: Option<Oid>,
    /// Where it will point; `None` when the push deletes it.
    pub new: Option<Oid>,
    /// The full ref name, e.g. `refs/heads/main`.
    pub name: String,
}

impl RefUpdate {
    /// The branch name, for a ref under `refs/heads/`.
    pub fn branch(&self) -> Option<&str> {
        self.name.strip_prefix("refs/heads/")
    }

    /// Whether the ref is a tag.
    pub fn is_tag(&self) -> bool {
        self.name.starts_with("refs/tags/")
    }
}

/// The update a push deploys: the deploy branch moving to `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deploy {
    /// The deploy branch (`main` or `master`).
    pub branch: String,
    /// The commit it pointed at before, if any.
    pub old: Option<Oid>,
    /// The commit to deploy.
    pub new: Oid,
    /// Whether this push chose the deploy branch (the app's first).
    pub first: bool,
}

/// Why a push is refused; the message says what to push instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushRefused {
    /// A line of pre-receive input that is not `<old> <new> <ref>`.
    #[error("git sent the hook a line it cannot read ({0:?}); this is a bug in capstan or git, please report it")]
    Malformed(String),
    /// A push of a branch that is not the deploy branch.
    #[error("{app} deploys the branch {deploy}, not {pushed}; push it with `git push <remote> HEAD:{deploy}`")]
    OtherBranch {
        /// The app.
        app: String,
        /// Its deploy branch.
        deploy: String,
        /// The branch pushed.
        pushed: String,
    },
    /// The first push of an app, of a branch other than main or master.
    #[error(
        "{app} deploys the branch main or master, and {pushed} is neither; \
         push it with `git push <remote> HEAD:main`"
    )]
    NotADeployBranch {
        /// The app.
        app: String,
        /// The branch pushed.
        pushed: String,
    },
    /// The first push, with both main and master.
    #[error("{app} deploys one branch: push main or master, not both; e.g. `git push <remote> HEAD:main`")]
    BothDeployBranches {
        /// The app.
        app: String,
    },
    /// Only tags (or other refs), no branch.
    #[error("a push of {what} alone does not deploy: {app} deploys the branch {deploy}; push it with `git push <remote> HEAD:{deploy}`")]
    NoBranch {
        /// The app.
        app: String,
        /// Its deploy branch, or `main` before the first deploy.
        deploy: String,
        /// What was pushed, e.g. "the tag v1".
        what: String,
    },
    /// A branch deletion.
    #[error("{app} refuses deleting branches (here {branch}); it deploys {deploy}, push a commit to it with `git push <remote> HEAD:{deploy}`")]
    Deletion {
        /// The app.
        app: String,
        /// Its deploy branch, or `main` before the first deploy.
        deploy: String,
        /// The branch the push would delete.
        branch: String,
    },
    /// A push from a shallow clone whose history the server does not have.
    #[error(
        "{short} comes from a shallow clone and the server does not have its history \
         ({detail}); a release needs the whole history: run `git fetch --unshallow` \
         and push again"
    )]
    Shallow {
        /// The pushed commit, short.
        short: String,
        /// What git said is missing.
        detail: String,
    },
}

/// Parses pre-receive's stdin: one `<old> <new> <ref>` line per ref.
pub fn parse_updates(input: &str) -> Result<Vec<RefUpdate>, PushRefused> {
    input
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let bad = || PushRefused::Malformed(line.to_owned());
            let mut fields = line.splitn(3, ' ');
            let old = Oid::new(fields.next().ok_or_else(bad)?).ok_or_else(bad)?;
            let new = Oid::new(fields.next().ok_or_else(bad)?).ok_or_else(bad)?;
            let name = fields.next().filter(|n| !n.is_empty()).ok_or_else(bad)?;
            Ok(RefUpdate {
                old: (!old.is_zero()).then_some(old),
                new: (!new.is_zero()).then_some(new),
                name: name.to_owned(),
            })
        })
        .collect()
}

/// Applies the branch rules to a push of `app` whose deploy branch is
/// `deploy_branch` (`None` before the first deploy). Tags may ride along with
/// the deploy branch; everything else is refused.
pub fn check_push(
    app: &AppName,
    deploy_branch: Option<&str>,
    updates: &[RefUpdate],
) -> Result<Deploy, PushRefused> {
    let app_s = app.to_string();
    let shown = deploy_branch.unwrap_or("main").to_owned();
    let mut chosen: Option<(&str, &RefUpdate)> = None;
    for update in updates {
        if update.is_tag() {
            continue;
        }
        let Some(branch) = update.branch() else {
            return Err(PushRefused::NoBranch {
                app: app_s,
                deploy: shown,
                what: format!("the ref {}", update.name),
            });
        };
        if update.new.is_none() {
            return Err(PushRefused::Deletion {
                app: app_s,
                deploy: shown,
                branch: branch.to_owned(),
            });
        }
        match deploy_branch {
            Some(deploy) if branch != deploy => {
                return Err(PushRefused::OtherBranch {
                    app: app_s,
                    deploy: deploy.to_owned(),
                    pushed: branch.to_owned(),
                })
            }
            None if branch != "main" && branch != "master" => {
                return Err(PushRefused::NotADeployBranch {
                    app: app_s,
                    pushed: branch.to_owned(),
                })
            }
            _ => {}
        }
        if chosen.is_some() {
            return Err(PushRefused::BothDeployBranches { app: app_s });
        }
        chosen = Some((branch, update));
    }
    let Some((branch, update)) = chosen else {
        let tags: Vec<&str> = updates
            .iter()
            .filter_map(|u| u.name.strip_prefix("refs/tags/"))
            .collect();
        let what = match tags.as_slice() {
            [one] => format!("the tag {one}"),
            _ => "tags".to_owned(),
        };
        return Err(PushRefused::NoBranch {
            app: app_s,
            deploy: shown,
            what,
        });
    };
    Ok(Deploy {
        branch: branch.to_owned(),
        old: update.old.clone(),
        new: update.new.clone().expect("deletions were refused above"),
        first: deploy_branch.is_none(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const ZERO: &str = "0000000000000000000000000000000000000000";

    fn app() -> AppName {
        AppName::new("blog").unwrap()
    }

    fn updates(lines: &[(&str, &str, &str)]) -> Vec<RefUpdate> {
        let text: String = lines
            .iter()
            .map(|(o, n, r)| format!("{o} {n} {r}\n"))
            .collect();
        parse_updates(&text).unwrap()
    }

    #[test]
    fn zero_ids_become_creation_and_deletion() {
        let u = updates(&[(ZERO, A, "refs/heads/main"), (B, ZERO, "refs/heads/old")]);
        assert_eq!(u[0].old, None);
        assert_eq!(u[0].new.as_ref().map(Oid::as_str), Some(A));
        assert_eq!(u[1].new, None);
        assert_eq!(u[1].branch(), Some("old"));
    }

    #[test]
    fn a_line_that_is_not_three_fields_is_malformed() {
        for line in [
            "",
            "abc def refs/heads/main",
            &format!("{A} {B}"),
            &format!("{A} {B} "),
        ] {
            if line.is_empty() {
                assert_eq!(parse_updates(line).unwrap(), vec![]);
                continue;
            }
            assert!(
                matches!(parse_updates(line), Err(PushRefused::Malformed(_))),
                "{line:?}"
            );
        }
    }

    #[test]
    fn an_id_that_could_be_an_option_is_refused() {
        assert_eq!(
            Oid::new("--output=/etc/passwd0000000000000000000000000"),
            None
        );
        assert_eq!(Oid::new(&A.to_uppercase().replace('1', "A")), None);
    }

    #[test]
    fn the_first_main_push_chooses_the_deploy_branch() {
        let d = check_push(&app(), None, &updates(&[(ZERO, A, "refs/heads/main")])).unwrap();
        assert_eq!(d.branch, "main");
        assert!(d.first);
        let d = check_push(&app(), None, &updates(&[(ZERO, A, "refs/heads/master")])).unwrap();
        assert_eq!(d.branch, "master");
    }

    #[test]
    fn another_branch_after_main_says_to_push_main() {
        let err = check_push(
            &app(),
            Some("main"),
            &updates(&[(ZERO, A, "refs/heads/feature")]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "blog deploys the branch main, not feature; push it with `git push <remote> HEAD:main`"
        );
        let err = check_push(
            &app(),
            Some("main"),
            &updates(&[(ZERO, A, "refs/heads/master")]),
        )
        .unwrap_err();
        assert!(matches!(err, PushRefused::OtherBranch { .. }));
    }

    #[test]
    fn a_first_push_of_another_branch_says_main_or_master() {
        let err = check_push(&app(), None, &updates(&[(ZERO, A, "refs/heads/dev")])).unwrap_err();
        assert!(
            err.to_string()
                .contains("main or master, and dev is neither"),
            "{err}"
        );
    }

    #[test]
    fn main_and_master_together_are_refused() {
        let u = updates(&[(ZERO, A, "refs/heads/main"), (ZERO, A, "refs/heads/master")]);
        let err = check_push(&app(), None, &u).unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
    }

    #[test]
    fn a_tag_alone_is_refused_and_a_tag_with_the_branch_is_not() {
        let err =
            check_push(&app(), Some("main"), &updates(&[(ZERO, A, "refs/tags/v1")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a push of the tag v1 alone does not deploy: blog deploys the branch main; \
             push it with `git push <remote> HEAD:main`"
        );
        let u = updates(&[(ZERO, A, "refs/tags/v1"), (B, A, "refs/heads/main")]);
        let d = check_push(&app(), Some("main"), &u).unwrap();
        assert_eq!(d.old.as_ref().map(Oid::as_str), Some(B));
    }

    #[test]
    fn a_deletion_is_refused_with_what_to_push() {
        let err = check_push(
            &app(),
            Some("main"),
            &updates(&[(A, ZERO, "refs/heads/main")]),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("refuses deleting branches (here main)"),
            "{err}"
        );
    }

    #[test]
    fn a_ref_outside_branches_and_tags_is_refused() {
        let err = check_push(
            &app(),
            Some("main"),
            &updates(&[(ZERO, A, "refs/notes/commits")]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("the ref refs/notes/commits alone"),
            "{err}"
        );
    }
}
