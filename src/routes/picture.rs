//! Reads a profile picture from a raw `image/jpeg` body or a multipart part `file`.

use actix_web::HttpRequest;
use actix_web::dev::Payload;
use futures_util::StreamExt;

use super::body::{deadline_of, read_within};
use super::declared_media_type;
use crate::domain::ProfilePicture;
use crate::error::ApiError;

/// Reads at most `ProfilePicture::MAX_BYTES` (more is a 413) within the body deadline (408).
/// The type is checked first so that a wrong upload is refused before it is read.
pub async fn read_picture(req: &HttpRequest, payload: Payload) -> Result<Vec<u8>, ApiError> {
    let limit = ProfilePicture::MAX_BYTES;
    let deadline = deadline_of(req);
    match declared_media_type(req).as_str() {
        "image/jpeg" | "image/jpg" => Ok(read_within(payload, limit, deadline).await?.to_vec()),
        "multipart/form-data" => tokio::time::timeout(deadline, file_part(req, payload, limit))
            .await
            .unwrap_or(Err(ApiError::RequestTimeout)),
        _ => Err(ApiError::UnsupportedMediaType(
            "send the picture as image/jpeg or as multipart/form-data with a part named file"
                .into(),
        )),
    }
}

/// The content of the part named `file` (or `profile_picture_file`); other parts are read
/// past and dropped.
async fn file_part(req: &HttpRequest, payload: Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    let malformed = |e: actix_multipart::MultipartError| {
        ApiError::bad_request(format!("malformed multipart body: {e}"))
    };
    let mut multipart = actix_multipart::Multipart::new(req.headers(), payload);
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(malformed)?;
        // Meta's body table names the part profile_picture_file; its curl sample says file.
        let wanted = matches!(field.name(), Some("file" | "profile_picture_file"));
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(malformed)?;
            if wanted {
                if bytes.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge { limit });
                }
                bytes.extend_from_slice(&chunk);
            }
        }
        if wanted {
            return Ok(bytes);
        }
    }
    Err(ApiError::field(
        "file",
        "is required (a multipart part named file)",
    ))
}
