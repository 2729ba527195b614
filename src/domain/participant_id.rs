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

/// A business-scoped user id (BSUID, README "Guardrails"): Meta's id of a user within one
/// business portfolio, sent instead of a phone number for users with a WhatsApp username. Two
/// capital letters (a country), a dot, then letters, digits, dots, `_` or `-`: at most 128
/// characters (`US.13491208655302741918`; parent ids carry further dotted parts). Kept as
/// sent: Meta echoes it back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct UserId(String);

string_newtype!(UserId);
documented_by!(
    UserId,
    super::string_schema(
        4..=UserId::MAX,
        Some(r"^[A-Z]{2}\.[A-Za-z0-9._-]+$".to_owned())
    )
);

impl UserId {
    const MAX: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let rest = raw
            .strip_prefix(|c: char| c.is_ascii_uppercase())
            .and_then(|r| r.strip_prefix(|c: char| c.is_ascii_uppercase()))
            .and_then(|r| r.strip_prefix('.'));
        let ok = raw.len() <= Self::MAX
            && rest.is_some_and(|r| {
                !r.is_empty()
                    && r.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            });
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(
                "must be a business-scoped user id: two capital letters, '.', then letters, digits, '.', '_' or '-' (at most 128 characters)"
                    .to_owned(),
            )
        }
    }
}

/// Whom a participant operation names: a phone number or WhatsApp id, or a business-scoped
/// user id (Meta's `{"user": …}` or `{"user_id": …}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ParticipantRef {
    Phone(ParticipantId),
    User(UserId),
}

impl ParticipantRef {
    /// What makes two entries the same person: the digits of a number, a user id as is.
    pub fn identity(&self) -> String {
        match self {
            ParticipantRef::Phone(p) => format!("phone:{}", p.digits()),
            ParticipantRef::User(u) => format!("user:{u}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_a_country_a_dot_and_an_opaque_rest() {
        for ok in ["US.13491208655302741918", "BR.abc_DEF-1", "US.ENT.99"] {
            assert_eq!(UserId::parse(ok).expect("valid").as_str(), ok);
        }
        let long = format!("US.{}", "1".repeat(126));
        for bad in [
            "",
            "US.",
            "us.123",
            "U.123",
            "US123",
            "US.12 3",
            "US./x",
            "US.1?a",
            "+16505551234",
            long.as_str(),
        ] {
            assert!(UserId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_number_and_a_user_id_are_different_people() {
        let p = ParticipantRef::Phone(ParticipantId::parse("+16505551234").unwrap());
        let q = ParticipantRef::Phone(ParticipantId::parse("16505551234").unwrap());
        let u = ParticipantRef::User(UserId::parse("US.16505551234").unwrap());
        assert_eq!(p.identity(), q.identity());
        assert_ne!(p.identity(), u.identity());
    }

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
