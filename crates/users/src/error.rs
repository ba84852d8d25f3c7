//! What can go wrong making or removing users and groups.

use std::io;

/// Why a user or group could not be made, read or removed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The app's name is too long to be part of a user name.
    #[error(
        "the app name {app:?} is {len} characters, too long to run as its own system user: \
         user names are at most 32 characters and `capstan-` takes 8, so an app on a server \
         that runs as root can have at most {max} (app names elsewhere may have up to 63). \
         Choose a shorter name."
    )]
    NameTooLong {
        /// The app's name.
        app: String,
        /// Its length.
        len: usize,
        /// The longest app name that fits.
        max: usize,
    },
    /// A shadow-utils command could not be started or failed.
    #[error("could not {what}: `{command}` {outcome}")]
    Command {
        /// What capstan was doing, e.g. `create the system user capstan-blog`.
        what: String,
        /// The command line.
        command: String,
        /// How it ended, with its error output.
        outcome: String,
    },
    /// The user database could not be read.
    #[error("could not look up {name} in the user database: {source}")]
    Lookup {
        /// The user or group name.
        name: String,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// `useradd` succeeded but the user is not there.
    #[error("the system user {name} was created but cannot be found afterwards")]
    Vanished {
        /// The user name.
        name: String,
    },
}
