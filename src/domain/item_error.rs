//! Why Meta could not act on one item (a join request, a creation reported by webhook).

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::lenient;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemError {
    #[schema(example = 131203)]
    pub code: i64,
    #[schema(
        example = "(#131203) Recipient has not accepted our new Terms of Service and Privacy Policy."
    )]
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

impl ItemError {
    /// Reads one entry of Meta's `errors` lists, whatever form its code takes.
    pub fn from_meta(v: &Value) -> Self {
        ItemError {
            code: v.get("code").and_then(lenient::as_int).unwrap_or(0),
            message: v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            title: v.get("title").and_then(Value::as_str).map(str::to_owned),
            details: v["error_data"]
                .get("details")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }

    pub fn new(code: i64, message: impl Into<String>) -> Self {
        ItemError {
            code,
            message: message.into(),
            title: None,
            details: None,
        }
    }

    pub fn unknown() -> Self {
        ItemError::new(0, "Meta gave no reason")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_codes_and_details_are_read() {
        let e = ItemError::from_meta(&serde_json::json!({
            "code": "131203", "message": "m", "error_data": {"details": "d"}
        }));
        assert_eq!(e.code, 131203);
        assert_eq!(e.details.as_deref(), Some("d"));
    }
}
