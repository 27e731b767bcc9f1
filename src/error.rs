//! One error type for the whole server, mapped to an HTTP status and a Matrix `errcode`.
//!
//! Services return [`Error`]; the API layer turns it into the spec's JSON error body. Internal
//! failures are logged with their context and answered with a bare 500 `M_UNKNOWN`.

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use http::StatusCode;
use serde_json::{Value, json};

/// Shorthand used across services and handlers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure a request can end in.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A client-caused failure with a spec errcode.
    #[error("{errcode}: {message}")]
    Matrix {
        status: StatusCode,
        errcode: &'static str,
        message: String,
        extra: Option<Value>,
    },
    /// User-interactive auth must continue: the 401 body carries the flows and progress.
    #[error("user-interactive authentication required")]
    Uiaa(Value),
    /// Something broke on our side; the message is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    fn matrix(status: StatusCode, errcode: &'static str, message: impl Into<String>) -> Self {
        Error::Matrix {
            status,
            errcode,
            message: message.into(),
            extra: None,
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::matrix(StatusCode::FORBIDDEN, "M_FORBIDDEN", message)
    }
    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::matrix(StatusCode::BAD_REQUEST, "M_BAD_JSON", message)
    }
    pub fn not_json(message: impl Into<String>) -> Self {
        Self::matrix(StatusCode::BAD_REQUEST, "M_NOT_JSON", message)
    }
    pub fn invalid_param(message: impl Into<String>) -> Self {
        Self::matrix(StatusCode::BAD_REQUEST, "M_INVALID_PARAM", message)
    }
    pub fn missing_param(message: impl Into<String>) -> Self {
        Self::matrix(StatusCode::BAD_REQUEST, "M_MISSING_PARAM", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::matrix(StatusCode::NOT_FOUND, "M_NOT_FOUND", message)
    }
    pub fn missing_token() -> Self {
        Self::matrix(
            StatusCode::UNAUTHORIZED,
            "M_MISSING_TOKEN",
            "Missing access token",
        )
    }
    /// An access token that is unknown or revoked (`soft_logout: false`) or merely expired
    /// (`soft_logout: true`: the client may refresh or log in again keeping its data).
    pub fn unknown_token(soft_logout: bool) -> Self {
        let message = if soft_logout {
            "Access token has expired"
        } else {
            "Unknown access token"
        };
        Error::Matrix {
            status: StatusCode::UNAUTHORIZED,
            errcode: "M_UNKNOWN_TOKEN",
            message: message.into(),
            extra: Some(json!({ "soft_logout": soft_logout })),
        }
    }
    pub fn user_in_use() -> Self {
        Self::matrix(
            StatusCode::BAD_REQUEST,
            "M_USER_IN_USE",
            "User ID already taken",
        )
    }
    pub fn invalid_username(message: impl Into<String>) -> Self {
        Self::matrix(StatusCode::BAD_REQUEST, "M_INVALID_USERNAME", message)
    }
    pub fn user_deactivated() -> Self {
        Self::matrix(
            StatusCode::FORBIDDEN,
            "M_USER_DEACTIVATED",
            "This account has been deactivated",
        )
    }
    pub fn too_large(limit: usize) -> Self {
        Self::matrix(
            StatusCode::PAYLOAD_TOO_LARGE,
            "M_TOO_LARGE",
            format!("Request body is larger than the limit of {limit} bytes"),
        )
    }
    pub fn unrecognized(status: StatusCode, message: impl Into<String>) -> Self {
        Self::matrix(status, "M_UNRECOGNIZED", message)
    }
    pub fn limit_exceeded(retry_after_ms: u64) -> Self {
        Error::Matrix {
            status: StatusCode::TOO_MANY_REQUESTS,
            errcode: "M_LIMIT_EXCEEDED",
            message: "Too many requests".into(),
            extra: Some(json!({ "retry_after_ms": retry_after_ms })),
        }
    }
    pub fn guest_access_forbidden() -> Self {
        Self::matrix(
            StatusCode::FORBIDDEN,
            "M_GUEST_ACCESS_FORBIDDEN",
            "Guest access is not enabled",
        )
    }
    pub fn unknown(status: StatusCode, message: impl Into<String>) -> Self {
        Self::matrix(status, "M_UNKNOWN", message)
    }
    pub fn weak_password(message: impl Into<String>) -> Self {
        Self::matrix(StatusCode::BAD_REQUEST, "M_WEAK_PASSWORD", message)
    }
    pub fn unsupported_room_version(message: impl Into<String>) -> Self {
        Self::matrix(
            StatusCode::BAD_REQUEST,
            "M_UNSUPPORTED_ROOM_VERSION",
            message,
        )
    }
    /// Rejecting the invite to one's server-notices room (Synapse's errcode).
    pub fn cannot_leave_server_notice_room() -> Self {
        Self::matrix(
            StatusCode::FORBIDDEN,
            "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM",
            "You cannot reject the invite to your server notices room",
        )
    }
    pub fn room_in_use(message: impl Into<String>) -> Self {
        Self::matrix(StatusCode::BAD_REQUEST, "M_ROOM_IN_USE", message)
    }
    pub fn invalid_room_state(message: impl Into<String>) -> Self {
        Self::matrix(StatusCode::BAD_REQUEST, "M_INVALID_ROOM_STATE", message)
    }
    pub fn invalid_signature(message: impl Into<String>) -> Self {
        Self::matrix(StatusCode::BAD_REQUEST, "M_INVALID_SIGNATURE", message)
    }
    /// A key backup request for a version that is not the current one (`current_version` in
    /// the body, as the spec asks).
    pub fn wrong_room_keys_version(current: Option<String>) -> Self {
        Error::Matrix {
            status: StatusCode::FORBIDDEN,
            errcode: "M_WRONG_ROOM_KEYS_VERSION",
            message: "Wrong backup version".into(),
            extra: Some(json!({ "current_version": current })),
        }
    }
    /// A federation request without a valid `X-Matrix` signature.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::matrix(StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED", message)
    }
    /// Another server could not be reached or answered with nonsense.
    pub fn remote_failure(message: impl Into<String>) -> Self {
        Self::matrix(StatusCode::BAD_GATEWAY, "M_UNKNOWN", message)
    }
    pub fn bad_alias(message: impl Into<String>) -> Self {
        Self::matrix(StatusCode::BAD_REQUEST, "M_BAD_ALIAS", message)
    }
    pub fn internal(context: impl std::fmt::Display) -> Self {
        Error::Internal(context.to_string())
    }

    /// The Matrix errcode, for tests and logs.
    pub fn errcode(&self) -> &'static str {
        match self {
            Error::Matrix { errcode, .. } => errcode,
            Error::Uiaa(_) => "M_FORBIDDEN",
            Error::Internal(_) => "M_UNKNOWN",
        }
    }
}

impl From<crate::storage::StorageError> for Error {
    fn from(e: crate::storage::StorageError) -> Self {
        Error::Internal(format!("storage: {e}"))
    }
}

impl Error {
    /// The status and JSON body a client is sent, the same over HTTP and WebSocket. Internal
    /// errors are logged here with their context and answered without it.
    pub fn into_public(self) -> (StatusCode, Value) {
        match self {
            Error::Matrix {
                status,
                errcode,
                message,
                extra,
            } => {
                let mut body = json!({ "errcode": errcode, "error": message });
                if let (Some(Value::Object(extra)), Some(obj)) = (extra, body.as_object_mut()) {
                    obj.extend(extra);
                }
                (status, body)
            }
            Error::Uiaa(body) => (StatusCode::UNAUTHORIZED, body),
            Error::Internal(context) => {
                tracing::error!(%context, "internal error");
                let body = json!({ "errcode": "M_UNKNOWN", "error": "Internal server error" });
                (StatusCode::INTERNAL_SERVER_ERROR, body)
            }
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, body) = self.into_public();
        (status, Json(body)).into_response()
    }
}
