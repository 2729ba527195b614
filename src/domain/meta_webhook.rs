//! Meta's webhook POSTs: how they are signed (`X-Hub-Signature-256`), and the group events
//! read out of them. Parsing is lenient: unknown fields and shapes are skipped, never fatal,
//! because Meta adds fields over time and its own samples are not always valid.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::events::NewWebhookEvent;
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
/// fatal: Meta adds fields over time and its own samples are not always valid.
pub fn extract_events(body: &[u8]) -> Vec<NewWebhookEvent> {
    let Ok(root) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let mut events = Vec::new();
    for entry in root["entry"].as_array().into_iter().flatten() {
        for change in entry["changes"].as_array().into_iter().flatten() {
            let field = change["field"].as_str().unwrap_or_default().to_owned();
            let value = &change["value"];
            let pn = value["metadata"]
                .get("phone_number_id")
                .and_then(lenient::as_id);
            for item in value["groups"].as_array().into_iter().flatten() {
                let key_material = format!("{field}|{}|{item}", pn.as_deref().unwrap_or(""));
                events.push(NewWebhookEvent {
                    event_key: hex::encode(Sha256::digest(key_material.as_bytes())),
                    field: field.clone(),
                    event_type: item["type"].as_str().unwrap_or("unknown").to_owned(),
                    phone_number_id: pn.clone(),
                    group_id: item.get("group_id").and_then(lenient::as_id),
                    meta_request_id: item.get("request_id").and_then(lenient::as_id),
                    occurred_at: item
                        .get("timestamp")
                        .and_then(lenient::as_int)
                        .map(crate::clock::unix_to_rfc3339),
                    payload: item.clone(),
                });
            }
        }
    }
    events
}

pub const KNOWN_FIELDS: &[&str] = &[
    "group_lifecycle_update",
    "group_participants_update",
    "group_settings_update",
    "group_status_update",
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
}
