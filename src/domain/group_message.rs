//! A message the business sends into a group (README, "Group messaging"): the kinds Meta's
//! Groups API accepts there (text, the four media types, templates), each part checked
//! before Meta is called so a broken message never costs upstream quota.
//!
//! Interactive messages, reactions, locations, contacts and authentication templates are
//! not accepted: Meta does not support them in groups.

use serde_json::Value;

use super::{
    LanguageCode, TemplateName, TextRule, accepted, not_blank, string_schema, within_chars,
};

/// A text message's body, kept exactly as sent (whitespace is part of a message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

string_newtype!(MessageText);
documented_by!(
    MessageText,
    string_schema(
        1..=MessageText::MAX_CHARS,
        Some(MessageText::RULE.pattern(true))
    )
);

impl MessageText {
    /// Meta's limit, in characters.
    pub const MAX_CHARS: usize = 4096;
    pub const RULE: TextRule = TextRule::MESSAGE;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let text = within_chars(raw, Self::MAX_CHARS)
            .and_then(not_blank)
            .and_then(|t| Self::RULE.refuse(t))?;
        Ok(Self(text.to_owned()))
    }
}

/// The caption of an image, video or document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caption(String);

string_newtype!(Caption);
documented_by!(
    Caption,
    string_schema(1..=Caption::MAX_CHARS, Some(Caption::RULE.pattern(false)))
);

impl Caption {
    /// Meta's limit, in characters.
    pub const MAX_CHARS: usize = 1024;
    pub const RULE: TextRule = TextRule::MESSAGE;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let caption = within_chars(raw, Self::MAX_CHARS).and_then(|c| Self::RULE.refuse(c))?;
        Ok(Self(caption.to_owned()))
    }
}

/// The file name a document is shown with; WhatsApp picks its icon from the extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFilename(String);

string_newtype!(MediaFilename);
documented_by!(
    MediaFilename,
    string_schema(
        1..=MediaFilename::MAX_CHARS,
        Some(MediaFilename::RULE.pattern(true))
    )
);

impl MediaFilename {
    const MAX_CHARS: usize = 255;
    /// A name, not a path: no control character and no separator.
    const RULE: TextRule = TextRule::FILE_NAME;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = within_chars(raw, Self::MAX_CHARS)
            .and_then(not_blank)
            .and_then(|name| Self::RULE.refuse(name))
            .is_ok();
        let message =
            "must be 1-255 characters, not blank, without '/', '\\' or control characters";
        accepted(ok, raw, message).map(Self)
    }
}

/// Media Meta fetches from the caller's server. Only https: Meta downloads the file from
/// the open internet, and a plain-http or internal URL would only fail there, after the
/// quota was spent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLink(String);

string_newtype!(MediaLink);
documented_by!(
    MediaLink,
    string_schema(
        MediaLink::SCHEME.len() + 1..=MediaLink::MAX_BYTES,
        Some(MediaLink::pattern())
    )
);

impl MediaLink {
    const MAX_BYTES: usize = 2048;
    const SCHEME: &str = "https://";
    /// What ends the host.
    const AFTER_HOST: [char; 3] = ['/', '?', '#'];

    /// A byte of the host (with its port): no user part, nothing that ends it.
    fn host_byte(b: u8) -> bool {
        b.is_ascii_graphic() && b != b'@' && !Self::AFTER_HOST.contains(&char::from(b))
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let scheme = Self::SCHEME.len();
        let host = raw
            .get(..scheme)
            .filter(|s| s.eq_ignore_ascii_case(Self::SCHEME))
            .map(|_| &raw[scheme..])
            .map(|rest| rest.split(Self::AFTER_HOST).next().unwrap_or_default());
        let ok = raw.len() <= Self::MAX_BYTES
            && host.is_some_and(|h| {
                !h.is_empty() && !h.starts_with(':') && h.bytes().all(Self::host_byte)
            })
            && raw.bytes().all(|b| b.is_ascii_graphic());
        let message =
            "must be an https:// URL of at most 2048 characters, with a host and no spaces";
        accepted(ok, raw, message).map(Self)
    }
}

impl MediaLink {
    /// `parse` as an ECMA-262 pattern: the scheme in any case, a host that does not start
    /// with `:`, then anything printable after what ends the host.
    fn pattern() -> String {
        let scheme: String = Self::SCHEME
            .chars()
            .map(|c| match c.is_ascii_alphabetic() {
                true => format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase()),
                false => c.to_string(),
            })
            .collect();
        let first = super::ascii_class(|b| Self::host_byte(b) && b != b':');
        let host = super::ascii_class(Self::host_byte);
        let after: String = Self::AFTER_HOST.iter().collect();
        let graphic = super::ascii_class(|b| b.is_ascii_graphic());
        format!("^{scheme}[{first}][{host}]*([{after}][{graphic}]*)?$")
    }
}

/// The id Meta's media upload (`POST /{phone_number_id}/media`) answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaId(String);

string_newtype!(MediaId);
documented_by!(MediaId, MediaId::RULE.schema());

impl MediaId {
    pub const RULE: super::Alphabet = super::Alphabet {
        lengths: 1..=128,
        allowed: |b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'='),
        message: "must be 1-128 characters of A-Z, a-z, 0-9, '_', '-', '.', ':' or '='",
    };

    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::RULE.parse(raw).map(Self)
    }
}

/// Where Meta takes a media file from: exactly one of the two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaSource {
    Link(MediaLink),
    Id(MediaId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    Document,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::Document => "document",
        }
    }

    /// Meta's audio messages carry no caption.
    pub fn allows_caption(self) -> bool {
        self != MediaKind::Audio
    }

    /// Only a document is shown with a file name.
    pub fn allows_filename(self) -> bool {
        self == MediaKind::Document
    }
}

wire_enum!(MediaKind);

/// The message types the route accepts, as `type` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Text,
    Media(MediaKind),
    Template,
}

impl MessageType {
    pub const ALL: [MessageType; 6] = [
        MessageType::Text,
        MessageType::Media(MediaKind::Image),
        MessageType::Media(MediaKind::Video),
        MessageType::Media(MediaKind::Audio),
        MessageType::Media(MediaKind::Document),
        MessageType::Template,
    ];

    /// Also the name of the object that carries the content, in the request and upstream.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Text => "text",
            MessageType::Media(kind) => kind.as_str(),
            MessageType::Template => "template",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == raw)
            .ok_or_else(|| {
                "must be one of text, image, video, audio, document, template".to_owned()
            })
    }
}

wire_enum!(MessageType);

/// A message for a group, every part valid.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupMessage {
    Text {
        body: MessageText,
        /// Whether WhatsApp previews the first URL of the body; Meta's default when absent.
        preview_url: Option<bool>,
    },
    Media {
        kind: MediaKind,
        source: MediaSource,
        caption: Option<Caption>,
        filename: Option<MediaFilename>,
    },
    Template {
        name: TemplateName,
        language: LanguageCode,
        /// Meta's template components (header, body and button parameters), as sent; each is
        /// an object with a `type` (see [`check_template_component`]).
        components: Option<Vec<Value>>,
    },
}

impl GroupMessage {
    pub fn message_type(&self) -> MessageType {
        match self {
            GroupMessage::Text { .. } => MessageType::Text,
            GroupMessage::Media { kind, .. } => MessageType::Media(*kind),
            GroupMessage::Template { .. } => MessageType::Template,
        }
    }
}

/// The `type` of a template component.
const COMPONENT_TYPE: super::Alphabet = super::Alphabet {
    lengths: 1..=32,
    allowed: |b| b.is_ascii_lowercase() || b == b'_',
    message: "must be a component type such as header, body or button",
};

/// `check_template_component` as a schema: an object with a `type`, and `parameters` that
/// are objects.
pub fn template_component_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("type", COMPONENT_TYPE.schema())
        .required("type")
        .property(
            "parameters",
            ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::Object)),
        )
        .build()
}

/// One template component as Meta reads it: an object whose `type` names the part of the
/// template (`header`, `body`, `button`, …) and whose `parameters`, when present, are a list
/// of objects. Deeper rules depend on the approved template and are Meta's to check.
/// Answers the broken part (a suffix of the component's field name) and why.
pub fn check_template_component(component: &Value) -> Result<(), (&'static str, String)> {
    let Some(object) = component.as_object() else {
        return Err(("", "must be an object".to_owned()));
    };
    let type_ok = object
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| COMPONENT_TYPE.parse(t).is_ok());
    if !type_ok {
        return Err((".type", COMPONENT_TYPE.message.to_owned()));
    }
    match object.get("parameters") {
        None => Ok(()),
        Some(Value::Array(items)) if items.iter().all(Value::is_object) => Ok(()),
        Some(_) => Err((".parameters", "must be an array of objects".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_is_one_to_4096_characters_and_not_blank() {
        assert!(MessageText::parse("hi").is_ok());
        assert!(MessageText::parse(&"é".repeat(4096)).is_ok());
        assert!(MessageText::parse(&"é".repeat(4097)).is_err());
        assert!(MessageText::parse("").is_err());
        assert!(MessageText::parse(" \n\t").is_err());
        assert!(MessageText::parse("a\0b").is_err());
        assert!(Caption::parse("a\0b").is_err());
        // Only NUL: a message may carry any other character as written.
        assert!(MessageText::parse("a\r\n\u{202E}\u{1B}").is_ok());
        // Kept exactly as sent.
        assert_eq!(
            MessageText::parse("  indented\n").unwrap().as_str(),
            "  indented\n"
        );
    }

    #[test]
    fn captions_and_file_names_have_meta_limits() {
        assert!(Caption::parse(&"c".repeat(1024)).is_ok());
        assert!(Caption::parse(&"c".repeat(1025)).is_err());
        assert!(Caption::parse("").is_err());
        for good in ["report.pdf", "Q3 results (final).xlsx", "ü.txt"] {
            assert!(MediaFilename::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "  ",
            "a/b.pdf",
            "a\\b.pdf",
            "a\nb.pdf",
            &"f".repeat(256),
        ] {
            assert!(MediaFilename::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn links_must_be_https_with_a_host() {
        for good in [
            "https://example.com/a.jpg",
            "HTTPS://cdn.example.com:8443/x?y=1#z",
            "https://example.com",
        ] {
            assert!(MediaLink::parse(good).is_ok(), "{good}");
        }
        let long = format!("https://example.com/{}", "a".repeat(2048));
        for bad in [
            "http://example.com/a.jpg",
            "ftp://example.com/a",
            "https://",
            "https:///path",
            "https://:443/x",
            "https://user@example.com/x",
            "https://example.com/a b.jpg",
            "example.com/a.jpg",
            "",
            long.as_str(),
        ] {
            assert!(MediaLink::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn link_pattern_follows_parse() {
        assert_eq!(
            MediaLink::pattern(),
            concat!(
                r"^[hH][tT][tT][pP][sS]://",
                r#"[!"$-.0-9;->A-~][!"$-.0->A-~]*([/?#][!-~]*)?$"#
            )
        );
    }

    #[test]
    fn media_ids_are_metas_alphabet() {
        assert!(MediaId::parse("1037543291543636").is_ok());
        for bad in ["", "12 3", "a/b", "é", &"1".repeat(129)] {
            assert!(MediaId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_documents_have_file_names_and_audio_has_no_caption() {
        let kinds = [
            MediaKind::Image,
            MediaKind::Video,
            MediaKind::Audio,
            MediaKind::Document,
        ];
        let captions: Vec<bool> = kinds.iter().map(|k| k.allows_caption()).collect();
        let names: Vec<bool> = kinds.iter().map(|k| k.allows_filename()).collect();
        assert_eq!(captions, [true, true, false, true]);
        assert_eq!(names, [false, false, false, true]);
    }

    #[test]
    fn message_types_round_trip() {
        for t in MessageType::ALL {
            assert_eq!(MessageType::parse(t.as_str()), Ok(t));
        }
        for bad in ["interactive", "reaction", "TEXT", "", "sticker"] {
            assert!(MessageType::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn template_components_are_objects_with_a_type() {
        assert!(check_template_component(&json!({"type": "body"})).is_ok());
        assert!(
            check_template_component(&json!({"type": "button", "sub_type": "url", "index": "0",
                "parameters": [{"type": "text", "text": "x"}]}))
            .is_ok()
        );
        assert_eq!(check_template_component(&json!("body")).unwrap_err().0, "");
        assert_eq!(
            check_template_component(&json!({"parameters": []}))
                .unwrap_err()
                .0,
            ".type"
        );
        assert_eq!(
            check_template_component(&json!({"type": "Body"}))
                .unwrap_err()
                .0,
            ".type"
        );
        assert_eq!(
            check_template_component(&json!({"type": "body", "parameters": ["x"]}))
                .unwrap_err()
                .0,
            ".parameters"
        );
    }
}
