//! Typed settings, layered as README, "Configuration", says: compiled-in defaults,
//! `config/default.toml`, `config/{APP_ENVIRONMENT}.toml`, `--config FILE`, then `WAGW__…`
//! variables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::PhoneNumberId;
use crate::domain::url::ServiceUrl;
mod delivery;
mod duration;
mod encryption;

pub use delivery::{
    DeliverySettings, SigningKey, check_webhook_host, forbidden_address, signing_key,
};
pub use duration::ConfigDuration;
pub use encryption::{EncryptionSettings, WrittenKey};

/// The defaults are compiled in so the binary runs from any directory.
const DEFAULTS: &str = include_str!("../../config/default.toml");
/// A demo number and teams, layered in sandbox mode when no phone number is configured.
const SANDBOX_DEMO: &str = include_str!("../../config/sandbox-demo.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration could not be read: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid configuration key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// A secret as written in configuration, before it is resolved.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "WrittenSecret")]
pub enum SecretSource {
    Inline(String),
    Env { env: String },
    File { file: PathBuf },
}

/// What may stand where a secret is expected. Environment variables are parsed, so a
/// secret made only of digits (a verify token, say) arrives as a number: it is still text.
#[derive(Deserialize)]
#[serde(untagged)]
enum WrittenSecret {
    Text(String),
    Integer(i64),
    Float(f64),
    Flag(bool),
    Env { env: String },
    File { file: PathBuf },
}

impl From<WrittenSecret> for SecretSource {
    fn from(written: WrittenSecret) -> Self {
        match written {
            WrittenSecret::Text(s) => SecretSource::Inline(s),
            WrittenSecret::Integer(i) => SecretSource::Inline(i.to_string()),
            WrittenSecret::Float(f) => SecretSource::Inline(f.to_string()),
            WrittenSecret::Flag(b) => SecretSource::Inline(b.to_string()),
            WrittenSecret::Env { env } => SecretSource::Env { env },
            WrittenSecret::File { file } => SecretSource::File { file },
        }
    }
}

impl SecretSource {
    fn resolve(&self, key: &str) -> Result<SecretString, ConfigError> {
        match self {
            SecretSource::Inline(value) => Ok(SecretString::from(value.clone())),
            SecretSource::Env { env } => std::env::var(env).map(SecretString::from).map_err(|_| {
                ConfigError::invalid(key, format!("environment variable {env} is not set"))
            }),
            SecretSource::File { file } => std::fs::read_to_string(file)
                .map(|s| SecretString::from(s.trim().to_owned()))
                .map_err(|e| {
                    ConfigError::invalid(key, format!("cannot read {}: {e}", file.display()))
                }),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    server: ServerSettings,
    graph: GraphSettings,
    auth: RawAuthSettings,
    storage: StorageSettings,
    webhooks: RawWebhookSettings,
    #[serde(default)]
    sandbox: SandboxSettings,
    #[serde(default)]
    telemetry: TelemetrySettings,
    #[serde(default)]
    delivery: DeliverySettings,
    #[serde(default)]
    rate_limit: RateLimitStoreSettings,
    #[serde(default)]
    retention: RetentionSettings,
    #[serde(default)]
    phone_numbers: BTreeMap<String, RawPhoneNumber>,
    #[serde(default)]
    teams: BTreeMap<String, RawTeam>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub workers: usize,
    /// How long in-flight requests may run on shutdown.
    #[serde(default = "default_grace")]
    pub shutdown_grace_seconds: u64,
    /// A client must send its request head within this time (slow-loris guard).
    #[serde(default = "default_client_request_timeout")]
    pub client_request_timeout_ms: u64,
    /// A client must send its whole body within this time.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_ms: u64,
    /// Token bucket for teams without their own `rate_limit`; none when absent.
    #[serde(default)]
    pub default_team_rate_limit: Option<RateLimitSettings>,
    /// Token bucket per client address for calls refused before authentication.
    #[serde(default = "default_anonymous_rate_limit")]
    pub anonymous_rate_limit: RateLimitSettings,
}

fn default_anonymous_rate_limit() -> RateLimitSettings {
    RateLimitSettings {
        per_second: 1,
        burst: 20,
    }
}

impl ServerSettings {
    /// Whether the gateway listens on loopback only: then nobody else can reach it, and the
    /// public development secrets are harmless.
    pub fn is_loopback(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

fn default_client_request_timeout() -> u64 {
    5_000
}

fn default_body_timeout() -> u64 {
    30_000
}

fn default_grace() -> u64 {
    30
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GraphMode {
    Sandbox,
    Live,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphSettings {
    pub mode: GraphMode,
    pub base_url: String,
    pub api_version: String,
    /// Bound of the whole call, retries included.
    pub timeout_ms: u64,
    /// Bound of one attempt (never more than `timeout_ms`).
    #[serde(default = "default_attempt_timeout")]
    pub attempt_timeout_ms: u64,
    /// How often each number's groups are compared with Meta's (DESIGN §15); one replica at
    /// a time does it.
    #[serde(default = "default_reconcile_interval")]
    pub reconcile_interval: ConfigDuration,
}

fn default_reconcile_interval() -> ConfigDuration {
    ConfigDuration(std::time::Duration::from_secs(6 * 3600))
}

fn default_attempt_timeout() -> u64 {
    5_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthSettings {
    issuer: String,
    audience: String,
    leeway_seconds: u64,
    #[serde(default = "default_max_ttl")]
    max_token_ttl_seconds: u64,
    #[serde(default)]
    keys: Vec<RawKey>,
}

fn default_max_ttl() -> u64 {
    90 * 24 * 3600
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    kid: String,
    algorithm: String,
    secret: Option<SecretSource>,
    public_key_pem: Option<String>,
    public_key_pem_file: Option<PathBuf>,
    private_key_pem: Option<SecretSource>,
    private_key_pem_file: Option<PathBuf>,
    #[serde(default)]
    signing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    Hs256,
    Rs256,
    Es256,
    EdDsa,
}

impl KeyAlgorithm {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "HS256" => Some(Self::Hs256),
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }
}

/// Key material, resolved. Secrets stay wrapped so they cannot be printed by accident.
#[derive(Debug, Clone)]
pub struct KeySettings {
    pub kid: String,
    pub algorithm: KeyAlgorithm,
    pub secret: Option<SecretString>,
    pub public_key_pem: Option<String>,
    pub private_key_pem: Option<SecretString>,
    pub signing: bool,
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub issuer: String,
    pub audience: String,
    pub leeway_seconds: u64,
    pub max_token_ttl_seconds: u64,
    pub keys: Vec<KeySettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// `sqlite://PATH`, `sqlite::memory:` or `postgres://…`; its password never shown.
    pub url: ServiceUrl,
    /// Most connections to PostgreSQL this replica holds.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// The longest anything read from storage is answered from memory (ownership, …), even
    /// when a notification of its change was missed.
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl: ConfigDuration,
    /// Seals the access tokens stored through the admin API (DESIGN §11); resolved into
    /// `Settings::encryption`.
    #[serde(default)]
    pub encryption_key: Option<WrittenKey>,
    /// Older keys: they still open what they sealed, until `storage rekey`.
    #[serde(default)]
    pub previous_encryption_keys: Vec<WrittenKey>,
}

fn default_max_connections() -> u32 {
    10
}

fn default_cache_ttl() -> ConfigDuration {
    ConfigDuration(std::time::Duration::from_secs(60))
}

/// Where rate-limit buckets live (`[rate_limit]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitStore {
    /// Each replica counts on its own.
    #[default]
    Local,
    /// Counted in Redis, shared by every replica.
    Redis,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitStoreSettings {
    #[serde(default)]
    pub store: RateLimitStore,
    /// `redis://…`; required with `store = "redis"`; its password never shown.
    pub redis_url: Option<ServiceUrl>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhookSettings {
    verify_token: SecretSource,
    app_secret: SecretSource,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: usize,
    #[serde(default = "default_max_in_flight_bytes")]
    max_in_flight_bytes: usize,
    #[serde(default = "default_creation_timeout")]
    creation_timeout_seconds: u64,
    #[serde(default = "default_retry_for")]
    retry_for: ConfigDuration,
    #[serde(default = "default_disable_after")]
    disable_after: ConfigDuration,
    #[serde(default = "default_secret_overlap")]
    secret_overlap: ConfigDuration,
}

fn default_retry_for() -> ConfigDuration {
    ConfigDuration(std::time::Duration::from_secs(24 * 3600))
}

fn default_disable_after() -> ConfigDuration {
    ConfigDuration(std::time::Duration::from_secs(5 * 24 * 3600))
}

fn default_secret_overlap() -> ConfigDuration {
    ConfigDuration(std::time::Duration::from_secs(24 * 3600))
}

fn default_max_body_bytes() -> usize {
    // Meta batches up to 1,000 changes in one POST; this leaves room for that.
    16 * 1024 * 1024
}

fn default_max_in_flight_bytes() -> usize {
    32 * 1024 * 1024
}

fn default_creation_timeout() -> u64 {
    24 * 3600
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub verify_token: SecretString,
    pub app_secret: SecretString,
    /// Largest POST accepted from Meta.
    pub max_body_bytes: usize,
    /// Bytes of webhook bodies held at once, by every POST being received together.
    pub max_in_flight_bytes: usize,
    /// A creation without Meta's `group_create` webhook after this long is failed.
    pub creation_timeout_seconds: u64,
    /// A delivery is retried this long after it first became due; then it is `failed`.
    pub retry_for: std::time::Duration,
    /// An endpoint whose every attempt failed for this long is disabled.
    pub disable_after: std::time::Duration,
    /// After a secret rotation, deliveries carry the old secret's signature this long too.
    pub secret_overlap: std::time::Duration,
}

/// `[retention]`: how long rows that grow with traffic are kept, and how they are pruned.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    pub audit_days: u32,
    /// Meta's stored POSTs and the events read from them (processed or set aside).
    pub webhook_inbox_days: u32,
    /// Team events (`GET /v1/events`) and their deliveries.
    pub team_events_days: u32,
    pub idempotency_keys_days: u32,
    /// Creations that ended (created or failed).
    pub creations_days: u32,
    /// Billable messages counted for `GET /v1/usage`, by the day they were priced.
    pub usage_days: u32,
    /// How often a pruning pass runs.
    pub interval_seconds: u64,
    /// Rows deleted per statement, so a pass never holds the database for long.
    pub batch_size: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            audit_days: 365,
            webhook_inbox_days: 30,
            team_events_days: 30,
            idempotency_keys_days: 30,
            creations_days: 30,
            usage_days: 400,
            interval_seconds: 600,
            batch_size: 500,
        }
    }
}

impl RetentionSettings {
    /// Checks the settings; the error names the offending key under `retention.`.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        for (key, days) in [
            ("audit_days", self.audit_days),
            ("team_events_days", self.team_events_days),
            ("idempotency_keys_days", self.idempotency_keys_days),
            ("creations_days", self.creations_days),
            ("usage_days", self.usage_days),
        ] {
            if days == 0 {
                return Err((key, "must be at least 1".into()));
            }
        }
        // Meta redelivers a POST for up to 7 days: what is pruned earlier would be taken
        // for new and processed twice.
        if self.webhook_inbox_days < 8 {
            return Err((
                "webhook_inbox_days",
                "must be at least 8 (Meta redelivers for up to 7 days)".into(),
            ));
        }
        if self.interval_seconds == 0 {
            return Err(("interval_seconds", "must be greater than 0".into()));
        }
        if self.batch_size == 0 {
            return Err(("batch_size", "must be greater than 0".into()));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSettings {
    #[serde(default = "default_webhook_delay")]
    pub webhook_delay_ms: u64,
    /// Group operations per second one number may make before the simulated Meta answers
    /// 131208 (and keeps answering it for a minute), as Meta does to a number driven too fast.
    #[serde(default = "default_group_operations_per_second")]
    pub group_operations_per_second: u32,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            webhook_delay_ms: default_webhook_delay(),
            group_operations_per_second: default_group_operations_per_second(),
        }
    }
}

fn default_group_operations_per_second() -> u32 {
    20
}

fn default_webhook_delay() -> u64 {
    200
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, for local runs.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    #[serde(default)]
    pub log_format: LogFormat,
    /// A tracing filter such as `info` or `wa_groups_gateway=debug,info`; RUST_LOG wins.
    #[serde(default = "default_log_level")]
    pub log_level: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Text,
            log_level: default_log_level(),
        }
    }
}

fn default_log_level() -> String {
    "info".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhoneNumber {
    access_token: SecretSource,
    /// Protects Meta's quota of this number, shared by every team using it.
    rate_limit: Option<RateLimitSettings>,
    /// Active groups (and creations pending) the number may have; default Meta's 10,000.
    max_groups: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    pub per_second: u32,
    pub burst: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTeamWebhook {
    url: String,
    secret: SecretSource,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTeam {
    #[serde(default)]
    phone_numbers: Vec<String>,
    #[serde(default)]
    admin: bool,
    rate_limit: Option<RateLimitSettings>,
    webhook: Option<RawTeamWebhook>,
    /// Active groups (and creations pending) the team may have on each of its numbers.
    max_groups: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct TeamWebhook {
    pub url: String,
    pub secret: SecretString,
    /// The key `secret` stands for, parsed once.
    pub signing_key: SigningKey,
}

#[derive(Debug, Clone)]
pub struct TeamSettings {
    pub phone_numbers: Vec<PhoneNumberId>,
    pub admin: bool,
    pub rate_limit: Option<RateLimitSettings>,
    pub webhook: Option<TeamWebhook>,
}

/// The whole configuration, validated and with every secret resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub graph: GraphSettings,
    pub auth: AuthSettings,
    pub storage: StorageSettings,
    pub webhooks: WebhookSettings,
    pub sandbox: SandboxSettings,
    pub telemetry: TelemetrySettings,
    /// `[delivery]`: pushing team events to the teams' webhooks.
    pub delivery: DeliverySettings,
    /// `[rate_limit]`: where buckets are counted.
    pub rate_limit: RateLimitStoreSettings,
    pub retention: RetentionSettings,
    pub phone_numbers: BTreeMap<PhoneNumberId, SecretString>,
    pub phone_number_rate_limits: BTreeMap<PhoneNumberId, RateLimitSettings>,
    /// `phone_numbers.<pn>.max_groups`, where set (DESIGN §15).
    pub phone_number_max_groups: BTreeMap<PhoneNumberId, u32>,
    pub teams: BTreeMap<String, TeamSettings>,
    /// `teams.<name>.max_groups`, per number, where set (DESIGN §15).
    pub team_max_groups: BTreeMap<String, u32>,
    /// `storage.encryption_key` and `storage.previous_encryption_keys`, resolved.
    pub encryption: EncryptionSettings,
}

/// Where configuration comes from besides the compiled-in defaults.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// Directory holding `default.toml` and `{APP_ENVIRONMENT}.toml`; `./config` when None.
    pub config_dir: Option<PathBuf>,
    /// `--config FILE` / `WAGW_CONFIG`.
    pub extra_file: Option<PathBuf>,
    /// Read `WAGW__…` variables (tests turn this off to stay hermetic).
    pub use_env: bool,
}

impl Settings {
    /// Loads configuration the way the binary does.
    pub fn load(extra_file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_from(&ConfigSources {
            config_dir: None,
            extra_file: extra_file.map(Path::to_path_buf),
            use_env: true,
        })
    }

    pub fn load_from(sources: &ConfigSources) -> Result<Settings, ConfigError> {
        Self::load_with_tree(sources).map(|(settings, _)| settings)
    }

    /// Loads like `load_from`, and also answers the merged layers the settings were read
    /// from, secrets as written (`config check` prints them redacted).
    pub fn load_with_tree(
        sources: &ConfigSources,
    ) -> Result<(Settings, config::Config), ConfigError> {
        let dir = sources
            .config_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("config"));
        let environment = std::env::var("APP_ENVIRONMENT").unwrap_or_else(|_| "local".into());
        let mut tree = Self::layered(sources, &dir, &environment, false).build()?;
        if needs_demo(&tree) {
            tree = Self::layered(sources, &dir, &environment, true).build()?;
        }
        Ok((Self::from_config(tree.clone())?, tree))
    }

    fn layered(
        sources: &ConfigSources,
        dir: &Path,
        environment: &str,
        demo: bool,
    ) -> config::ConfigBuilder<config::builder::DefaultState> {
        let mut builder = Self::base_layers(demo)
            .add_source(config::File::from(dir.join("default.toml")).required(false))
            .add_source(
                config::File::from(dir.join(format!("{environment}.toml"))).required(false),
            );
        if let Some(extra) = &sources.extra_file {
            builder = builder.add_source(config::File::from(extra.as_path()).required(true));
        }
        if sources.use_env {
            builder = builder.add_source(
                // Parsed, so `WAGW__SERVER__PORT=9000` is the number 9000 wherever the
                // merged configuration is shown; string fields still accept it.
                config::Environment::with_prefix("WAGW")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            );
        }
        builder
    }

    /// The layers under every configuration: the compiled-in defaults, and over them the
    /// sandbox demo's numbers and teams when `demo`.
    fn base_layers(demo: bool) -> config::ConfigBuilder<config::builder::DefaultState> {
        let builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if demo {
            builder.add_source(config::File::from_str(
                SANDBOX_DEMO,
                config::FileFormat::Toml,
            ))
        } else {
            builder
        }
    }

    /// Builds settings from TOML text layered over the compiled-in defaults (tests, tools).
    pub fn from_toml_overrides(toml: &str) -> Result<Settings, ConfigError> {
        let build = |demo: bool| {
            Self::base_layers(demo)
                .add_source(config::File::from_str(toml, config::FileFormat::Toml))
                .build()
        };
        let first = build(false)?;
        if needs_demo(&first) {
            Self::from_config(build(true)?)
        } else {
            Self::from_config(first)
        }
    }

    fn from_config(config: config::Config) -> Result<Settings, ConfigError> {
        let raw: RawSettings = config.try_deserialize()?;
        raw.resolve()
    }

    pub fn team(&self, name: &str) -> Option<&TeamSettings> {
        self.teams.get(name)
    }

    /// Each team's bucket: its own `rate_limit`, else the server default, else none.
    pub fn team_rate_limits(&self) -> Vec<(String, RateLimitSettings)> {
        self.teams
            .iter()
            .filter_map(|(name, team)| {
                let limit = team
                    .rate_limit
                    .clone()
                    .or_else(|| self.server.default_team_rate_limit.clone())?;
                Some((name.clone(), limit))
            })
            .collect()
    }
}

/// The public development values of the compiled-in defaults (they are in this repository).
const DEVELOPMENT_KEY_SECRET: &str = "change-me-local-only";
const DEVELOPMENT_APP_SECRET: &str = "local-app-secret";
const DEVELOPMENT_VERIFY_TOKEN: &str = "local-verify-token";

/// The keys of `auth` and `webhooks` that hold one of the public development values.
fn development_secret_keys(auth: &AuthSettings, webhooks: &WebhookSettings) -> Vec<String> {
    let mut keys: Vec<String> = auth
        .keys
        .iter()
        .enumerate()
        .filter(|(_, k)| {
            k.secret
                .as_ref()
                .is_some_and(|s| s.expose_secret() == DEVELOPMENT_KEY_SECRET)
        })
        .map(|(i, _)| format!("auth.keys[{i}].secret"))
        .collect();
    if webhooks.app_secret.expose_secret() == DEVELOPMENT_APP_SECRET {
        keys.push("webhooks.app_secret".into());
    }
    if webhooks.verify_token.expose_secret() == DEVELOPMENT_VERIFY_TOKEN {
        keys.push("webhooks.verify_token".into());
    }
    keys
}

/// The development secrets are public: with them, anyone could mint tokens or forge Meta's
/// webhooks. Live mode never accepts them; the sandbox only while it listens on loopback,
/// unless `serve` replaces them (`Settings::replace_development_secrets`).
fn refuse_development_secrets(
    auth: &AuthSettings,
    webhooks: &WebhookSettings,
) -> Result<(), ConfigError> {
    match development_secret_keys(auth, webhooks).into_iter().next() {
        Some(key) => Err(ConfigError::invalid(
            key,
            "is the public development value; set your own for live mode",
        )),
        None => Ok(()),
    }
}

/// Random text for a generated secret (256 bits, URL-safe).
fn generated_secret() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Settings {
    /// The keys that hold a public development value while the gateway listens beyond
    /// loopback: where they must not be used.
    pub fn exposed_development_secrets(&self) -> Vec<String> {
        if self.server.is_loopback() {
            return Vec::new();
        }
        let mut keys = development_secret_keys(&self.auth, &self.webhooks);
        if self.encryption.development {
            keys.push("storage.encryption_key".into());
        }
        keys
    }

    /// Replaces every public development value by a random one for this run (the sandbox
    /// started beyond loopback without configuration, as in the container): answers the
    /// keys replaced. A replaced signing key gets a new `kid`, so tokens of the public key
    /// are refused as unknown.
    pub fn replace_development_secrets(&mut self) -> Vec<String> {
        let replaced = self.exposed_development_secrets();
        if replaced.is_empty() {
            return replaced;
        }
        for key in &mut self.auth.keys {
            if key
                .secret
                .as_ref()
                .is_some_and(|s| s.expose_secret() == DEVELOPMENT_KEY_SECRET)
            {
                key.secret = Some(SecretString::from(generated_secret()));
                key.kid = format!(
                    "generated-{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..8]
                );
            }
        }
        if self.webhooks.app_secret.expose_secret() == DEVELOPMENT_APP_SECRET {
            self.webhooks.app_secret = SecretString::from(generated_secret());
        }
        if self.webhooks.verify_token.expose_secret() == DEVELOPMENT_VERIFY_TOKEN {
            self.webhooks.verify_token = SecretString::from(generated_secret());
        }
        self.encryption.drop_development_key();
        replaced
    }
}

/// The demo applies to a sandbox that would otherwise have no phone number to play with.
fn needs_demo(config: &config::Config) -> bool {
    let sandbox = config
        .get_string("graph.mode")
        .is_ok_and(|m| m == "sandbox");
    let has_numbers = config
        .get_table("phone_numbers")
        .is_ok_and(|numbers| !numbers.is_empty());
    sandbox && !has_numbers
}

const GREATER_THAN_0: &str = "must be greater than 0";
/// Said without the URL, which may hold a password.
const UNREADABLE_URL: &str = "is not a valid URL (reserved characters in the user or password, such as / # ? @, must be percent-encoded)";

/// A setting's rule: `Err` naming `key` with `message` unless `ok`. `resolve` checks the
/// rules in a fixed order and reports the first one broken.
fn ensure(ok: bool, key: impl Into<String>, message: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(key, message))
    }
}

/// A rate limit must let something through.
fn check_rate(key: impl Into<String>, limit: &RateLimitSettings) -> Result<(), ConfigError> {
    ensure(
        limit.per_second > 0 && limit.burst > 0,
        key,
        "per_second and burst must be greater than 0",
    )
}

impl RawSettings {
    fn resolve(self) -> Result<Settings, ConfigError> {
        let sandbox = self.graph.mode == GraphMode::Sandbox;
        self.check()?;
        let phone_number_max_groups = max_groups_of_numbers(&self.phone_numbers)?;
        let team_max_groups = max_groups_of_teams(&self.teams)?;
        let (phone_numbers, phone_number_rate_limits) =
            resolve_phone_numbers(self.phone_numbers, sandbox)?;
        let teams = self
            .teams
            .into_iter()
            .map(|(name, team)| {
                let team = team.resolve(&name, &phone_numbers)?;
                Ok((name, team))
            })
            .collect::<Result<BTreeMap<_, _>, ConfigError>>()?;
        let auth = self.auth.resolve()?;
        let encryption = encryption::resolve(&self.storage, sandbox)?;
        let webhooks = self.webhooks.resolve()?;
        if !sandbox {
            refuse_development_secrets(&auth, &webhooks)?;
        }
        ensure(
            !webhooks.app_secret.expose_secret().is_empty(),
            "webhooks.app_secret",
            "must not be empty",
        )?;
        Ok(Settings {
            server: self.server,
            graph: self.graph,
            auth,
            storage: self.storage,
            webhooks,
            sandbox: self.sandbox,
            telemetry: self.telemetry,
            delivery: self.delivery,
            rate_limit: self.rate_limit,
            retention: self.retention,
            phone_numbers,
            phone_number_rate_limits,
            phone_number_max_groups,
            teams,
            team_max_groups,
            encryption,
        })
    }

    /// The rules that need no secret, section by section.
    fn check(&self) -> Result<(), ConfigError> {
        if let Err((key, message)) = self.delivery.validate() {
            return Err(ConfigError::invalid(format!("delivery.{key}"), message));
        }
        if let Err((key, message)) = self.retention.validate() {
            return Err(ConfigError::invalid(format!("retention.{key}"), message));
        }
        self.server.check()?;
        self.webhooks.check()?;
        self.auth.check()?;
        self.graph.check()?;
        self.storage.check()?;
        self.rate_limit.check()
    }
}

impl ServerSettings {
    fn check(&self) -> Result<(), ConfigError> {
        check_rate("server.anonymous_rate_limit", &self.anonymous_rate_limit)?;
        if let Some(rl) = &self.default_team_rate_limit {
            check_rate("server.default_team_rate_limit", rl)?;
        }
        Ok(())
    }
}

impl GraphSettings {
    fn check(&self) -> Result<(), ConfigError> {
        ensure(
            self.attempt_timeout_ms > 0,
            "graph.attempt_timeout_ms",
            GREATER_THAN_0,
        )?;
        ensure(self.timeout_ms > 0, "graph.timeout_ms", GREATER_THAN_0)?;
        ensure(
            self.reconcile_interval.0 >= std::time::Duration::from_secs(1),
            "graph.reconcile_interval",
            "must be at least 1s",
        )?;
        ensure(
            self.base_url.starts_with("http://") || self.base_url.starts_with("https://"),
            "graph.base_url",
            "must be an http(s) URL",
        )?;
        ensure(
            !(self.api_version.is_empty() || self.api_version.contains('/')),
            "graph.api_version",
            "must look like v23.0",
        )
    }
}

impl StorageSettings {
    fn check(&self) -> Result<(), ConfigError> {
        let url = &self.url;
        ensure(
            ["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|scheme| url.starts_with(scheme)),
            "storage.url",
            "must start with sqlite: or postgres://",
        )?;
        ensure(
            url.starts_with("sqlite:") || url.parses(),
            "storage.url",
            UNREADABLE_URL,
        )?;
        ensure(
            self.max_connections > 0,
            "storage.max_connections",
            GREATER_THAN_0,
        )
    }
}

impl RateLimitStoreSettings {
    fn check(&self) -> Result<(), ConfigError> {
        if self.store != RateLimitStore::Redis {
            return Ok(());
        }
        let redis_url = self.redis_url.as_ref();
        ensure(
            redis_url.is_some_and(|u| u.starts_with("redis://") || u.starts_with("rediss://")),
            "rate_limit.redis_url",
            "store = \"redis\" needs a redis:// URL",
        )?;
        ensure(
            redis_url.is_some_and(ServiceUrl::parses),
            "rate_limit.redis_url",
            UNREADABLE_URL,
        )
    }
}

impl RawWebhookSettings {
    fn check(&self) -> Result<(), ConfigError> {
        ensure(
            self.max_body_bytes > 0,
            "webhooks.max_body_bytes",
            GREATER_THAN_0,
        )?;
        // A body larger than SMALL_BODY may use at most 3/4 of the budget (the rest is kept
        // for small POSTs): the largest accepted POST must still fit.
        ensure(
            self.max_body_bytes <= self.max_in_flight_bytes / 4 * 3,
            "webhooks.max_in_flight_bytes",
            "must be at least 4/3 of webhooks.max_body_bytes",
        )?;
        ensure(
            self.creation_timeout_seconds > 0,
            "webhooks.creation_timeout_seconds",
            GREATER_THAN_0,
        )?;
        for (key, value) in [
            ("webhooks.retry_for", &self.retry_for),
            ("webhooks.disable_after", &self.disable_after),
        ] {
            ensure(!value.0.is_zero(), key, GREATER_THAN_0)?;
        }
        Ok(())
    }

    fn resolve(self) -> Result<WebhookSettings, ConfigError> {
        Ok(WebhookSettings {
            verify_token: self.verify_token.resolve("webhooks.verify_token")?,
            app_secret: self.app_secret.resolve("webhooks.app_secret")?,
            max_body_bytes: self.max_body_bytes,
            max_in_flight_bytes: self.max_in_flight_bytes,
            creation_timeout_seconds: self.creation_timeout_seconds,
            retry_for: self.retry_for.0,
            disable_after: self.disable_after.0,
            secret_overlap: self.secret_overlap.0,
        })
    }
}

/// Meta allows a number at most 10,000 active groups: a limit is 1 to 10,000.
const MAX_GROUPS: std::ops::RangeInclusive<u32> = 1..=10_000;
const MAX_GROUPS_RULE: &str = "must be 1 to 10000 (Meta allows a number at most 10,000 groups)";

fn max_groups_of_numbers(
    raw: &BTreeMap<String, RawPhoneNumber>,
) -> Result<BTreeMap<PhoneNumberId, u32>, ConfigError> {
    let mut limits = BTreeMap::new();
    for (id, number) in raw {
        if let Some(max) = number.max_groups {
            let key = format!("phone_numbers.{id}.max_groups");
            ensure(MAX_GROUPS.contains(&max), key, MAX_GROUPS_RULE)?;
            if let Ok(pn) = PhoneNumberId::parse(id) {
                limits.insert(pn, max);
            }
        }
    }
    Ok(limits)
}

fn max_groups_of_teams(
    raw: &BTreeMap<String, RawTeam>,
) -> Result<BTreeMap<String, u32>, ConfigError> {
    let mut limits = BTreeMap::new();
    for (name, team) in raw {
        if let Some(max) = team.max_groups {
            let key = format!("teams.{name}.max_groups");
            ensure(MAX_GROUPS.contains(&max), key, MAX_GROUPS_RULE)?;
            limits.insert(name.clone(), max);
        }
    }
    Ok(limits)
}

/// Each number's access token and its own rate limit, if any.
type PhoneNumbers = (
    BTreeMap<PhoneNumberId, SecretString>,
    BTreeMap<PhoneNumberId, RateLimitSettings>,
);

fn resolve_phone_numbers(
    raw: BTreeMap<String, RawPhoneNumber>,
    sandbox: bool,
) -> Result<PhoneNumbers, ConfigError> {
    let mut phone_numbers = BTreeMap::new();
    let mut phone_number_rate_limits = BTreeMap::new();
    for (id, number) in raw {
        let key = format!("phone_numbers.{id}.access_token");
        let pn = PhoneNumberId::parse(&id)
            .map_err(|m| ConfigError::invalid(format!("phone_numbers.{id}"), m))?;
        let token = match number.access_token.resolve(&key) {
            Ok(token) => token,
            // The sandbox checks no token, so a newcomer needs none.
            Err(_) if sandbox => SecretString::from(format!("sandbox-token-{id}")),
            Err(e) => return Err(e),
        };
        if token.expose_secret().trim().is_empty() {
            return Err(ConfigError::invalid(key, "must not be empty"));
        }
        if let Some(limit) = number.rate_limit {
            check_rate(format!("phone_numbers.{id}.rate_limit"), &limit)?;
            phone_number_rate_limits.insert(pn.clone(), limit);
        }
        phone_numbers.insert(pn, token);
    }
    Ok((phone_numbers, phone_number_rate_limits))
}

impl RawTeam {
    /// `name`'s team, whose numbers must each have a `[phone_numbers.…]` entry.
    fn resolve(
        self,
        name: &str,
        phone_numbers: &BTreeMap<PhoneNumberId, SecretString>,
    ) -> Result<TeamSettings, ConfigError> {
        let mut numbers = Vec::new();
        for (i, raw) in self.phone_numbers.iter().enumerate() {
            let key = format!("teams.{name}.phone_numbers[{i}]");
            let pn = PhoneNumberId::parse(raw).map_err(|m| ConfigError::invalid(&key, m))?;
            if !phone_numbers.contains_key(&pn) {
                return Err(ConfigError::invalid(
                    key,
                    format!("phone number {raw} has no [phone_numbers.{raw}] entry"),
                ));
            }
            numbers.push(pn);
        }
        if let Some(rl) = &self.rate_limit {
            check_rate(format!("teams.{name}.rate_limit"), rl)?;
        }
        let webhook = self.webhook.map(|hook| hook.resolve(name)).transpose()?;
        Ok(TeamSettings {
            phone_numbers: numbers,
            admin: self.admin,
            rate_limit: self.rate_limit,
            webhook,
        })
    }
}

impl RawTeamWebhook {
    fn resolve(self, team: &str) -> Result<TeamWebhook, ConfigError> {
        let key = format!("teams.{team}.webhook.secret");
        let secret = self.secret.resolve(&key)?;
        let signing_key = signing_key(secret.expose_secret())
            .map_err(|message| ConfigError::invalid(key, message))?;
        let url_key = || format!("teams.{team}.webhook.url");
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(ConfigError::invalid(url_key(), "must be an http(s) URL"));
        }
        if let Err(message) = check_webhook_host(&self.url) {
            return Err(ConfigError::invalid(url_key(), message));
        }
        Ok(TeamWebhook {
            url: self.url,
            secret,
            signing_key,
        })
    }
}

impl RawAuthSettings {
    fn check(&self) -> Result<(), ConfigError> {
        ensure(
            self.max_token_ttl_seconds > 0,
            "auth.max_token_ttl_seconds",
            GREATER_THAN_0,
        )
    }

    fn resolve(self) -> Result<AuthSettings, ConfigError> {
        if self.keys.is_empty() {
            return Err(ConfigError::invalid(
                "auth.keys",
                "at least one key is required",
            ));
        }
        let mut keys: Vec<KeySettings> = Vec::new();
        for (i, raw) in self.keys.into_iter().enumerate() {
            let key = raw.resolve(i, &keys)?;
            keys.push(key);
        }
        if keys.iter().filter(|k| k.signing).count() > 1 {
            return Err(ConfigError::invalid(
                "auth.keys",
                "at most one key may have signing = true",
            ));
        }
        Ok(AuthSettings {
            issuer: self.issuer,
            audience: self.audience,
            leeway_seconds: self.leeway_seconds,
            max_token_ttl_seconds: self.max_token_ttl_seconds,
            keys,
        })
    }
}

impl RawKey {
    /// `auth.keys[i]`, whose kid none of `earlier` has.
    fn resolve(self, i: usize, earlier: &[KeySettings]) -> Result<KeySettings, ConfigError> {
        let at = |field: &str| format!("auth.keys[{i}].{field}");
        if self.kid.is_empty() {
            return Err(ConfigError::invalid(at("kid"), "must not be empty"));
        }
        if earlier.iter().any(|k| k.kid == self.kid) {
            return Err(ConfigError::invalid(
                at("kid"),
                format!("duplicate kid {}", self.kid),
            ));
        }
        let algorithm = KeyAlgorithm::parse(&self.algorithm).ok_or_else(|| {
            ConfigError::invalid(at("algorithm"), "must be one of HS256, RS256, ES256, EdDSA")
        })?;
        let secret = self
            .secret
            .as_ref()
            .map(|s| s.resolve(&at("secret")))
            .transpose()?;
        let public_key_pem = match (self.public_key_pem, self.public_key_pem_file) {
            (Some(pem), _) => Some(pem),
            (None, Some(path)) => Some(read_pem(&path, at("public_key_pem_file"))?),
            (None, None) => None,
        };
        let private_key_pem = match (self.private_key_pem, self.private_key_pem_file) {
            (Some(pem), _) => Some(pem.resolve(&at("private_key_pem"))?),
            (None, Some(path)) => Some(SecretString::from(read_pem(
                &path,
                at("private_key_pem_file"),
            )?)),
            (None, None) => None,
        };
        check_key_material(algorithm, secret.as_ref(), public_key_pem.is_some(), at)?;
        Ok(KeySettings {
            kid: self.kid,
            algorithm,
            secret,
            public_key_pem,
            private_key_pem,
            signing: self.signing,
        })
    }
}

fn read_pem(path: &Path, key: String) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError::invalid(key, format!("cannot read {}: {e}", path.display())))
}

/// HS256 verifies with its secret, the others with their public key.
fn check_key_material(
    algorithm: KeyAlgorithm,
    secret: Option<&SecretString>,
    has_public_key: bool,
    at: impl Fn(&str) -> String,
) -> Result<(), ConfigError> {
    match algorithm {
        KeyAlgorithm::Hs256 => ensure(
            secret.is_some_and(|s| !s.expose_secret().is_empty()),
            at("secret"),
            "HS256 keys need a non-empty secret",
        ),
        _ => ensure(
            has_public_key,
            at("public_key_pem"),
            "asymmetric keys need public_key_pem or public_key_pem_file",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration is refused, with an error that names `key` (so the operator knows
    /// what to fix).
    #[track_caller]
    fn assert_refused_naming(toml: &str, key: &str) {
        let err = Settings::from_toml_overrides(toml).unwrap_err().to_string();
        assert!(err.contains(key), "{err}");
    }

    #[test]
    fn compiled_in_defaults_run_the_sandbox_with_demo_teams() {
        let settings = Settings::from_toml_overrides("").unwrap();
        assert_eq!(settings.graph.mode, GraphMode::Sandbox);
        assert_eq!(settings.server.port, 8080);
        assert!(settings.teams.contains_key("sales"));
        assert!(settings.teams["platform"].admin);
    }

    #[test]
    fn debugged_settings_show_no_database_or_redis_password() {
        let settings = Settings::from_toml_overrides(
            "[storage]\nurl = \"postgres://gw:SECRETPW-db@db.internal:5432/gw\"\n\
             [rate_limit]\nstore = \"redis\"\nredis_url = \"redis://default:SECRETPW-redis@cache:6379/0\"\n",
        )
        .unwrap();
        let debugged = format!("{settings:?}");
        assert!(!debugged.contains("SECRETPW"), "{debugged}");
        assert!(
            debugged.contains("postgres://gw:***@db.internal:5432/gw"),
            "{debugged}"
        );
        assert!(
            debugged.contains("redis://default:***@cache:6379/0"),
            "{debugged}"
        );
        assert!(settings.storage.url.expose_secret().contains("SECRETPW-db"));
    }

    #[test]
    fn a_database_or_redis_url_no_parser_reads_is_refused_without_being_repeated() {
        for (toml, key) in [
            (
                "[storage]\nurl = \"postgres://gw:SECRET/PW@db/gw\"\n",
                "storage.url",
            ),
            (
                "[rate_limit]\nstore = \"redis\"\nredis_url = \"redis://:SECRET/PW@cache:6379\"\n",
                "rate_limit.redis_url",
            ),
        ] {
            let err = Settings::from_toml_overrides(toml).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
            assert!(!err.contains("SECRET"), "{err}");
        }
    }

    #[test]
    fn a_team_naming_an_unknown_number_is_refused_with_its_key() {
        assert_refused_naming(
            "[teams.x]\nphone_numbers = [\"999\"]\n",
            "teams.x.phone_numbers[0]",
        );
    }

    #[test]
    fn configured_numbers_replace_the_sandbox_demo() {
        let settings = Settings::from_toml_overrides(
            "[phone_numbers.111]\naccess_token = \"t\"\n[teams.x]\nphone_numbers = [\"111\"]\n",
        )
        .unwrap();
        assert_eq!(settings.phone_numbers.len(), 1);
        assert!(!settings.teams.contains_key("sales"));
    }

    #[test]
    fn live_mode_refuses_the_public_development_secrets() {
        assert_refused_naming(
            "[graph]\nmode = \"live\"\n[phone_numbers.1]\naccess_token = \"t\"\n",
            "auth.keys[0].secret",
        );
    }

    #[test]
    fn development_secrets_are_replaced_only_beyond_loopback() {
        let mut local = Settings::from_toml_overrides("").unwrap();
        assert!(local.replace_development_secrets().is_empty());
        assert_eq!(local.auth.keys[0].kid, "local-dev");
        let mut exposed = Settings::from_toml_overrides("[server]\nhost = \"0.0.0.0\"\n").unwrap();
        let replaced = exposed.replace_development_secrets();
        assert_eq!(
            replaced,
            [
                "auth.keys[0].secret",
                "webhooks.app_secret",
                "webhooks.verify_token",
                "storage.encryption_key"
            ]
        );
        assert_ne!(exposed.auth.keys[0].kid, "local-dev");
        assert!(exposed.exposed_development_secrets().is_empty());
    }

    #[test]
    fn live_mode_needs_the_access_token() {
        assert_refused_naming(
            "[graph]\nmode = \"live\"\n[phone_numbers.12784358810]\naccess_token = { env = \"WAGW_TEST_SURELY_UNSET\" }\n",
            "phone_numbers.12784358810.access_token",
        );
    }

    #[test]
    fn a_secret_of_digits_from_the_environment_stays_text() {
        // Environment variables are parsed: "123456" arrives as a number.
        let config = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .set_override("webhooks.verify_token", 123456)
            .unwrap()
            .build()
            .unwrap();
        let settings = Settings::from_config(config).unwrap();
        assert_eq!(settings.webhooks.verify_token.expose_secret(), "123456");
    }

    #[test]
    fn teams_without_a_rate_limit_take_the_server_default() {
        let settings = Settings::from_toml_overrides(
            "[server]\ndefault_team_rate_limit = { per_second = 5, burst = 10 }\n\
             [phone_numbers.1]\naccess_token = \"t\"\n\
             [teams.a]\nphone_numbers = [\"1\"]\nrate_limit = { per_second = 1, burst = 2 }\n\
             [teams.b]\nphone_numbers = [\"1\"]\n",
        )
        .unwrap();
        let limits: BTreeMap<_, _> = settings
            .team_rate_limits()
            .into_iter()
            .map(|(team, l)| (team, (l.per_second, l.burst)))
            .collect();
        assert_eq!(limits["a"], (1, 2));
        assert_eq!(limits["b"], (5, 10));
        let none = Settings::from_toml_overrides(
            "[phone_numbers.1]\naccess_token = \"t\"\n[teams.b]\nphone_numbers = [\"1\"]\n",
        )
        .unwrap();
        assert!(
            none.team_rate_limits().is_empty(),
            "no limit unless configured"
        );
    }

    #[test]
    fn a_misspelt_key_is_refused_not_ignored() {
        let misspelt = "[graph]\ntimout_ms = 5\n";
        assert_refused_naming(misspelt, "timout_ms");
        assert_refused_naming(misspelt, "graph");
        assert_refused_naming(
            "[phone_numbers.1]\naccess_token = \"t\"\n[teams.x]\nphone_number = [\"1\"]\n",
            "teams.x",
        );
    }

    #[test]
    fn file_secrets_are_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "  s3cret\n").unwrap();
        let toml = format!(
            "[webhooks]\nverify_token = \"v\"\napp_secret = {{ file = {:?} }}\n",
            path
        );
        let settings = Settings::from_toml_overrides(&toml).unwrap();
        assert_eq!(settings.webhooks.app_secret.expose_secret(), "s3cret");
    }

    #[test]
    fn an_unknown_algorithm_names_the_key() {
        assert_refused_naming(
            "[[auth.keys]]\nkid = \"a\"\nalgorithm = \"none\"\nsecret = \"x\"\n",
            "auth.keys[0].algorithm",
        );
    }
}
