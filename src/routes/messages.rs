//! `/v1/groups/{group_id}/messages`: the business writes into a group it owns (README,
//! "Group messaging"). What participants write, and the statuses of what the business
//! wrote, arrive as team events (`group.message_received`, `group.message_status`).

use actix_web::{HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::{PartialSchema, ToSchema};

use super::FieldReader;
use super::extract::scope::GroupsMessage;
use super::extract::{JsonInput, OwnedGroup};
use super::idempotency::{Idempotency, IdempotencyKey, Keyed};
use super::params::GroupPath;
use super::responses::{BodyRefusals, IdempotencyRefusals, Refusals, UpstreamFailures};
use crate::domain::{
    Caption, GroupMessage, LanguageCode, MediaFilename, MediaId, MediaKind, MediaLink, MediaSource,
    MessageText, MessageType, TemplateName, check_template_component, template_component_schema,
};
use crate::error::ApiError;
use crate::graph::GraphClient;

// ---- documentation types (the wire shapes; validation reads the JSON field by field) ----

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TextContent {
    /// 1–4096 characters, not blank, no NUL; sent as written.
    #[schema(value_type = MessageText)]
    pub body: String,
    /// Let WhatsApp preview the first http(s) URL of the body.
    #[schema(nullable = false)]
    pub preview_url: Option<bool>,
}

/// Where Meta gets the media: exactly one of `link` and `id`. Audio is this alone.
#[derive(Deserialize)]
pub struct MediaRef {
    pub link: Option<String>,
    pub id: Option<String>,
}

/// An image or a video: its source, and a caption.
#[derive(Deserialize)]
pub struct MediaContent {
    #[serde(flatten)]
    pub source: MediaRef,
    pub caption: Option<String>,
}

/// A document: as an image, and the name shown for the file.
#[derive(Deserialize)]
pub struct DocumentContent {
    #[serde(flatten)]
    pub media: MediaContent,
    pub filename: Option<String>,
}

/// The content object of a media message of `kind`, as `read_media` reads it: exactly one
/// source, a caption and a file name only where the kind has them, nothing else.
fn media_schema(kind: MediaKind, description: &str) -> Schema {
    let one_of = |field: &str| ObjectBuilder::new().required(field);
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description))
        .property(
            "link",
            with_description(
                MediaLink::schema(),
                "An https URL Meta downloads the file from",
            ),
        )
        .property(
            "id",
            with_description(
                MediaId::schema(),
                "The id of media uploaded to Meta (`POST /{phone_number_id}/media`)",
            ),
        )
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    if kind.allows_caption() {
        object = object.property("caption", Caption::schema());
    }
    if kind.allows_filename() {
        object = object.property(
            "filename",
            with_description(
                MediaFilename::schema(),
                "The name shown for the file (its extension picks the icon)",
            ),
        );
    }
    let source = OneOfBuilder::new().item(one_of("link")).item(one_of("id"));
    Schema::AllOf(AllOfBuilder::new().item(object).item(source).build())
}

fn with_description(schema: RefOr<Schema>, description: &str) -> RefOr<Schema> {
    match schema {
        RefOr::T(Schema::Object(mut object)) => {
            object.description = Some(description.to_owned());
            RefOr::T(Schema::Object(object))
        }
        other => other,
    }
}

macro_rules! media_component {
    ($name:ident, $kind:expr, $description:literal) => {
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                RefOr::T(media_schema($kind, $description))
            }
        }

        impl ToSchema for $name {}
    };
}

media_component!(
    MediaRef,
    MediaKind::Audio,
    "Where Meta gets the media: exactly one of `link` and `id`. Audio is this alone."
);
media_component!(
    MediaContent,
    MediaKind::Image,
    "An image or a video: its source (exactly one of `link` and `id`), and a caption."
);
media_component!(
    DocumentContent,
    MediaKind::Document,
    "A document: as an image, and the name shown for the file."
);

/// An approved text- or media-based template (authentication templates are not allowed in
/// groups).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateContent {
    #[schema(value_type = TemplateName, example = "order_update")]
    pub name: String,
    /// The template's language code (sent to Meta as `{"code": …}`).
    #[schema(value_type = LanguageCode, example = "en_US")]
    pub language: String,
    /// Meta's template components, forwarded as sent: objects with a `type` (`header`,
    /// `body`, `button`, …) and, when the template has variables, `parameters`.
    #[schema(schema_with = components, nullable = false)]
    pub components: Option<Vec<Value>>,
}

fn components() -> ArrayBuilder {
    ArrayBuilder::new().items(template_component_schema())
}

/// `type` names the message type; the object of the same name carries the content, and no
/// other content object may be sent.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum GroupMessageBody {
    Text { text: TextContent },
    Image { image: MediaContent },
    Video { video: MediaContent },
    Audio { audio: MediaRef },
    Document { document: DocumentContent },
    Template { template: TemplateContent },
}

/// Meta accepted the message; its statuses arrive as `group.message_status` events.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3"}))]
pub struct GroupMessageSent {
    /// Meta's id of the message (`wamid.…`): the `message_id` of its status events.
    #[schema(nullable = false)]
    pub message_id: Option<String>,
}

// ---- input ----------------------------------------------------------------------------------

pub struct SendGroupMessage(GroupMessage);

impl JsonInput for SendGroupMessage {
    fn read(r: &mut FieldReader<'_>) -> Option<Self> {
        let kind = r.required_parsed("type", MessageType::parse);
        let stray: Vec<&str> = r
            .keys()
            .filter(|k| *k != "type" && Some(*k) != kind.map(MessageType::as_str))
            .collect();
        for key in stray {
            let is_content = MessageType::ALL.iter().any(|t| t.as_str() == key);
            match kind {
                Some(kind) if is_content => r
                    .errors
                    .push(key, format!("does not go with type \"{kind}\"")),
                // Without a valid type, which content object belongs is unknown.
                None if is_content => {}
                _ => r.errors.push(key, "is not a known field"),
            }
        }
        let message = kind.and_then(|kind| {
            let content = r.required_object(kind.as_str())?;
            r.nested(kind.as_str(), content, |r| match kind {
                MessageType::Text => read_text(r),
                MessageType::Media(media) => read_media(media, r),
                MessageType::Template => read_template(r),
            })
        });
        message.map(SendGroupMessage)
    }
}

fn read_text(r: &mut FieldReader<'_>) -> Option<GroupMessage> {
    let body = r.required_parsed("body", MessageText::parse);
    let preview_url = r.optional_bool("preview_url");
    r.deny_unknown(&["body", "preview_url"]);
    Some(GroupMessage::Text {
        body: body?,
        preview_url,
    })
}

fn read_media(kind: MediaKind, r: &mut FieldReader<'_>) -> Option<GroupMessage> {
    let link = r.optional_parsed("link", MediaLink::parse);
    let id = r.optional_parsed("id", MediaId::parse);
    let source = match (r.contains("link"), r.contains("id")) {
        (true, true) => {
            r.errors.push("id", "cannot be sent together with link");
            None
        }
        (false, false) => {
            r.errors.push(
                "link",
                "is required (an https URL), unless id names uploaded media",
            );
            None
        }
        _ => link.map(MediaSource::Link).or(id.map(MediaSource::Id)),
    };
    let caption = if kind.allows_caption() {
        r.optional_parsed("caption", Caption::parse)
    } else {
        if r.contains("caption") {
            r.errors
                .push("caption", format!("is not allowed for {kind} messages"));
        }
        None
    };
    let filename = if kind.allows_filename() {
        r.optional_parsed("filename", MediaFilename::parse)
    } else {
        if r.contains("filename") {
            r.errors
                .push("filename", "is only allowed for document messages");
        }
        None
    };
    r.deny_unknown(&["link", "id", "caption", "filename"]);
    Some(GroupMessage::Media {
        kind,
        source: source?,
        caption,
        filename,
    })
}

fn read_template(r: &mut FieldReader<'_>) -> Option<GroupMessage> {
    let name = r.required_parsed("name", TemplateName::parse);
    let language = r.required_parsed("language", LanguageCode::parse);
    let components = r.optional_array("components").map(|items| {
        for (i, component) in items.iter().enumerate() {
            if let Err((part, message)) = check_template_component(component) {
                r.errors.push(format!("components[{i}]{part}"), message);
            }
        }
        items.clone()
    });
    r.deny_unknown(&["name", "language", "components"]);
    Some(GroupMessage::Template {
        name: name?,
        language: language?,
        components,
    })
}

// ---- handler --------------------------------------------------------------------------------

/// Send a message into the group: text, an image, video, audio or document (by https link
/// or uploaded media id), or an approved template. Participants' replies and the message's
/// sent/delivered/read statuses arrive as team events.
#[utoipa::path(
    tag = "messages",
    params(GroupPath, IdempotencyKey),
    request_body(
        description = "One message; `type` names the object that carries it",
        content((GroupMessageBody = "application/json", examples(
            ("text" = (summary = "Text", value = json!({
                "type": "text",
                "text": {"body": "Welcome aboard! The schedule is at https://example.com/schedule", "preview_url": true}
            }))),
            ("image_by_link" = (summary = "Image by link", value = json!({
                "type": "image",
                "image": {"link": "https://example.com/images/launch.jpg", "caption": "Launch day"}
            }))),
            ("image_by_id" = (summary = "Image by uploaded media id", value = json!({
                "type": "image",
                "image": {"id": "1037543291543636", "caption": "Launch day"}
            }))),
            ("video" = (summary = "Video", value = json!({
                "type": "video",
                "video": {"link": "https://example.com/videos/walkthrough.mp4", "caption": "Two-minute walkthrough"}
            }))),
            ("audio" = (summary = "Audio (no caption)", value = json!({
                "type": "audio",
                "audio": {"id": "1166846181421424"}
            }))),
            ("document" = (summary = "Document with a file name", value = json!({
                "type": "document",
                "document": {"link": "https://example.com/docs/agenda.pdf", "filename": "agenda.pdf", "caption": "Tomorrow's agenda"}
            }))),
            ("template" = (summary = "Template with a body parameter", value = json!({
                "type": "template",
                "template": {"name": "order_update", "language": "en_US",
                    "components": [{"type": "body", "parameters": [{"type": "text", "text": "#1042"}]}]}
            }))),
        ))),
    ),
    responses(
        (status = 202, description = "Meta accepted the message", body = GroupMessageSent),
        Refusals, BodyRefusals, IdempotencyRefusals, UpstreamFailures,
    ),
    security(("bearer" = ["groups:message"]))
)]
#[post("/groups/{group_id}/messages")]
pub async fn send_group_message(
    call: OwnedGroup<GroupsMessage, Keyed<SendGroupMessage>>,
    graph: web::Data<GraphClient>,
    idempotency: web::Data<Idempotency>,
) -> Result<HttpResponse, ApiError> {
    let (group, Keyed { input, key }) = (&call.resource, call.input);
    let send = graph.send_group_message(&group.phone_number_id, &group.group_id, &input.0);
    idempotency
        .run_accepted(&call.principal.team, key, async {
            Ok(GroupMessageSent {
                message_id: send.await?,
            })
        })
        .await
}
