use super::{not_blank, within_chars};

/// A group's subject (its name), trimmed the same way Meta trims it so what
/// we store and echo matches what Meta shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct GroupSubject(String);

string_newtype!(GroupSubject);

impl GroupSubject {
    /// Meta counts characters, not bytes, so the limit is on `char`s.
    pub const MAX_CHARS: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, String> {
        // The limit applies to the input as sent: Meta rejects an overlong
        // subject before trimming, so trimming must not rescue it here.
        let subject = within_chars(raw, Self::MAX_CHARS).and_then(not_blank)?;
        Ok(Self(subject.trim().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_trims() {
        assert_eq!(GroupSubject::parse("a").expect("valid").as_str(), "a");
        assert_eq!(
            GroupSubject::parse("  Team chat \n")
                .expect("valid")
                .as_str(),
            "Team chat"
        );
        assert_eq!(
            GroupSubject::parse(&"x".repeat(128))
                .expect("valid")
                .as_str()
                .len(),
            128
        );
    }

    #[test]
    fn counts_characters_not_bytes() {
        let accented = "é".repeat(128);
        assert_eq!(accented.len(), 256);
        assert_eq!(
            GroupSubject::parse(&accented).expect("valid").as_str(),
            accented
        );
        let emoji = "🎉".repeat(128);
        assert!(GroupSubject::parse(&emoji).is_ok());

        assert_eq!(
            GroupSubject::parse(&"é".repeat(129)),
            Err("must be 1-128 characters".to_owned())
        );
        assert!(GroupSubject::parse(&"🎉".repeat(129)).is_err());
    }

    #[test]
    fn length_is_checked_before_trimming() {
        let padded = format!(" {} ", "x".repeat(127));
        assert!(GroupSubject::parse(&padded).is_err());
    }

    #[test]
    fn rejects_empty_and_blank() {
        assert_eq!(
            GroupSubject::parse(""),
            Err("must be 1-128 characters".to_owned())
        );
        for raw in [" ", "\t\n", "\u{3000}"] {
            assert_eq!(
                GroupSubject::parse(raw),
                Err("must not be blank".to_owned())
            );
        }
    }
}
