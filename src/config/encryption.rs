//! `storage.encryption_key` and `storage.previous_encryption_keys` (DESIGN §11): the keys
//! that seal access tokens stored through the admin API.

use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{ConfigError, SecretSource, StorageSettings};
use crate::crypto::{EncryptionKey, Keyring};

/// A key as written in configuration; `Debug` never shows it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct WrittenKey(SecretSource);

impl std::fmt::Debug for WrittenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WrittenKey(***)")
    }
}

/// The public development key of the sandbox (it is in this repository): the sandbox uses it
/// when no key is configured, and only while it listens on loopback.
const DEVELOPMENT_KEY: &str = "ZGV2ZWxvcG1lbnQta2V5LW5vdC1hLXNlY3JldC0zMmI=";

/// The keys, resolved; `development` when the sandbox fell back to its public key.
#[derive(Debug, Clone, Default)]
pub struct EncryptionSettings {
    pub keys: Keyring,
    pub development: bool,
}

impl EncryptionSettings {
    /// Beyond loopback the public key protects nothing: the sandbox then has no key (storing
    /// an access token is refused, naming the key). Answers whether it was dropped.
    pub(super) fn drop_development_key(&mut self) -> bool {
        if !self.development {
            return false;
        }
        self.keys.current = None;
        self.development = false;
        true
    }
}

pub(super) fn resolve(
    storage: &StorageSettings,
    sandbox: bool,
) -> Result<EncryptionSettings, ConfigError> {
    const KEY: &str = "storage.encryption_key";
    let parse = |key: &str, written: &WrittenKey| -> Result<(EncryptionKey, bool), ConfigError> {
        let secret = written.0.resolve(key)?;
        let development = secret.expose_secret().trim() == DEVELOPMENT_KEY;
        EncryptionKey::parse(secret.expose_secret())
            .map(|k| (k, development))
            .map_err(|m| ConfigError::invalid(key, m))
    };
    let mut settings = EncryptionSettings::default();
    match &storage.encryption_key {
        Some(written) => {
            let (key, development) = parse(KEY, written)?;
            if development && !sandbox {
                return Err(ConfigError::invalid(
                    KEY,
                    "is the public development value; set your own for live mode",
                ));
            }
            settings.keys.current = Some(key);
            settings.development = development;
        }
        None if sandbox => {
            settings.keys.current = EncryptionKey::parse(DEVELOPMENT_KEY).ok();
            settings.development = true;
        }
        None => {}
    }
    for (i, written) in storage.previous_encryption_keys.iter().enumerate() {
        let (key, _) = parse(&format!("storage.previous_encryption_keys[{i}]"), written)?;
        settings.keys.previous.push(key);
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::super::Settings;

    #[test]
    fn a_key_must_be_32_bytes_of_base64_and_is_named() {
        let err = Settings::from_toml_overrides("[storage]\nencryption_key = \"c2hvcnQ=\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("storage.encryption_key"), "{err}");
        let err =
            Settings::from_toml_overrides("[storage]\nprevious_encryption_keys = [\"nope\"]\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("storage.previous_encryption_keys[0]"), "{err}");
    }

    #[test]
    fn live_mode_has_no_key_unless_configured_and_refuses_the_development_key() {
        let live = "[graph]\nmode = \"live\"\n[phone_numbers.1]\naccess_token = \"t\"\n\
                    [auth]\nkeys = [{ kid = \"k\", algorithm = \"HS256\", secret = \"s\" }]\n\
                    [webhooks]\nverify_token = \"v\"\napp_secret = \"a\"\n";
        let settings = Settings::from_toml_overrides(live).unwrap();
        assert!(settings.encryption.keys.current.is_none());
        let err = Settings::from_toml_overrides(&format!(
            "{live}[storage]\nencryption_key = \"{}\"\n",
            super::DEVELOPMENT_KEY
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("storage.encryption_key"), "{err}");
    }

    #[test]
    fn the_sandbox_development_key_holds_only_on_loopback() {
        let mut local = Settings::from_toml_overrides("").unwrap();
        assert!(local.encryption.keys.current.is_some());
        assert!(local.replace_development_secrets().is_empty());
        assert!(local.encryption.keys.current.is_some());
        let mut exposed = Settings::from_toml_overrides("[server]\nhost = \"0.0.0.0\"\n").unwrap();
        let replaced = exposed.replace_development_secrets();
        assert!(replaced.contains(&"storage.encryption_key".to_owned()));
        assert!(exposed.encryption.keys.current.is_none());
    }

    #[test]
    fn keys_are_never_debugged() {
        let key = crate::crypto::EncryptionKey::generate();
        let settings = Settings::from_toml_overrides(&format!(
            "[storage]\nencryption_key = \"{key}\"\nprevious_encryption_keys = [\"{key}\"]\n"
        ))
        .unwrap();
        let debugged = format!("{settings:?}");
        assert!(!debugged.contains(&key), "{debugged}");
    }
}
