//! URLs fit for logs and printouts: credentials never shown.

/// `scheme://user:<mask>@host/…`: the user, host, path and query stay readable.
pub fn without_password(url: &str, mask: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let password = if userinfo.contains(':') {
                format!(":{mask}")
            } else {
                String::new()
            };
            format!(
                "{scheme}://{user}{password}@{host}{}",
                &rest[authority_end..]
            )
        }
        None => url.to_owned(),
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
            without_password("postgres://wagw:s3cret@db:5432/gw?sslmode=require", "***"),
            "postgres://wagw:***@db:5432/gw?sslmode=require"
        );
        assert_eq!(
            without_password("redis://:pw@cache:6379", "***"),
            "redis://:***@cache:6379"
        );
        assert_eq!(
            without_password("sqlite://data/gateway.db", "***"),
            "sqlite://data/gateway.db"
        );
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
