//! The one way out of a handler: a closed error enum rendered as RFC 9457 problem+json.
//! Services answer it too; it knows the failures of the layers below (storage, Graph) and
//! nothing above them.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::context::current_request_id;
use crate::domain::FieldError;
use crate::graph::{UpstreamError, UpstreamProblem};
use crate::storage::StorageError;

/// RFC 9457 problem details, the body of every error.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "https://wa-groups-gateway.dev/problems/validation",
    "title": "Invalid request",
    "status": 400,
    "detail": "1 field is invalid",
    "request_id": "3f1c2a7e-0d1b-4a55-9a43-9b2f4f9f3c10",
    "errors": [{"field": "subject", "message": "must be 1-128 characters"}]
}))]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamProblem>,
}

const TYPE_BASE: &str = "https://wa-groups-gateway.dev/problems/";

/// The full problem type of `slug`.
pub fn problem_type(slug: &str) -> String {
    format!("{TYPE_BASE}{slug}")
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    Validation {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Another creation with the same phone number and subject still waits for Meta's
    /// request id: one at a time, so webhooks cannot be matched to the wrong team (README,
    /// "Creations and isolation").
    #[error(
        "a creation with this subject on this phone number is in progress; retry in {retry_after_seconds} s"
    )]
    CreationInProgress { retry_after_seconds: u64 },
    /// A creation would take the phone number, or the team on it, beyond its `max_groups`
    /// (README, "Guardrails"): nothing was sent to Meta.
    #[error(
        "the {scope} may have at most {limit} groups on this phone number (active groups and creations pending count); delete a group first"
    )]
    GroupQuotaExceeded { scope: &'static str, limit: u32 },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("the team's request budget is used up; retry in {retry_after_seconds} s")]
    RateLimited {
        retry_after_seconds: u64,
        limit: u32,
    },
    /// Too many calls without a valid token from one client address.
    #[error("too many unauthenticated calls from this address; retry in {retry_after_seconds} s")]
    AnonymousRateLimited {
        retry_after_seconds: u64,
        limit: u32,
    },
    /// The gateway refuses work it has no room for now (webhook bodies in flight); the
    /// caller is expected to retry, as Meta does.
    #[error("the gateway is busy; retry in {retry_after_seconds} s")]
    Overloaded { retry_after_seconds: u64 },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("storage error")]
    Storage(#[from] StorageError),
}

impl ApiError {
    /// A 400 for one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::fields(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }

    /// A 400 listing every broken field.
    pub fn fields(errors: Vec<FieldError>) -> Self {
        let detail = match errors.len() {
            1 => format!("{}: {}", errors[0].field, errors[0].message),
            n => format!("{n} fields are invalid"),
        };
        ApiError::Validation { detail, errors }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        ApiError::Validation {
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::Validation { .. } => ("validation", "Invalid request"),
            ApiError::Unauthorized(_) => ("unauthorized", "Authentication required"),
            ApiError::Forbidden(_) => ("forbidden", "Not allowed"),
            ApiError::NotFound(_) => ("not-found", "Not found"),
            ApiError::Conflict(_) => ("conflict", "Conflict"),
            ApiError::CreationInProgress { .. } => (
                "creation-in-progress",
                "A creation with this subject is in progress",
            ),
            ApiError::GroupQuotaExceeded { .. } => ("group-quota-exceeded", "Group quota exceeded"),
            ApiError::PayloadTooLarge { .. } => ("payload-too-large", "Request body too large"),
            ApiError::UnsupportedMediaType(_) => {
                ("unsupported-media-type", "Unsupported media type")
            }
            ApiError::Unprocessable(_) => ("idempotency-conflict", "Idempotency-Key reused"),
            ApiError::RequestTimeout => ("request-timeout", "Request timeout"),
            ApiError::RateLimited { .. } => ("rate-limited", "Team rate limit reached"),
            ApiError::AnonymousRateLimited { .. } => {
                ("rate-limited", "Too many unauthenticated calls")
            }
            ApiError::Overloaded { .. } => ("overloaded", "The gateway is busy"),
            ApiError::Upstream(e) => e.kind(),
            ApiError::Internal(_) | ApiError::Storage(_) => ("internal", "Internal error"),
        }
    }

    pub fn problem(&self) -> Problem {
        let (slug, title) = self.kind();
        let errors = match self {
            ApiError::Validation { errors, .. } if !errors.is_empty() => Some(errors.clone()),
            _ => None,
        };
        let detail = match self {
            // Internal details stay in the logs.
            ApiError::Internal(_) | ApiError::Storage(_) => {
                "the gateway failed to process the request".to_owned()
            }
            other => other.to_string(),
        };
        Problem {
            problem_type: format!("{TYPE_BASE}{slug}"),
            title: title.to_owned(),
            status: self.status_code().as_u16(),
            detail,
            request_id: current_request_id(),
            errors,
            upstream: match self {
                ApiError::Upstream(e) => e.problem(),
                _ => None,
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_)
            | ApiError::CreationInProgress { .. }
            | ApiError::GroupQuotaExceeded { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::RateLimited { .. } | ApiError::AnonymousRateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Upstream(e) => e.status(),
            ApiError::Internal(_) | ApiError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(msg) => tracing::error!(error = %msg, "internal error"),
            ApiError::Storage(e) => tracing::error!(error = %e, "storage error"),
            ApiError::Upstream(e) => e.log(),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let ApiError::Unauthorized(_) = self {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"wa-groups-gateway\"",
            ));
        }
        if let ApiError::Upstream(e) = self
            && let Some(seconds) = e.retry_after()
        {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if let ApiError::Overloaded {
            retry_after_seconds,
        }
        | ApiError::CreationInProgress {
            retry_after_seconds,
        } = self
        {
            response.insert_header((header::RETRY_AFTER, retry_after_seconds.to_string()));
        }
        if let ApiError::RateLimited {
            retry_after_seconds,
            limit,
        }
        | ApiError::AnonymousRateLimited {
            retry_after_seconds,
            limit,
        } = self
        {
            // RateLimit header fields (IETF draft) beside the classic Retry-After.
            response.insert_header((header::RETRY_AFTER, retry_after_seconds.to_string()));
            response.insert_header(("RateLimit-Limit", limit.to_string()));
            response.insert_header(("RateLimit-Remaining", "0"));
            response.insert_header(("RateLimit-Reset", retry_after_seconds.to_string()));
        }
        response.body(serde_json::to_vec(&self.problem()).unwrap_or_default())
    }
}

/// Extractor failures (bad JSON, bad query, oversized bodies) become problem+json too.
pub fn json_error_handler(
    err: actix_web::error::JsonPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let api = match &err {
        E::OverflowKnownLength { limit, .. } | E::Overflow { limit } => {
            ApiError::PayloadTooLarge { limit: *limit }
        }
        E::ContentType => {
            ApiError::UnsupportedMediaType("Content-Type must be application/json".into())
        }
        other => ApiError::bad_request(format!("malformed JSON body: {other}")),
    };
    api.into()
}

pub fn query_error_handler(
    err: actix_web::error::QueryPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::bad_request(format!("malformed query string: {err}")).into()
}

pub fn path_error_handler(
    err: actix_web::error::PathError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::bad_request(format!("malformed path: {err}")).into()
}

/// Unknown routes answer problem+json 404 rather than an empty body.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

impl actix_web::Responder for ApiError {
    type Body = actix_web::body::BoxBody;
    fn respond_to(self, _req: &actix_web::HttpRequest) -> HttpResponse {
        self.error_response()
    }
}
