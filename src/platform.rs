//! The teams and phone numbers in force (DESIGN §11): those of configuration, and those made
//! through the admin API (kept in storage). Everything that asks "which teams" or "which
//! numbers" reads one `Directory`: authentication (a token's team and its grants), token
//! issuing, rate limits, the Graph client's access tokens and the sandbox.
//!
//! The `Directory` only holds the merged view; `services::registry` fills it from storage and
//! keeps it true across replicas.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::hash::Hash;
use std::sync::{Arc, RwLock};

use secrecy::SecretString;

use crate::config::{RateLimitSettings, Settings, TeamSettings};
use crate::domain::PhoneNumberId;
use crate::ratelimit::{Limiter, Rate, RedisStore, Refusal};

/// Meta allows a phone number at most this many active groups.
pub const META_MAX_GROUPS: u32 = 10_000;

/// Where an entry is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Read-only through the API; configuration keeps defining it.
    Config,
    /// Made through the admin API; kept in storage.
    Api,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Api => "api",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TeamEntry {
    pub settings: TeamSettings,
    pub max_groups: Option<u32>,
    pub source: Source,
    /// RFC 3339; API entries only.
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NumberEntry {
    pub access_token: SecretString,
    /// Protects Meta's quota of this number, shared by every team using it.
    pub rate_limit: Option<RateLimitSettings>,
    pub max_groups: Option<u32>,
    pub source: Source,
    pub updated_at: Option<String>,
}

/// One consistent view of every team and number in force.
#[derive(Debug, Clone, Default)]
pub struct Platform {
    pub teams: BTreeMap<String, TeamEntry>,
    pub numbers: BTreeMap<PhoneNumberId, NumberEntry>,
    /// The teams' settings alone, for code that needs no more (token issuing, adoption).
    team_settings: Arc<BTreeMap<String, TeamSettings>>,
}

impl Platform {
    pub fn new(
        teams: BTreeMap<String, TeamEntry>,
        numbers: BTreeMap<PhoneNumberId, NumberEntry>,
    ) -> Self {
        let team_settings = Arc::new(
            teams
                .iter()
                .map(|(name, entry)| (name.clone(), entry.settings.clone()))
                .collect(),
        );
        Platform {
            teams,
            numbers,
            team_settings,
        }
    }

    /// The teams and numbers of configuration.
    pub fn from_settings(settings: &Settings) -> Self {
        let teams = settings
            .teams
            .iter()
            .map(|(name, team)| {
                let entry = TeamEntry {
                    settings: team.clone(),
                    max_groups: settings.team_max_groups.get(name).copied(),
                    source: Source::Config,
                    updated_at: None,
                };
                (name.clone(), entry)
            })
            .collect();
        let numbers = settings
            .phone_numbers
            .iter()
            .map(|(pn, token)| {
                let entry = NumberEntry {
                    access_token: token.clone(),
                    rate_limit: settings.phone_number_rate_limits.get(pn).cloned(),
                    max_groups: settings.phone_number_max_groups.get(pn).copied(),
                    source: Source::Config,
                    updated_at: None,
                };
                (pn.clone(), entry)
            })
            .collect();
        Platform::new(teams, numbers)
    }

    pub fn team_settings(&self) -> &BTreeMap<String, TeamSettings> {
        &self.team_settings
    }

    pub fn team(&self, name: &str) -> Option<&TeamSettings> {
        self.team_settings.get(name)
    }

    /// The teams granted `pn`.
    pub fn teams_granted(&self, pn: &PhoneNumberId) -> Vec<String> {
        self.team_settings
            .iter()
            .filter(|(_, t)| t.phone_numbers.contains(pn))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// The view in force, shared by every worker; replaced whole when anything changes, so a
/// reader never sees half of a change.
#[derive(Clone)]
pub struct Directory {
    current: Arc<RwLock<Arc<Platform>>>,
    /// `server.default_team_rate_limit`: the bucket of teams without their own.
    default_team_rate_limit: Option<RateLimitSettings>,
}

impl Default for Directory {
    /// No team, no number.
    fn default() -> Self {
        Directory::new(Platform::default(), None)
    }
}

impl Directory {
    pub fn new(platform: Platform, default_team_rate_limit: Option<RateLimitSettings>) -> Self {
        Directory {
            current: Arc::new(RwLock::new(Arc::new(platform))),
            default_team_rate_limit,
        }
    }

    /// Configuration's teams and numbers, until storage's are loaded.
    pub fn from_settings(settings: &Settings) -> Self {
        Self::new(
            Platform::from_settings(settings),
            settings.server.default_team_rate_limit.clone(),
        )
    }

    pub fn current(&self) -> Arc<Platform> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn replace(&self, platform: Platform) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(platform);
    }

    /// The access token of `pn`, if it is a number in force.
    pub fn access_token(&self, pn: &PhoneNumberId) -> Option<SecretString> {
        self.current()
            .numbers
            .get(pn)
            .map(|n| n.access_token.clone())
    }

    /// The team's bucket: its own `rate_limit`, else the server default; none for an
    /// unknown team.
    pub fn team_rate(&self, team: &String) -> Option<Rate> {
        let platform = self.current();
        let entry = platform.teams.get(team)?;
        entry
            .settings
            .rate_limit
            .as_ref()
            .or(self.default_team_rate_limit.as_ref())
            .map(rate)
    }

    /// What a creation by `team` on `pn` must stay within: the number's `max_groups`
    /// (Meta's 10,000 when unset), and the team's when set.
    pub fn max_groups(&self, team: &str, pn: &PhoneNumberId) -> (u32, Option<u32>) {
        let platform = self.current();
        let number = platform
            .numbers
            .get(pn)
            .and_then(|n| n.max_groups)
            .unwrap_or(META_MAX_GROUPS);
        (number, platform.teams.get(team).and_then(|t| t.max_groups))
    }

    /// The number's bucket, when it has one.
    pub fn number_rate(&self, pn: &PhoneNumberId) -> Option<Rate> {
        self.current()
            .numbers
            .get(pn)?
            .rate_limit
            .as_ref()
            .map(rate)
    }
}

fn rate(limit: &RateLimitSettings) -> Rate {
    Rate {
        per_second: limit.per_second,
        burst: limit.burst,
    }
}

/// Rate limits that follow the directory: each key's bucket is made when first needed, and
/// made again when its rate changed (a team or number replaced through the API). Keys are
/// teams and numbers in force, so the map is as large as the directory at most.
pub struct LiveLimiter<K> {
    kind: &'static str,
    shared: Option<Arc<RedisStore>>,
    rate_of: RateOf<K>,
    limiters: RwLock<HashMap<K, RatedLimiter<K>>>,
}

/// A key's rate now: None when it is not limited.
type RateOf<K> = Box<dyn Fn(&K) -> Option<Rate> + Send + Sync>;
/// A key's bucket and the rate it was made for.
type RatedLimiter<K> = (Rate, Arc<Limiter<K>>);

impl<K: Hash + Eq + Clone + Display> LiveLimiter<K> {
    pub fn new(
        kind: &'static str,
        shared: Option<Arc<RedisStore>>,
        rate_of: impl Fn(&K) -> Option<Rate> + Send + Sync + 'static,
    ) -> Self {
        LiveLimiter {
            kind,
            shared,
            rate_of: Box::new(rate_of),
            limiters: RwLock::default(),
        }
    }

    /// Takes one token, or says how long until one is available; a key without a rate is
    /// never refused.
    pub async fn check(&self, key: &K) -> Result<(), Refusal> {
        let Some(rate) = (self.rate_of)(key) else {
            return Ok(());
        };
        let known = self
            .limiters
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .filter(|(r, _)| *r == rate)
            .map(|(_, limiter)| limiter.clone());
        let limiter = match known {
            Some(limiter) => limiter,
            None => {
                let mut limiters = self.limiters.write().unwrap_or_else(|p| p.into_inner());
                match limiters.get(key) {
                    Some((r, limiter)) if *r == rate => limiter.clone(),
                    _ => {
                        let limiter = Arc::new(Limiter::new(
                            self.kind,
                            [(key.clone(), rate)],
                            self.shared.clone(),
                        ));
                        limiters.insert(key.clone(), (rate, limiter.clone()));
                        limiter
                    }
                }
            }
        };
        limiter.check(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_changed_rate_takes_effect_at_the_next_check() {
        let rate = Arc::new(RwLock::new(Some(Rate {
            per_second: 1,
            burst: 1,
        })));
        let read = rate.clone();
        let limiter = LiveLimiter::new("test", None, move |_: &String| {
            *read.read().unwrap_or_else(|p| p.into_inner())
        });
        let key = "a".to_owned();
        assert!(limiter.check(&key).await.is_ok());
        assert!(
            limiter.check(&key).await.is_err(),
            "the burst of 1 is spent"
        );
        *rate.write().unwrap() = Some(Rate {
            per_second: 1,
            burst: 5,
        });
        assert!(limiter.check(&key).await.is_ok(), "the new rate holds");
        *rate.write().unwrap() = None;
        for _ in 0..10 {
            assert!(limiter.check(&key).await.is_ok(), "no rate, no limit");
        }
    }
}
