//! Meta's side of the wire: the pages and items its answers carry, read leniently (Meta
//! quotes numbers, omits empty fields and adds new ones), and the bodies of the messages the
//! gateway sends.

use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::clock::unix_to_rfc3339;
use crate::domain::{GroupMessage, ItemError, MediaSource, Paging, lenient};

/// A page of one of Meta's listings: Meta's own cursors, passed through.
#[derive(Debug, Clone, Default)]
pub struct MetaPage {
    pub limit: Option<u32>,
    pub after: Option<String>,
    pub before: Option<String>,
}

impl MetaPage {
    /// `limit`, `after` and `before`, those given.
    pub(super) fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        query.extend(self.limit.map(|l| ("limit", l.to_string())));
        query.extend(self.after.clone().map(|a| ("after", a)));
        query.extend(self.before.clone().map(|b| ("before", b)));
        query
    }
}

/// The object named by the message's `type` in Meta's send body.
pub(super) fn message_content(message: &GroupMessage) -> Value {
    match message {
        GroupMessage::Text { body, preview_url } => {
            let mut text = json!({ "body": body.as_ref() });
            if let Some(preview) = preview_url {
                text["preview_url"] = json!(preview);
            }
            text
        }
        GroupMessage::Media {
            source,
            caption,
            filename,
            ..
        } => {
            let mut media = match source {
                MediaSource::Link(link) => json!({ "link": link.as_ref() }),
                MediaSource::Id(id) => json!({ "id": id.as_ref() }),
            };
            if let Some(caption) = caption {
                media["caption"] = json!(caption.as_ref());
            }
            if let Some(filename) = filename {
                media["filename"] = json!(filename.as_ref());
            }
            media
        }
        GroupMessage::Template {
            name,
            language,
            components,
        } => {
            let mut template = json!({
                "name": name.as_ref(),
                "language": { "code": language.as_ref() },
            });
            if let Some(components) = components {
                template["components"] = Value::Array(components.clone());
            }
            template
        }
    }
}

/// The items of a list in Meta's answer that `read` understands; others are skipped.
pub(super) fn items<T>(list: &Value, read: impl Fn(&Value) -> Option<T>) -> Vec<T> {
    list.as_array()
        .map(|items| items.iter().filter_map(read).collect())
        .unwrap_or_default()
}

/// A Unix-seconds field of Meta's, as RFC 3339.
pub(super) fn timestamp(item: &Value, key: &str) -> Option<String> {
    item.get(key).and_then(lenient::as_int).map(unix_to_rfc3339)
}

/// Meta's cursors of a listing, those that lead to another page.
pub(super) fn cursors(body: &Value) -> Paging {
    let c = &body["paging"]["cursors"];
    let get = |k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    // Graph only links `next` when there is a next page; a lone cursor may point nowhere.
    let after = if body["paging"].get("next").is_some() {
        get("after")
    } else {
        None
    };
    let before = if body["paging"].get("previous").is_some() {
        get("before")
    } else {
        None
    };
    Paging { after, before }
}

/// Meta quotes numbers and booleans in some answers; the gateway answers typed values.
pub(super) fn normalise_group_field(name: &str, v: &Value) -> Value {
    match name {
        "suspended" => lenient::as_bool(v)
            .map(Value::Bool)
            .unwrap_or_else(|| v.clone()),
        "creation_timestamp" | "total_participant_count" => lenient::as_int(v)
            .map(|i| json!(i))
            .unwrap_or_else(|| v.clone()),
        _ => v.clone(),
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UpstreamGroup {
    #[schema(example = "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD")]
    pub id: String,
    pub subject: Option<String>,
    /// RFC 3339.
    pub created_at: Option<String>,
}

#[derive(Debug, Clone)]
pub struct UpstreamGroupPage {
    pub groups: Vec<UpstreamGroup>,
    pub paging: Paging,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JoinRequest {
    #[schema(example = "MTY0NjcwNDM1OTU6MTIwMzYzNDA0Njk0MjMzODIw")]
    pub join_request_id: String,
    /// Absent for users with a WhatsApp username, who carry `user_id` instead.
    #[schema(example = "16505551234")]
    pub wa_id: Option<String>,
    /// The user's business-scoped user id, when Meta sends it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "US.13491208655302741918")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_user_id: Option<String>,
    /// The user's WhatsApp username, when they adopted one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// When the user asked to join (RFC 3339).
    #[schema(example = "2025-08-18T20:27:57Z")]
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JoinRequestPage {
    pub join_requests: Vec<JoinRequest>,
    pub paging: Paging,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FailedJoinRequest {
    pub join_request_id: String,
    pub error: ItemError,
}

#[derive(Debug, Clone)]
pub struct JoinRequestOutcome {
    /// Meta answered 206 (code 131201): some items failed; Meta's code and message.
    pub partial: Option<super::UpstreamProblem>,
    pub succeeded: Vec<String>,
    pub failed: Vec<FailedJoinRequest>,
}
