//! Who is calling (JWT verification) and what they may do (scopes, phone-number grants).
//! Authentication is an extractor: a handler that takes a `Principal` cannot forget it.

use std::collections::HashMap;
use std::sync::RwLock;

use actix_web::{HttpMessage, HttpRequest, web};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::config::{AuthSettings, KeyAlgorithm, KeySettings};
use crate::context;
pub use crate::domain::Scope;
use crate::domain::{PhoneNumberId, TokenId};
use crate::error::ApiError;
use crate::platform::Directory;
use crate::services::revocation::RevocationList;
use crate::telemetry::AuthenticatedTeam;
use crate::tokens::ApprovedToken;

/// The claims the gateway issues and requires (README, "Authentication").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// A string or a list; checked by the verifier against `auth.audience`.
    pub aud: serde_json::Value,
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_numbers: Option<Vec<String>>,
}

/// An authenticated caller: a team, its token's scopes and the numbers it may use.
#[derive(Debug, Clone)]
pub struct Principal {
    pub team: String,
    pub jti: TokenId,
    scopes: Vec<Scope>,
    /// The team's grants (config or the admin API), narrowed by the token's
    /// `phone_numbers` claim; read anew from the registry for every request.
    numbers: Vec<PhoneNumberId>,
    /// The token's `phone_numbers` claim.
    claimed_numbers: Option<Vec<String>>,
    /// The token carries `phone_numbers`: it may act only on those numbers, never on what
    /// concerns no single number (README, "Security rules", "Narrowing only narrows").
    narrowed: bool,
    team_is_admin: bool,
}

impl Principal {
    /// 403 unless the token carries `scope` (admin only counts for admin teams).
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        let granted = self.scopes.contains(&scope) && (scope != Scope::Admin || self.team_is_admin);
        if granted {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "the token lacks the scope {}",
                scope.as_str()
            )))
        }
    }

    /// 403 unless the number is granted to the team and not narrowed away by the token.
    pub fn require_number(&self, pn: &PhoneNumberId) -> Result<(), ApiError> {
        if self.numbers.contains(pn) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "phone number {pn} is not granted to this token"
            )))
        }
    }

    /// The numbers this token may use: the team's grants, narrowed by the token.
    pub fn numbers(&self) -> &[PhoneNumberId] {
        &self.numbers
    }

    /// The numbers a narrowed token is limited to; None for a token without `phone_numbers`,
    /// which may act on everything its team may.
    pub fn narrowed_to(&self) -> Option<&[PhoneNumberId]> {
        self.narrowed.then_some(self.numbers.as_slice())
    }

    /// 403 unless a token narrowed to `phone_numbers` (None: not narrowed) would grant no
    /// number this one lacks: a narrowed token issues only tokens narrowed to a subset of
    /// its own numbers.
    pub fn require_may_issue_for(&self, phone_numbers: Option<&[String]>) -> Result<(), ApiError> {
        let Some(own) = self.narrowed_to() else {
            return Ok(());
        };
        let Some(asked) = phone_numbers else {
            return Err(ApiError::Forbidden(
                "a token with phone_numbers issues only tokens with phone_numbers, a subset of its own".into(),
            ));
        };
        match asked
            .iter()
            .find(|n| !own.iter().any(|o| o.as_str() == n.as_str()))
        {
            Some(n) => Err(ApiError::Forbidden(format!(
                "phone number {n} is not granted to this token, so it cannot grant it"
            ))),
            None if asked.is_empty() => Err(ApiError::Forbidden(
                "a token with phone_numbers issues only tokens for at least one of its numbers"
                    .into(),
            )),
            None => Ok(()),
        }
    }

    /// 403 for a token with `phone_numbers`: what concerns no single number (revoking
    /// tokens, audit records without a number, the teams' endpoints) needs the whole team.
    pub fn require_unnarrowed(&self) -> Result<(), ApiError> {
        if self.narrowed {
            Err(ApiError::Forbidden(
                "this needs a token without phone_numbers: it concerns no single number".into(),
            ))
        } else {
            Ok(())
        }
    }
}

struct VerificationKey {
    key: DecodingKey,
    algorithm: Algorithm,
    /// What a token signed with this key must satisfy; built once, not per request.
    validation: Validation,
}

/// Verifies tokens. Keys are chosen by `kid`, and each key accepts only its own algorithm,
/// so a token cannot pick `none` or trick an RSA key into HMAC.
pub struct Authenticator {
    keys: HashMap<String, VerificationKey>,
    /// `auth.leeway_seconds`, for the checks of `iat` jsonwebtoken does not make.
    leeway_seconds: u64,
    /// `auth.max_token_ttl_seconds`: the longest `exp - iat` accepted.
    max_ttl_seconds: u64,
    /// The teams in force: a team deleted through the admin API stops its tokens at the
    /// next request, remembered or not.
    teams: Directory,
    revoked: Option<RevocationList>,
    verified: VerifiedTokens,
}

/// Most tokens remembered as verified. Only tokens signed by a configured key get in, so
/// this bounds callers' live tokens, not what anonymous callers send.
const MAX_VERIFIED_TOKENS: usize = 10_000;

/// Tokens verified already: a caller sends the same token with every request, and decoding
/// and checking it again each time was a tenth of the work of a group read. A remembered
/// token is still refused once it expires (past the leeway) or is revoked.
#[derive(Default)]
struct VerifiedTokens {
    entries: RwLock<HashMap<Box<str>, VerifiedToken>>,
}

struct VerifiedToken {
    principal: Principal,
    /// The last second (Unix time) at which the token is accepted: `exp` plus the leeway.
    valid_until: u64,
}

impl VerifiedTokens {
    fn get(&self, token: &str, now: u64) -> Option<Principal> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let verified = entries.get(token)?;
        (now <= verified.valid_until).then(|| verified.principal.clone())
    }

    fn put(&self, token: &str, principal: &Principal, valid_until: u64, now: u64) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_VERIFIED_TOKENS {
            entries.retain(|_, v| now <= v.valid_until);
            if entries.len() >= MAX_VERIFIED_TOKENS {
                entries.clear();
            }
        }
        entries.insert(
            token.into(),
            VerifiedToken {
                principal: principal.clone(),
                valid_until,
            },
        );
    }
}

fn algorithm_of(a: KeyAlgorithm) -> Algorithm {
    match a {
        KeyAlgorithm::Hs256 => Algorithm::HS256,
        KeyAlgorithm::Rs256 => Algorithm::RS256,
        KeyAlgorithm::Es256 => Algorithm::ES256,
        KeyAlgorithm::EdDsa => Algorithm::EdDSA,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("auth key `{kid}` cannot be used: {message}")]
    Unusable { kid: String, message: String },
}

fn decoding_key(k: &KeySettings) -> Result<DecodingKey, KeyError> {
    let unusable = |message: String| KeyError::Unusable {
        kid: k.kid.clone(),
        message,
    };
    let pem = || k.public_key_pem.as_deref().unwrap_or_default().as_bytes();
    match k.algorithm {
        KeyAlgorithm::Hs256 => Ok(DecodingKey::from_secret(
            k.secret
                .as_ref()
                .map(|s| s.expose_secret().as_bytes())
                .unwrap_or_default(),
        )),
        KeyAlgorithm::Rs256 => {
            DecodingKey::from_rsa_pem(pem()).map_err(|e| unusable(e.to_string()))
        }
        KeyAlgorithm::Es256 => DecodingKey::from_ec_pem(pem()).map_err(|e| unusable(e.to_string())),
        KeyAlgorithm::EdDsa => DecodingKey::from_ed_pem(pem()).map_err(|e| unusable(e.to_string())),
    }
}

/// The checks of README, "Authentication", for a token of `algorithm`.
fn validation(auth: &AuthSettings, algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[&auth.issuer]);
    validation.set_audience(&[&auth.audience]);
    validation.leeway = auth.leeway_seconds;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation
}

impl Authenticator {
    pub fn new(auth: &AuthSettings, teams: Directory) -> Result<Self, KeyError> {
        let mut keys = HashMap::new();
        for k in &auth.keys {
            keys.insert(
                k.kid.clone(),
                VerificationKey {
                    key: decoding_key(k)?,
                    algorithm: algorithm_of(k.algorithm),
                    validation: validation(auth, algorithm_of(k.algorithm)),
                },
            );
        }
        Ok(Authenticator {
            keys,
            leeway_seconds: auth.leeway_seconds,
            max_ttl_seconds: auth.max_token_ttl_seconds,
            teams,
            revoked: None,
            verified: VerifiedTokens::default(),
        })
    }

    /// Refuses tokens whose `jti` is in `list` (checked in memory, no storage round trip).
    pub fn with_revocations(mut self, list: RevocationList) -> Self {
        self.revoked = Some(list);
        self
    }

    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let now = jsonwebtoken::get_current_timestamp();
        let principal = match self.verified.get(token, now) {
            Some(principal) => principal,
            None => {
                // Every check runs before the token is remembered: a remembered token is
                // trusted until `valid_until` without being decoded again.
                let (principal, valid_until) = self.decode(token, now)?;
                self.verified.put(token, &principal, valid_until, now);
                principal
            }
        };
        if self
            .revoked
            .as_ref()
            .is_some_and(|r| r.is_revoked(&principal.jti))
        {
            return Err(ApiError::Unauthorized(
                "the token has been revoked".to_owned(),
            ));
        }
        self.with_grants(principal)
    }

    /// The principal with its team's grants as they stand now: 401 once the team is gone.
    fn with_grants(&self, mut principal: Principal) -> Result<Principal, ApiError> {
        let platform = self.teams.current();
        let team = platform.team(&principal.team).ok_or_else(|| {
            ApiError::Unauthorized("the token's team is not configured".to_owned())
        })?;
        principal.numbers = match &principal.claimed_numbers {
            None => team.phone_numbers.clone(),
            Some(narrowed) => team
                .phone_numbers
                .iter()
                .filter(|pn| narrowed.iter().any(|n| n == pn.as_ref()))
                .cloned()
                .collect(),
        };
        principal.team_is_admin = team.admin;
        Ok(principal)
    }

    /// Checks the token in full: its caller, and until when it may be accepted.
    fn decode(&self, token: &str, now: u64) -> Result<(Principal, u64), ApiError> {
        let unauthorized = |m: &str| ApiError::Unauthorized(m.to_owned());
        let header = JoseHeader::of(token).ok_or_else(|| unauthorized("the token is malformed"))?;
        if header.crit.0 || header.b64.0 {
            // RFC 7515 §4.1.11: a recipient that does not understand a `crit` extension must
            // refuse the token; `b64` (RFC 7797) changes what the signature covers.
            return Err(unauthorized(
                "the token's header asks for a JOSE extension (crit, b64) the gateway does not support",
            ));
        }
        let kid = header
            .kid
            .ok_or_else(|| unauthorized("the token has no kid"))?;
        let key = self
            .keys
            .get(&kid)
            .ok_or_else(|| unauthorized("the token's kid is unknown"))?;
        if header.alg != key.algorithm {
            return Err(unauthorized("the token's algorithm does not match its key"));
        }
        let data =
            jsonwebtoken::decode::<Claims>(token, &key.key, &key.validation).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                let reason = match e.kind() {
                    K::ExpiredSignature => "the token has expired",
                    K::ImmatureSignature => "the token is not valid yet",
                    K::InvalidIssuer => "the token's issuer is wrong",
                    K::InvalidAudience => "the token's audience is wrong",
                    K::InvalidSignature => "the token's signature is invalid",
                    K::MissingRequiredClaim(_) | K::Json(_) => "the token lacks a required claim",
                    _ => "the token is invalid",
                };
                unauthorized(reason)
            })?;
        let claims = data.claims;
        let jti = TokenId::parse(&claims.jti).map_err(|_| {
            unauthorized(
                "the token's jti is not 1-128 characters of A-Z, a-z, 0-9, '.', '_', '~', '-'",
            )
        })?;
        self.check_lifetime(&claims, now)?;
        let valid_until = u64::try_from(claims.exp)
            .unwrap_or_default()
            .saturating_add(key.validation.leeway);
        if self.teams.current().team(&claims.sub).is_none() {
            return Err(unauthorized("the token's team is not configured"));
        }
        let scopes = claims
            .scope
            .split_whitespace()
            .filter_map(Scope::parse)
            .collect();
        // Grants are filled in by `with_grants`, for every request.
        let principal = Principal {
            team: claims.sub,
            jti,
            scopes,
            numbers: Vec::new(),
            narrowed: claims.phone_numbers.is_some(),
            claimed_numbers: claims.phone_numbers,
            team_is_admin: false,
        };
        Ok((principal, valid_until))
    }

    /// The rules on `iat` (README, "Security rules", "Bounded lifetimes"): not issued in the
    /// future beyond the leeway, and not valid longer than `auth.max_token_ttl_seconds`,
    /// wherever the token was minted: a key that leaks must not be able to mint tokens that
    /// outlive its rotation.
    fn check_lifetime(&self, claims: &Claims, now: u64) -> Result<(), ApiError> {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let leeway = i64::try_from(self.leeway_seconds).unwrap_or(i64::MAX);
        if claims.iat > now.saturating_add(leeway) {
            return Err(ApiError::Unauthorized(
                "the token's iat lies in the future".into(),
            ));
        }
        let lifetime = i128::from(claims.exp) - i128::from(claims.iat);
        if lifetime > i128::from(self.max_ttl_seconds) {
            return Err(ApiError::Unauthorized(
                "the token lives longer than the gateway accepts (exp - iat is above auth.max_token_ttl_seconds)"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// The members of a token's JOSE header the gateway reads before verifying the signature,
/// decoded from the header segment directly: jsonwebtoken's `Header` cannot tell a `crit`
/// of `null` from none, and keeps `b64` only among its extras.
#[derive(Deserialize)]
struct JoseHeader {
    alg: Algorithm,
    kid: Option<String>,
    #[serde(default)]
    crit: Present,
    #[serde(default)]
    b64: Present,
}

impl JoseHeader {
    /// The header of a compact JWS `header.payload.signature`; None when it is not one.
    fn of(token: &str) -> Option<JoseHeader> {
        use base64::Engine;
        let mut segments = token.split('.');
        let (Some(header), Some(_), Some(_), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return None;
        };
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .ok()?;
        serde_json::from_slice(&json).ok()
    }
}

/// Whether a header member is there at all, whatever its value (`null` included).
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer)?;
        Ok(Present(true))
    }
}

/// The caller of `req`: 401 without a valid token, 429 past its team's rate limit. A call
/// refused for its token also costs its client address a token of the anonymous bucket;
/// once that is empty the answer is 429 (nothing of the call is stored either way).
pub async fn authenticate(req: &HttpRequest) -> Result<Principal, ApiError> {
    let auth = req
        .app_data::<web::Data<Authenticator>>()
        .ok_or_else(|| ApiError::Internal("authenticator missing".into()))?;
    let principal = match bearer_principal(req, auth) {
        Ok(principal) => principal,
        Err(refused) => return Err(charge_anonymous(req, refused)),
    };
    context::note_caller(&principal.team, principal.jti.as_str());
    req.extensions_mut()
        .insert(AuthenticatedTeam(principal.team.clone()));
    let limits = req.app_data::<web::Data<TeamLimits>>().cloned();
    if let Some(limits) = limits
        && let Err(refusal) = limits.check(&principal.team).await
    {
        metrics::counter!(crate::metrics::RATE_LIMITED, "scope" => "team", "team" => principal.team.clone())
            .increment(1);
        return Err(ApiError::RateLimited {
            retry_after_seconds: refusal.retry_after.as_secs().max(1),
            limit: refusal.limit,
        });
    }
    Ok(principal)
}

/// The principal of the request's bearer token, or why there is none.
fn bearer_principal(req: &HttpRequest, auth: &Authenticator) -> Result<Principal, ApiError> {
    // Only the header: tokens in URLs end up in proxies' and browsers' logs.
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthorized("an Authorization: Bearer token is required".into())
        })?;
    let token = header
        .to_str()
        .ok()
        // The scheme is case-insensitive (RFC 7235).
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
        })?;
    auth.verify(token)
}

/// Client addresses' buckets for calls without a valid token.
pub type AnonymousLimits = crate::ratelimit::AddressBuckets;

/// Charges the client's address for a refused call: its own refusal while the address has
/// tokens left, 429 after.
fn charge_anonymous(req: &HttpRequest, refused: ApiError) -> ApiError {
    let Some(limits) = req.app_data::<web::Data<AnonymousLimits>>() else {
        return refused;
    };
    let Some(peer) = req.peer_addr() else {
        return refused;
    };
    match limits.check(peer.ip()) {
        Ok(()) => refused,
        Err(refusal) => {
            metrics::counter!(crate::metrics::RATE_LIMITED, "scope" => "anonymous").increment(1);
            ApiError::AnonymousRateLimited {
                retry_after_seconds: refusal.retry_after.as_secs().max(1),
                limit: refusal.limit,
            }
        }
    }
}

/// Each team's token bucket, checked once a caller is authenticated.
pub type TeamLimits = crate::platform::LiveLimiter<String>;

/// Mints a token with the configured signing key (CLI `token issue`, admin API).
pub struct TokenIssuer {
    kid: String,
    algorithm: Algorithm,
    key: EncodingKey,
    issuer: String,
    audience: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct IssuedToken {
    pub token: String,
    pub jti: String,
    pub expires_at: String,
}

impl TokenIssuer {
    /// Uses the key named `kid`, else the key marked `signing`, else the first that can sign.
    pub fn new(auth: &AuthSettings, kid: Option<&str>) -> Result<Self, KeyError> {
        let can_sign = |k: &&KeySettings| k.secret.is_some() || k.private_key_pem.is_some();
        let key = match kid {
            Some(kid) => auth.keys.iter().find(|k| k.kid == kid),
            None => auth
                .keys
                .iter()
                .find(|k| k.signing && can_sign(k))
                .or_else(|| auth.keys.iter().find(can_sign)),
        }
        .ok_or_else(|| KeyError::Unusable {
            kid: kid.unwrap_or("(signing)").to_owned(),
            message: "no such key with signing material".into(),
        })?;
        let unusable = |message: String| KeyError::Unusable {
            kid: key.kid.clone(),
            message,
        };
        let private = || {
            key.private_key_pem
                .as_ref()
                .map(|p| p.expose_secret().as_bytes().to_vec())
                .ok_or_else(|| unusable("no private_key_pem".into()))
        };
        let encoding = match key.algorithm {
            KeyAlgorithm::Hs256 => EncodingKey::from_secret(
                key.secret
                    .as_ref()
                    .map(|s| s.expose_secret().as_bytes())
                    .ok_or_else(|| unusable("no secret".into()))?,
            ),
            KeyAlgorithm::Rs256 => {
                EncodingKey::from_rsa_pem(&private()?).map_err(|e| unusable(e.to_string()))?
            }
            KeyAlgorithm::Es256 => {
                EncodingKey::from_ec_pem(&private()?).map_err(|e| unusable(e.to_string()))?
            }
            KeyAlgorithm::EdDsa => {
                EncodingKey::from_ed_pem(&private()?).map_err(|e| unusable(e.to_string()))?
            }
        };
        Ok(TokenIssuer {
            kid: key.kid.clone(),
            algorithm: algorithm_of(key.algorithm),
            key: encoding,
            issuer: auth.issuer.clone(),
            audience: auth.audience.clone(),
        })
    }

    pub fn issue(
        &self,
        team: &str,
        scopes: &[Scope],
        phone_numbers: Option<Vec<String>>,
        ttl_seconds: u64,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let exp = now + ttl_seconds as i64;
        let jti = uuid::Uuid::new_v4().to_string();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: serde_json::Value::String(self.audience.clone()),
            sub: team.to_owned(),
            exp,
            iat: now,
            nbf: None,
            jti: jti.clone(),
            scope: scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            phone_numbers,
        };
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.key)?;
        Ok(IssuedToken {
            token,
            jti,
            expires_at: crate::clock::unix_to_rfc3339(exp),
        })
    }
}

impl TokenIssuer {
    /// Signs a token `tokens::approve` passed, noting in the audit record what was issued
    /// (never the token).
    pub fn issue_approved(&self, approved: &ApprovedToken) -> Result<IssuedToken, ApiError> {
        let issued = self
            .issue(
                &approved.team,
                &approved.scopes,
                approved.phone_numbers.clone(),
                approved.ttl_seconds,
            )
            .map_err(|e| ApiError::Internal(format!("cannot sign a token: {e}")))?;
        context::note_detail("issued_jti", issued.jti.as_str());
        context::note_detail("issued_team", approved.team.as_str());
        context::note_detail(
            "scopes",
            approved
                .scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>(),
        );
        if let Some(numbers) = &approved.phone_numbers {
            context::note_detail("phone_numbers", numbers.clone());
        }
        context::note_detail("expires_at", issued.expires_at.as_str());
        tracing::info!(jti = issued.jti, team = approved.team, "token issued");
        Ok(issued)
    }
}

/// Parses a TTL such as `3600`, `90s`, `15m`, `12h`, `30d`.
pub fn parse_ttl(raw: &str) -> Result<u64, String> {
    let raw = raw.trim();
    let (digits, unit) = match raw.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => raw.split_at(i),
        None => (raw, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{raw}` is not a duration like 30d or 12h"))?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{raw}` has an unknown unit (use s, m, h or d)")),
    };
    n.checked_mul(factor)
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("`{raw}` is not a positive duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_leeway() -> crate::config::Settings {
        crate::config::Settings::from_toml_overrides(
            r#"
[auth]
leeway_seconds = 0
[[auth.keys]]
kid = "unit"
algorithm = "HS256"
secret = "unit-test-signing-secret-0123456789"
[phone_numbers.1]
access_token = "unit-test-access-token"
[teams.sales]
phone_numbers = ["1"]
"#,
        )
        .expect("settings")
    }

    /// A remembered token is not trusted past its `exp`: the second check after expiry is
    /// refused exactly like a first one would be.
    #[test]
    fn a_token_accepted_before_is_refused_once_it_expires() {
        let settings = no_leeway();
        let auth = Authenticator::new(&settings.auth, Directory::from_settings(&settings)).unwrap();
        let issuer = TokenIssuer::new(&settings.auth, None).unwrap();
        let token = issuer
            .issue("sales", &[Scope::GroupsRead], None, 1)
            .unwrap()
            .token;
        let first = auth.verify(&token).expect("fresh token");
        let again = auth.verify(&token).expect("same token again");
        assert_eq!((first.team, first.jti), (again.team, again.jti));
        std::thread::sleep(std::time::Duration::from_millis(2_100));
        let refused = auth.verify(&token).unwrap_err();
        assert!(refused.to_string().contains("expired"), "{refused}");
        // Another caller's token is not mistaken for a remembered one.
        let other = issuer
            .issue("sales", &[Scope::GroupsRead], None, 60)
            .unwrap()
            .token;
        assert!(auth.verify(&other).is_ok());
        assert!(auth.verify(&format!("{other}x")).is_err());
    }

    #[test]
    fn ttls_read_like_people_write_them() {
        assert_eq!(parse_ttl("30d"), Ok(30 * 86_400));
        assert_eq!(parse_ttl("90"), Ok(90));
        assert_eq!(parse_ttl("15m"), Ok(900));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("3w").is_err());
        assert!(parse_ttl("").is_err());
    }
}
