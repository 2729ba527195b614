use super::{TextRule, not_blank, string_schema, within_chars};

/// A group's subject (its name), trimmed the same way Meta trims it so what
/// we store and echo matches what Meta shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct GroupSubject(String);

string_newtype!(GroupSubject);
documented_by!(
    GroupSubject,
    string_schema(
        1..=GroupSubject::MAX_CHARS,
        Some(GroupSubject::RULE.pattern(true))
    )
);

impl GroupSubject {
    /// Meta counts characters, not bytes, so the limit is on `char`s.
    pub const MAX_CHARS: usize = 128;
    /// No control character (a name is one line) and no bidirectional override.
    pub const RULE: TextRule = TextRule::NAME;

    pub fn parse(raw: &str) -> Result<Self, String> {
        // The limit applies to the input as sent: Meta rejects an overlong
        // subject before trimming, so trimming must not rescue it here.
        let subject = within_chars(raw, Self::MAX_CHARS)
            .and_then(not_blank)
            .and_then(|s| Self::RULE.refuse(s))?;
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
            GroupSubject::parse("  Team chat  ")
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
    fn refuses_control_characters_and_bidi_overrides() {
        for raw in [
            "a\0b",
            "Team\nchat",
            "Team chat\n",
            "a\rb",
            "a\tb",
            "a\u{7F}",
            "a\u{85}b",
            "invoice\u{202E}fdp.exe",
            "a\u{2066}b\u{2069}",
        ] {
            let err = GroupSubject::parse(raw).expect_err(raw);
            assert!(err.starts_with("must not hold control characters"), "{err}");
        }
        for raw in ["Team chat", "עברית", "a\u{200F}b", "🎉"] {
            assert!(GroupSubject::parse(raw).is_ok(), "{raw:?}");
        }
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
