//! Meta's webhook POSTs: how they are signed (`X-Hub-Signature-256`), and the group events
//! read out of them: the items of the four group fields, and from the `messages` field the
//! messages written in a group and the statuses of messages sent to a group. Parsing is
//! lenient: unknown fields and shapes are skipped, never fatal, because Meta adds fields over
//! time and its own samples are not always valid.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::events::{GROUP_MESSAGE_ITEM, GROUP_STATUS_ITEM, NewWebhookEvent};
use super::lenient;

pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// `sha256=<hex>` of the body with the app secret, as Meta signs (also used by the sandbox).
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(app_secret)
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks the signature over the raw bytes in constant time.
pub fn verify_signature(app_secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(mut check) = SignatureCheck::new(app_secret, header) else {
        return false;
    };
    check.update(body);
    check.verify()
}

/// `X-Hub-Signature-256` checked over a body read in chunks: the HMAC runs as the bytes
/// arrive, so the body is never gone over twice and nothing is kept for an unsigned POST.
pub struct SignatureCheck {
    mac: Hmac<Sha256>,
    given: Vec<u8>,
}

impl SignatureCheck {
    /// None unless the header is `sha256=` and 64 hex digits: such a POST is refused before
    /// a byte of its body is read.
    pub fn new(app_secret: &[u8], header: Option<&str>) -> Option<SignatureCheck> {
        let hex_sig = header?.trim().strip_prefix("sha256=")?;
        let given = hex::decode(hex_sig).ok().filter(|g| g.len() == 32)?;
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(app_secret)
            .expect("HMAC takes keys of any length");
        Some(SignatureCheck { mac, given })
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.mac.update(chunk);
    }

    /// Compares in constant time.
    pub fn verify(self) -> bool {
        self.mac.verify_slice(&self.given).is_ok()
    }
}

/// Reads every group event out of one POST. Unknown fields and shapes are skipped, never
/// fatal: Meta adds fields over time and its own samples are not always valid. Messages and
/// statuses that name no group (1:1 conversations of the same number) are not group events.
pub fn extract_events(body: &[u8]) -> Vec<NewWebhookEvent> {
    let Ok(root) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let mut events = Vec::new();
    for entry in root["entry"].as_array().into_iter().flatten() {
        for change in entry["changes"].as_array().into_iter().flatten() {
            let field = change["field"].as_str().unwrap_or_default();
            let value = &change["value"];
            let pn = value["metadata"]
                .get("phone_number_id")
                .and_then(lenient::as_id);
            let event = |event_type: &str, group_id, item: &Value, payload: Value| {
                let key_material = format!("{field}|{}|{item}", pn.as_deref().unwrap_or(""));
                NewWebhookEvent {
                    event_key: hex::encode(Sha256::digest(key_material.as_bytes())),
                    field: field.to_owned(),
                    event_type: event_type.to_owned(),
                    phone_number_id: pn.clone(),
                    group_id,
                    meta_request_id: item.get("request_id").and_then(lenient::as_id),
                    occurred_at: item
                        .get("timestamp")
                        .and_then(lenient::as_int)
                        .map(crate::clock::unix_to_rfc3339),
                    payload,
                }
            };
            for item in value["groups"].as_array().into_iter().flatten() {
                let kind = item["type"].as_str().unwrap_or("unknown");
                let group = item.get("group_id").and_then(lenient::as_id);
                events.push(event(kind, group, item, item.clone()));
            }
            let contacts = value["contacts"].as_array().map(Vec::as_slice);
            for item in value["messages"].as_array().into_iter().flatten() {
                // Meta marks a group message with a group_id on the message item itself.
                let Some(group) = item.get("group_id").and_then(lenient::as_id) else {
                    continue;
                };
                // Matched by id, never by position: a batch may also carry the contacts of
                // 1:1 messages, whose people must not be named in a group's event.
                let sender = contact_of(contacts.unwrap_or_default(), item, "from", "from_user_id");
                let payload = with_contact(item, sender);
                events.push(event(GROUP_MESSAGE_ITEM, Some(group), item, payload));
            }
            for item in value["statuses"].as_array().into_iter().flatten() {
                let Some(group) = status_group(item) else {
                    continue;
                };
                let participant = contact_of(
                    contacts.unwrap_or_default(),
                    item,
                    participant_key(item),
                    "recipient_participant_user_id",
                );
                let payload = with_contact(item, participant);
                events.push(event(GROUP_STATUS_ITEM, Some(group), item, payload));
            }
        }
    }
    events
}

/// The group a status is about. A status carries no `group_id`: Meta names the group as the
/// recipient, with `recipient_type: "group"`; a 1:1 status names a person.
fn status_group(item: &Value) -> Option<String> {
    if let Some(group) = item.get("group_id").and_then(lenient::as_id) {
        return Some(group);
    }
    (item.get("recipient_type").and_then(Value::as_str) == Some("group"))
        .then(|| item.get("recipient_id").and_then(lenient::as_id))
        .flatten()
}

/// Meta's reference and its samples spell the participant of a status two ways.
fn participant_key(item: &Value) -> &'static str {
    if item.get("participant_recipient_id").is_some() {
        "participant_recipient_id"
    } else {
        "recipient_participant_id"
    }
}

/// The entry of `contacts` for the person `item` names by phone (`phone_key`) or by
/// business-scoped user id (`user_key`).
fn contact_of<'a>(
    contacts: &'a [Value],
    item: &Value,
    phone_key: &str,
    user_key: &str,
) -> Option<&'a Value> {
    let phone = item.get(phone_key).and_then(lenient::as_id);
    let user = item.get(user_key).and_then(lenient::as_id);
    contacts.iter().find(|c| {
        let matches = |id: &Option<String>, key: &str| {
            id.is_some() && c.get(key).and_then(lenient::as_id) == *id
        };
        matches(&phone, "wa_id") || matches(&user, "user_id")
    })
}

/// The item as stored for its team event: Meta's item, plus the `contact` it refers to,
/// which Meta sends beside the items rather than in them.
fn with_contact(item: &Value, contact: Option<&Value>) -> Value {
    let mut payload = item.clone();
    if let (Some(contact), Some(map)) = (contact, payload.as_object_mut()) {
        map.entry("contact").or_insert_with(|| contact.clone());
    }
    payload
}

pub const KNOWN_FIELDS: &[&str] = &[
    "group_lifecycle_update",
    "group_participants_update",
    "group_settings_update",
    "group_status_update",
    "messages",
];
pub const KNOWN_TYPES: &[&str] = &[
    "group_create",
    "group_delete",
    "group_participants_add",
    "group_participants_remove",
    "group_join_request_created",
    "group_join_request_revoked",
    "group_settings_update",
    "group_suspend",
    "group_suspend_cleared",
    GROUP_MESSAGE_ITEM,
    GROUP_STATUS_ITEM,
];

/// Metric labels only take values the gateway knows, so a sender cannot blow up the
/// number of series with made-up names.
pub fn known_label(value: &str, known: &'static [&'static str]) -> &'static str {
    known
        .iter()
        .copied()
        .find(|k| *k == value)
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_over_raw_bytes() {
        let body = br#"{"a": 1}"#;
        let sig = sign(b"secret", body);
        assert!(verify_signature(b"secret", body, Some(&sig)));
        assert!(!verify_signature(b"other", body, Some(&sig)));
        assert!(!verify_signature(b"secret", br#"{"a":1}"#, Some(&sig)));
        assert!(!verify_signature(b"secret", body, None));
        assert!(!verify_signature(b"secret", body, Some("sha256=zz")));
    }

    #[test]
    fn events_are_read_leniently() {
        let body = serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [
                {"field": "group_lifecycle_update", "value": {
                    "metadata": {"phone_number_id": 12784358810u64},
                    "groups": [
                        {"timestamp": "1755548877", "group_id": "G1", "type": "group_create", "request_id": "R1", "new_thing": {"x": 1}},
                        {"timestamp": 1755548878, "group_id": "G2", "type": "group_delete", "request_id": 7}
                    ]}},
                {"field": "something_new", "value": 3}
            ]}]
        });
        let events = extract_events(body.to_string().as_bytes());
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].phone_number_id.as_deref(), Some("12784358810"));
        assert_eq!(
            events[0].occurred_at.as_deref(),
            Some("2025-08-18T20:27:57Z")
        );
        assert_eq!(events[1].meta_request_id.as_deref(), Some("7"));
        assert_ne!(events[0].event_key, events[1].event_key);
        assert!(extract_events(b"not json").is_empty());
    }

    /// Meta's `messages` field: one change carrying `value` (with its metadata).
    fn messages_post(value: serde_json::Value) -> Vec<u8> {
        let mut value = value;
        value["messaging_product"] = serde_json::json!("whatsapp");
        value["metadata"] = serde_json::json!({"display_phone_number": "15550783881", "phone_number_id": "106540352242922"});
        serde_json::json!({"object": "whatsapp_business_account", "entry": [{"id": "1",
            "changes": [{"field": "messages", "value": value}]}]})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn group_messages_are_read_and_one_to_one_messages_are_not() {
        // Meta's sample from the group messages webhook reference (odd `>` included), a 1:1
        // message in the same POST, and a second group message from another participant.
        let body = messages_post(serde_json::json!({
            "contacts": [
                {"profile": {"name": "Tiago Mingo"}, "wa_id": "16505551234"},
                {"profile": {"name": "Ana"}, "wa_id": "16505550000"},
                {"profile": {"name": "Jane"}, "user_id": "US.7", "username": "jane"}
            ],
            "messages": [
                {"from": "16505551234", "group_id": "HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA",
                 "id": "wamid.HASDI128HJOPUERIH82ahdasd09ASDHi5>", "timestamp": "1744344496",
                 "text": {"body": "What does everyone think about this?"}, "type": "text"},
                {"from": "16505550000", "id": "wamid.direct", "timestamp": "1744344497",
                 "text": {"body": "just to you"}, "type": "text"},
                {"from_user_id": "US.7", "group_id": "G2", "id": "wamid.bsuid", "timestamp": 1744344498,
                 "type": "image", "image": {"id": "M1", "mime_type": "image/jpeg", "sha256": "x"}}
            ]
        }));
        let events = extract_events(&body);
        assert_eq!(events.len(), 2, "the 1:1 message is not a group event");
        let first = &events[0];
        assert_eq!(first.field, "messages");
        assert_eq!(first.event_type, GROUP_MESSAGE_ITEM);
        assert_eq!(first.phone_number_id.as_deref(), Some("106540352242922"));
        assert_eq!(
            first.group_id.as_deref(),
            Some("HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA")
        );
        assert_eq!(first.occurred_at.as_deref(), Some("2025-04-11T04:08:16Z"));
        assert_eq!(first.payload["contact"]["profile"]["name"], "Tiago Mingo");
        assert_eq!(events[1].group_id.as_deref(), Some("G2"));
        assert_eq!(events[1].payload["contact"]["username"], "jane");
    }

    #[test]
    fn a_group_message_never_borrows_another_persons_contact() {
        let body = messages_post(serde_json::json!({
            "contacts": [{"profile": {"name": "Only in a 1:1 chat"}, "wa_id": "16505550000"}],
            "messages": [
                {"from": "16505550000", "id": "wamid.direct", "type": "text", "text": {"body": "a"}},
                {"from": "16505551234", "group_id": "G", "id": "wamid.g", "type": "text", "text": {"body": "b"}}
            ]
        }));
        let events = extract_events(&body);
        assert_eq!(events.len(), 1);
        assert!(events[0].payload.get("contact").is_none());
    }

    #[test]
    fn statuses_of_group_messages_are_read_whichever_spelling() {
        let body = messages_post(serde_json::json!({
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": "16505550000", "user_id": "US.1"}],
            "statuses": [
                {"id": "wamid.G", "recipient_id": "G1", "recipient_type": "group", "status": "sent",
                 "timestamp": "1750857384"},
                {"id": "wamid.G", "recipient_id": "G1", "recipient_type": "group", "status": "delivered",
                 "timestamp": "1750857385", "recipient_participant_id": "16505550000"},
                {"id": "wamid.G", "recipient_id": "G1", "recipient_type": "group", "status": "read",
                 "timestamp": "1750857386", "participant_recipient_id": "16505551111"},
                {"id": "wamid.D", "recipient_id": "16505550000", "status": "delivered",
                 "timestamp": "1750857387"},
                {"id": "wamid.I", "recipient_id": "16505550000", "recipient_type": "individual",
                 "status": "read", "timestamp": "1750857388"}
            ]
        }));
        let events = extract_events(&body);
        let statuses: Vec<&str> = events
            .iter()
            .map(|e| e.payload["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            statuses,
            ["sent", "delivered", "read"],
            "1:1 statuses are not group events"
        );
        assert!(events.iter().all(|e| e.event_type == GROUP_STATUS_ITEM));
        assert!(events.iter().all(|e| e.group_id.as_deref() == Some("G1")));
        assert_eq!(events[1].payload["contact"]["profile"]["name"], "Ana");
        assert!(
            events[2].payload.get("contact").is_none(),
            "no contact for that participant"
        );
        let keys: std::collections::BTreeSet<&str> =
            events.iter().map(|e| e.event_key.as_str()).collect();
        assert_eq!(keys.len(), 3, "each status is its own event");
    }
}
