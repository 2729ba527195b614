//! Paging cursors of the gateway's own listings. Opaque to callers, so their form can
//! change without breaking them.

use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Alphabet, ascii_class};

/// The gateway's cursors as documented: unpadded base64url, the alphabet they are decoded in.
pub fn cursor_schema() -> utoipa::openapi::Object {
    let class = ascii_class(|b| URL_SAFE.as_str().as_bytes().contains(&b));
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1))
        .pattern(Some(format!("^[{class}]+$")))
        .build()
}

/// Meta's paging cursors, passed on to Meta once checked: base64-ish, so they cannot alter
/// the Graph URL they are put in.
pub const META_CURSOR: Alphabet = Alphabet {
    lengths: 1..=512,
    allowed: |b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'-' | b'_' | b'+' | b'/'),
    message: "is not a valid cursor",
};

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

/// A place in the team events feed. Events are read in (transaction, seq) order: with
/// PostgreSQL several replicas commit events at once, and a sequence value taken earlier may
/// become visible later, so the feed only shows events of transactions older than every
/// transaction still running, ordered by transaction first. SQLite commits one transaction at
/// a time: its positions are plain seqs (`tx` 0), and so are their cursors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FeedPosition {
    pub tx: i64,
    pub seq: i64,
}

pub fn encode_position(position: FeedPosition) -> String {
    match position.tx {
        0 => encode_cursor(position.seq),
        tx => URL_SAFE_NO_PAD.encode(format!("pos:{tx}:{}", position.seq)),
    }
}

pub fn decode_position(raw: &str) -> Result<FeedPosition, String> {
    if let Ok(seq) = decode_cursor(raw) {
        return Ok(FeedPosition { tx: 0, seq });
    }
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (tx, seq) = s.strip_prefix("pos:")?.split_once(':')?;
            Some(FeedPosition {
                tx: tx.parse().ok()?,
                seq: seq.parse().ok()?,
            })
        })
        .ok_or_else(|| "is not a cursor this gateway issued".to_owned())
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
    fn feed_positions_round_trip_and_read_plain_cursors() {
        let pg = FeedPosition { tx: 7, seq: 42 };
        assert_eq!(decode_position(&encode_position(pg)), Ok(pg));
        let sqlite = FeedPosition { tx: 0, seq: 42 };
        assert_eq!(encode_position(sqlite), encode_cursor(42));
        assert_eq!(decode_position(&encode_cursor(42)), Ok(sqlite));
        assert!(decode_position("pos:1:2").is_err());
    }

    #[test]
    fn documented_cursor_alphabets() {
        let pattern = |o: utoipa::openapi::Object| o.pattern.expect("pattern");
        assert_eq!(pattern(cursor_schema()), r"^[\-0-9A-Z_a-z]+$");
        assert_eq!(META_CURSOR.pattern(), r"^[+\-/-9=A-Z_a-z]{1,512}$");
    }

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Ok(42));
        assert!(decode_cursor("42").is_err());
        assert!(decode_cursor("").is_err());
    }
}
