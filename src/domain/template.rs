use super::of_alphabet;

/// A message template's name, following Meta's rule for template names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct TemplateName(String);

string_newtype!(TemplateName);

impl TemplateName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        of_alphabet(
            raw,
            1..=512,
            |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_',
            "must be 1-512 characters of a-z, 0-9 or '_'",
        )
        .map(Self)
    }
}

/// A template language/locale code such as `en`, `en_US` or `zh_Hant_HK`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct LanguageCode(String);

string_newtype!(LanguageCode);

impl LanguageCode {
    /// Hand-rolled equivalent of `^[a-z]{2,3}(_[A-Za-z]{2,4}){0,2}$`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut parts = raw.split('_');
        let language_ok = parts.next().is_some_and(|p| {
            (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_lowercase())
        });
        let mut subtags = 0;
        let subtags_ok = parts.all(|p| {
            subtags += 1;
            (2..=4).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic())
        });
        if language_ok && subtags_ok && subtags <= 2 {
            Ok(Self(raw.to_owned()))
        } else {
            Err("must look like 'en', 'en_US' or 'zh_Hant_HK'".to_owned())
        }
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
