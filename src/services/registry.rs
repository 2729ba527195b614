//! Teams and phone numbers managed at runtime (DESIGN §11). Configuration's entries stay
//! read-only (409) and keep their meaning; the API's live in storage, their access tokens
//! sealed under `storage.encryption_key`. The merged view is the `Directory` everything
//! reads.
//!
//! The view stays true the way the ownership cache does: the replica that makes a change
//! reloads right after its commit; the others hear of it on `wagw_platform` and reload; when
//! the notification connection is (re)opened they reload, since announcements may have been
//! missed; and whatever happens to notifications, the view is read again every quarter of
//! `storage.cache_ttl`. A view older than `storage.cache_ttl` (storage unreadable all that
//! while) is not answered from: the API's entries are dropped until storage answers again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Mutex, Notify};

use crate::clock::now;
use crate::config::{RateLimitSettings, TeamSettings};
use crate::crypto::{self, Keyring, OpenedWith};
use crate::domain::{PhoneNumberId, TeamName};
use crate::error::ApiError;
use crate::platform::{Directory, NumberEntry, Platform, Source, TeamEntry};
use crate::storage::{
    NumberDelete, PlatformStore, Put, Storage, StoredNumber, StoredTeam, TeamPut,
};
use crate::supervisor::Supervisor;

/// The key named when tokens cannot be sealed or opened.
pub const KEY: &str = "storage.encryption_key";

/// Why the stored entries cannot be used (the gateway refuses to start).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error(
        "storage.encryption_key cannot decrypt the access token stored for phone number {0}: it was sealed under another key (set that key as storage.encryption_key, or list it in storage.previous_encryption_keys)"
    )]
    WrongKey(String),
    #[error(
        "storage.encryption_key is not set, but access tokens are stored sealed (phone number {0}): set the key they were sealed with"
    )]
    NoKey(String),
}

/// A team as `PUT` gives it; a field left out takes its default.
#[derive(Debug, Clone)]
pub struct TeamChange {
    pub phone_numbers: Vec<PhoneNumberId>,
    pub admin: bool,
    pub rate_limit: Option<RateLimitSettings>,
    pub max_groups: Option<u32>,
}

/// A phone number as `PUT` gives it.
pub struct NumberChange {
    pub access_token: SecretString,
    pub rate_limit: Option<RateLimitSettings>,
    pub max_groups: Option<u32>,
}

#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    directory: Directory,
    /// Configuration's entries, which the API's never override.
    config: Platform,
    store: Arc<dyn PlatformStore>,
    keys: Keyring,
    ttl: Duration,
    /// One load at a time, so an older read never replaces a newer one.
    loading: Mutex<Option<Instant>>,
    /// Wakes the reloader (a notification, or a reconnection).
    changed: Notify,
}

impl Registry {
    /// Loads the stored entries over configuration's into `directory`: an access token no
    /// key opens is an error naming the key (the gateway does not start).
    pub async fn start(
        directory: Directory,
        storage: &Storage,
        keys: Keyring,
        ttl: Duration,
    ) -> Result<Registry, RegistryError> {
        let registry = Registry {
            inner: Arc::new(Inner {
                config: (*directory.current()).clone(),
                directory,
                store: storage.platform.clone(),
                keys,
                ttl,
                loading: Mutex::new(None),
                changed: Notify::new(),
            }),
        };
        registry.load(true).await?;
        Ok(registry)
    }

    /// Follows other replicas' changes from now on.
    pub fn follow(&self, storage: &Storage, supervisor: &Supervisor) {
        let woken = self.clone();
        storage.watch_platform(
            Arc::new(move |_| woken.inner.changed.notify_one()),
            supervisor,
        );
        let registry = self.clone();
        supervisor.spawn("platform-reload", move || {
            let registry = registry.clone();
            async move { registry.reload_forever().await }
        });
    }

    pub fn directory(&self) -> &Directory {
        &self.inner.directory
    }

    async fn reload_forever(&self) {
        let every = (self.inner.ttl / 4).max(Duration::from_millis(100));
        loop {
            let _ = tokio::time::timeout(every, self.inner.changed.notified()).await;
            if let Err(e) = self.load(false).await {
                tracing::warn!(error = %e, "cannot read the stored teams and phone numbers");
                self.expire_if_stale().await;
            }
        }
    }

    /// Past `storage.cache_ttl` without a successful read, only configuration's entries
    /// are answered.
    async fn expire_if_stale(&self) {
        let loaded = self.inner.loading.lock().await;
        if loaded.is_none_or(|at| at.elapsed() >= self.inner.ttl) {
            self.inner.directory.replace(self.inner.config.clone());
        }
    }

    /// Reads storage and replaces the view. `strict`: a token no key opens is an error;
    /// otherwise that number is left out (and logged), the rest is served.
    async fn load(&self, strict: bool) -> Result<(), RegistryError> {
        let mut loaded = self.inner.loading.lock().await;
        let started = Instant::now();
        let teams = self.inner.store.stored_teams().await?;
        let numbers = self.inner.store.stored_numbers().await?;
        let mut platform = self.inner.config.clone();
        let mut all_numbers = std::mem::take(&mut platform.numbers);
        for stored in numbers {
            let Ok(pn) = PhoneNumberId::parse(&stored.phone_number_id) else {
                continue;
            };
            if all_numbers.contains_key(&pn) {
                continue;
            }
            let opened = self
                .inner
                .keys
                .open(&stored.phone_number_id, &stored.sealed_token);
            let Some((token, _)) = opened else {
                let error = match self.inner.keys.current {
                    None => RegistryError::NoKey(stored.phone_number_id.clone()),
                    Some(_) => RegistryError::WrongKey(stored.phone_number_id.clone()),
                };
                if strict {
                    return Err(error);
                }
                tracing::error!(error = %error, "a stored phone number is left out");
                continue;
            };
            all_numbers.insert(
                pn,
                NumberEntry {
                    access_token: token,
                    rate_limit: stored.rate_limit.map(rate_settings),
                    max_groups: stored.max_groups,
                    source: Source::Api,
                    updated_at: Some(stored.updated_at),
                },
            );
        }
        let mut all_teams = std::mem::take(&mut platform.teams);
        for stored in teams {
            if all_teams.contains_key(&stored.name) {
                continue;
            }
            let phone_numbers = stored
                .phone_numbers
                .iter()
                .filter_map(|pn| PhoneNumberId::parse(pn).ok())
                // A number left out above grants nothing.
                .filter(|pn| all_numbers.contains_key(pn))
                .collect();
            all_teams.insert(
                stored.name.clone(),
                TeamEntry {
                    settings: TeamSettings {
                        phone_numbers,
                        admin: stored.admin,
                        rate_limit: stored.rate_limit.map(rate_settings),
                        webhook: None,
                    },
                    max_groups: stored.max_groups,
                    source: Source::Api,
                    updated_at: Some(stored.updated_at),
                },
            );
        }
        self.inner
            .directory
            .replace(Platform::new(all_teams, all_numbers));
        *loaded = Some(started);
        Ok(())
    }

    /// Reloads after a change this replica committed: in force here at once.
    async fn reload_after_change(&self) -> Result<(), ApiError> {
        self.load(false)
            .await
            .map_err(|e| ApiError::Internal(format!("the change is stored, but: {e}")))
    }

    fn read_only(&self, what: &str) -> ApiError {
        ApiError::Conflict(format!(
            "{what} is defined in configuration: it is read-only through the API"
        ))
    }

    /// Creates or replaces an API team. A team of configuration is read-only (409, whatever
    /// its name); the name must follow `TeamName` (400 naming `team`); every number must be
    /// in force (400 naming `phone_numbers[i]`).
    pub async fn put_team(&self, name: &str, change: TeamChange) -> Result<Put, ApiError> {
        if self.inner.config.teams.contains_key(name) {
            return Err(self.read_only(&format!("team {name}")));
        }
        let name = TeamName::parse(name).map_err(|m| ApiError::field("team", m))?;
        let current = self.inner.directory.current();
        let mut unknown = Vec::new();
        let mut stored_numbers = Vec::new();
        for (i, pn) in change.phone_numbers.iter().enumerate() {
            match current.numbers.get(pn) {
                None => unknown.push(crate::domain::FieldError {
                    field: format!("phone_numbers[{i}]"),
                    message: format!("phone number {pn} is not known to the gateway"),
                }),
                Some(entry) if entry.source == Source::Api => stored_numbers.push(pn.to_string()),
                Some(_) => {}
            }
        }
        if !unknown.is_empty() {
            return Err(ApiError::fields(unknown));
        }
        let stored = StoredTeam {
            name: name.to_string(),
            phone_numbers: change.phone_numbers.iter().map(|p| p.to_string()).collect(),
            admin: change.admin,
            rate_limit: change.rate_limit.map(|r| (r.per_second, r.burst)),
            max_groups: change.max_groups,
            updated_at: now(),
        };
        let put = match self.inner.store.put_team(&stored, &stored_numbers).await? {
            TeamPut::Done(put) => put,
            TeamPut::UnknownNumber(pn) => {
                let i = stored
                    .phone_numbers
                    .iter()
                    .position(|p| *p == pn)
                    .unwrap_or_default();
                return Err(ApiError::field(
                    &format!("phone_numbers[{i}]"),
                    format!("phone number {pn} is not known to the gateway"),
                ));
            }
        };
        self.reload_after_change().await?;
        Ok(put)
    }

    /// Deletes an API team: its tokens are refused from the next request on.
    pub async fn delete_team(&self, name: &str) -> Result<(), ApiError> {
        if self.inner.config.teams.contains_key(name) {
            return Err(self.read_only(&format!("team {name}")));
        }
        if !self.inner.store.delete_team(name).await? {
            return Err(ApiError::NotFound(format!("team {name} not found")));
        }
        self.reload_after_change().await
    }

    /// Creates or replaces an API number; its token is stored sealed (409 naming the key
    /// when there is none). Answers the token's fingerprint.
    pub async fn put_number(
        &self,
        pn: &PhoneNumberId,
        change: NumberChange,
    ) -> Result<(Put, String), ApiError> {
        if self.inner.config.numbers.contains_key(pn) {
            return Err(self.read_only(&format!("phone number {pn}")));
        }
        let key = self.inner.keys.current.as_ref().ok_or_else(|| {
            ApiError::Conflict(format!(
                "{KEY} is not set: access tokens cannot be stored (they are stored only encrypted)"
            ))
        })?;
        let fingerprint = token_fingerprint(&change.access_token);
        let stored = StoredNumber {
            phone_number_id: pn.to_string(),
            sealed_token: key.seal(pn.as_str(), &change.access_token),
            token_fingerprint: fingerprint.clone(),
            rate_limit: change.rate_limit.map(|r| (r.per_second, r.burst)),
            max_groups: change.max_groups,
            updated_at: now(),
        };
        let put = self.inner.store.put_number(&stored).await?;
        self.reload_after_change().await?;
        Ok((put, fingerprint))
    }

    /// Deletes an API number unless a team is still granted it (409 naming the teams).
    pub async fn delete_number(&self, pn: &PhoneNumberId) -> Result<(), ApiError> {
        if self.inner.config.numbers.contains_key(pn) {
            return Err(self.read_only(&format!("phone number {pn}")));
        }
        match self.inner.store.delete_number(pn.as_str()).await? {
            NumberDelete::Deleted => self.reload_after_change().await,
            NumberDelete::Absent => Err(ApiError::NotFound(format!("phone number {pn} not found"))),
            NumberDelete::Granted(teams) => Err(ApiError::Conflict(format!(
                "phone number {pn} is still granted to the teams {}: remove it from them first",
                teams.join(", ")
            ))),
        }
    }
}

/// The first 8 hex digits of SHA-256 of the access token (DESIGN §11).
pub fn token_fingerprint(token: &SecretString) -> String {
    crypto::fingerprint(token.expose_secret().as_bytes())
}

fn rate_settings((per_second, burst): (u32, u32)) -> RateLimitSettings {
    RateLimitSettings { per_second, burst }
}

/// What `storage rekey` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rekeyed {
    /// Tokens sealed anew under the current key.
    pub resealed: u64,
    /// Of those, how many were sealed under a previous key.
    pub from_previous: u64,
}

/// Seals every stored access token anew under the current key (`storage rekey`), so the
/// previous keys can be retired. A token no key opens stops it before anything is written,
/// naming the key.
pub async fn rekey(store: &dyn PlatformStore, keys: &Keyring) -> Result<Rekeyed, String> {
    let current = keys
        .current
        .as_ref()
        .ok_or_else(|| format!("{KEY} is not set: there is no key to seal under"))?;
    let numbers = store.stored_numbers().await.map_err(|e| e.to_string())?;
    let mut resealed = Vec::with_capacity(numbers.len());
    let mut from_previous = 0;
    for number in &numbers {
        let (token, opened_with) = keys
            .open(&number.phone_number_id, &number.sealed_token)
            .ok_or_else(|| RegistryError::WrongKey(number.phone_number_id.clone()).to_string())?;
        if opened_with == OpenedWith::Previous {
            from_previous += 1;
        }
        resealed.push((
            number.phone_number_id.clone(),
            number.sealed_token.clone(),
            current.seal(&number.phone_number_id, &token),
        ));
    }
    let count = store
        .reseal_numbers(&resealed)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Rekeyed {
        resealed: count,
        from_previous,
    })
}
