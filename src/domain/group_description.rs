use super::{TextRule, string_schema};

/// A group's description. Empty is valid: it is how a client clears it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct GroupDescription(String);

string_newtype!(GroupDescription);
documented_by!(
    GroupDescription,
    string_schema(
        0..=GroupDescription::MAX_CHARS,
        Some(GroupDescription::RULE.pattern(false))
    )
);

impl GroupDescription {
    /// Meta counts characters, not bytes, so the limit is on `char`s.
    pub const MAX_CHARS: usize = 2048;
    /// Paragraphs (line feeds) but no other control character, and no bidirectional
    /// override.
    pub const RULE: TextRule = TextRule::PARAGRAPHS;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        Ok(Self(Self::RULE.refuse(raw)?.to_owned()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_empty_and_up_to_limit_in_chars() {
        assert!(GroupDescription::parse("").expect("valid").is_empty());
        assert_eq!(
            GroupDescription::parse(" kept as is ")
                .expect("valid")
                .as_str(),
            " kept as is "
        );
        assert!(GroupDescription::parse(&"a".repeat(2048)).is_ok());
        let multibyte = "日".repeat(2048);
        assert!(multibyte.len() > 2048);
        assert!(GroupDescription::parse(&multibyte).is_ok());
    }

    #[test]
    fn keeps_line_feeds_and_refuses_other_controls_and_bidi_overrides() {
        assert_eq!(
            GroupDescription::parse("Rules:\n1. be kind\n")
                .expect("valid")
                .as_str(),
            "Rules:\n1. be kind\n"
        );
        for raw in [
            "a\r\nb",
            "a\0",
            "a\tb",
            "\u{1B}[31mred",
            "x\u{202D}y",
            "\u{2068}",
        ] {
            assert!(GroupDescription::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn rejects_over_limit() {
        assert_eq!(
            GroupDescription::parse(&"a".repeat(2049)),
            Err("must be at most 2048 characters".to_owned())
        );
        assert!(GroupDescription::parse(&"日".repeat(2049)).is_err());
    }
}
