use super::Alphabet;

/// A token's `jti` (README, "Security rules", "Every token can be revoked"): 1–128
/// characters of `[A-Za-z0-9._~-]`, the alphabet of UUIDs, ULIDs and base64url. A token is
/// revoked by its `jti` through a URL path and the command line, so a token whose `jti` could
/// not travel there (empty, blank, non-ASCII, `/`, too long) is refused outright: every
/// accepted token can be revoked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TokenId(String);

string_newtype!(TokenId);
documented_by!(TokenId, TokenId::RULE.schema());

impl TokenId {
    pub const MAX_LEN: usize = 128;
    pub const RULE: Alphabet = Alphabet {
        lengths: 1..=Self::MAX_LEN,
        allowed: |b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'),
        message: "must be 1-128 characters of A-Z, a-z, 0-9, '.', '_', '~' or '-'",
    };

    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::RULE.parse(raw).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_ulids_and_base64url_are_token_ids() {
        for raw in [
            "0b8f6c1e-9d1a-4c5b-8f3e-1a2b3c4d5e6f",
            "0b8f6c1e9d1a4c5b8f3e1a2b3c4d5e6f",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "aGVsbG8_d29ybGQ-",
            "a.b~c",
            "x",
        ] {
            assert_eq!(TokenId::parse(raw).map(String::from), Ok(raw.to_owned()));
        }
        let longest = "a".repeat(TokenId::MAX_LEN);
        assert!(TokenId::parse(&longest).is_ok());
    }

    #[test]
    fn ids_that_could_not_be_revoked_are_refused() {
        let too_long = "a".repeat(TokenId::MAX_LEN + 1);
        for raw in [
            "", " ", "é", "a b", " a", "a/b", "a%2Fb", "a?b", "a#b", "a+b", "a=", "a\u{0}", "\t",
            "ａ", &too_long,
        ] {
            assert!(TokenId::parse(raw).is_err(), "{raw:?} accepted");
        }
    }
}
