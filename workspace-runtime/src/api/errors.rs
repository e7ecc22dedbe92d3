//! One mapping from the runtime's errors to HTTP answers: a status code and a JSON body
//! `{"error": kind, "reason": message}` that says why.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::{BusError, LockError, StorageError, TaskError};
use crate::files::FileError;
use crate::query::QueryError;
use crate::sessions::SessionError;

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    reason: String,
}

impl ApiError {
    /// A 400 with a reason.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_request",
            reason: reason.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(kind = self.kind, reason = %self.reason, "request failed");
        }
        (
            self.status,
            Json(json!({"error": self.kind, "reason": self.reason})),
        )
            .into_response()
    }
}

fn err(status: StatusCode, kind: &'static str, e: impl std::fmt::Display) -> ApiError {
    ApiError {
        status,
        kind,
        reason: e.to_string(),
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        // The full error, paths included, goes to the log; the client gets it without.
        tracing::error!(error = %e, "storage failed");
        if e.is_disk_full() {
            return err(
                StatusCode::INSUFFICIENT_STORAGE,
                "disk_full",
                format!(
                    "the workspace's disk is full ({}); nothing acknowledged is lost, reads go on, and writes resume once space is freed",
                    e.client_reason()
                ),
            );
        }
        err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage",
            e.client_reason(),
        )
    }
}

impl From<LockError> for ApiError {
    fn from(e: LockError) -> Self {
        let (status, kind) = match &e {
            LockError::Timeout { .. } => (StatusCode::CONFLICT, "lock_timeout"),
            LockError::UnknownToken { .. } => (StatusCode::NOT_FOUND, "unknown_token"),
            LockError::StaleFencingToken { .. } => (StatusCode::CONFLICT, "stale_fencing_token"),
            LockError::InvalidPath { .. } => (StatusCode::BAD_REQUEST, "invalid_path"),
            LockError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage"),
            LockError::DiskFull(_) => (StatusCode::INSUFFICIENT_STORAGE, "disk_full"),
        };
        err(status, kind, e)
    }
}

impl From<TaskError> for ApiError {
    fn from(e: TaskError) -> Self {
        match e {
            TaskError::NotFound(_) => err(StatusCode::NOT_FOUND, "not_found", e),
            TaskError::UnknownAgent(_) => err(StatusCode::BAD_REQUEST, "unknown_agent", e),
            TaskError::NoAgentForRole(_) => err(StatusCode::BAD_REQUEST, "no_agent_for_role", e),
            TaskError::InvalidTransition { .. } => {
                err(StatusCode::CONFLICT, "invalid_transition", e)
            }
            TaskError::Storage(s) => s.into(),
        }
    }
}

impl From<BusError> for ApiError {
    fn from(e: BusError) -> Self {
        match e {
            BusError::Storage(s) => s.into(),
            other => err(StatusCode::BAD_REQUEST, "bad_message", other),
        }
    }
}

impl From<FileError> for ApiError {
    fn from(e: FileError) -> Self {
        match e {
            FileError::Lock(l) => l.into(),
            FileError::Storage(s) => s.into(),
            FileError::NotFound(_) => err(StatusCode::NOT_FOUND, "not_found", e),
            FileError::NotAFile { .. } => err(StatusCode::CONFLICT, "not_a_file", e),
            FileError::TooLarge { .. } => err(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e),
            FileError::OutsideProjects(_) => err(StatusCode::FORBIDDEN, "outside_projects", e),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Sqlite(_) => err(StatusCode::BAD_REQUEST, "query_failed", e),
            QueryError::UnknownDatabase(_) => err(StatusCode::NOT_FOUND, "unknown_database", e),
            QueryError::NotReadOnly(_) => err(StatusCode::FORBIDDEN, "not_read_only", e),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::NotRenewable => err(StatusCode::CONFLICT, "not_renewable", e),
            SessionError::Storage(s) => s.into(),
        }
    }
}
