//! Requests refused before routing: a bad request line, an invalid header byte, a head too
//! large or not sent in time. actix answers them itself (400, 431, 408) and closes the
//! connection before any route, middleware or log line of the gateway runs, so anyone could
//! send them as fast as they like, unlimited, each costing an ERROR line. The server's
//! connections are wrapped (`startup`) so that each such refusal is counted, charged to the
//! client's address like any anonymous call, and summarised in the log at a bounded rate;
//! actix's own line is dropped (`telemetry::init`).

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_http::error::DispatchError;

use crate::ratelimit::AddressBuckets;

/// At most one log line per this long about connections that ended before routing.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// Why a connection ended before its request was routed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not HTTP: a bad request line or header (400), a head too large (431).
    Malformed,
    /// The request head did not arrive within `server.client_request_timeout_ms` (408).
    SlowHead,
    /// The connection failed (reset, closed mid-request…): nothing was refused, but it is
    /// counted and logged the same way, at a bounded rate.
    ConnectionError,
}

impl Refusal {
    pub fn of(error: &DispatchError) -> Refusal {
        match error {
            DispatchError::Parse(_) => Refusal::Malformed,
            DispatchError::SlowRequestTimeout => Refusal::SlowHead,
            _ => Refusal::ConnectionError,
        }
    }

    /// The `reason` label of `wagw_requests_refused_total`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::SlowHead => "slow_head",
            Refusal::ConnectionError => "connection_error",
        }
    }

    /// A request the client sent (badly), which costs its address like an anonymous call;
    /// a failed connection may be the network's doing and costs nothing.
    fn is_charged(self) -> bool {
        matches!(self, Refusal::Malformed | Refusal::SlowHead)
    }
}

/// Counts, charges and logs what ends connections before routing; shared by every worker.
#[derive(Clone)]
pub struct RefusedBeforeRouting {
    anonymous: Arc<AddressBuckets>,
    log: Arc<Mutex<Summary>>,
}

#[derive(Default)]
struct Summary {
    last_line: Option<Instant>,
    /// Refusals since the last line.
    unlogged: u64,
    /// Of them, the ones past their address's anonymous limit.
    over_limit: u64,
}

impl RefusedBeforeRouting {
    pub fn new(anonymous: Arc<AddressBuckets>) -> Self {
        RefusedBeforeRouting {
            anonymous,
            log: Arc::new(Mutex::new(Summary::default())),
        }
    }

    /// Records how a connection from `peer` ended: counted, charged to the address, and
    /// logged at most once per second with the number of refusals since the last line.
    pub fn note(&self, error: &DispatchError, peer: Option<IpAddr>) {
        let refusal = Refusal::of(error);
        metrics::counter!(crate::metrics::REQUESTS_REFUSED, "reason" => refusal.label())
            .increment(1);
        let over_limit =
            refusal.is_charged() && peer.is_some_and(|peer| self.anonymous.check(peer).is_err());
        if over_limit {
            metrics::counter!(crate::metrics::RATE_LIMITED, "scope" => "anonymous").increment(1);
        }
        let now = Instant::now();
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.unlogged += 1;
        log.over_limit += u64::from(over_limit);
        if log
            .last_line
            .is_some_and(|at| now.duration_since(at) < LOG_EVERY)
        {
            return;
        }
        // actix's error texts are its own fixed words (no byte of the request): safe to log.
        tracing::warn!(
            target: "access",
            refused = log.unlogged,
            over_anonymous_limit = log.over_limit,
            reason = refusal.label(),
            error = %error,
            peer = peer.map(|p| p.to_string()).unwrap_or_default(),
            "connections ended before routing (counted in wagw_requests_refused_total; logged at most once a second)"
        );
        log.last_line = Some(now);
        log.unlogged = 0;
        log.over_limit = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::Rate;
    use actix_http::error::ParseError;

    #[test]
    fn malformed_requests_spend_their_address_allowance_and_failed_connections_do_not() {
        let buckets = Arc::new(AddressBuckets::new(Rate {
            per_second: 1,
            burst: 3,
        }));
        let refused = RefusedBeforeRouting::new(buckets.clone());
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        let reset = DispatchError::Io(std::io::ErrorKind::ConnectionReset.into());
        for _ in 0..10 {
            refused.note(&reset, Some(peer));
        }
        assert!(
            buckets.check(peer).is_ok(),
            "failed connections cost nothing"
        );
        for _ in 0..2 {
            refused.note(&DispatchError::Parse(ParseError::Header), Some(peer));
        }
        assert!(
            buckets.check(peer).is_err(),
            "the burst is spent by the malformed requests and the call above"
        );
        assert!(
            buckets.check("192.0.2.8".parse().unwrap()).is_ok(),
            "another address is not affected"
        );
        assert_eq!(
            Refusal::of(&DispatchError::SlowRequestTimeout),
            Refusal::SlowHead
        );
    }
}
