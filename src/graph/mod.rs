//! The Graph API client: the only code that builds Graph URLs, holds access tokens and
//! reads Meta's answers. Handlers call one typed method per upstream operation.
//!
//! - `transport.rs`: the HTTP client, deadlines and retries, the metrics and log of each call;
//! - `operations.rs`: one `GraphClient` method per Graph operation;
//! - `wire.rs`: the JSON of Meta's requests and answers, and the types read from them;
//! - `error.rs`: how Meta's failures reach callers;
//! - `backoff.rs`: Meta's 131208 backoff of a number, shared by every replica.

mod backoff;
mod error;
mod operations;
mod transport;
mod wire;

pub use backoff::Backoffs;
pub use error::{
    MetaError, THROTTLE_CODES, UpstreamError, UpstreamProblem, parse_error, retry_after_from_usage,
};
pub use operations::JoinRequestDecision;
pub use transport::{GraphClient, NumberLimits, TokenStore};
pub use wire::{
    FailedJoinRequest, JoinRequest, JoinRequestOutcome, JoinRequestPage, MetaPage, UpstreamGroup,
    UpstreamGroupPage,
};
