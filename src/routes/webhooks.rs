//! Meta's webhook endpoint: the verification handshake, and the signed POSTs handed to the
//! ingress service (stored before the 200; processed after).

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use utoipa::IntoParams;

use actix_web::web::Bytes;

use super::body::{BodyBudget, Reservation, deadline_of, read_reserved};
use crate::domain::meta_webhook::{SIGNATURE_HEADER, SignatureCheck};
use crate::error::ApiError;
use crate::services::processing::{Ingress, IngressError};

/// How much of Meta's POSTs the ingress holds: each at most `max_body`, all together at
/// most the budget (`webhooks.max_body_bytes`, `webhooks.max_in_flight_bytes`).
pub struct IngressLimits {
    pub max_body: usize,
    pub budget: BodyBudget,
}

impl IngressLimits {
    /// Reads a POST's body within `max_body` and the process-wide budget (held until the
    /// reservation is dropped), feeding every chunk to the signature check as it arrives.
    async fn read(
        &self,
        req: &HttpRequest,
        payload: web::Payload,
        check: &mut SignatureCheck,
    ) -> Result<(Bytes, Reservation), ApiError> {
        let declared = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|len| len > self.max_body) {
            return Err(ApiError::PayloadTooLarge {
                limit: self.max_body,
            });
        }
        let mut reservation = self.budget.reserve(declared).ok_or(ApiError::Overloaded {
            retry_after_seconds: 1,
        })?;
        let body = read_reserved(
            payload,
            self.max_body,
            deadline_of(req),
            &mut reservation,
            |chunk| check.update(chunk),
        )
        .await?;
        Ok((body, reservation))
    }
}

fn refused(e: IngressError) -> ApiError {
    match e {
        IngressError::BadSignature => ApiError::Unauthorized(e.to_string()),
        IngressError::Storage(e) => ApiError::Storage(e),
    }
}

/// The token Meta's verification handshake must present.
pub struct VerifyToken(pub SecretString);

#[derive(Deserialize, IntoParams)]
pub struct Handshake {
    #[serde(rename = "hub.mode")]
    #[param(rename = "hub.mode", example = "subscribe")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    #[param(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    #[param(rename = "hub.challenge", example = "1158201444")]
    challenge: Option<String>,
}

/// Meta's verification handshake: echo the challenge when the verify token matches.
#[utoipa::path(
    tag = "webhooks",
    params(Handshake),
    responses(
        (status = 200, description = "The challenge, echoed", content_type = "text/plain", body = String),
        (status = 400, description = "A malformed query string", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Wrong verify token or mode", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/webhooks/whatsapp")]
pub async fn verify_subscription(
    query: web::Query<Handshake>,
    verify_token: web::Data<VerifyToken>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let token_ok = q.verify_token.as_deref().is_some_and(|t| {
        bool::from(
            t.as_bytes()
                .ct_eq(verify_token.0.expose_secret().as_bytes()),
        )
    });
    match (q.mode.as_deref(), token_ok, q.challenge) {
        (Some("subscribe"), true, Some(challenge)) => Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(challenge)),
        _ => Err(ApiError::Forbidden("verification refused".into())),
    }
}

/// Receives Meta's group webhooks. The body is stored before the 200; processing follows.
///
/// Memory is bounded for the whole process: a POST without a well-formed signature is
/// refused before its body is read; the others reserve their declared size from a budget
/// shared by every POST in flight (refused with 503 and `Retry-After`, which Meta retries,
/// when there is no room), a chunked one as its chunks arrive and never from the quarter
/// kept for small declared bodies, and the HMAC runs over the chunks as they arrive.
#[utoipa::path(
    tag = "webhooks",
    request_body(content = Object, description = "Meta's webhook payload, signed with the app secret", content_type = "application/json"),
    params(("X-Hub-Signature-256" = String, Header, description = "sha256=<hex HMAC-SHA256 of the raw body with the app secret>")),
    responses(
        (status = 200, description = "Stored (or recognised as a redelivery)", body = WebhookReceipt),
        (status = 400, description = "The body could not be read", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong signature", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive within `server.body_timeout_ms`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than `webhooks.max_body_bytes`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 500, description = "The POST could not be stored (Meta retries it)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "No room for the body now: retry after `Retry-After` (Meta does)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/webhooks/whatsapp")]
pub async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    ingress: web::Data<Ingress>,
    limits: web::Data<IngressLimits>,
) -> Result<HttpResponse, ApiError> {
    let signature = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let mut check = ingress.signature_check(signature).map_err(refused)?;
    let (body, reservation) = limits.read(&req, payload, &mut check).await?;
    let duplicate = ingress.accept(check, body).await.map_err(refused)?;
    drop(reservation);
    Ok(HttpResponse::Ok().json(WebhookReceipt {
        received: true,
        duplicate,
    }))
}

/// What Meta is answered for a stored POST.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct WebhookReceipt {
    pub received: bool,
    /// The POST was stored before (Meta's redelivery): it is processed once.
    pub duplicate: bool,
}
