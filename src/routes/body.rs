//! Request bodies read with a size limit and a deadline, so a client that drips its body
//! (slow loris) is cut off instead of holding a connection open forever; and a budget of
//! body bytes held at once, for routes anyone may call (Meta's webhook ingress).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web::{Bytes, BytesMut};
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;

use crate::error::ApiError;

/// How long a client may take to send its body (from `server.body_timeout_ms`).
#[derive(Clone, Copy, Debug)]
pub struct BodyTimeout(pub Duration);

pub fn deadline_of(req: &HttpRequest) -> Duration {
    req.app_data::<web::Data<BodyTimeout>>()
        .map(|t| t.0)
        .unwrap_or(Duration::from_secs(30))
}

/// Reads a stream of chunks into memory: 413 past `limit`, 408 past `timeout`.
pub async fn read_within<S>(
    mut payload: S,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError>
where
    S: futures_util::Stream<Item = Result<Bytes, actix_web::error::PayloadError>> + Unpin,
{
    let read = async {
        let mut bytes = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::bad_request(format!("the body could not be read: {e}")))?;
            if bytes.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(ApiError::RequestTimeout))
}

/// Bodies up to this size may use the whole budget; larger ones only while a quarter of it
/// stays free, so a flood of large bodies never crowds out the small POSTs Meta sends.
pub const SMALL_BODY: usize = 256 * 1024;

/// Bytes of request bodies held at once by every request that draws on it, whatever the
/// number of connections: a request that would pass it is refused before it is read.
#[derive(Clone)]
pub struct BodyBudget {
    total: usize,
    used: Arc<Mutex<usize>>,
}

/// Bytes a request holds of a `BodyBudget`, given back when dropped.
pub struct Reservation {
    budget: BodyBudget,
    bytes: usize,
}

impl BodyBudget {
    pub fn new(total: usize) -> Self {
        BodyBudget {
            total,
            used: Arc::new(Mutex::new(0)),
        }
    }

    /// Bytes held now (tests and metrics).
    pub fn in_use(&self) -> usize {
        *self.used.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves `bytes` for a new body, or None when there is no room now.
    pub fn reserve(&self, bytes: usize) -> Option<Reservation> {
        let mut reservation = Reservation {
            budget: self.clone(),
            bytes: 0,
        };
        reservation.grow(bytes).then_some(reservation)
    }
}

impl Reservation {
    /// Takes `more` bytes for this body (one whose size was not declared, as it arrives);
    /// false when there is no room.
    pub fn grow(&mut self, more: usize) -> bool {
        let budget = &self.budget;
        let after = self.bytes + more;
        let cap = if after > SMALL_BODY {
            budget.total / 4 * 3
        } else {
            budget.total
        };
        let mut used = budget.used.lock().unwrap_or_else(|p| p.into_inner());
        if *used + more > cap {
            return false;
        }
        *used += more;
        self.bytes = after;
        true
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(self.bytes);
    }
}

/// Reads a body within `reservation` (grown as undeclared bytes arrive), handing each chunk
/// to `each` as it comes: 413 past `limit`, 503 when the budget has no room, 408 past
/// `timeout`. The bytes are kept only once they are within the reservation.
pub async fn read_reserved<S>(
    mut payload: S,
    limit: usize,
    timeout: Duration,
    reservation: &mut Reservation,
    mut each: impl FnMut(&[u8]),
) -> Result<Bytes, ApiError>
where
    S: futures_util::Stream<Item = Result<Bytes, actix_web::error::PayloadError>> + Unpin,
{
    let read = async {
        let mut bytes = BytesMut::with_capacity(reservation.bytes().min(limit));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::bad_request(format!("the body could not be read: {e}")))?;
            let len = bytes.len() + chunk.len();
            if len > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            if len > reservation.bytes() && !reservation.grow(len - reservation.bytes()) {
                return Err(ApiError::Overloaded {
                    retry_after_seconds: 1,
                });
            }
            each(&chunk);
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(ApiError::RequestTimeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_bodies_leave_a_quarter_of_the_budget_to_small_ones() {
        let budget = BodyBudget::new(4 * 1024 * 1024);
        let large = budget
            .reserve(3 * 1024 * 1024)
            .expect("fits in three quarters");
        assert!(
            budget.reserve(SMALL_BODY + 1).is_none(),
            "no more large bodies"
        );
        let small = budget.reserve(SMALL_BODY).expect("small bodies still fit");
        assert_eq!(budget.in_use(), 3 * 1024 * 1024 + SMALL_BODY);
        drop(large);
        drop(small);
        assert_eq!(budget.in_use(), 0, "reservations are given back");
        let mut growing = budget.reserve(0).unwrap();
        assert!(growing.grow(1024));
        assert!(!growing.grow(4 * 1024 * 1024), "beyond the budget");
        assert_eq!(growing.bytes(), 1024);
    }
}
