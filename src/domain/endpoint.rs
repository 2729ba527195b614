//! What a team says about one of its webhook endpoints: its id, the event types it wants,
//! its description, and the `whsec_` secret the gateway makes for it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

use super::events::EventType;

/// The id of configuration's endpoint of a team (`teams.<t>.webhook`).
pub const CONFIG_ENDPOINT: &str = "config";

/// An endpoint id: `config`, or `ep_` and 26 characters of `[0-9a-z]` for endpoints made
/// through the API. Ids are compared as written; a malformed one names no endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointId(String);

impl EndpointId {
    pub const PATTERN: &'static str = "^(config|ep_[0-9a-z]{26})$";
    const RANDOM_LEN: usize = 26;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let generated = raw.strip_prefix("ep_").is_some_and(|rest| {
            rest.len() == Self::RANDOM_LEN
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        });
        if raw == CONFIG_ENDPOINT || generated {
            Ok(EndpointId(raw.to_owned()))
        } else {
            Err("must be `config` or `ep_` followed by 26 characters of 0-9 and a-z".into())
        }
    }

    /// A fresh id: 26 random characters of `[0-9a-z]` (about 134 bits).
    pub fn generate() -> Self {
        const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut rng = rand::rng();
        let random: String = (0..Self::RANDOM_LEN)
            .map(|_| ALPHABET[(rng.next_u32() % 36) as usize] as char)
            .collect();
        EndpointId(format!("ep_{random}"))
    }

    pub fn is_config(&self) -> bool {
        self.0 == CONFIG_ENDPOINT
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EndpointId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The event types an endpoint receives: exact team event types, or a family written
/// `group.*` / `webhook.*`. Absent (None where it is used) means every type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypeFilter(Vec<String>);

impl EventTypeFilter {
    pub const MAX_ITEMS: usize = 50;
    pub const FAMILIES: [&'static str; 2] = ["group.*", "webhook.*"];

    /// One entry of the list.
    pub fn parse_item(raw: &str) -> Result<String, String> {
        if EventType::parse(raw).is_some() || Self::FAMILIES.contains(&raw) {
            Ok(raw.to_owned())
        } else {
            Err(format!(
                "is not a team event type (e.g. `group.created`) nor one of {}",
                Self::FAMILIES.join(", ")
            ))
        }
    }

    /// A list already checked item by item; duplicates are dropped.
    pub fn new(items: Vec<String>) -> Self {
        let mut unique: Vec<String> = Vec::with_capacity(items.len());
        for item in items {
            if !unique.contains(&item) {
                unique.push(item);
            }
        }
        EventTypeFilter(unique)
    }

    pub fn matches(&self, event_type: EventType) -> bool {
        let name = event_type.as_str();
        self.0
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(family) => name.starts_with(family),
                None => pattern == name,
            })
    }

    pub fn items(&self) -> &[String] {
        &self.0
    }
}

/// Whether an endpoint with `filter` (None: every type) gets events of `event_type`.
pub fn wants(filter: Option<&EventTypeFilter>, event_type: EventType) -> bool {
    filter.is_none_or(|f| f.matches(event_type))
}

/// A free-text description: at most 256 characters, none of them a control character.
pub fn parse_description(raw: &str) -> Result<String, String> {
    if raw.chars().count() > 256 {
        return Err("must be at most 256 characters".into());
    }
    if raw.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(raw.to_owned())
}

/// A fresh signing secret as Standard Webhooks writes them: `whsec_` and 32 random bytes in
/// base64.
pub fn generate_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("whsec_{}", STANDARD.encode(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_config_or_generated() {
        let id = EndpointId::generate();
        assert_eq!(EndpointId::parse(id.as_str()), Ok(id.clone()));
        assert!(EndpointId::parse("config").unwrap().is_config());
        assert_ne!(EndpointId::generate(), EndpointId::generate());
        for bad in [
            "",
            "ep_",
            "ep_ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            "../config",
            "config ",
            "ep_0",
        ] {
            assert!(EndpointId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn filters_take_exact_types_and_families() {
        let filter = EventTypeFilter::new(vec![
            EventTypeFilter::parse_item("group.created").unwrap(),
            EventTypeFilter::parse_item("webhook.*").unwrap(),
        ]);
        assert!(filter.matches(EventType::Created));
        assert!(filter.matches(EventType::EndpointDisabled));
        assert!(!filter.matches(EventType::Deleted));
        let groups = EventTypeFilter::new(vec!["group.*".into()]);
        assert!(groups.matches(EventType::MessageStatus));
        assert!(!groups.matches(EventType::EndpointDisabled));
        assert!(wants(None, EventType::Deleted));
        for bad in [
            "group",
            "group.",
            "*",
            "group.created ",
            "groups.*",
            "Group.created",
        ] {
            assert!(EventTypeFilter::parse_item(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            EventTypeFilter::new(vec!["group.*".into(), "group.*".into()]).items(),
            ["group.*"]
        );
    }

    #[test]
    fn descriptions_refuse_control_characters_and_length() {
        assert!(parse_description("Orders service, prod").is_ok());
        assert!(parse_description("a\nb").is_err());
        assert!(parse_description("a\u{0}b").is_err());
        assert!(parse_description(&"é".repeat(256)).is_ok());
        assert!(parse_description(&"é".repeat(257)).is_err());
    }

    #[test]
    fn secrets_are_whsec_and_32_bytes() {
        let secret = generate_secret();
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        assert_eq!(key.len(), 32);
        assert_ne!(secret, generate_secret());
    }
}
