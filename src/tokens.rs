//! Which tokens may be minted. `token issue` and `POST /v1/admin/tokens` both ask `approve`,
//! so the command line and the API cannot drift apart: known teams only, known scopes only,
//! `admin` only for administrator teams, phone numbers within the team's grants, and a
//! lifetime within `auth.max_token_ttl_seconds`.

use std::collections::BTreeMap;

use crate::config::TeamSettings;
use crate::domain::{FieldError, FieldErrors, PhoneNumberId, Scope};

/// The lifetime of a token when the request names none (shortened to the configured
/// maximum when that is less).
pub const DEFAULT_TTL_SECONDS: u64 = 30 * 86_400;

/// A token as asked for, before any check.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    pub team: String,
    pub scopes: Vec<String>,
    /// None: every number granted to the team (the token carries no `phone_numbers` claim).
    pub phone_numbers: Option<Vec<String>>,
    /// None: `DEFAULT_TTL_SECONDS`, or the maximum when that is shorter.
    pub ttl_seconds: Option<u64>,
}

/// A request that passed every check; ready to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovedToken {
    pub team: String,
    pub scopes: Vec<Scope>,
    pub phone_numbers: Option<Vec<String>>,
    pub ttl_seconds: u64,
}

/// Checks a token request against configuration. Every broken field is reported, named as
/// in the API body: `team`, `scopes`, `scopes[i]`, `phone_numbers`, `phone_numbers[i]`,
/// `ttl_seconds`.
pub fn approve(
    teams: &BTreeMap<String, TeamSettings>,
    max_ttl_seconds: u64,
    request: &TokenRequest,
) -> Result<ApprovedToken, Vec<FieldError>> {
    let mut errors = FieldErrors::new();
    let team = teams.get(&request.team);
    if team.is_none() {
        errors.push(
            "team",
            format!(
                "`{}` is not a team (of the configuration or the admin API)",
                request.team
            ),
        );
    }

    let mut scopes = Vec::new();
    if request.scopes.is_empty() {
        errors.push("scopes", "at least one scope is required");
    }
    for (i, raw) in request.scopes.iter().enumerate() {
        let field = format!("scopes[{i}]");
        match Scope::parse(raw) {
            None => errors.push(
                field,
                format!(
                    "`{raw}` is not a known scope (one of {})",
                    Scope::ALL.map(Scope::as_str).join(", ")
                ),
            ),
            Some(Scope::Admin) if team.is_some_and(|t| !t.admin) => errors.push(
                field,
                format!(
                    "admin can only be granted to an administrator team; `{}` is not one",
                    request.team
                ),
            ),
            Some(scope) if scopes.contains(&scope) => errors.push(field, "is a duplicate"),
            Some(scope) => scopes.push(scope),
        }
    }

    let mut numbers = Vec::new();
    if let Some(requested) = &request.phone_numbers {
        if requested.is_empty() {
            errors.push(
                "phone_numbers",
                "must name at least one number when present (omit it for all of the team's)",
            );
        }
        for (i, raw) in requested.iter().enumerate() {
            let field = format!("phone_numbers[{i}]");
            match PhoneNumberId::parse(raw) {
                Err(message) => errors.push(field, message),
                Ok(pn) if numbers.contains(&pn) => errors.push(field, "is a duplicate"),
                Ok(pn) => {
                    if let Some(t) = team
                        && !t.phone_numbers.contains(&pn)
                    {
                        errors.push(
                            field,
                            format!("{pn} is not granted to team `{}`", request.team),
                        );
                    }
                    numbers.push(pn);
                }
            }
        }
    }

    let ttl_seconds = request
        .ttl_seconds
        .unwrap_or(DEFAULT_TTL_SECONDS.min(max_ttl_seconds));
    if ttl_seconds == 0 {
        errors.push("ttl_seconds", "must be at least 1");
    } else if ttl_seconds > max_ttl_seconds {
        errors.push(
            "ttl_seconds",
            format!("must be at most {max_ttl_seconds} (auth.max_token_ttl_seconds)"),
        );
    }

    if !errors.is_empty() {
        return Err(errors.into_vec());
    }
    Ok(ApprovedToken {
        team: request.team.clone(),
        scopes,
        phone_numbers: request
            .phone_numbers
            .as_ref()
            .map(|_| numbers.into_iter().map(String::from).collect()),
        ttl_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn teams() -> BTreeMap<String, TeamSettings> {
        let team = |numbers: &[&str], admin: bool| TeamSettings {
            phone_numbers: numbers
                .iter()
                .map(|n| PhoneNumberId::parse(n).unwrap())
                .collect(),
            admin,
            rate_limit: None,
            webhook: None,
        };
        BTreeMap::from([
            ("sales".to_owned(), team(&["1", "2"], false)),
            ("platform".to_owned(), team(&["1"], true)),
        ])
    }

    fn request(team: &str, scopes: &[&str]) -> TokenRequest {
        TokenRequest {
            team: team.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            ..TokenRequest::default()
        }
    }

    fn fields(result: Result<ApprovedToken, Vec<FieldError>>) -> Vec<String> {
        result.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_good_request_gets_the_default_ttl() {
        let ok = approve(&teams(), 90 * 86_400, &request("sales", &["groups:read"])).unwrap();
        assert_eq!(ok.scopes, [Scope::GroupsRead]);
        assert_eq!(ok.ttl_seconds, DEFAULT_TTL_SECONDS);
        assert_eq!(ok.phone_numbers, None);
        let short = approve(&teams(), 3600, &request("sales", &["groups:read"])).unwrap();
        assert_eq!(short.ttl_seconds, 3600);
    }

    #[test]
    fn the_messaging_scope_can_be_granted() {
        let ok = approve(
            &teams(),
            100,
            &request("sales", &["groups:read", "groups:message"]),
        )
        .unwrap();
        assert_eq!(ok.scopes, [Scope::GroupsRead, Scope::GroupsMessage]);
    }

    #[test]
    fn every_broken_field_is_named() {
        let r = TokenRequest {
            team: "ghost".into(),
            scopes: vec!["groups:read".into(), "groups:everything".into()],
            phone_numbers: Some(vec!["12a".into()]),
            ttl_seconds: Some(0),
        };
        assert_eq!(
            fields(approve(&teams(), 100, &r)),
            ["team", "scopes[1]", "phone_numbers[0]", "ttl_seconds"]
        );
    }

    #[test]
    fn admin_only_for_admin_teams() {
        assert_eq!(
            fields(approve(&teams(), 100, &request("sales", &["admin"]))),
            ["scopes[0]"]
        );
        assert!(approve(&teams(), 100, &request("platform", &["admin"])).is_ok());
    }

    #[test]
    fn numbers_must_be_granted_and_ttl_bounded() {
        let mut r = request("platform", &["groups:read"]);
        r.phone_numbers = Some(vec!["1".into(), "2".into(), "1".into()]);
        r.ttl_seconds = Some(101);
        assert_eq!(
            fields(approve(&teams(), 100, &r)),
            ["phone_numbers[1]", "phone_numbers[2]", "ttl_seconds"]
        );
        r.phone_numbers = Some(vec![]);
        r.ttl_seconds = Some(100);
        assert_eq!(fields(approve(&teams(), 100, &r)), ["phone_numbers"]);
        r.phone_numbers = Some(vec!["1".into()]);
        let ok = approve(&teams(), 100, &r).unwrap();
        assert_eq!(ok.phone_numbers, Some(vec!["1".to_owned()]));
    }
}
