//! Identifiers shaped like Meta's, so that what clients store and log looks like the real
//! thing (and passes the gateway's `[A-Za-z0-9_=-]` id rule).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use rand::distr::Alphanumeric;

/// Meta's ids and cursors are base64 with "Z-escaping": a literal `Z` is written `ZA` and `=`
/// is written `ZD`. `+` and `/` never come out of the ASCII ids encoded here; they are mapped
/// to the URL-safe forms anyway so an id can never break a URL path.
pub fn z_escaped_base64(raw: &str) -> String {
    let encoded = STANDARD.encode(raw);
    let mut out = String::with_capacity(encoded.len() + 4);
    for c in encoded.chars() {
        match c {
            'Z' => out.push_str("ZA"),
            '=' => out.push_str("ZD"),
            '+' => out.push('-'),
            '/' => out.push('_'),
            c => out.push(c),
        }
    }
    out
}

/// The inverse of [`z_escaped_base64`]; `None` for anything it did not produce.
pub fn z_unescaped_base64(id: &str) -> Option<String> {
    let mut encoded = String::with_capacity(id.len());
    let mut chars = id.chars();
    while let Some(c) = chars.next() {
        match c {
            'Z' => match chars.next()? {
                'A' => encoded.push('Z'),
                'D' => encoded.push('='),
                _ => return None,
            },
            '-' => encoded.push('+'),
            '_' => encoded.push('/'),
            c => encoded.push(c),
        }
    }
    String::from_utf8(STANDARD.decode(encoded).ok()?).ok()
}

/// The business-scoped user id (BSUID) Meta would send for `wa_id`: `US.` and 20 digits,
/// the same for the same user every time (one business portfolio in the sandbox).
pub fn user_id(wa_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("sandbox-bsuid:{wa_id}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    format!("US.{:020}", u64::from_be_bytes(first))
}

/// The WhatsApp group JID number, `120363…` like real `…@g.us` groups.
pub fn group_number() -> String {
    format!(
        "120363{:012}",
        rand::rng().random_range(0..1_000_000_000_000u64)
    )
}

/// `capi_group:{phone number id}:{group number}`, as Meta's group ids decode.
pub fn group_id(pn: &str, number: &str) -> String {
    z_escaped_base64(&format!("capi_group:{pn}:{number}"))
}

/// `{wa_id}:{group number}`, as Meta's join request ids decode.
pub fn join_request_id(wa_id: &str, group_number: &str) -> String {
    z_escaped_base64(&format!("{wa_id}:{group_number}"))
}

/// Meta's request ids are 15-digit numbers.
pub fn request_id() -> String {
    rand::rng()
        .random_range(100_000_000_000_000u64..1_000_000_000_000_000)
        .to_string()
}

fn alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// The variable part of `https://chat.whatsapp.com/<code>` (22 characters, like WhatsApp's).
pub fn invite_code() -> String {
    alphanumeric(22)
}

pub fn fbtrace_id() -> String {
    format!("A{}", alphanumeric(22))
}

pub fn message_id() -> String {
    format!("wamid.HBgL{}", alphanumeric(40))
}

pub const INVITE_LINK_PREFIX: &str = "https://chat.whatsapp.com/";

pub fn invite_link(code: &str) -> String {
    format!("{INVITE_LINK_PREFIX}{code}")
}

/// Graph paging cursors: Z-escaped base64 of `{"offset":N}`, like Meta's.
pub fn cursor(offset: usize) -> String {
    z_escaped_base64(&format!("{{\"offset\":{offset}}}"))
}

pub fn cursor_offset(cursor: &str) -> Option<usize> {
    let raw = z_unescaped_base64(cursor)?;
    let value: serde_json::Value = serde_json::from_str(&raw).ok()?;
    usize::try_from(value.get("offset")?.as_u64()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{GroupId, JoinRequestId};

    #[test]
    fn ids_have_metas_shape() {
        // Meta's own sample group id and join request id.
        assert_eq!(
            group_id("17055550139", "120363404694233820"),
            "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD"
        );
        assert_eq!(
            join_request_id("16467043595", "120363404694233820"),
            "MTY0NjcwNDM1OTU6MTIwMzYzNDA0Njk0MjMzODIw"
        );
    }

    #[test]
    fn generated_ids_pass_the_gateways_rules() {
        for _ in 0..200 {
            let number = group_number();
            assert_eq!(number.len(), 18);
            assert!(GroupId::parse(&group_id("12784358810", &number)).is_ok());
            assert!(JoinRequestId::parse(&join_request_id("16505551234", &number)).is_ok());
            assert_eq!(request_id().len(), 15);
            assert!(invite_link(&invite_code()).starts_with(INVITE_LINK_PREFIX));
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        for offset in [0, 1, 25, 1023, 99_999] {
            assert_eq!(cursor_offset(&cursor(offset)), Some(offset));
        }
        assert_eq!(cursor_offset("not-a-cursor"), None);
        assert_eq!(cursor_offset("ZX"), None);
        assert_eq!(
            z_unescaped_base64(&z_escaped_base64("Zebra=Z")).as_deref(),
            Some("Zebra=Z")
        );
    }
}
