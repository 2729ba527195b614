/// A participant's phone number or WhatsApp ID: optional `+` then 6-15
/// digits (E.164 allows at most 15).
///
/// The string is kept exactly as sent because Meta echoes the input back in
/// per-participant results, and clients match on their own spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct ParticipantId(String);

string_newtype!(ParticipantId);
documented_by!(
    ParticipantId,
    super::string_schema(
        *ParticipantId::DIGITS.start()..=ParticipantId::DIGITS.end() + 1,
        Some(format!(
            r"^\+?[0-9]{{{},{}}}$",
            ParticipantId::DIGITS.start(),
            ParticipantId::DIGITS.end()
        ))
    )
);

impl ParticipantId {
    /// E.164 allows at most 15 digits.
    const DIGITS: std::ops::RangeInclusive<usize> = 6..=15;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let digits = raw.strip_prefix('+').unwrap_or(raw);
        let ok = Self::DIGITS.contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err("must be an optional '+' followed by 6-15 digits".to_owned())
        }
    }

    /// The number without its optional `+`: `+16505551234` and `16505551234` are one person.
    pub fn digits(&self) -> &str {
        self.0.strip_prefix('+').unwrap_or(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_have_the_same_digits() {
        let a = ParticipantId::parse("+16505551234").unwrap();
        let b = ParticipantId::parse("16505551234").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.digits(), b.digits());
    }

    #[test]
    fn accepts_with_and_without_plus_and_keeps_spelling() {
        for raw in [
            "123456",
            "+123456",
            "123456789012345",
            "+123456789012345",
            "16505551234",
        ] {
            assert_eq!(ParticipantId::parse(raw).expect("valid").as_str(), raw);
        }
    }

    #[test]
    fn rejects_bad_lengths_and_chars() {
        for raw in [
            "",
            "+",
            "12345",
            "+12345",
            "1234567890123456",
            "+1234567890123456",
            "++123456",
            "1+23456",
            "123 456",
            " 123456",
            "+1-650-555-1234",
            "12345a",
        ] {
            assert!(ParticipantId::parse(raw).is_err(), "{raw:?} accepted");
        }
    }
}
