//! The error statuses the routes document, one set per kind of check, beside the checks
//! that answer them (`extract`, the Graph client, idempotency), so that the OpenAPI document
//! and the answers come from the same place. A route lists the sets its extractor and its
//! service can produce.

use utoipa::IntoResponses;

use crate::error::Problem;

/// Every authenticated route: the checks of `extract` (and a storage failure). A route
/// lists this set whole: any of them can answer each of these (404 included, for a path
/// whose parameters do not match the route at all).
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Refusals {
    /// Invalid input: every broken field of path, query and body is listed.
    #[response(status = 400, content_type = "application/problem+json")]
    Invalid(Problem),
    /// Missing, malformed, expired or revoked token.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(Problem),
    /// The token lacks the scope, or may not use the phone number.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such route, or no such group or creation of the team (other teams' look the same).
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// The team's or the phone number's rate limit was reached, Meta is throttling, or this
    /// address sent too many calls without a valid token: `Retry-After` says when to try
    /// again.
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(Problem),
    /// The gateway failed (details are in its logs, under the request id).
    #[response(status = 500, content_type = "application/problem+json")]
    Internal(Problem),
}

/// Routes that read a request body.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum BodyRefusals {
    /// The body did not arrive within `server.body_timeout_ms`.
    #[response(status = 408, content_type = "application/problem+json")]
    Timeout(Problem),
    /// The body is larger than the route accepts.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The body's Content-Type is not one the route reads.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
}

/// Routes that call Meta: how its failures reach the caller (README, "API overview", errors).
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum UpstreamFailures {
    /// Meta failed, answered what the gateway cannot read, or refused the gateway's own
    /// credentials.
    #[response(status = 502, content_type = "application/problem+json")]
    BadGateway(Problem),
    /// Meta is unreachable: nothing was sent.
    #[response(status = 503, content_type = "application/problem+json")]
    Unreachable(Problem),
    /// Meta did not answer within the gateway's deadline.
    #[response(status = 504, content_type = "application/problem+json")]
    Timeout(Problem),
}

/// Routes that honour `Idempotency-Key`.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum IdempotencyRefusals {
    /// A request with this key is still in progress.
    #[response(status = 409, content_type = "application/problem+json")]
    InProgress(Problem),
    /// The key was used with a different request.
    #[response(status = 422, content_type = "application/problem+json")]
    Reused(Problem),
}

/// `create_group`: the refusals of `Idempotency-Key`, and the one creation per phone number
/// and subject that may wait for Meta's request id at a time (README, "Creations and
/// isolation").
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum CreationRefusals {
    /// A request with this `Idempotency-Key` is still in progress, or another creation with
    /// the same phone number and subject (by any team) still waits for Meta's answer
    /// (type `…/creation-in-progress`, with `Retry-After`), or the phone number's or the
    /// team's `max_groups` is used up by active groups and pending creations (type
    /// `…/group-quota-exceeded`): nothing was sent to Meta.
    #[response(
        status = 409,
        content_type = "application/problem+json",
        headers(("Retry-After" = u64, description = "Seconds to wait before creating this subject again (creation-in-progress)"))
    )]
    InProgress(Problem),
    /// The key was used with a different request.
    #[response(status = 422, content_type = "application/problem+json")]
    Reused(Problem),
}
