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

/// Bodies declared up to this size may use the whole budget; larger ones, and those whose
/// size is not declared (chunked), only while a quarter of it stays free, so a flood of
/// large or chunked bodies never crowds out the small POSTs Meta sends.
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
    /// The body's size was declared (`Content-Length`): it may be a small one.
    declared: bool,
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

    /// Reserves room for a new body of `declared` bytes, or for one of unknown size (None:
    /// the reservation grows as it arrives); None when there is no room now.
    pub fn reserve(&self, declared: Option<usize>) -> Option<Reservation> {
        let mut reservation = Reservation {
            budget: self.clone(),
            bytes: 0,
            declared: declared.is_some(),
        };
        reservation
            .grow(declared.unwrap_or(0))
            .then_some(reservation)
    }
}

impl Reservation {
    /// Takes `more` bytes for this body (one whose size was not declared, as it arrives);
    /// false when there is no room.
    pub fn grow(&mut self, more: usize) -> bool {
        let budget = &self.budget;
        let after = self.bytes + more;
        let cap = if after > SMALL_BODY || !self.declared {
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
/// `timeout`. The reservation covers the buffer's capacity, not only its length: a buffer
/// grown by doubling would otherwise hold up to twice the bytes the budget counts.
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
        let mut bytes = Vec::with_capacity(reservation.bytes().min(limit));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::bad_request(format!("the body could not be read: {e}")))?;
            let len = bytes.len() + chunk.len();
            if len > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            if len > bytes.capacity() {
                let capacity = room_for(reservation, bytes.capacity(), len, limit)?;
                bytes.reserve_exact(capacity - bytes.len());
            }
            each(&chunk);
            bytes.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(bytes))
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(ApiError::RequestTimeout))
}

/// The capacity a body buffer grows to so that `needed` bytes fit: double the current one
/// (few copies), or only what is needed when the budget has no room for that; the
/// reservation is grown to match. 503 when not even `needed` fits.
fn room_for(
    reservation: &mut Reservation,
    capacity: usize,
    needed: usize,
    limit: usize,
) -> Result<usize, ApiError> {
    let doubled = (capacity * 2)
        .max(MIN_GROWTH)
        .clamp(needed, limit.max(needed));
    [doubled, needed]
        .into_iter()
        .find(|&target| {
            target <= reservation.bytes() || reservation.grow(target - reservation.bytes())
        })
        .ok_or(ApiError::Overloaded {
            retry_after_seconds: 1,
        })
}

/// The smallest step a body buffer grows by, so that a body sent in tiny chunks is not
/// copied at every chunk.
const MIN_GROWTH: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn large_bodies_leave_a_quarter_of_the_budget_to_small_ones() {
        let budget = BodyBudget::new(4 * MIB);
        let large = budget
            .reserve(Some(3 * MIB))
            .expect("fits in three quarters");
        assert!(
            budget.reserve(Some(SMALL_BODY + 1)).is_none(),
            "no more large bodies"
        );
        let small = budget
            .reserve(Some(SMALL_BODY))
            .expect("small bodies still fit");
        assert_eq!(budget.in_use(), 3 * MIB + SMALL_BODY);
        drop(large);
        drop(small);
        assert_eq!(budget.in_use(), 0, "reservations are given back");
        let mut growing = budget.reserve(Some(0)).unwrap();
        assert!(growing.grow(1024));
        assert!(!growing.grow(4 * MIB), "beyond the budget");
        assert_eq!(growing.bytes(), 1024);
    }

    #[test]
    fn bodies_of_undeclared_size_leave_a_quarter_to_declared_small_ones() {
        let budget = BodyBudget::new(4 * MIB);
        // Many chunked bodies, each still small, together reach three quarters.
        let chunked: Vec<Reservation> = (0..12)
            .map(|_| {
                let mut r = budget.reserve(None).expect("room");
                assert!(r.grow(SMALL_BODY));
                r
            })
            .collect();
        let mut one_more = budget.reserve(None).expect("an empty reservation");
        assert!(
            !one_more.grow(1),
            "the last quarter is not for bodies of unknown size"
        );
        assert!(
            budget.reserve(Some(64 * 1024)).is_some(),
            "a declared small body still fits"
        );
        drop(chunked);
        assert!(one_more.grow(1));
    }

    fn chunks(
        n: usize,
        size: usize,
    ) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::error::PayloadError>> + Unpin
    {
        futures_util::stream::iter((0..n).map(move |_| Ok(Bytes::from(vec![b'x'; size]))))
    }

    #[tokio::test]
    async fn the_reservation_covers_the_buffer_it_grows_not_only_the_bytes_read() {
        let budget = BodyBudget::new(64 * MIB);
        let mut reservation = budget.reserve(None).unwrap();
        let mut seen = 0;
        let body = read_reserved(
            chunks(300, 10_000),
            16 * MIB,
            Duration::from_secs(5),
            &mut reservation,
            |c| seen += c.len(),
        )
        .await
        .unwrap();
        assert_eq!((body.len(), seen), (3_000_000, 3_000_000));
        assert!(
            reservation.bytes() >= 3_000_000 && reservation.bytes() <= 2 * 3_000_000,
            "reserved {}",
            reservation.bytes()
        );
        assert_eq!(budget.in_use(), reservation.bytes());
    }

    #[tokio::test]
    async fn a_body_that_fills_the_budget_exactly_is_read_and_a_larger_one_is_503() {
        let total = 40 * 10_000;
        let budget = BodyBudget::new(total);
        let mut reservation = budget.reserve(None).unwrap();
        let limit = usize::MAX;
        // Undeclared: three quarters of the budget; growth by doubling falls back to exact.
        let quarters = total / 4 * 3;
        let body = read_reserved(
            chunks(quarters / 1000, 1000),
            limit,
            Duration::from_secs(5),
            &mut reservation,
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!(body.len(), quarters);
        assert_eq!(budget.in_use(), quarters);
        drop(reservation);
        let mut reservation = budget.reserve(None).unwrap();
        let refused = read_reserved(
            chunks(quarters / 1000 + 1, 1000),
            limit,
            Duration::from_secs(5),
            &mut reservation,
            |_| {},
        )
        .await;
        assert!(matches!(refused, Err(ApiError::Overloaded { .. })));
    }
}
