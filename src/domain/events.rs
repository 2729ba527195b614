//! Team events (README, "Team events"): every group event Meta reports, as the team owning the
//! group sees it. They make the feed behind `GET /v1/events` and the body of each signed
//! delivery to the team's `webhook.url`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::lenient;

/// What happened to a group. The names are stable: teams match on them (README, "Team events").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum EventType {
    /// A creation succeeded: `data` has Meta's `subject`, `invite_link`, `join_approval_mode`.
    #[serde(rename = "group.created")]
    Created,
    /// A creation failed: `data.errors` says why.
    #[serde(rename = "group.create_failed")]
    CreateFailed,
    #[serde(rename = "group.deleted")]
    Deleted,
    #[serde(rename = "group.delete_failed")]
    DeleteFailed,
    /// People joined (invite link, or approved join requests): `data.added_participants`.
    #[serde(rename = "group.participants_added")]
    ParticipantsAdded,
    /// People left (`initiated_by: participant`) or were removed (`initiated_by: business`):
    /// `data.removed_participants`, and for a removal that partly or wholly failed
    /// `data.failed_participants` and `data.errors`.
    #[serde(rename = "group.participants_removed")]
    ParticipantsRemoved,
    #[serde(rename = "group.join_request_created")]
    JoinRequestCreated,
    #[serde(rename = "group.join_request_revoked")]
    JoinRequestRevoked,
    /// A settings change: one object per changed setting (`group_subject`,
    /// `group_description`, `profile_picture`) with `update_successful` and its `errors`.
    #[serde(rename = "group.settings_updated")]
    SettingsUpdated,
    #[serde(rename = "group.suspended")]
    Suspended,
    #[serde(rename = "group.suspension_cleared")]
    SuspensionCleared,
    /// A participant wrote in the group (Meta's `messages` field, an item with a `group_id`):
    /// `data` has `message_id`, `from`, `type`, the content under the type's name (`text`,
    /// `image`, …) and the sender's `contact` (`profile.name`).
    #[serde(rename = "group.message_received")]
    MessageReceived,
    /// A status of a message the business sent to the group: `data` has `message_id`,
    /// `status` (`sent`, `delivered`, `read`, `failed`), for delivered and read the
    /// `recipient_participant_id`, and Meta's `errors`, `pricing`, ….
    #[serde(rename = "group.message_status")]
    MessageStatus,
    /// One of the team's webhook endpoints was disabled (`data`: `endpoint_id`, `url`
    /// without credentials, `reason`). Concerns no phone number (`phone_number_id` is
    /// empty): every token of the team sees it in the feed; it is not pushed.
    #[serde(rename = "webhook.endpoint_disabled")]
    EndpointDisabled,
}

/// The `event_type` the webhook reader gives items of Meta's `messages` field (whose own
/// `type` names the content, not the event): a participant's message in a group…
pub const GROUP_MESSAGE_ITEM: &str = "message";
/// …and a status of a message sent to a group.
pub const GROUP_STATUS_ITEM: &str = "message_status";

impl EventType {
    pub const ALL: [EventType; 14] = [
        EventType::Created,
        EventType::CreateFailed,
        EventType::Deleted,
        EventType::DeleteFailed,
        EventType::ParticipantsAdded,
        EventType::ParticipantsRemoved,
        EventType::JoinRequestCreated,
        EventType::JoinRequestRevoked,
        EventType::SettingsUpdated,
        EventType::Suspended,
        EventType::SuspensionCleared,
        EventType::MessageReceived,
        EventType::MessageStatus,
        EventType::EndpointDisabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Created => "group.created",
            EventType::CreateFailed => "group.create_failed",
            EventType::Deleted => "group.deleted",
            EventType::DeleteFailed => "group.delete_failed",
            EventType::ParticipantsAdded => "group.participants_added",
            EventType::ParticipantsRemoved => "group.participants_removed",
            EventType::JoinRequestCreated => "group.join_request_created",
            EventType::JoinRequestRevoked => "group.join_request_revoked",
            EventType::SettingsUpdated => "group.settings_updated",
            EventType::Suspended => "group.suspended",
            EventType::SuspensionCleared => "group.suspension_cleared",
            EventType::MessageReceived => "group.message_received",
            EventType::MessageStatus => "group.message_status",
            EventType::EndpointDisabled => "webhook.endpoint_disabled",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Meta's item `type` (unique across the four group fields) and the item itself decide
    /// the event; anything else is stored as received and shown to nobody.
    pub fn classify(meta_type: &str, item: &Value) -> Option<EventType> {
        let failed = has_errors(item);
        Some(match meta_type {
            // A creation without a group id cannot have succeeded, whatever else it says.
            "group_create" if failed || item.get("group_id").and_then(lenient::as_id).is_none() => {
                EventType::CreateFailed
            }
            "group_create" => EventType::Created,
            "group_delete" if failed => EventType::DeleteFailed,
            "group_delete" => EventType::Deleted,
            "group_participants_add" => EventType::ParticipantsAdded,
            "group_participants_remove" => EventType::ParticipantsRemoved,
            "group_join_request_created" => EventType::JoinRequestCreated,
            "group_join_request_revoked" => EventType::JoinRequestRevoked,
            "group_settings_update" => EventType::SettingsUpdated,
            "group_suspend" => EventType::Suspended,
            "group_suspend_cleared" => EventType::SuspensionCleared,
            GROUP_MESSAGE_ITEM => EventType::MessageReceived,
            GROUP_STATUS_ITEM => EventType::MessageStatus,
            _ => return None,
        })
    }

    /// `data` of a team event of this type made of Meta's `item`.
    pub fn data(self, item: &Value) -> Value {
        match self {
            EventType::MessageReceived => message_data(item),
            EventType::MessageStatus => status_data(item),
            _ => event_data(item),
        }
    }

    /// For these `request_id` is the gateway's own (from `create_group`), not Meta's.
    pub fn is_creation(self) -> bool {
        matches!(self, EventType::Created | EventType::CreateFailed)
    }
}

/// One event of a team's feed, and the JSON body of each delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "evt_3f1c2a7e0d1b4a559a439b2f4f9f3c10",
    "type": "group.participants_added",
    "occurred_at": "2026-11-26T10:15:00Z",
    "phone_number_id": "12784358810",
    "group_id": "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD",
    "data": {"reason": "invite_link", "added_participants": [{"wa_id": "16505551234"}]}
}))]
pub struct TeamEvent {
    /// Stable; also the `webhook-id` of every delivery attempt of this event.
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When Meta says it happened (RFC 3339); the arrival time when Meta gave none.
    pub occurred_at: String,
    pub phone_number_id: String,
    /// Absent only for a failed creation Meta reported without one.
    pub group_id: Option<String>,
    /// `group.created` / `group.create_failed`: the `request_id` answered by `create_group`.
    /// Other events: Meta's request id (`upstream_request_id` of the call), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Meta's details of the event, as sent, minus the fields above; error `code`s are
    /// integers and `update_successful` flags are booleans whatever form Meta used.
    #[schema(value_type = Object)]
    pub data: Value,
}

/// True when the item carries a non-empty top-level `errors` list.
pub fn has_errors(item: &Value) -> bool {
    item.get("errors")
        .and_then(Value::as_array)
        .is_some_and(|e| !e.is_empty())
}

/// Stable per Meta event: the same event Meta sends again yields the same id.
/// The key of the event standing for a creation that expired without Meta's webhook: one
/// per creation, so that its `group.create_failed` is stored once.
pub fn creation_expiry_key(request_id: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(
        format!("creation-expired:{request_id}").as_bytes(),
    ))
}

pub fn event_id(event_key: &str) -> String {
    let short: String = event_key.chars().take(32).collect();
    format!("evt_{short}")
}

/// `data` of a team event: Meta's item without the envelope fields the event already has,
/// with Meta's mixed forms made uniform.
pub fn event_data(item: &Value) -> Value {
    let mut data = match item {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    for envelope in ["timestamp", "group_id", "type", "request_id"] {
        data.remove(envelope);
    }
    let mut data = Value::Object(data);
    normalize(&mut data, false);
    data
}

/// `data` of `group.message_received`: Meta's message item with its `id` as `message_id`
/// and `type` kept (it names the content). `from` falls back to the sender's business-scoped
/// user id, which Meta sends instead of a phone number for username users.
fn message_data(item: &Value) -> Value {
    let mut data = item.as_object().cloned().unwrap_or_default();
    for envelope in ["timestamp", "group_id"] {
        data.remove(envelope);
    }
    if let Some(id) = data.remove("id") {
        data.insert("message_id".into(), id);
    }
    if !data.contains_key("from")
        && let Some(user) = data.get("from_user_id").cloned()
    {
        data.insert("from".into(), user);
    }
    let mut data = Value::Object(data);
    normalize(&mut data, false);
    data
}

/// `data` of `group.message_status`: Meta's status item with its `id` as `message_id`; the
/// group (Meta's `recipient_id`) is the event's `group_id`. Meta spells the participant of a
/// delivered or read status two ways; the event uses `recipient_participant_id`.
fn status_data(item: &Value) -> Value {
    let mut data = item.as_object().cloned().unwrap_or_default();
    for envelope in ["timestamp", "group_id", "recipient_id", "recipient_type"] {
        data.remove(envelope);
    }
    if let Some(id) = data.remove("id") {
        data.insert("message_id".into(), id);
    }
    if let Some(participant) = data.remove("participant_recipient_id") {
        data.entry("recipient_participant_id")
            .or_insert(participant);
    }
    let mut data = Value::Object(data);
    normalize(&mut data, false);
    data
}

fn normalize(value: &mut Value, in_errors: bool) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match key.as_str() {
                    // Meta's samples quote error codes; real payloads send integers.
                    "code" | "error_subcode" if in_errors => {
                        if let Some(n) = lenient::as_int(child) {
                            *child = Value::from(n);
                        }
                    }
                    "update_successful" => {
                        if let Some(b) = lenient::as_bool(child) {
                            *child = Value::Bool(b);
                        }
                    }
                    "errors" => normalize(child, true),
                    _ => normalize(child, false),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| normalize(v, in_errors)),
        _ => {}
    }
}

/// One group event read out of a webhook POST of Meta's, ready to store.
#[derive(Debug, Clone)]
pub struct NewWebhookEvent {
    /// Stable per Meta event: the same event sent again has the same key.
    pub event_key: String,
    pub field: String,
    pub event_type: String,
    pub phone_number_id: Option<String>,
    pub group_id: Option<String>,
    pub meta_request_id: Option<String>,
    pub occurred_at: Option<String>,
    pub payload: Value,
}

/// A pending creation that a `group_create` event completed or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The gateway's request id, as answered by `create_group`.
    pub request_id: String,
    pub team: String,
    pub phone_number_id: String,
    /// Meta's request id of the creation.
    pub meta_request_id: String,
    /// The group Meta created; None when the creation failed.
    pub group_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_names_round_trip_through_serde() {
        for t in EventType::ALL {
            let v = serde_json::to_value(t).unwrap();
            assert_eq!(v, json!(t.as_str()));
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
    }

    #[test]
    fn meta_types_map_to_team_event_types() {
        let err = json!({"errors": [{"code": 131207}]});
        let table = [
            (
                "group_create",
                json!({"group_id": "G"}),
                Some(EventType::Created),
            ),
            (
                "group_create",
                json!({"group_id": 7}),
                Some(EventType::Created),
            ),
            ("group_create", json!({}), Some(EventType::CreateFailed)),
            (
                "group_create",
                json!({"group_id": "G", "errors": [{"code": "1"}]}),
                Some(EventType::CreateFailed),
            ),
            (
                "group_create",
                json!({"group_id": "G", "errors": []}),
                Some(EventType::Created),
            ),
            ("group_delete", json!({}), Some(EventType::Deleted)),
            ("group_delete", err.clone(), Some(EventType::DeleteFailed)),
            (
                "group_participants_add",
                json!({}),
                Some(EventType::ParticipantsAdded),
            ),
            (
                "group_participants_remove",
                err.clone(),
                Some(EventType::ParticipantsRemoved),
            ),
            (
                "group_join_request_created",
                json!({}),
                Some(EventType::JoinRequestCreated),
            ),
            (
                "group_join_request_revoked",
                json!({}),
                Some(EventType::JoinRequestRevoked),
            ),
            (
                "group_settings_update",
                err,
                Some(EventType::SettingsUpdated),
            ),
            ("group_suspend", json!({}), Some(EventType::Suspended)),
            (
                "group_suspend_cleared",
                json!({}),
                Some(EventType::SuspensionCleared),
            ),
            (
                GROUP_MESSAGE_ITEM,
                json!({}),
                Some(EventType::MessageReceived),
            ),
            (GROUP_STATUS_ITEM, json!({}), Some(EventType::MessageStatus)),
            ("group_brand_new", json!({}), None),
            ("unknown", json!(null), None),
        ];
        for (meta_type, item, expected) in table {
            assert_eq!(
                EventType::classify(meta_type, &item),
                expected,
                "{meta_type} {item}"
            );
        }
    }

    #[test]
    fn data_drops_the_envelope_and_unifies_meta_forms() {
        let item = json!({
            "timestamp": "1", "group_id": "G", "type": "group_settings_update", "request_id": "R",
            "group_subject": {"text": "S", "update_successful": "true"},
            "profile_picture": {"update_successful": false,
                "errors": [{"code": "131209", "message": "m", "error_data": {"details": "d"}}]},
            "errors": [{"code": "131201", "title": "t"}],
            "new_field": {"code": "kept as sent"}
        });
        let data = event_data(&item);
        assert_eq!(
            data,
            json!({
                "group_subject": {"text": "S", "update_successful": true},
                "profile_picture": {"update_successful": false,
                    "errors": [{"code": 131209, "message": "m", "error_data": {"details": "d"}}]},
                "errors": [{"code": 131201, "title": "t"}],
                "new_field": {"code": "kept as sent"}
            })
        );
    }

    #[test]
    fn message_data_keeps_the_type_and_names_the_message_and_its_sender() {
        let item = json!({
            "from": "16505551234", "group_id": "G", "id": "wamid.1", "timestamp": "1744344496",
            "type": "text", "text": {"body": "What does everyone think?"},
            "contact": {"profile": {"name": "Tiago"}, "wa_id": "16505551234"}
        });
        assert_eq!(
            EventType::MessageReceived.data(&item),
            json!({
                "from": "16505551234", "message_id": "wamid.1", "type": "text",
                "text": {"body": "What does everyone think?"},
                "contact": {"profile": {"name": "Tiago"}, "wa_id": "16505551234"}
            })
        );
        // A username user: no phone number, only the business-scoped user id.
        let bsuid = json!({"from_user_id": "US.1", "id": "wamid.2", "type": "unsupported",
            "errors": [{"code": "130501", "title": "Unsupported message type"}]});
        assert_eq!(
            EventType::MessageReceived.data(&bsuid),
            json!({"from": "US.1", "from_user_id": "US.1", "message_id": "wamid.2",
                "type": "unsupported", "errors": [{"code": 130501, "title": "Unsupported message type"}]})
        );
    }

    #[test]
    fn status_data_has_one_spelling_of_the_participant() {
        for spelling in ["recipient_participant_id", "participant_recipient_id"] {
            let mut item = json!({"id": "wamid.1", "status": "read", "timestamp": "1",
                "recipient_id": "G", "recipient_type": "group",
                "pricing": {"billable": true, "category": "group_utility"}});
            item[spelling] = json!("16505551234");
            assert_eq!(
                EventType::MessageStatus.data(&item),
                json!({"message_id": "wamid.1", "status": "read",
                    "recipient_participant_id": "16505551234",
                    "pricing": {"billable": true, "category": "group_utility"}}),
                "{spelling}"
            );
        }
        let failed = json!({"id": "wamid.1", "status": "failed", "recipient_id": "G",
            "errors": [{"code": "131041", "title": "Group unknown"}]});
        assert_eq!(
            EventType::MessageStatus.data(&failed)["errors"][0]["code"],
            131041
        );
    }

    #[test]
    fn event_ids_are_stable() {
        let key = "a".repeat(64);
        assert_eq!(event_id(&key), event_id(&key));
        assert_eq!(event_id(&key).len(), 36);
    }
}
