use super::Alphabet;

/// Meta group ids are base64-ish; restricting them to this alphabet
/// guarantees they cannot alter a URL path (no `/`, `?`, `#`, `%`, `.`).
pub const PATH_SAFE_ID: Alphabet = Alphabet {
    lengths: 1..=256,
    allowed: |b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'=' | b'-'),
    message: MESSAGE,
};

const MESSAGE: &str = "must be 1-256 characters of A-Z, a-z, 0-9, '_', '=' or '-'";

/// A WhatsApp group id as issued by Meta.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct GroupId(String);

string_newtype!(GroupId);
documented_by!(GroupId, PATH_SAFE_ID.schema());

impl GroupId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        PATH_SAFE_ID.parse(raw).map(Self)
    }
}

/// Id of a pending request to join a group; shares the group-id alphabet for
/// the same URL-safety reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct JoinRequestId(String);

string_newtype!(JoinRequestId);
documented_by!(JoinRequestId, PATH_SAFE_ID.schema());

impl JoinRequestId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        PATH_SAFE_ID.parse(raw).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: [&str; 5] = ["a", "Z", "0", "abc_DEF-123==", "Q1JFQVRFX0dST1VQ-_="];
    const BAD: [&str; 12] = [
        "", " ", "a b", "a/b", "../x", "a.b", "a?b", "a#b", "a%2F", "a+b", "é", "abc\n",
    ];

    #[test]
    fn group_id_accepts_allowed_alphabet_and_max_length() {
        for raw in GOOD {
            assert_eq!(GroupId::parse(raw).expect("valid").as_str(), raw);
        }
        let max = "A".repeat(256);
        assert_eq!(GroupId::parse(&max).expect("valid").to_string(), max);
    }

    #[test]
    fn group_id_rejects_path_breaking_chars_and_overlong() {
        for raw in BAD {
            assert!(GroupId::parse(raw).is_err(), "{raw:?} accepted");
        }
        assert_eq!(GroupId::parse(&"A".repeat(257)), Err(MESSAGE.to_owned()));
    }

    #[test]
    fn join_request_id_uses_same_rule() {
        for raw in GOOD {
            assert_eq!(JoinRequestId::parse(raw).expect("valid").as_ref(), raw);
        }
        assert!(JoinRequestId::parse(&"-".repeat(256)).is_ok());
        for raw in BAD {
            assert!(JoinRequestId::parse(raw).is_err(), "{raw:?} accepted");
        }
        assert!(JoinRequestId::parse(&"-".repeat(257)).is_err());
    }

    #[test]
    fn documented_pattern_spells_the_alphabet() {
        assert_eq!(PATH_SAFE_ID.pattern(), r"^[\-0-9=A-Z_a-z]{1,256}$");
    }

    #[test]
    fn serializes_as_plain_string() {
        let id = GroupId::parse("abc=").expect("valid");
        assert_eq!(
            serde_json::to_string(&id).expect("serializable"),
            "\"abc=\""
        );
    }
}
