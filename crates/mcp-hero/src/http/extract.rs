//! Extractors: who is calling (the one place bearer tokens are read) and strict JSON bodies.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use store::{Principal, TokenRejection};

use super::AppState;
use super::error::ApiError;

/// The authenticated caller: a member acting inside their token's organization (S8).
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl std::ops::Deref for Caller {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let metrics = &state.metrics;
        let Some(value) = parts.headers.get(AUTHORIZATION) else {
            metrics.token_checked("missing");
            return Err(ApiError::Unauthenticated { description: None });
        };
        let bearer = value
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let Some(bearer) = bearer else {
            metrics.token_checked("malformed");
            return Err(ApiError::Unauthenticated {
                description: Some("expected Authorization: Bearer <token>"),
            });
        };
        let Ok(digest) = auth::pat::parse(bearer) else {
            metrics.token_checked("malformed");
            return Err(ApiError::Unauthenticated {
                description: Some("the token is not an MCP Hero personal access token"),
            });
        };
        match state.store.authenticate_token(&digest).await {
            Ok(Ok(principal)) => {
                metrics.token_checked("ok");
                Ok(Caller(principal))
            }
            Ok(Err(rejection)) => {
                let (outcome, description) = match rejection {
                    TokenRejection::Unknown => ("unknown", "the token is not valid"),
                    TokenRejection::Expired => ("expired", "the token has expired"),
                    TokenRejection::Revoked => ("revoked", "the token was revoked"),
                };
                metrics.token_checked(outcome);
                Err(ApiError::Unauthenticated {
                    description: Some(description),
                })
            }
            Err(error) => {
                metrics.token_checked("error");
                Err(error.into())
            }
        }
    }
}

/// A JSON body with strict rules: unknown fields and type errors are 400 naming the field,
/// oversized bodies 413, a missing JSON content type 415.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge("the request body is larger than the limit".to_owned())
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(
            "send the body as JSON with Content-Type: application/json".to_owned(),
        ),
        _ => {
            let detail = match rejection {
                // serde's message names the field: "unknown field `x`, expected ...", "missing field `y`".
                JsonRejection::JsonDataError(error) => {
                    std::error::Error::source(error).map(ToString::to_string)
                }
                JsonRejection::JsonSyntaxError(error) => {
                    std::error::Error::source(error).map(ToString::to_string)
                }
                _ => None,
            };
            let detail = detail.unwrap_or_else(|| rejection.body_text());
            ApiError::BadRequest(format!("invalid JSON body: {detail}"))
        }
    }
}
