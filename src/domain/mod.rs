//! Validated domain newtypes, and the shapes of Meta's payloads read leniently. A leaf
//! layer: it imports only `clock` of the crate.
//!
//! Every value that reaches Meta's Graph API (ids in URL paths, subjects,
//! uploaded pictures, ...) is parsed into one of these types at the edge, so
//! downstream code never has to re-check it and a bad value can never be
//! spliced into an upstream URL or body.

use std::ops::RangeInclusive;

use utoipa::openapi::Object;
use utoipa::openapi::schema::{ObjectBuilder, Type};

/// Boilerplate shared by the string-backed newtypes: read-only views only,
/// because a public constructor or `DerefMut` would bypass `parse`.
macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            /// The validated value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}

/// `AsRef<str>` and `Display` for a fieldless enum with a wire spelling `as_str(self)`, so
/// that it reads like the string it stands for.
macro_rules! wire_enum {
    ($name:ident) => {
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// The rule of an identifier or name spliced into Graph URLs and bodies: `lengths` characters,
/// each a byte `allowed` (the alphabets are ASCII, so bytes are characters). One definition
/// serves the check (`parse`) and the schema the OpenAPI document states (`schema`).
pub struct Alphabet {
    pub lengths: RangeInclusive<usize>,
    pub allowed: fn(u8) -> bool,
    pub message: &'static str,
}

impl Alphabet {
    /// `raw`, owned, when it follows the rule; else the error `message`.
    pub fn parse(&self, raw: &str) -> Result<String, String> {
        accepted(
            self.lengths.contains(&raw.len()) && raw.bytes().all(self.allowed),
            raw,
            self.message,
        )
    }

    /// The rule as an ECMA-262 pattern: `^[…]{min,max}$`.
    pub fn pattern(&self) -> String {
        format!(
            "^[{}]{{{},{}}}$",
            ascii_class(self.allowed),
            self.lengths.start(),
            self.lengths.end()
        )
    }

    /// A string schema with the rule's lengths and pattern.
    pub fn schema(&self) -> Object {
        string_schema(self.lengths.clone(), Some(self.pattern()))
    }
}

/// A string schema of `lengths` characters (JSON Schema counts code points, as `within_chars`
/// does), matching `pattern` when given.
pub fn string_schema(lengths: RangeInclusive<usize>, pattern: Option<String>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(*lengths.start()))
        .max_length(Some(*lengths.end()))
        .pattern(pattern)
        .build()
}

/// An integer schema within `range`, `default` when absent (as query parameters are).
pub fn integer_schema(range: RangeInclusive<u32>, default: u32) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(*range.start()))
        .maximum(Some(*range.end()))
        .default(Some(default.into()))
        .build()
}

/// The printable ASCII bytes `allowed` as the inside of a regular-expression character class,
/// runs written as ranges.
fn ascii_class(allowed: fn(u8) -> bool) -> String {
    let escape = |b: u8| match b {
        b'\\' | b']' | b'[' | b'^' | b'-' => format!("\\{}", char::from(b)),
        _ => char::from(b).to_string(),
    };
    let mut out = String::new();
    let mut bytes = (0x20u8..0x7F).filter(|&b| allowed(b)).peekable();
    while let Some(start) = bytes.next() {
        let mut end = start;
        while bytes.peek() == Some(&(end + 1)) {
            end = bytes.next().unwrap_or(end);
        }
        out.push_str(&escape(start));
        match end - start {
            0 => {}
            1 => out.push_str(&escape(end)),
            _ => {
                out.push('-');
                out.push_str(&escape(end));
            }
        }
    }
    out
}

/// `ToSchema` for a newtype from the rule that parses it, so the document states what `parse`
/// enforces; the schema is a named component that request schemas refer to.
macro_rules! documented_by {
    ($name:ident, $schema:expr) => {
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let schema: utoipa::openapi::Object = $schema;
                utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(schema))
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

/// `raw`, owned, when `ok`; else the error `message`.
fn accepted(ok: bool, raw: &str, message: &str) -> Result<String, String> {
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(message.to_owned())
    }
}

/// `raw` when it is 1 to `max` characters long, as sent: Meta counts characters, not bytes,
/// and checks before it trims.
fn within_chars(raw: &str, max: usize) -> Result<&str, String> {
    if (1..=max).contains(&raw.chars().count()) {
        Ok(raw)
    } else {
        Err(format!("must be 1-{max} characters"))
    }
}

/// `raw` when it holds more than whitespace.
fn not_blank(raw: &str) -> Result<&str, String> {
    if raw.trim().is_empty() {
        Err("must not be blank".to_owned())
    } else {
        Ok(raw)
    }
}

/// The characters a free text refuses, as ranges of code points. One definition serves the
/// check (`refuse`) and the pattern the OpenAPI document states (`pattern`), so that what the
/// schema allows is what the gateway accepts.
pub struct TextRule {
    refused: &'static [RangeInclusive<char>],
    /// What the refused characters are, for the error message.
    what: &'static str,
}

impl TextRule {
    /// Control characters (C0, DEL, C1: what `char::is_control` means) and the bidirectional
    /// overrides and isolates, which make the text around them display in another order: a
    /// group's name and description are shown to every participant and must not be able to
    /// disguise themselves (README, "Security rules", "Input").
    pub const NAME: TextRule = TextRule {
        refused: &[
            '\u{0}'..='\u{1F}',
            '\u{7F}'..='\u{9F}',
            '\u{202A}'..='\u{202E}',
            '\u{2066}'..='\u{2069}',
        ],
        what: "control characters or bidirectional overrides (U+202A-U+202E, U+2066-U+2069)",
    };

    /// As `NAME`, but a line feed (U+000A only) separates paragraphs.
    pub const PARAGRAPHS: TextRule = TextRule {
        refused: &[
            '\u{0}'..='\u{9}',
            '\u{B}'..='\u{1F}',
            '\u{7F}'..='\u{9F}',
            '\u{202A}'..='\u{202E}',
            '\u{2066}'..='\u{2069}',
        ],
        what: "control characters other than line feed, or bidirectional overrides \
               (U+202A-U+202E, U+2066-U+2069)",
    };

    /// Message text is shown as the business wrote it; only NUL, which no database column
    /// or C string holds, is refused.
    pub const MESSAGE: TextRule = TextRule {
        refused: &['\u{0}'..='\u{0}'],
        what: "NUL characters",
    };

    /// Control characters and the path separators `/` and `\\`: a name, not a path.
    pub const FILE_NAME: TextRule = TextRule {
        refused: &[
            '\u{0}'..='\u{1F}',
            '/'..='/',
            '\\'..='\\',
            '\u{7F}'..='\u{9F}',
        ],
        what: "control characters, '/' or '\\'",
    };

    fn refuses(&self, c: char) -> bool {
        self.refused.iter().any(|range| range.contains(&c))
    }

    /// `raw` when it holds no refused character; else the first one is named.
    pub fn refuse<'a>(&self, raw: &'a str) -> Result<&'a str, String> {
        match raw.chars().find(|&c| self.refuses(c)) {
            None => Ok(raw),
            Some(c) => Err(format!(
                "must not hold {} (found U+{:04X})",
                self.what,
                u32::from(c)
            )),
        }
    }

    /// The rule as an ECMA-262 pattern (the dialect of JSON Schema's `pattern`); with
    /// `not_blank`, the text must also hold a character that `str::trim` keeps.
    pub fn pattern(&self, not_blank: bool) -> String {
        let refused = class(self.refused.iter().cloned());
        if !not_blank {
            return format!("^[^{refused}]*$");
        }
        // Every whitespace character (`char::is_whitespace`, what `trim` removes) that the
        // rule does not already refuse, as ranges.
        let mut spaces: Vec<RangeInclusive<char>> = Vec::new();
        for c in ('\0'..=char::MAX).filter(|&c| c.is_whitespace() && !self.refuses(c)) {
            match spaces.last_mut() {
                Some(last) if u32::from(*last.end()) + 1 == u32::from(c) => {
                    *last = *last.start()..=c;
                }
                _ => spaces.push(c..=c),
            }
        }
        let kept = format!("{refused}{}", class(spaces.into_iter()));
        format!("^[^{refused}]*[^{kept}][^{refused}]*$")
    }
}

/// Ranges as the inside of a regular-expression character class, in `\uXXXX` escapes.
fn class(ranges: impl Iterator<Item = RangeInclusive<char>>) -> String {
    let escape = |c: char| format!("\\u{:04X}", u32::from(c));
    ranges
        .map(|range| {
            let (start, end) = (*range.start(), *range.end());
            if start == end {
                escape(start)
            } else {
                format!("{}-{}", escape(start), escape(end))
            }
        })
        .collect()
}

mod cursor;
pub mod endpoint;
pub mod events;
mod group_description;
mod group_field;
mod group_id;
mod group_message;
mod group_subject;
mod item_error;
mod join_approval_mode;
pub mod lenient;
mod limit;
pub mod meta_webhook;
mod participant_id;
mod phone_number_id;
mod profile_picture;
mod request_id;
mod scope;
mod team_name;
mod template;
mod token_id;
pub mod url;

pub use cursor::{
    FeedPosition, META_CURSOR, PageCursor, Paging, cursor_schema, decode_cursor, decode_position,
    encode_cursor, encode_position,
};
pub use group_description::GroupDescription;
pub use group_field::{GroupField, GroupFields};
pub use group_id::{GroupId, JoinRequestId};
pub use group_message::{
    Caption, GroupMessage, MediaFilename, MediaId, MediaKind, MediaLink, MediaSource, MessageText,
    MessageType, check_template_component, template_component_schema,
};
pub use group_subject::GroupSubject;
pub use item_error::ItemError;
pub use join_approval_mode::JoinApprovalMode;
pub use limit::{PageLimit, WaitSeconds, parse_limit};
pub use participant_id::{ParticipantId, ParticipantRef, UserId};
pub use phone_number_id::PhoneNumberId;
pub use profile_picture::{ProfilePicture, synthetic_jpeg_header};
pub use request_id::RequestId;
pub use scope::Scope;
pub use team_name::TeamName;
pub use template::{LanguageCode, TemplateName, TemplateParameter};
pub use token_id::TokenId;

// Lets unit tests elsewhere in the crate build pictures; unused until they do.
#[cfg(test)]
#[allow(unused_imports)]
pub(crate) use profile_picture::test_jpeg;

/// One invalid input field, reported in a problem+json `errors[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Name of the offending field as the client sent it (e.g. `subject`).
    pub field: String,
    /// Short human-readable reason.
    pub message: String,
}

/// Collects every broken field of a request so the client can fix them all
/// in one round trip instead of discovering them one at a time.
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Records the error (if any) under `field` and returns the Ok value.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(message) => {
                self.push(field, message);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<FieldError> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_collector_is_empty() {
        let errors = FieldErrors::new();
        assert!(errors.is_empty());
        assert!(errors.into_vec().is_empty());
    }

    #[test]
    fn check_passes_ok_through_without_recording() {
        let mut errors = FieldErrors::new();
        let value = errors.check("limit", Ok::<u32, String>(5));
        assert_eq!(value, Some(5));
        assert!(errors.is_empty());
    }

    #[test]
    fn check_records_every_error_in_order() {
        let mut errors = FieldErrors::new();
        assert_eq!(errors.check("a", GroupId::parse("")), None);
        assert_eq!(errors.check("b", Err::<(), _>("bad".to_string())), None);
        errors.push("c", "also bad");
        assert!(!errors.is_empty());
        let all = errors.into_vec();
        let fields: Vec<&str> = all.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["a", "b", "c"]);
        assert_eq!(all[1].message, "bad");
    }

    #[test]
    fn name_rule_refuses_exactly_control_and_bidi_characters() {
        let bidi = |c: char| {
            ('\u{202A}'..='\u{202E}').contains(&c) || ('\u{2066}'..='\u{2069}').contains(&c)
        };
        for c in ('\0'..='\u{3000}').chain(['\u{FEFF}', '\u{1F389}']) {
            let refused = c.is_control() || bidi(c);
            assert_eq!(TextRule::NAME.refuses(c), refused, "U+{:04X}", u32::from(c));
            assert_eq!(
                TextRule::PARAGRAPHS.refuses(c),
                refused && c != '\n',
                "U+{:04X}",
                u32::from(c)
            );
            assert_eq!(
                TextRule::MESSAGE.refuses(c),
                c == '\0',
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn refusal_names_the_first_refused_character() {
        assert_eq!(TextRule::NAME.refuse("a b"), Ok("a b"));
        let err = TextRule::NAME
            .refuse("pay\u{202E}gpj.exe")
            .expect_err("bidi");
        assert!(err.ends_with("(found U+202E)"), "{err}");
        assert!(TextRule::NAME.refuse("a\nb").is_err());
        assert_eq!(TextRule::PARAGRAPHS.refuse("a\nb"), Ok("a\nb"));
        assert!(TextRule::PARAGRAPHS.refuse("a\r\nb").is_err());
        assert_eq!(
            TextRule::MESSAGE.refuse("a\r\n\u{202E}"),
            Ok("a\r\n\u{202E}")
        );
        assert!(TextRule::MESSAGE.refuse("a\0").is_err());
    }

    #[test]
    fn patterns_spell_the_ranges_as_ecma_escapes() {
        assert_eq!(
            TextRule::NAME.pattern(false),
            r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
        );
        assert_eq!(
            TextRule::PARAGRAPHS.pattern(false),
            r"^[^\u0000-\u0009\u000B-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
        );
        // Not blank: one character that is neither refused nor whitespace; the whitespace
        // the rule refuses anyway (tab, line feed, NEL) is not listed twice.
        let refused = r"\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069";
        let spaces = r"\u0020\u00A0\u1680\u2000-\u200A\u2028-\u2029\u202F\u205F\u3000";
        assert_eq!(
            TextRule::NAME.pattern(true),
            format!("^[^{refused}]*[^{refused}{spaces}][^{refused}]*$")
        );
        assert_eq!(TextRule::MESSAGE.pattern(false), r"^[^\u0000]*$");
    }

    #[test]
    fn field_error_serializes_as_plain_object() {
        let error = FieldError {
            field: "subject".into(),
            message: "must not be blank".into(),
        };
        assert_eq!(
            serde_json::to_value(&error).expect("serializable"),
            serde_json::json!({"field": "subject", "message": "must not be blank"})
        );
    }
}
