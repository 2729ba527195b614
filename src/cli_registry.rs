//! The runtime management commands of DESIGN §11 on the command line: `team list|put|delete`,
//! `phone-number list|put|delete` (the access token read from stdin) and `storage rekey`.
//! They act on storage through the same registry as the admin API, so the same rules hold
//! and running replicas hear of each change within a second.

use std::io::Read;

use clap::{Args, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use std::collections::BTreeMap;

use crate::config::{RateLimitSettings, Settings, TeamSettings};
use crate::domain::PhoneNumberId;
use crate::error::ApiError;
use crate::platform::Directory;
use crate::routes::teams::{
    BURST, MAX_GROUPS, PER_SECOND, PhoneNumberInfo, PhoneNumberList, TeamInfo, TeamList,
};
use crate::services::registry::{NumberChange, Registry, TeamChange};
use crate::storage::Storage;

#[derive(Subcommand)]
pub enum TeamAction {
    /// Print every team in force (configuration's and the API's) as JSON.
    List,
    /// Create or replace a team (stored; a field left out takes its default).
    Put {
        name: String,
        /// A phone number the team may use (repeat for several).
        #[arg(long = "phone-number")]
        phone_numbers: Vec<String>,
        /// The team may use the `admin` scope.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        limits: Limits,
    },
    /// Delete a team made through the API: its tokens are refused from then on.
    Delete { name: String },
}

#[derive(Subcommand)]
pub enum PhoneNumberAction {
    /// Print every phone number in force as JSON (token fingerprints, never tokens).
    List,
    /// Create or replace a phone number; its access token is read from stdin and stored
    /// encrypted under storage.encryption_key.
    Put {
        phone_number_id: String,
        #[command(flatten)]
        limits: Limits,
    },
    /// Delete a phone number made through the API (refused while a team is granted it).
    Delete { phone_number_id: String },
}

#[derive(Subcommand)]
pub enum StorageAction {
    /// Encrypt every stored access token again under storage.encryption_key, so the keys of
    /// storage.previous_encryption_keys can be retired.
    Rekey,
}

#[derive(Args)]
pub struct Limits {
    /// Rate limit: calls added each second (with --burst).
    #[arg(long, requires = "burst")]
    per_second: Option<u64>,
    /// Rate limit: calls at once (with --per-second).
    #[arg(long, requires = "per_second")]
    burst: Option<u64>,
    /// Active groups per number.
    #[arg(long)]
    max_groups: Option<u64>,
}

impl Limits {
    fn read(&self) -> Result<(Option<RateLimitSettings>, Option<u32>), String> {
        let within = |option: &str, value: u64, range: &std::ops::RangeInclusive<u64>| {
            if range.contains(&value) {
                Ok(value as u32)
            } else {
                Err(format!(
                    "{option} must be from {} to {}",
                    range.start(),
                    range.end()
                ))
            }
        };
        let rate = match (self.per_second, self.burst) {
            (Some(p), Some(b)) => Some(RateLimitSettings {
                per_second: within("--per-second", p, &PER_SECOND)?,
                burst: within("--burst", b, &BURST)?,
            }),
            _ => None,
        };
        let max_groups = self
            .max_groups
            .map(|m| within("--max-groups", m, &MAX_GROUPS))
            .transpose()?;
        Ok((rate, max_groups))
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))
}

async fn open(settings: &Settings) -> Result<(Storage, Registry), String> {
    let storage = Storage::connect(settings.storage.url.expose_secret(), 1)
        .await
        .map_err(|e| format!("storage {} is unusable: {e}", settings.storage.url))?;
    let registry = Registry::start(
        Directory::from_settings(settings),
        &storage,
        settings.encryption.keys.clone(),
        settings.storage.cache_ttl.0,
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok((storage, registry))
}

/// Every team in force, configuration's and storage's, read the way `serve` reads them (a
/// key that cannot open the stored access tokens is an error naming it): `token issue` mints
/// for a team made through the API as `POST /v1/admin/tokens` does.
/// On a thread of its own, so a caller already inside a runtime (a test) may call it too.
pub fn teams_in_force(settings: &Settings) -> Result<BTreeMap<String, TeamSettings>, String> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                runtime()?.block_on(async {
                    let (_storage, registry) = open(settings).await?;
                    Ok(registry.directory().current().team_settings().clone())
                })
            })
            .join()
            .map_err(|_| "the storage reader stopped".to_owned())?
    })
}

/// What the API would answer, said for a terminal.
fn said(e: ApiError) -> String {
    match e {
        ApiError::Validation { errors, .. } if !errors.is_empty() => errors
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        ApiError::Validation { detail, .. } => detail,
        other => other.to_string(),
    }
}

fn json(value: &impl serde::Serialize) -> Result<String, String> {
    serde_json::to_string_pretty(value).map_err(|e| e.to_string())
}

/// `team …`: answers what to print on stdout.
pub fn team(settings: &Settings, action: TeamAction) -> Result<String, String> {
    runtime()?.block_on(async {
        let (_storage, registry) = open(settings).await?;
        match action {
            TeamAction::List => {
                let platform = registry.directory().current();
                json(&TeamList {
                    teams: platform
                        .teams
                        .iter()
                        .map(|(name, entry)| TeamInfo::of(name, entry))
                        .collect(),
                })
            }
            TeamAction::Put {
                name,
                phone_numbers,
                admin,
                limits,
            } => {
                let (rate_limit, max_groups) = limits.read()?;
                let phone_numbers = phone_numbers
                    .iter()
                    .map(|pn| {
                        PhoneNumberId::parse(pn).map_err(|m| format!("--phone-number {pn}: {m}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let put = registry
                    .put_team(
                        &name,
                        TeamChange {
                            phone_numbers,
                            admin,
                            rate_limit,
                            max_groups,
                        },
                    )
                    .await
                    .map_err(said)?;
                Ok(format!("team {name}: {put:?}").to_lowercase())
            }
            TeamAction::Delete { name } => {
                registry.delete_team(&name).await.map_err(said)?;
                Ok(format!("team {name}: deleted"))
            }
        }
    })
}

/// `phone-number …`: answers what to print on stdout. `stdin` gives the access token.
pub fn phone_number(
    settings: &Settings,
    action: PhoneNumberAction,
    stdin: &mut dyn Read,
) -> Result<String, String> {
    let token = match &action {
        PhoneNumberAction::Put { .. } => {
            let mut token = String::new();
            stdin
                .read_to_string(&mut token)
                .map_err(|e| format!("cannot read the access token from stdin: {e}"))?;
            let token = token.trim().to_owned();
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(
                    "the access token (stdin) must be visible ASCII characters, not empty".into(),
                );
            }
            Some(SecretString::from(token))
        }
        _ => None,
    };
    runtime()?.block_on(async {
        let (_storage, registry) = open(settings).await?;
        match action {
            PhoneNumberAction::List => {
                let platform = registry.directory().current();
                json(&PhoneNumberList {
                    phone_numbers: platform
                        .numbers
                        .iter()
                        .map(|(pn, entry)| PhoneNumberInfo::of(&platform, pn, entry))
                        .collect(),
                })
            }
            PhoneNumberAction::Put {
                phone_number_id,
                limits,
            } => {
                let (rate_limit, max_groups) = limits.read()?;
                let pn = PhoneNumberId::parse(&phone_number_id)
                    .map_err(|m| format!("phone number {phone_number_id}: {m}"))?;
                let (put, fingerprint) = registry
                    .put_number(
                        &pn,
                        NumberChange {
                            access_token: token.unwrap_or_else(|| SecretString::from("")),
                            rate_limit,
                            max_groups,
                        },
                    )
                    .await
                    .map_err(said)?;
                Ok(format!(
                    "phone number {pn}: {} (token_fingerprint {fingerprint})",
                    format!("{put:?}").to_lowercase()
                ))
            }
            PhoneNumberAction::Delete { phone_number_id } => {
                let pn = PhoneNumberId::parse(&phone_number_id)
                    .map_err(|m| format!("phone number {phone_number_id}: {m}"))?;
                registry.delete_number(&pn).await.map_err(said)?;
                Ok(format!("phone number {pn}: deleted"))
            }
        }
    })
}

/// `storage rekey`.
pub fn storage(settings: &Settings, action: StorageAction) -> Result<String, String> {
    match action {
        StorageAction::Rekey => runtime()?.block_on(async {
            let storage = Storage::connect(settings.storage.url.expose_secret(), 1)
                .await
                .map_err(|e| format!("storage {} is unusable: {e}", settings.storage.url))?;
            let done = crate::services::registry::rekey(
                storage.platform.as_ref(),
                &settings.encryption.keys,
            )
            .await?;
            let endpoints = crate::services::endpoints::rekey_secrets(
                storage.endpoints.as_ref(),
                &settings.encryption.keys,
            )
            .await?;
            Ok(format!(
                "{} access tokens encrypted under storage.encryption_key ({} were under a previous key); {endpoints} webhook endpoint secrets too",
                done.resealed, done.from_previous
            ))
        }),
    }
}
