//! `wa-groups-gateway config check`: validates the configuration the way `serve` would (keys
//! included) and prints the merged result as TOML with every secret redacted, so an operator
//! can see what the gateway will run with, and share it.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use serde_json::{Map, Value};

use crate::domain::url::without_password;

use crate::auth::{Authenticator, TokenIssuer};
use crate::config::{ConfigError, ConfigSources, Settings};

/// What a redacted secret reads as.
pub const REDACTED: &str = "<redacted>";

/// Loads, validates and prints. Exit code 0 when valid, 2 (like `serve`) naming the bad key.
pub fn run(extra_file: Option<&Path>) -> ExitCode {
    let sources = ConfigSources {
        config_dir: None,
        extra_file: extra_file.map(Path::to_path_buf),
        use_env: true,
    };
    match check(&sources) {
        Ok(text) => {
            let _ = write!(std::io::stdout(), "{text}");
            eprintln!("configuration is valid");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The redacted TOML of a valid configuration, or what is wrong with it.
pub fn check(sources: &ConfigSources) -> Result<String, ConfigError> {
    let (settings, tree) = Settings::load_with_tree(sources)?;
    check_keys(&settings)?;
    let value: Value = tree.try_deserialize()?;
    let Value::Object(root) = redact(value) else {
        return Ok(String::new());
    };
    let mut out = String::new();
    write_table(&mut out, &[], &root);
    Ok(out)
}

/// Key material that does not parse would only stop `serve`; say so now, naming the key.
fn check_keys(settings: &Settings) -> Result<(), ConfigError> {
    let at = |kid: &str, field: &str| {
        let i = settings
            .auth
            .keys
            .iter()
            .position(|k| k.kid == kid)
            .unwrap_or_default();
        format!("auth.keys[{i}].{field}")
    };
    for key in &settings.auth.keys {
        let one = crate::config::AuthSettings {
            keys: vec![key.clone()],
            ..settings.auth.clone()
        };
        if let Err(e) = Authenticator::new(&one, Default::default()) {
            return Err(ConfigError::Invalid {
                key: at(&key.kid, "public_key_pem"),
                message: e.to_string(),
            });
        }
        if key.private_key_pem.is_some()
            && let Err(e) = TokenIssuer::new(&one, Some(&key.kid))
        {
            return Err(ConfigError::Invalid {
                key: at(&key.kid, "private_key_pem"),
                message: e.to_string(),
            });
        }
    }
    Ok(())
}

/// Whether the value under `key` is a secret. Besides the secrets README, "Configuration",
/// names, any key that looks like one is hidden: a new secret must not leak because
/// this list was not updated.
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    if key.ends_with("_file") || key.ends_with("_url") {
        return false;
    }
    key == "secret"
        || key == "password"
        || key == "token"
        || key.ends_with("_secret")
        || key.ends_with("_token")
        || key.contains("private_key")
}

/// A `{ env = … }` or `{ file = … }` reference says where a secret is, not what it is.
fn is_reference(value: &Value) -> bool {
    match value {
        Value::Object(map) => {
            map.len() == 1
                && map
                    .iter()
                    .all(|(k, v)| (k == "env" || k == "file") && v.is_string())
        }
        _ => false,
    }
}

fn redact(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = if is_secret(&k) && !is_reference(&v) {
                        Value::String(REDACTED.into())
                    } else {
                        redact(v)
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact).collect()),
        // A database or Redis URL may carry a password.
        Value::String(url) if url.contains("://") => Value::String(without_password(&url)),
        other => other,
    }
}

// ---- a small TOML writer (tables, arrays of tables, inline values) ------------------------

fn key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        k.to_owned()
    } else {
        Value::String(k.to_owned()).to_string()
    }
}

fn dotted(path: &[String]) -> String {
    path.iter().map(|p| key(p)).collect::<Vec<_>>().join(".")
}

fn is_table_array(v: &Value) -> bool {
    matches!(v, Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object))
}

fn inline(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("{} = {}", key(k), inline(v)))
                .collect();
            if fields.is_empty() {
                "{}".into()
            } else {
                format!("{{ {} }}", fields.join(", "))
            }
        }
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .filter(|v| !v.is_null())
                .map(inline)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        // JSON's string escapes are valid in TOML basic strings.
        other => other.to_string(),
    }
}

/// Small leaf objects read better inline: `access_token = { env = "X" }`,
/// `webhook = { secret = "<redacted>", url = "…" }`.
fn is_inline(path: &[String], v: &Value) -> bool {
    match v {
        Value::Object(map) => {
            is_reference(v)
                || (path.len() >= 2 && map.values().all(|v| !v.is_object() && !is_table_array(v)))
        }
        _ => !is_table_array(v),
    }
}

fn write_table(out: &mut String, path: &[String], map: &Map<String, Value>) {
    let mut scalars = 0;
    for (k, v) in map {
        if v.is_null() || !is_inline(path, v) {
            continue;
        }
        scalars += 1;
        out.push_str(&format!("{} = {}\n", key(k), inline(v)));
    }
    if scalars > 0 || map.is_empty() {
        out.push('\n');
    }
    for (k, v) in map {
        if v.is_null() || is_inline(path, v) {
            continue;
        }
        let mut inner = path.to_vec();
        inner.push(k.clone());
        match v {
            Value::Object(sub) => {
                // A table holding only tables needs no header of its own.
                let only_tables = !sub.is_empty() && sub.values().all(|v| !is_inline(&inner, v));
                if !only_tables {
                    out.push_str(&format!("[{}]\n", dotted(&inner)));
                }
                write_table(out, &inner, sub);
            }
            Value::Array(items) => {
                for item in items {
                    out.push_str(&format!("[[{}]]\n", dotted(&inner)));
                    if let Value::Object(sub) = item {
                        write_table(out, &inner, sub);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_toml(toml: &str) -> Result<String, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("extra.toml");
        std::fs::write(&file, toml).unwrap();
        check(&ConfigSources {
            config_dir: Some(dir.path().to_path_buf()),
            extra_file: Some(file),
            use_env: false,
        })
    }

    /// A live configuration holding a secret of every kind; `app_secret` is the TOML value of
    /// `webhooks.app_secret`.
    fn live_config(app_secret: &str) -> String {
        format!(
            r#"
[graph]
mode = "live"
[auth]
max_token_ttl_seconds = 3600
[[auth.keys]]
kid = "k1"
algorithm = "HS256"
secret = "SECRET-hs256-value"
[webhooks]
verify_token = "SECRET-verify"
app_secret = {app_secret}
[phone_numbers.111]
access_token = "SECRET-access"
[teams.sales]
phone_numbers = ["111"]
webhook = {{ url = "https://sales.example/hooks", secret = "whsec_U0VDUkVULXdlYmhvb2stc2VjcmV0" }}
"#
        )
    }

    #[test]
    fn every_secret_is_redacted_and_the_rest_is_shown() {
        // The app secret is an unset variable: the check refuses it, naming it.
        let out = check_toml(&live_config(
            r#"{ env = "WAGW_TEST_SURELY_UNSET_BUT_UNUSED" }"#,
        ));
        let err = out.unwrap_err().to_string();
        assert!(err.contains("webhooks.app_secret"), "{err}");

        let out = check_toml(&live_config(r#""SECRET-app""#)).unwrap();
        assert!(!out.contains("SECRET"), "{out}");
        assert!(!out.contains("whsec_"), "{out}");
        assert!(out.contains("[[auth.keys]]"), "{out}");
        assert!(out.contains("kid = \"k1\""), "{out}");
        assert!(
            out.contains("url = \"https://sales.example/hooks\""),
            "{out}"
        );
        assert!(
            out.contains(&format!("access_token = \"{REDACTED}\"")),
            "{out}"
        );
        assert!(out.contains("mode = \"live\""), "{out}");
        // What is printed is TOML again.
        config::Config::builder()
            .add_source(config::File::from_str(&out, config::FileFormat::Toml))
            .build()
            .expect("the printout parses");
    }

    #[test]
    fn references_to_secrets_stay_visible() {
        let v = redact(
            serde_json::json!({"webhooks": {"app_secret": {"env": "META_APP_SECRET"}, "verify_token": "x"}}),
        );
        assert_eq!(v["webhooks"]["app_secret"]["env"], "META_APP_SECRET");
        assert_eq!(v["webhooks"]["verify_token"], REDACTED);
    }

    #[test]
    fn private_keys_are_redacted_and_their_paths_are_not() {
        let v = redact(
            serde_json::json!({"auth": {"keys": [{"private_key_pem": "-----BEGIN", "private_key_pem_file": "/k.pem", "public_key_pem": "PUB"}]}}),
        );
        assert_eq!(v["auth"]["keys"][0]["private_key_pem"], REDACTED);
        assert_eq!(v["auth"]["keys"][0]["private_key_pem_file"], "/k.pem");
        assert_eq!(v["auth"]["keys"][0]["public_key_pem"], "PUB");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = check_toml("[graph]\ntimeout_ms = 0\n").unwrap_err();
        assert!(err.to_string().contains("graph.timeout_ms"), "{err}");
        let err = check_toml(
            "[[auth.keys]]\nkid = \"r\"\nalgorithm = \"RS256\"\npublic_key_pem = \"not a pem\"\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("auth.keys[0].public_key_pem"),
            "{err}"
        );
    }
}
