//! Validated domain newtypes, and the shapes of Meta's payloads read leniently. A leaf
//! layer: it imports only `clock` of the crate.
//!
//! Every value that reaches Meta's Graph API (ids in URL paths, subjects,
//! uploaded pictures, ...) is parsed into one of these types at the edge, so
//! downstream code never has to re-check it and a bad value can never be
//! spliced into an upstream URL or body.

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

/// `raw`, owned, when it is `lengths` bytes long and every byte is `allowed`; else the error
/// `message`. The ids and names spliced into Graph URLs and bodies are checked this way; their
/// alphabets are ASCII, so bytes are characters.
fn of_alphabet(
    raw: &str,
    lengths: std::ops::RangeInclusive<usize>,
    allowed: impl Fn(u8) -> bool,
    message: &str,
) -> Result<String, String> {
    accepted(
        lengths.contains(&raw.len()) && raw.bytes().all(allowed),
        raw,
        message,
    )
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

mod cursor;
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
mod template;
mod token_id;
pub mod url;

pub use cursor::{
    FeedPosition, PageCursor, Paging, decode_cursor, decode_position, encode_cursor,
    encode_position,
};
pub use group_description::GroupDescription;
pub use group_field::{GroupField, GroupFields};
pub use group_id::{GroupId, JoinRequestId};
pub use group_message::{
    Caption, GroupMessage, MediaFilename, MediaId, MediaKind, MediaLink, MediaSource, MessageText,
    MessageType, check_template_component,
};
pub use group_subject::GroupSubject;
pub use item_error::ItemError;
pub use join_approval_mode::JoinApprovalMode;
pub use limit::{WaitSeconds, parse_limit};
pub use participant_id::ParticipantId;
pub use phone_number_id::PhoneNumberId;
pub use profile_picture::{ProfilePicture, synthetic_jpeg_header};
pub use request_id::RequestId;
pub use scope::Scope;
pub use template::{LanguageCode, TemplateName};
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
