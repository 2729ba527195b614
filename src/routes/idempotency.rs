//! `Idempotency-Key` for calls Meta cannot make idempotent (creating a group, sending an
//! invitation or a group message): the same key and request from the same team within 24 hours gets the stored
//! answer without a second upstream call.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};
use utoipa::IntoParams;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};

use super::extract::{BodyKind, Input, Parts};
use crate::domain::{Alphabet, FieldErrors};
use crate::error::ApiError;
use crate::storage::{Claim, IdempotencyStore, KeyClaim, Storage, StoredAnswer};

pub const HEADER: &str = "idempotency-key";
/// The header as named in field errors.
pub const HEADER_NAME: &str = "Idempotency-Key";
/// A key: 1–255 visible ASCII characters (bytes are characters).
const KEY: Alphabet = Alphabet {
    lengths: 1..=255,
    allowed: |b| b.is_ascii_graphic(),
    message: "must be 1-255 visible ASCII characters",
};
/// How long an answer is kept for replay.
const RETENTION: chrono::Duration = chrono::Duration::hours(24);
/// How long a concurrent duplicate waits for the first request's answer.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(45);

/// A key sent by the caller, with the fingerprint of the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    key: String,
    fingerprint: String,
}

impl IdempotencyKey {
    /// Reads the header: absent is fine; present must be 1–255 visible ASCII characters.
    pub fn from_request(req: &HttpRequest, body: &[u8]) -> Result<Option<IdempotencyKey>, String> {
        let Some(value) = req.headers().get(HEADER) else {
            return Ok(None);
        };
        let key = KEY.parse(value.to_str().map_err(|_| KEY.message.to_owned())?)?;
        let mut hasher = Sha256::new();
        hasher.update(req.method().as_str().as_bytes());
        hasher.update(b" ");
        hasher.update(req.path().as_bytes());
        hasher.update(b"\n");
        hasher.update(body);
        Ok(Some(IdempotencyKey {
            key: key.to_owned(),
            fingerprint: hex::encode(hasher.finalize()),
        }))
    }
}

/// The header as the routes that take `Keyed` input document it, beside the rules above.
impl IntoParams for IdempotencyKey {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let value = KEY.schema();
        vec![
            ParameterBuilder::new()
                .name(HEADER_NAME)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Retry safely: the same key and body from the same team within 24 h returns \
                     the first answer (header Idempotent-Replayed: true) without doing it again; \
                     the same key with another body is 422",
                ))
                .schema(Some(value))
                .build(),
        ]
    }
}

/// An input `I` sent with an optional `Idempotency-Key`. The key is fingerprinted over the raw
/// body, before it is interpreted; a malformed key is reported after the input's own fields.
pub struct Keyed<I> {
    pub input: I,
    pub key: Option<IdempotencyKey>,
}

impl<I: Input> Input for Keyed<I> {
    const BODY: BodyKind = I::BODY;
    const QUERY: &'static [&'static str] = I::QUERY;

    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        let key = IdempotencyKey::from_request(parts.req, &parts.body);
        let input = I::parse(parts, errors)?;
        let key = errors.check(HEADER_NAME, key);
        Ok(input.zip(key).map(|(input, key)| Keyed { input, key }))
    }
}

/// An answer as stored for replay.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: Vec<u8>,
    pub content_type: &'static str,
}

impl StoredResponse {
    pub fn json(
        status: StatusCode,
        location: Option<String>,
        body: &impl serde::Serialize,
    ) -> Self {
        StoredResponse {
            status,
            location,
            body: serde_json::to_vec(body).unwrap_or_default(),
            content_type: "application/json",
        }
    }

    pub fn into_response(self, replayed: bool) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.content_type(self.content_type);
        if let Some(location) = self.location {
            res.insert_header((header::LOCATION, location));
        }
        if replayed {
            res.insert_header(("Idempotent-Replayed", "true"));
        }
        res.body(self.body)
    }
}

pub enum Begin {
    /// First use of the key: go ahead, then `complete` or `abandon`.
    Proceed,
    Replay(StoredResponse),
    /// The key's first request works on this creation (`link`): answer it as it stands,
    /// whether that request finished, is still running, or died with its process.
    Linked(String),
}

/// Keys and their answers, shared by every worker.
#[derive(Clone)]
pub struct Idempotency {
    store: Arc<dyn IdempotencyStore>,
    abandoned_after: chrono::Duration,
}

fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Idempotency {
    /// `abandoned_after`: a first request still "running" after this long died with its
    /// process (no call to Meta outlasts `graph.timeout_ms`, and the caller passes that plus
    /// a margin); a retry then takes over, unless the request is linked to a creation, which
    /// may have reached Meta and is answered instead.
    pub fn new(storage: &Storage, abandoned_after: Duration) -> Self {
        Idempotency {
            store: storage.idempotency.clone(),
            abandoned_after: chrono::Duration::from_std(abandoned_after)
                .unwrap_or(chrono::Duration::MAX),
        }
    }

    /// Claims the key, or returns the first request's answer (waiting for it if it is still
    /// running). The same key with another request is a 422.
    pub async fn begin(&self, team: &str, key: &IdempotencyKey) -> Result<Begin, ApiError> {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_FIRST;
        loop {
            let now = chrono::Utc::now();
            // Expired answers and abandoned claims free the key.
            let claim = self
                .store
                .claim(&KeyClaim {
                    team,
                    key: &key.key,
                    fingerprint: &key.fingerprint,
                    expired_before: &timestamp(now - RETENTION),
                    abandoned_before: &timestamp(now - self.abandoned_after),
                })
                .await?;
            let (fingerprint, answer) = match claim {
                Claim::Claimed => return Ok(Begin::Proceed),
                Claim::Held {
                    fingerprint,
                    answer,
                } => (fingerprint, answer),
            };
            if fingerprint != key.fingerprint {
                return Err(ApiError::Unprocessable(
                    "this Idempotency-Key was used with a different request".into(),
                ));
            }
            // A refusal is replayed as it was; a creation is answered as it stands now.
            let refused = answer.as_ref().is_some_and(|a| a.status >= 400);
            if !refused && let Some(request_id) = self.store.linked(team, &key.key).await? {
                metrics::counter!(crate::metrics::IDEMPOTENT_REPLAYS).increment(1);
                return Ok(Begin::Linked(request_id));
            }
            if let Some(answer) = answer {
                metrics::counter!(crate::metrics::IDEMPOTENT_REPLAYS).increment(1);
                return Ok(Begin::Replay(StoredResponse {
                    status: StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK),
                    location: answer.location,
                    body: answer.body,
                    content_type: if answer.status >= 400 {
                        "application/problem+json"
                    } else {
                        "application/json"
                    },
                }));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ApiError::Conflict(
                    "a request with this Idempotency-Key is still in progress".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn complete(
        &self,
        team: &str,
        key: &IdempotencyKey,
        answer: &StoredResponse,
    ) -> Result<(), ApiError> {
        let stored = StoredAnswer {
            status: answer.status.as_u16(),
            location: answer.location.clone(),
            body: answer.body.clone(),
        };
        Ok(self.store.complete(team, &key.key, &stored).await?)
    }

    /// Frees the key when nothing was done upstream, so a retry may try again.
    pub async fn abandon(&self, team: &str, key: &IdempotencyKey) -> Result<(), ApiError> {
        Ok(self.store.abandon(team, &key.key).await?)
    }

    /// Ties the key to the creation its request works on, before Meta is asked: from then
    /// on a retry answers that creation, and the key is never freed for a second call.
    pub async fn link(
        &self,
        team: &str,
        key: &IdempotencyKey,
        request_id: &str,
    ) -> Result<(), ApiError> {
        Ok(self.store.link(team, &key.key, request_id).await?)
    }

    /// Stores the outcome of the key's first request and answers it: its answer, or its
    /// error (freeing the key instead when the error proves nothing reached Meta).
    pub async fn settle(
        &self,
        team: &str,
        key: &IdempotencyKey,
        outcome: Result<StoredResponse, ApiError>,
    ) -> Result<HttpResponse, ApiError> {
        match outcome {
            Ok(answer) => {
                self.complete(team, key, &answer).await?;
                Ok(answer.into_response(false))
            }
            Err(e) if nothing_sent(&e) => {
                self.abandon(team, key).await?;
                Err(e)
            }
            Err(e) => {
                let problem = StoredResponse {
                    status: actix_web::ResponseError::status_code(&e),
                    location: None,
                    body: serde_json::to_vec(&e.problem()).unwrap_or_default(),
                    content_type: "application/problem+json",
                };
                self.complete(team, key, &problem).await?;
                Err(e)
            }
        }
    }

    /// Runs `work` at most once per key: replays a stored answer, or runs and stores it.
    /// Errors that prove nothing reached Meta free the key instead of being stored.
    pub async fn run<F>(
        &self,
        team: &str,
        key: Option<IdempotencyKey>,
        work: F,
    ) -> Result<HttpResponse, ApiError>
    where
        F: Future<Output = Result<StoredResponse, ApiError>>,
    {
        let Some(key) = key else {
            return work.await.map(|answer| answer.into_response(false));
        };
        match self.begin(team, &key).await? {
            Begin::Replay(answer) => Ok(answer.into_response(true)),
            Begin::Linked(_) => Err(ApiError::Internal(
                "an Idempotency-Key of this route is linked to a creation".into(),
            )),
            Begin::Proceed => self.settle(team, &key, work.await).await,
        }
    }

    /// `run` for a call that sends one message: 202 with the body `send` answers.
    pub async fn run_accepted<T: serde::Serialize>(
        &self,
        team: &str,
        key: Option<IdempotencyKey>,
        send: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<HttpResponse, ApiError> {
        self.run(team, key, async {
            Ok(StoredResponse::json(
                StatusCode::ACCEPTED,
                None,
                &send.await?,
            ))
        })
        .await
    }
}

/// Failures where Meta certainly did nothing: replaying them would only block a retry.
fn nothing_sent(e: &ApiError) -> bool {
    use crate::graph::UpstreamError as U;
    match e {
        ApiError::Upstream(U::Unreachable(_) | U::LocalQuota { .. })
        | ApiError::RateLimited { .. } => true,
        // Meta throttled the call: it refused before doing anything.
        ApiError::Upstream(u) => u.status() == StatusCode::TOO_MANY_REQUESTS,
        _ => false,
    }
}
