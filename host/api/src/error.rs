//! Errors as the API answers them: an HTTP status and a JSON body `{code, message}`.
//! Internal failures are logged in full and answered with a generic message, so a
//! response never leaks database or file-system details.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
pub use shoal_api_types::error::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing, invalid, expired or revoked API token")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// A workflow definition with problems; each names file, line and field.
    #[error("{0}")]
    InvalidDefinition(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Internal(String),
    /// The server is up but cannot serve (its store does not answer); the detail is
    /// logged, like [`ApiError::Internal`]'s.
    #[error("{0}")]
    Unavailable(String),
    /// Another service's answer passed through as it came: the cluster proxy relays a
    /// cluster's error with the cluster's status and code.
    #[error("{message}")]
    Upstream {
        status: u16,
        code: String,
        message: String,
    },
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request"),
            Self::InvalidDefinition(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-definition"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too-large"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Upstream { .. } => (StatusCode::BAD_GATEWAY, "upstream"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Upstream {
            status,
            code,
            message,
        } = self
        {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            return (status, Json(ErrorBody { code, message })).into_response();
        }
        let (status, code) = self.status_and_code();
        let message = match &self {
            Self::Internal(detail) => {
                tracing::error!("request failed: {detail}");
                "internal error; the server log has the details".to_owned()
            }
            Self::Unavailable(detail) => {
                tracing::error!("unavailable: {detail}");
                "the server's store does not answer; the server log has the details".to_owned()
            }
            other => other.to_string(),
        };
        (
            status,
            Json(ErrorBody {
                code: code.to_owned(),
                message,
            }),
        )
            .into_response()
    }
}

impl From<shoal_store::StoreError> for ApiError {
    fn from(e: shoal_store::StoreError) -> Self {
        if e.is_unstorable_text() {
            return Self::BadRequest(
                "a text field holds a character the database cannot store (NUL, \\u0000)".into(),
            );
        }
        Self::Internal(e.to_string())
    }
}

impl From<shoal_master::MasterError> for ApiError {
    fn from(e: shoal_master::MasterError) -> Self {
        use shoal_master::MasterError as M;
        match e {
            M::NoSuchInstance(_) | M::NoSuchDefinition { .. } => Self::NotFound(e.to_string()),
            M::Illegal(_) | M::NoSuchTask { .. } | M::Graph(_) | M::Refused(_) => {
                Self::Conflict(e.to_string())
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<shoal_scheduler::SchedulerError> for ApiError {
    fn from(e: shoal_scheduler::SchedulerError) -> Self {
        use shoal_scheduler::SchedulerError as S;
        match e {
            S::Master(m) => m.into(),
            S::NoSuchDefinition(_) => Self::NotFound(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Give every error response the `{code, message}` body, including axum's own
/// rejections (a JSON body of the wrong shape, a body over the size limit, a path
/// segment that is not a number), which answer in plain text. A body that does not
/// parse or has the wrong types is a `bad-request` (400) like any other malformed
/// request; the rejection's text, which names the field, line and column, is kept.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let text = match axum::body::to_bytes(response.into_body(), 64 * 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let (status, code) = match status {
        StatusCode::UNAUTHORIZED => (status, "unauthenticated"),
        StatusCode::FORBIDDEN => (status, "forbidden"),
        StatusCode::NOT_FOUND => (status, "not-found"),
        StatusCode::CONFLICT => (status, "conflict"),
        StatusCode::PAYLOAD_TOO_LARGE => (status, "too-large"),
        StatusCode::METHOD_NOT_ALLOWED => (status, "method-not-allowed"),
        s if s.is_server_error() => (s, "internal"),
        _ => (StatusCode::BAD_REQUEST, "bad-request"),
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned()
    } else {
        text
    };
    (
        status,
        Json(ErrorBody {
            code: code.to_owned(),
            message,
        }),
    )
        .into_response()
}
