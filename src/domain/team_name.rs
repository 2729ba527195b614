use super::{Alphabet, ascii_class};

/// A team's name as the admin API accepts it (DESIGN §11): `[a-z0-9][a-z0-9_-]{0,62}`. It is
/// the `sub` of the team's tokens and a URL path segment, so it stays in a small alphabet.
/// Teams defined in configuration keep whatever name they have.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct TeamName(String);

string_newtype!(TeamName);
documented_by!(
    TeamName,
    super::string_schema(TeamName::LENGTHS, Some(TeamName::pattern()))
);

impl TeamName {
    pub const LENGTHS: std::ops::RangeInclusive<usize> = 1..=63;
    /// The first character.
    pub const FIRST: Alphabet = Alphabet {
        lengths: 1..=1,
        allowed: |b| b.is_ascii_lowercase() || b.is_ascii_digit(),
        message: "",
    };
    /// Every character after the first.
    pub const REST: Alphabet = Alphabet {
        lengths: 0..=62,
        allowed: |b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'),
        message: "",
    };
    const MESSAGE: &'static str =
        "must be 1-63 characters of a-z, 0-9, '_' or '-', starting with a letter or digit";

    pub fn parse(raw: &str) -> Result<Self, String> {
        // Index 1 is a boundary only after a one-byte (ASCII) first character.
        let ok = raw.is_char_boundary(1) && {
            let (first, rest) = raw.split_at(1);
            Self::FIRST.parse(first).is_ok() && Self::REST.parse(rest).is_ok()
        };
        if ok {
            Ok(TeamName(raw.to_owned()))
        } else {
            Err(Self::MESSAGE.to_owned())
        }
    }

    /// `^[a-z0-9][\-0-9_a-z]{0,62}$`, written from the rule.
    pub fn pattern() -> String {
        format!(
            "^[{}][{}]{{{},{}}}$",
            ascii_class(Self::FIRST.allowed),
            ascii_class(Self::REST.allowed),
            Self::REST.lengths.start(),
            Self::REST.lengths.end()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercase_names_up_to_63_characters_are_team_names() {
        for raw in ["a", "0", "sales", "team-2", "ops_eu-west", &"a".repeat(63)] {
            assert_eq!(TeamName::parse(raw).map(String::from), Ok(raw.to_owned()));
        }
    }

    #[test]
    fn other_names_are_refused() {
        let too_long = "a".repeat(64);
        for raw in [
            "", "-a", "_a", "Sales", "a b", "a/b", "a.b", "é", "aé", "ａ", " a", "a\n", &too_long,
        ] {
            assert!(TeamName::parse(raw).is_err(), "{raw:?} accepted");
        }
    }

    #[test]
    fn the_pattern_states_the_rule() {
        let pattern = TeamName::pattern();
        assert_eq!(pattern, "^[0-9a-z][\\-0-9_a-z]{0,62}$");
    }
}
