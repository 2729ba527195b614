//! Meta's payloads mix quoted and bare numbers and booleans (its own samples do both), so
//! numbers and flags are read from either form.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

fn value_to_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = Value::deserialize(d)?;
    value_to_int(&v)
        .ok_or_else(|| serde::de::Error::custom("expected an integer or a numeric string"))
}

pub fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(v.as_ref().and_then(value_to_int))
}

/// Reads an integer from a JSON value of either form.
pub fn as_int(v: &Value) -> Option<i64> {
    value_to_int(v)
}

/// Reads a boolean from `true`, `"true"`, `1` or `"1"`.
pub fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        _ => None,
    }
}

/// Reads an id that Meta may send as a string or a number.
pub fn as_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_and_flags_in_both_forms() {
        assert_eq!(as_int(&json!("1755548877")), Some(1755548877));
        assert_eq!(as_int(&json!(1755548877)), Some(1755548877));
        assert_eq!(as_int(&json!("x")), None);
        assert_eq!(as_bool(&json!("true")), Some(true));
        assert_eq!(as_bool(&json!(false)), Some(false));
        assert_eq!(
            as_id(&json!(106540352242922u64)),
            Some("106540352242922".into())
        );
    }
}
