//! A team's webhook endpoints (DESIGN §12): made, changed, rotated and replayed by the team
//! (scope `webhooks`), listed with their health for the team and for administrators.
//! Secrets are stored sealed (AES-256-GCM under `storage.encryption_key`) and shown only
//! when made or rotated.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use super::delivery::{DeliveryHandle, secret_owner};
use crate::clock::now_ms;
use crate::crypto::Keyring;
use crate::domain::endpoint::{EndpointId, EventTypeFilter, generate_secret};
use crate::domain::url::without_credentials;
use crate::error::ApiError;
use crate::storage::{
    AttemptFilter, AttemptRecord, EndpointChange, EndpointRecord, EndpointStore, NewEndpoint,
    ReplayOutcome, ReplaySelection, Storage,
};

/// Endpoints one team may have.
pub const MAX_ENDPOINTS_PER_TEAM: i64 = 20;

/// What a team asks for when it makes an endpoint (checked already).
pub struct EndpointSpec {
    pub url: String,
    pub description: String,
    pub event_types: Option<EventTypeFilter>,
    pub disabled: bool,
}

#[derive(Clone)]
pub struct Endpoints {
    store: Arc<dyn EndpointStore>,
    keys: Keyring,
    secret_overlap: Duration,
    deliveries: DeliveryHandle,
}

impl Endpoints {
    pub fn new(
        storage: &Storage,
        keys: Keyring,
        secret_overlap: Duration,
        deliveries: DeliveryHandle,
    ) -> Self {
        Endpoints {
            store: storage.endpoints.clone(),
            keys,
            secret_overlap,
            deliveries,
        }
    }

    fn seal(&self, team: &str, id: &str, secret: &str) -> Result<String, ApiError> {
        let key = self.keys.current.as_ref().ok_or_else(|| {
            ApiError::Conflict(
                "endpoint secrets are stored encrypted, and no storage.encryption_key is set"
                    .into(),
            )
        })?;
        Ok(key.seal(
            &secret_owner(team, id),
            &SecretString::from(secret.to_owned()),
        ))
    }

    /// Makes an endpoint; answers it and its secret (shown this once).
    pub async fn create(
        &self,
        team: &str,
        spec: EndpointSpec,
    ) -> Result<(EndpointRecord, String), ApiError> {
        if self.store.count_endpoints(team).await? >= MAX_ENDPOINTS_PER_TEAM {
            return Err(ApiError::Conflict(format!(
                "a team has at most {MAX_ENDPOINTS_PER_TEAM} webhook endpoints; delete one first"
            )));
        }
        let id = EndpointId::generate();
        let secret = generate_secret();
        let sealed = self.seal(team, id.as_str(), &secret)?;
        self.store
            .create_endpoint(&NewEndpoint {
                team,
                id: id.as_str(),
                url: &spec.url,
                description: &spec.description,
                event_types: spec.event_types.as_ref().map(EventTypeFilter::items),
                sealed_secret: &sealed,
                disabled: spec.disabled,
            })
            .await?;
        let created = self.get(team, id.as_str()).await?;
        Ok((created, secret))
    }

    /// The team's endpoints (or every team's), URLs shown without credentials or query.
    pub async fn list(&self, team: Option<&str>) -> Result<Vec<EndpointRecord>, ApiError> {
        let mut endpoints = self.store.list_endpoints(team).await?;
        endpoints.iter_mut().for_each(shown);
        Ok(endpoints)
    }

    /// One of the team's endpoints; another team's is as unknown as a missing one (404).
    pub async fn get(&self, team: &str, id: &str) -> Result<EndpointRecord, ApiError> {
        let mut endpoint = self
            .store
            .endpoint(team, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        shown(&mut endpoint);
        Ok(endpoint)
    }

    /// The endpoint unless it is configuration's (read-only: 409).
    async fn writable(&self, team: &str, id: &EndpointId) -> Result<(), ApiError> {
        self.get(team, id.as_str()).await?;
        if id.is_config() {
            return Err(ApiError::Conflict(format!(
                "the endpoint `config` is teams.{team}.webhook of the configuration: read-only here"
            )));
        }
        Ok(())
    }

    pub async fn update(
        &self,
        team: &str,
        id: &EndpointId,
        change: EndpointChange,
    ) -> Result<EndpointRecord, ApiError> {
        self.writable(team, id).await?;
        if !self
            .store
            .update_endpoint(team, id.as_str(), &change)
            .await?
        {
            return Err(not_found(id.as_str()));
        }
        if change.disabled == Some(false) {
            self.deliveries.kick();
        }
        self.get(team, id.as_str()).await
    }

    pub async fn delete(&self, team: &str, id: &EndpointId) -> Result<(), ApiError> {
        self.writable(team, id).await?;
        if !self.store.delete_endpoint(team, id.as_str()).await? {
            return Err(not_found(id.as_str()));
        }
        Ok(())
    }

    /// A new secret; the old one keeps signing too for `webhooks.secret_overlap`.
    pub async fn rotate(&self, team: &str, id: &EndpointId) -> Result<String, ApiError> {
        self.writable(team, id).await?;
        let secret = generate_secret();
        let sealed = self.seal(team, id.as_str(), &secret)?;
        let until = now_ms() + self.secret_overlap.as_millis() as i64;
        if !self
            .store
            .rotate_secret(team, id.as_str(), &sealed, until)
            .await?
        {
            return Err(not_found(id.as_str()));
        }
        Ok(secret)
    }

    pub async fn attempts(
        &self,
        team: &str,
        id: &str,
        filter: &AttemptFilter<'_>,
    ) -> Result<Vec<AttemptRecord>, ApiError> {
        self.get(team, id).await?;
        Ok(self.store.list_attempts(team, id, filter).await?)
    }

    /// Queues the selected events again; answers how many deliveries were queued.
    pub async fn replay(
        &self,
        team: &str,
        id: &str,
        selection: &ReplaySelection<'_>,
    ) -> Result<u64, ApiError> {
        let endpoint = self.get(team, id).await?;
        let filter = endpoint.event_types.map(EventTypeFilter::new);
        match self
            .store
            .replay(team, id, selection, filter.as_ref())
            .await?
        {
            ReplayOutcome::Queued(n) => {
                self.deliveries.kick();
                Ok(n)
            }
            ReplayOutcome::Unknown(ids) => Err(ApiError::field(
                "event_ids",
                format!("not events of this team: {}", ids.join(", ")),
            )),
        }
    }
}

fn shown(endpoint: &mut EndpointRecord) {
    endpoint.url = without_credentials(&endpoint.url);
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no webhook endpoint {id} for this team"))
}

/// `storage rekey` for endpoint secrets: each one (and the one before a rotation, while it
/// is kept) sealed anew under the current key. Answers how many endpoints.
pub async fn rekey_secrets(store: &dyn EndpointStore, keys: &Keyring) -> Result<u64, String> {
    let current = keys
        .current
        .as_ref()
        .ok_or("storage.encryption_key is not set: there is no key to seal under")?;
    let mut count = 0;
    for (team, id, sealed, previous) in store.sealed_secrets().await.map_err(|e| e.to_string())? {
        let owner = secret_owner(&team, &id);
        let open = |sealed: &str| {
            keys.open(&owner, sealed).map(|(s, _)| s).ok_or_else(|| {
                format!(
                    "the secret of webhook endpoint {id} of team {team} opens with none of the keys"
                )
            })
        };
        let resealed = current.seal(&owner, &open(&sealed)?);
        // The previous secret only matters during its overlap; one that no key opens is
        // dropped rather than blocking the rekey.
        let previous = previous
            .as_deref()
            .and_then(|p| open(p).ok())
            .map(|p| current.seal(&owner, &p));
        store
            .reseal_secret(&team, &id, &resealed, previous.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        count += 1;
    }
    Ok(count)
}
