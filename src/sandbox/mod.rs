//! Sandbox mode (README, "Sandbox"): a stateful simulation of Meta's Groups API, so the gateway
//! runs with no Meta account and every flow can be tried end to end.
//!
//! Two faces, both under `/sandbox`:
//! - `/sandbox/graph/{version}/…` answers every upstream call the gateway's Graph client
//!   makes (`graph/operations.rs`), with Meta's rules, status codes and error envelope, and
//!   sends the webhooks Meta would send, signed with the app secret;
//! - `/sandbox/groups/…` plays the WhatsApp users' side: join by link (or ask to join),
//!   leave, write in a group, and Meta's own suspension of a group.
//!
//! In gateway mode the gateway's Graph client points at `/sandbox/graph` on its own port and
//! webhooks go to its own ingress; `wa-groups-gateway sandbox` serves the simulation alone
//! (see [`standalone`]). Nothing here is mounted in live mode.

mod emit;
mod graph;
mod ids;
mod meta;
mod pace;
pub mod standalone;
mod state;
mod users;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::web;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::config::Settings;
use crate::domain::PhoneNumberId;
use crate::platform::{Directory, NumberEntry, Platform, Source};
use emit::Emitter;
use state::World;

pub use meta::MetaFailure;
pub use standalone::Standalone;

/// Largest upload the simulated Graph reads: Meta's 5 MiB picture limit plus multipart framing,
/// so that an oversized picture gets Meta's refusal rather than a framework error.
const GRAPH_BODY_LIMIT: usize = 6 * 1024 * 1024;

/// What the simulation needs to know; built from [`Settings`] by [`SandboxOptions::from_settings`].
pub struct SandboxOptions {
    /// The key of `X-Hub-Signature-256` on every webhook sent.
    pub app_secret: SecretString,
    /// The access token Meta would accept for each business phone number.
    pub tokens: BTreeMap<PhoneNumberId, SecretString>,
    /// How long after the simulated call its webhook is sent.
    pub webhook_delay: Duration,
    /// Where webhooks go; `None` keeps them only in the `/sandbox/webhooks` log.
    pub webhook_url: Option<String>,
    /// The gateway's `graph.api_version`, shown in help texts.
    pub api_version: String,
    /// In gateway mode, the numbers in force: a number added through the admin API is
    /// served from the next call on, with its token. `tokens` is used without it.
    pub live: Option<Directory>,
    /// Group operations per second a number may make before Meta's 131208.
    pub group_operations_per_second: u32,
}

impl SandboxOptions {
    pub fn from_settings(settings: &Settings, webhook_url: Option<String>) -> Self {
        SandboxOptions {
            app_secret: settings.webhooks.app_secret.clone(),
            tokens: settings.phone_numbers.clone(),
            webhook_delay: Duration::from_millis(settings.sandbox.webhook_delay_ms),
            webhook_url,
            api_version: settings.graph.api_version.clone(),
            live: None,
            group_operations_per_second: settings.sandbox.group_operations_per_second,
        }
    }

    /// Serves the numbers `directory` holds, whenever asked, instead of `tokens`.
    pub fn following(mut self, directory: Directory) -> Self {
        self.live = Some(directory);
        self
    }
}

/// The simulated world, shared by every actix worker (clones share it).
#[derive(Clone)]
pub struct SandboxState {
    world: Arc<Mutex<World>>,
    shared: Arc<Shared>,
}

struct Shared {
    /// Phone number id → the access token Meta would accept for it.
    tokens: Directory,
    emitter: Emitter,
    api_version: String,
    pace: Mutex<pace::Pace>,
}

impl SandboxState {
    /// Starts the webhook sender (a thread of its own: awc clients cannot move between
    /// threads, and a webhook must never hold up the simulated answer).
    pub fn new(options: SandboxOptions) -> Self {
        let tokens = options.live.unwrap_or_else(|| fixed_tokens(options.tokens));
        let world = World::new(tokens.current().numbers.keys().map(|pn| pn.to_string()));
        SandboxState {
            world: Arc::new(Mutex::new(world)),
            shared: Arc::new(Shared {
                tokens,
                emitter: Emitter::new(
                    options.app_secret,
                    options.webhook_delay,
                    options.webhook_url,
                ),
                api_version: options.api_version,
                pace: Mutex::new(pace::Pace::new(options.group_operations_per_second)),
            }),
        }
    }

    /// Counts one group operation of `pn`: Meta's 131208 while the number is throttled, or
    /// when it is driven faster than allowed (which throttles it for a minute).
    fn pace(&self, pn: &str) -> Result<(), MetaFailure> {
        self.shared
            .pace
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(pn, std::time::Instant::now())
    }

    /// Meta throttles the number's group operations for `minutes`, from now.
    fn throttle(&self, pn: &str, minutes: u64) {
        self.shared
            .pace
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .throttle(pn, std::time::Instant::now(), minutes);
    }

    /// The `/sandbox` scope: the simulated Graph API and the users' side.
    pub fn scope(&self) -> actix_web::Scope {
        web::scope("/sandbox")
            .app_data(web::Data::new(self.clone()))
            .app_data(web::PayloadConfig::default().limit(GRAPH_BODY_LIMIT))
            .service(graph::scope())
            .configure(users::configure)
    }

    /// The world, even after a panic elsewhere: the simulation has no invariant a
    /// half-finished change could break badly enough to stop serving.
    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The phone numbers whose access token is `token` (one token may serve several).
    fn numbers_of_token(&self, token: &str) -> Vec<String> {
        let numbers: Vec<String> = self
            .shared
            .tokens
            .current()
            .numbers
            .iter()
            .filter(|(_, n)| {
                bool::from(
                    n.access_token
                        .expose_secret()
                        .as_bytes()
                        .ct_eq(token.as_bytes()),
                )
            })
            .map(|(pn, _)| pn.to_string())
            .collect();
        // A number added through the admin API since the start has no state yet.
        self.world().know_numbers(&numbers);
        numbers
    }

    fn emitter(&self) -> &Emitter {
        &self.shared.emitter
    }

    fn api_version(&self) -> &str {
        &self.shared.api_version
    }

    fn phone_numbers(&self) -> impl Iterator<Item = String> {
        let numbers: Vec<String> = self
            .shared
            .tokens
            .current()
            .numbers
            .keys()
            .map(|pn| pn.to_string())
            .collect();
        numbers.into_iter()
    }
}

/// The standalone simulation's numbers: fixed at start.
fn fixed_tokens(tokens: BTreeMap<PhoneNumberId, SecretString>) -> Directory {
    let numbers = tokens
        .into_iter()
        .map(|(pn, access_token)| {
            let entry = NumberEntry {
                access_token,
                rate_limit: None,
                max_groups: None,
                source: Source::Config,
                updated_at: None,
            };
            (pn, entry)
        })
        .collect();
    Directory::new(Platform::new(BTreeMap::new(), numbers), None)
}
