//! Reads a profile picture from a raw `image/jpeg` body or a multipart part `file`.

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;

use crate::domain::ProfilePicture;
use crate::error::ApiError;

/// Reads at most `ProfilePicture::MAX_BYTES`; more is a 413. The type is checked first
/// so that a wrong upload is refused before it is read.
pub async fn read_picture(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<Vec<u8>, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let limit = ProfilePicture::MAX_BYTES;
    match declared.as_str() {
        "image/jpeg" | "image/jpg" => {
            let mut bytes = Vec::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::bad_request(format!("the body could not be read: {e}"))
                })?;
                append_within(&mut bytes, &chunk, limit)?;
            }
            Ok(bytes)
        }
        "multipart/form-data" => {
            let mut multipart = actix_multipart::Multipart::new(req.headers(), payload);
            while let Some(field) = multipart.next().await {
                let mut field = field
                    .map_err(|e| ApiError::bad_request(format!("malformed multipart body: {e}")))?;
                if field.name() != Some("file") {
                    // Drain parts we do not use so the stream can advance.
                    while let Some(chunk) = field.next().await {
                        chunk.map_err(|e| {
                            ApiError::bad_request(format!("malformed multipart body: {e}"))
                        })?;
                    }
                    continue;
                }
                let mut bytes = Vec::new();
                while let Some(chunk) = field.next().await {
                    let chunk = chunk.map_err(|e| {
                        ApiError::bad_request(format!("malformed multipart body: {e}"))
                    })?;
                    append_within(&mut bytes, &chunk, limit)?;
                }
                return Ok(bytes);
            }
            Err(ApiError::field(
                "file",
                "is required (a multipart part named file)",
            ))
        }
        _ => Err(ApiError::UnsupportedMediaType(
            "send the picture as image/jpeg or as multipart/form-data with a part named file"
                .into(),
        )),
    }
}

fn append_within(bytes: &mut Vec<u8>, chunk: &[u8], limit: usize) -> Result<(), ApiError> {
    if bytes.len() + chunk.len() > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    bytes.extend_from_slice(chunk);
    Ok(())
}
