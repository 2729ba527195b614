use super::Alphabet;

/// Our own handle for a pending group creation, returned to the client so it
/// can poll before Meta has assigned a group id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct RequestId(String);

string_newtype!(RequestId);
documented_by!(RequestId, RequestId::RULE.schema());

impl RequestId {
    /// A fresh random id: `req_` followed by 32 lowercase hex digits.
    pub fn new() -> Self {
        Self(format!("req_{}", uuid::Uuid::new_v4().simple()))
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::RULE.parse(raw).map(Self)
    }

    /// Any id we could plausibly have issued, plus client-chosen ids in the same URL-safe
    /// alphabet.
    pub const RULE: Alphabet = Alphabet {
        lengths: 1..=64,
        allowed: |b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'),
        message: "must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'",
    };
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_have_expected_shape_and_differ() {
        let id = RequestId::new();
        let hex = id.as_str().strip_prefix("req_").expect("prefixed");
        assert_eq!(hex.len(), 32);
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(RequestId::parse(id.as_str()), Ok(id.clone()));
        assert_ne!(id, RequestId::new());
    }

    #[test]
    fn parse_accepts_alphabet_up_to_64() {
        for raw in ["a", "req_0123abcd", "A-b_C", &"x".repeat(64)] {
            assert_eq!(RequestId::parse(raw).expect("valid").as_ref(), raw);
        }
    }

    #[test]
    fn parse_rejects_others() {
        for raw in ["", "a b", "a/b", "a=b", "a.b", "é", &"x".repeat(65)] {
            assert!(RequestId::parse(raw).is_err(), "{raw:?} accepted");
        }
    }
}
