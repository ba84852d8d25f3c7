//! The system users and groups a server's apps run as.
//!
//! When capstan runs as root, each app gets a system user `capstan-<app>` with a
//! group of the same name, no login shell and no home folder made for it
//! ([`ensure_app_user`]); the control socket is open to the `capstan` group
//! ([`ensure_group`]). Not root: there is no one to switch to, so everything runs
//! as the current user ([`current_user`]), and the log says so once.
//!
//! Users are made with Debian's `useradd`/`userdel`/`groupadd`/`groupdel`
//! (shadow-utils), never `adduser`, and read back with `getpwnam`.

mod app_user;
mod error;
mod group;

pub use app_user::{current_user, ensure_app_user, remove_app_user, user_name, AppUser};
pub use error::UserError;
pub use group::{ensure_group, group_exists, remove_group};
