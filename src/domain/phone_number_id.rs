use super::Alphabet;

/// Meta's id for a business phone number; it is spliced into Graph API URL
/// paths, so only digits are allowed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct PhoneNumberId(String);

string_newtype!(PhoneNumberId);
documented_by!(PhoneNumberId, PhoneNumberId::RULE.schema());

impl PhoneNumberId {
    pub const RULE: Alphabet = Alphabet {
        lengths: 1..=32,
        allowed: |b| b.is_ascii_digit(),
        message: "must be 1-32 ASCII digits",
    };

    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::RULE.parse(raw).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_digits_up_to_32() {
        assert_eq!(
            PhoneNumberId::parse("1").map(String::from),
            Ok("1".to_owned())
        );
        let max = "9".repeat(32);
        assert_eq!(PhoneNumberId::parse(&max).expect("valid").as_ref(), max);
        assert_eq!(
            PhoneNumberId::parse("106540352242922")
                .expect("valid")
                .to_string(),
            "106540352242922"
        );
    }

    #[test]
    fn rejects_empty_too_long_and_non_digits() {
        for raw in ["", " 1", "1 ", "12a", "+123", "1/2", "١٢٣", "-1"] {
            assert!(PhoneNumberId::parse(raw).is_err(), "{raw:?} accepted");
        }
        assert_eq!(
            PhoneNumberId::parse(&"1".repeat(33)),
            Err("must be 1-32 ASCII digits".to_owned())
        );
    }

    #[test]
    fn serializes_as_plain_string() {
        let id = PhoneNumberId::parse("123").expect("valid");
        assert_eq!(serde_json::to_string(&id).expect("serializable"), "\"123\"");
    }
}
