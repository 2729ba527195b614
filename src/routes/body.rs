//! Request bodies read with a size limit and a deadline, so a client that drips its body
//! (slow loris) is cut off instead of holding a connection open forever.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;

use crate::error::ApiError;

/// How long a client may take to send its body (from `server.body_timeout_ms`).
#[derive(Clone, Copy, Debug)]
pub struct BodyTimeout(pub Duration);

/// The raw body, at most `LIMIT` bytes.
pub struct Body<const LIMIT: usize>(pub Bytes);

impl<const LIMIT: usize> std::ops::Deref for Body<LIMIT> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl<const LIMIT: usize> FromRequest for Body<LIMIT> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let timeout = deadline_of(req);
        let declared = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|len| len > LIMIT) {
                return Err(ApiError::PayloadTooLarge { limit: LIMIT });
            }
            read_within(payload, LIMIT, timeout).await.map(Body)
        })
    }
}

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
