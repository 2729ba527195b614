//! Paging cursors of the gateway's own listings. Opaque to callers, so their form can
//! change without breaking them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub fn encode_cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("seq:{seq}"))
}

pub fn decode_cursor(raw: &str) -> Result<i64, String> {
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("seq:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| "is not a cursor this gateway issued".to_owned())
}

/// Where a listing goes on: cursors for the next (`after`) and previous (`before`) page,
/// present only when there is one.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Paging {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
}

/// Which way a listing page goes from its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageCursor {
    First,
    After(i64),
    Before(i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Ok(42));
        assert!(decode_cursor("42").is_err());
        assert!(decode_cursor("").is_err());
    }
}
