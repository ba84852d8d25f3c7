//! The error a request can end with, as it crosses the socket:
//! `{"error": {"kind": "...", "message": "..."}}`, with the HTTP status its kind implies.

use http::StatusCode;
use serde::{Deserialize, Serialize};

/// An error the daemon answers with: what kind it is (for programs) and a message a
/// person can act on (what is wrong and what to do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// What kind of error, which sets the HTTP status.
    pub kind: ErrorKind,
    /// One paragraph for a person: what is wrong and what to do.
    pub message: String,
}

/// The kinds of [`ApiError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is malformed or a value in it is not valid (400).
    BadRequest,
    /// The caller may not control capstan (403).
    Refused,
    /// No app by that name (404).
    UnknownApp,
    /// Something else named in the request does not exist: a release, a process,
    /// a command this daemon does not know (404).
    NotFound,
    /// What the request would create exists already (409).
    AlreadyExists,
    /// The app is busy with another operation, such as a deploy in progress (409).
    Busy,
    /// The operation was tried and failed, such as a build command that exited 1 (500).
    Failed,
    /// The daemon is stopping and takes no new work (503).
    Unavailable,
    /// A fault in capstan itself (500).
    Internal,
}

impl ErrorKind {
    /// The HTTP status an error of this kind is sent with.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Refused => StatusCode::FORBIDDEN,
            ErrorKind::UnknownApp | ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::AlreadyExists | ErrorKind::Busy => StatusCode::CONFLICT,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Failed | ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl ApiError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    /// A bad request (400).
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::BadRequest, message)
    }

    /// No app called `name` (404), with what to do about it.
    pub fn unknown_app(name: &str) -> ApiError {
        ApiError::new(
            ErrorKind::UnknownApp,
            format!(
                "there is no app called {name:?} on this server: `capstan apps` lists them, \
                 `capstan apps create {name} --domain ...` makes it"
            ),
        )
    }

    /// The app is busy (409): `what` says who or what holds it.
    pub fn busy(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Busy, message)
    }

    /// The operation failed (500 when it is the whole answer).
    pub fn failed(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Failed, message)
    }

    /// A fault in capstan itself (500).
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Internal, message)
    }
}

/// The body of an error answer: `{"error": {...}}`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) error: ApiError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_sent_as_kind_and_message_under_error() {
        let body = ErrorBody {
            error: ApiError::unknown_app("blog"),
        };
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["error"]["kind"], "unknown_app");
        assert!(json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("capstan apps create blog"));
    }

    #[test]
    fn each_kind_has_the_status_that_fits() {
        assert_eq!(ErrorKind::BadRequest.status(), 400);
        assert_eq!(ErrorKind::Refused.status(), 403);
        assert_eq!(ErrorKind::UnknownApp.status(), 404);
        assert_eq!(ErrorKind::Busy.status(), 409);
        assert_eq!(ErrorKind::Unavailable.status(), 503);
    }
}
