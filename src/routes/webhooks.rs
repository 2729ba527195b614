//! Meta's webhook endpoint: the verification handshake, and the signed POSTs handed to the
//! ingress service (stored before the 200; processed after).

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use utoipa::IntoParams;

use super::body::Body;
use crate::domain::meta_webhook::SIGNATURE_HEADER;
use crate::error::ApiError;
use crate::services::processing::{Ingress, IngressError};

/// Meta batches up to 1,000 changes in one POST; this leaves room for that.
pub const WEBHOOK_BODY_LIMIT: usize = 16 * 1024 * 1024;

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
#[utoipa::path(
    tag = "webhooks",
    request_body(content = Object, description = "Meta's webhook payload, signed with the app secret", content_type = "application/json"),
    params(("X-Hub-Signature-256" = String, Header, description = "sha256=<hex HMAC-SHA256 of the raw body with the app secret>")),
    responses(
        (status = 200, description = "Stored (or recognised as a redelivery)"),
        (status = 401, description = "Missing or wrong signature", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/webhooks/whatsapp")]
pub async fn receive(
    req: HttpRequest,
    body: Body<WEBHOOK_BODY_LIMIT>,
    ingress: web::Data<Ingress>,
) -> Result<HttpResponse, ApiError> {
    let signature = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let duplicate = ingress
        .accept(signature, &body)
        .await
        .map_err(|e| match e {
            IngressError::BadSignature => ApiError::Unauthorized(e.to_string()),
            IngressError::Storage(e) => ApiError::Storage(e),
        })?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "received": true, "duplicate": duplicate })))
}
