use super::{Alphabet, TextRule, not_blank, string_schema, within_chars};

/// A message template's name, following Meta's rule for template names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TemplateName(String);

string_newtype!(TemplateName);
documented_by!(TemplateName, TemplateName::RULE.schema());

impl TemplateName {
    pub const RULE: Alphabet = Alphabet {
        lengths: 1..=512,
        allowed: |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_',
        message: "must be 1-512 characters of a-z, 0-9 or '_'",
    };

    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::RULE.parse(raw).map(Self)
    }
}

/// A template language/locale code such as `en`, `en_US` or `zh_Hant_HK`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct LanguageCode(String);

string_newtype!(LanguageCode);
documented_by!(
    LanguageCode,
    super::string_schema(
        *LanguageCode::LANGUAGE.start()
            ..=LanguageCode::LANGUAGE.end()
                + LanguageCode::MAX_SUBTAGS * (1 + LanguageCode::SUBTAG.end()),
        Some(LanguageCode::pattern())
    )
);

impl LanguageCode {
    /// Letters of the language: lowercase.
    const LANGUAGE: std::ops::RangeInclusive<usize> = 2..=3;
    /// Letters of each script or region subtag after a `_`: any case.
    const SUBTAG: std::ops::RangeInclusive<usize> = 2..=4;
    const MAX_SUBTAGS: usize = 2;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut parts = raw.split('_');
        let language_ok = parts.next().is_some_and(|p| {
            Self::LANGUAGE.contains(&p.len()) && p.bytes().all(|b| b.is_ascii_lowercase())
        });
        let mut subtags = 0;
        let subtags_ok = parts.all(|p| {
            subtags += 1;
            Self::SUBTAG.contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic())
        });
        if language_ok && subtags_ok && subtags <= Self::MAX_SUBTAGS {
            Ok(Self(raw.to_owned()))
        } else {
            Err("must look like 'en', 'en_US' or 'zh_Hant_HK'".to_owned())
        }
    }

    /// `parse` as an ECMA-262 pattern.
    fn pattern() -> String {
        let (language, subtag) = (Self::LANGUAGE, Self::SUBTAG);
        format!(
            "^[a-z]{{{},{}}}(_[A-Za-z]{{{},{}}}){{0,{}}}$",
            language.start(),
            language.end(),
            subtag.start(),
            subtag.end(),
            Self::MAX_SUBTAGS
        )
    }
}

/// A text parameter of a template's body, as written (message text: only NUL is refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateParameter(String);

string_newtype!(TemplateParameter);
documented_by!(
    TemplateParameter,
    string_schema(
        1..=TemplateParameter::MAX_CHARS,
        Some(TemplateParameter::RULE.pattern(true))
    )
);

impl TemplateParameter {
    pub const MAX_CHARS: usize = 1024;
    pub const RULE: TextRule = TextRule::MESSAGE;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = within_chars(raw, Self::MAX_CHARS)
            .and_then(not_blank)
            .and_then(|p| Self::RULE.refuse(p))
            .is_ok();
        let message = format!(
            "must be a non-blank string of at most {} characters, without NUL",
            Self::MAX_CHARS
        );
        super::accepted(ok, raw, &message).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `parse` keeps each of `raws` as sent.
    fn accepts<T: AsRef<str>>(parse: fn(&str) -> Result<T, String>, raws: &[&str]) {
        for raw in raws {
            assert_eq!(parse(raw).expect("valid").as_ref(), *raw);
        }
    }

    /// `parse` refuses each of `raws`.
    fn refuses<T>(parse: fn(&str) -> Result<T, String>, raws: &[&str]) {
        for raw in raws {
            assert!(parse(raw).is_err(), "{raw:?} accepted");
        }
    }

    #[test]
    fn template_parameters_are_message_text() {
        accepts(
            TemplateParameter::parse,
            &["x", " padded ", &"é".repeat(1024)],
        );
        refuses(
            TemplateParameter::parse,
            &["", "  ", "a\0b", &"é".repeat(1025)],
        );
    }

    #[test]
    fn language_pattern_is_the_parsed_shape() {
        assert_eq!(LanguageCode::pattern(), "^[a-z]{2,3}(_[A-Za-z]{2,4}){0,2}$");
        assert_eq!(TemplateName::RULE.pattern(), "^[0-9_a-z]{1,512}$");
    }

    #[test]
    fn template_name_accepts_meta_alphabet() {
        accepts(
            TemplateName::parse,
            &["a", "hello_world", "order_update_2", "_", "0"],
        );
        assert!(TemplateName::parse(&"a".repeat(512)).is_ok());
    }

    #[test]
    fn template_name_rejects_others() {
        refuses(
            TemplateName::parse,
            &[
                "",
                "Hello",
                "hello-world",
                "hello world",
                "héllo",
                "a/b",
                "a.b",
            ],
        );
        assert!(TemplateName::parse(&"a".repeat(513)).is_err());
    }

    #[test]
    fn language_code_accepts_common_locales() {
        accepts(
            LanguageCode::parse,
            &[
                "en",
                "fil",
                "en_US",
                "pt_BR",
                "zh_Hant_HK",
                "zh_CN",
                "en_us",
                "sr_Latn",
            ],
        );
        assert!(LanguageCode::parse("abc_ABCD_abcd").is_ok());
    }

    #[test]
    fn language_code_rejects_malformed() {
        refuses(
            LanguageCode::parse,
            &[
                "",
                "e",
                "engl",
                "EN",
                "En_US",
                "en_",
                "_US",
                "en__US",
                "en_U",
                "en_USABC",
                "en-US",
                "en_419",
                "en_US_X",
                "a_b_c_d",
                "zh_Hant_HK_x",
                "zh_Hant_HK_XX",
                "en US",
                "en_US ",
            ],
        );
    }
}
