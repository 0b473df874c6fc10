//! The one web error type: maps core errors to a status and a JSON body; logs what users must not see.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use store::StoreError;

/// Why a request failed, as the client will see it. Never holds a secret.
#[derive(Debug)]
pub enum ApiError {
    /// No credentials, or credentials that do not authenticate (401 with `WWW-Authenticate`).
    Unauthenticated {
        /// RFC 6750 `error_description`; `None` when no credentials were sent at all.
        description: Option<&'static str>,
    },
    /// Authenticated, but the role may not do this.
    Forbidden(String),
    /// Nothing with that id in the caller's organization.
    NotFound(&'static str),
    /// The request is malformed; the message names the field.
    BadRequest(String),
    /// The request conflicts with existing state.
    Conflict(String),
    /// The body is larger than the configured limit.
    PayloadTooLarge(String),
    /// The body is not JSON.
    UnsupportedMediaType(String),
    /// A server the gateway talks to on the caller's behalf (an authorization server) failed;
    /// the message says how, never with a secret.
    BadGateway(String),
    /// Something broke on our side; details are in the log under the request id.
    Internal,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::Unauthenticated { description } => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                description.map_or_else(|| "a bearer token is required".to_owned(), str::to_owned),
            ),
            ApiError::Forbidden(message) => (StatusCode::FORBIDDEN, "forbidden", message.clone()),
            ApiError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            ),
            ApiError::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, "bad_request", message.clone())
            }
            ApiError::Conflict(message) => (StatusCode::CONFLICT, "conflict", message.clone()),
            ApiError::PayloadTooLarge(message) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                message.clone(),
            ),
            ApiError::UnsupportedMediaType(message) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                message.clone(),
            ),
            ApiError::BadGateway(message) => {
                (StatusCode::BAD_GATEWAY, "bad_gateway", message.clone())
            }
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; the x-request-id response header names it in the gateway log"
                    .to_owned(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let mut response = (
            status,
            Json(ErrorBody {
                error: ErrorDetail {
                    code,
                    message: &message,
                },
            }),
        )
            .into_response();
        if let ApiError::Unauthenticated { description } = &self {
            // RFC 6750 §3: a missing token gets a bare challenge, a bad one `invalid_token`.
            let challenge = match description {
                None => "Bearer realm=\"mcp-hero\"".to_owned(),
                Some(description) => {
                    format!(
                        "Bearer realm=\"mcp-hero\", error=\"invalid_token\", error_description=\"{description}\""
                    )
                }
            };
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Conflict(message) => ApiError::Conflict(message),
            StoreError::LastOwner => ApiError::Conflict(error.to_string()),
            StoreError::Invalid { .. } => ApiError::BadRequest(error.to_string()),
            StoreError::Denied(denied) => ApiError::Forbidden(denied.to_string()),
            other => {
                // Store errors name tables and ids, never sealed values (see store::StoreError).
                tracing::error!(error = %other, "store error");
                ApiError::Internal
            }
        }
    }
}

impl From<auth::Denied> for ApiError {
    fn from(denied: auth::Denied) -> Self {
        ApiError::Forbidden(denied.to_string())
    }
}
