//! URLs fit for logs and printouts: credentials never shown.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

/// What a password (or a secret query parameter) reads as in a shown URL.
pub const MASK: &str = "***";

/// The URL with its password and secret query parameters (`password`, `sslpassword`,
/// `pass`, …) masked: `postgres://user:***@host/db`; the user, host, path and the rest of the
/// query stay readable. Parsed by the `url` crate, the parser sqlx and redis read these URLs
/// with, so what they would take for a password is what is masked; a URL it cannot read is
/// hidden whole but for its scheme (a password may sit anywhere in it).
pub fn without_password(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return match url.split_once(':') {
            Some((scheme, _))
                if !scheme.is_empty()
                    && scheme
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
            {
                format!("{scheme}:{MASK} (not a valid URL)")
            }
            _ => format!("{MASK} (not a valid URL)"),
        };
    };
    let mut masked = false;
    if parsed.password().is_some() {
        masked = parsed.set_password(Some(MASK)).is_ok();
    }
    if parsed.query_pairs().any(|(k, _)| is_secret_parameter(&k)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_parameter(&k) {
                    MASK.to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
        masked = true;
    }
    // rediss' `#insecure` is a setting; any other fragment is nothing these URLs need, and
    // would be where a password with an unencoded `#` ends up.
    if parsed.fragment().is_some_and(|f| f != "insecure") {
        parsed.set_fragment(Some(MASK));
        masked = true;
    }
    // Unchanged URLs are shown as written (the parser would normalise them).
    if masked {
        parsed.into()
    } else {
        url.to_owned()
    }
}

/// Query parameters that carry a secret: sqlx reads `password` (and `sslpassword`) from the
/// query, redis reads `pass` for its sockets; `token` and `secret` are masked as well.
fn is_secret_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "secret", "token"].iter().any(|s| name.contains(s))
}

/// A URL that may carry a password (`storage.url`, `rate_limit.redis_url`): shown, logged and
/// debugged with the password masked (`without_password`); the full text comes out only
/// through `expose_secret`, where the connection is made.
#[derive(Clone)]
pub struct ServiceUrl {
    url: SecretString,
    shown: String,
}

impl ServiceUrl {
    pub fn new(url: impl Into<String>) -> ServiceUrl {
        let url = url.into();
        ServiceUrl {
            shown: without_password(&url),
            url: SecretString::from(url),
        }
    }

    /// Whether the URL starts with `prefix` (its scheme, say); the scheme is never masked.
    pub fn starts_with(&self, prefix: &str) -> bool {
        self.url.expose_secret().starts_with(prefix)
    }

    /// Whether the `url` crate reads it (sqlx for PostgreSQL and redis need it to).
    pub fn parses(&self) -> bool {
        url::Url::parse(self.url.expose_secret()).is_ok()
    }
}

impl ExposeSecret<str> for ServiceUrl {
    fn expose_secret(&self) -> &str {
        self.url.expose_secret()
    }
}

impl fmt::Display for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceUrl({:?})", self.shown)
    }
}

impl From<String> for ServiceUrl {
    fn from(url: String) -> ServiceUrl {
        ServiceUrl::new(url)
    }
}

impl From<&str> for ServiceUrl {
    fn from(url: &str) -> ServiceUrl {
        ServiceUrl::new(url)
    }
}

/// Any text is taken (and checked by the settings it belongs to): an error here could only
/// repeat the value.
impl<'de> Deserialize<'de> for ServiceUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ServiceUrl, D::Error> {
        String::deserialize(deserializer).map(ServiceUrl::new)
    }
}

/// The URL without credentials, query or fragment (a webhook receiver's URL may carry a
/// token in either).
pub fn without_credentials(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{scheme}://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(
            without_password("postgres://wagw:s3cret@db:5432/gw?sslmode=require"),
            "postgres://wagw:***@db:5432/gw?sslmode=require"
        );
        assert_eq!(
            without_password("redis://:pw@cache:6379"),
            "redis://:***@cache:6379"
        );
        assert_eq!(
            without_password("rediss://default:p%40ss@cache:6380/0"),
            "rediss://default:***@cache:6380/0"
        );
        assert_eq!(
            without_password("sqlite://data/gateway.db"),
            "sqlite://data/gateway.db"
        );
        assert_eq!(without_password("sqlite::memory:"), "sqlite::memory:");
        // A password in the query, where sqlx reads it too.
        assert_eq!(
            without_password("postgres://wagw@db/gw?password=s3cret&sslmode=require"),
            "postgres://wagw@db/gw?password=***&sslmode=require"
        );
        // Reserved characters left unencoded: no parser can tell where the password ends.
        let unreadable = without_password("postgres://wagw:s3/cr@et@db/gw");
        assert!(!unreadable.contains("s3"), "{unreadable}");
        assert!(unreadable.starts_with("postgres:"), "{unreadable}");
        let fragment = without_password("postgres://wagw:12#s3cret@db/gw");
        assert!(!fragment.contains("s3cret"), "{fragment}");
        assert_eq!(
            without_password("rediss://cache:6380#insecure"),
            "rediss://cache:6380#insecure"
        );
    }

    #[test]
    fn a_service_url_shows_and_debugs_without_its_password() {
        let url = ServiceUrl::new("postgres://postgres:SECRETPW@127.0.0.1:5432/gw");
        assert_eq!(url.to_string(), "postgres://postgres:***@127.0.0.1:5432/gw");
        let debugged = format!("{url:?} {url:#?}");
        assert!(!debugged.contains("SECRETPW"), "{debugged}");
        assert!(debugged.contains("postgres:***@127.0.0.1"), "{debugged}");
        assert_eq!(
            url.expose_secret(),
            "postgres://postgres:SECRETPW@127.0.0.1:5432/gw"
        );
        let redis: ServiceUrl =
            serde_json::from_str(r#""redis://:SECRETPW@127.0.0.1:6379""#).unwrap();
        assert_eq!(format!("{redis}"), "redis://:***@127.0.0.1:6379");
        assert!(!format!("{redis:?}").contains("SECRETPW"));
    }

    #[test]
    fn logged_urls_lose_credentials_and_query() {
        assert_eq!(
            without_credentials("https://user:pw@hooks.example.com:8443/in?token=abc"),
            "https://hooks.example.com:8443/in"
        );
        assert_eq!(
            without_credentials("http://127.0.0.1:9100"),
            "http://127.0.0.1:9100"
        );
    }
}
