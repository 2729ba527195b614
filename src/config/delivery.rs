//! `[delivery]`: how team events are pushed to the teams' webhooks, and the parsed
//! `whsec_` key each team's deliveries are signed with.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use serde::Deserialize;

/// `[delivery]`: how team events are pushed to the teams' webhooks.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySettings {
    /// Bound of one attempt: connecting, sending, and the receiver's answer.
    pub request_timeout_ms: u64,
    /// Bound of opening the connection (part of the attempt).
    pub connect_timeout_ms: u64,
    /// Attempts in flight at once per endpoint. 1 (the default) keeps each endpoint's
    /// deliveries in event order; more trades that order for throughput to a slow receiver.
    pub max_in_flight_per_endpoint: usize,
    /// Endpoints one replica delivers to at once; the others wait their turn (oldest served
    /// first), so every endpoint gets its share.
    pub max_endpoints_in_flight: usize,
    /// Deliveries an endpoint's turn takes from storage at once (one query, one write back).
    pub batch_size: usize,
    /// Wait before the first retry; each later one waits `backoff_factor` times longer.
    pub first_retry_ms: u64,
    pub backoff_factor: f64,
    /// Longest wait between two attempts (also caps a receiver's `Retry-After`).
    pub max_retry_delay_ms: u64,
    /// Each wait is randomised by ± this fraction.
    pub jitter: f64,
    /// How often storage is checked when nothing wakes the worker.
    pub poll_interval_ms: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            request_timeout_ms: 15_000,
            connect_timeout_ms: 5_000,
            max_in_flight_per_endpoint: 1,
            max_endpoints_in_flight: 64,
            batch_size: 100,
            first_retry_ms: 5_000,
            backoff_factor: 3.0,
            max_retry_delay_ms: 6 * 3600 * 1000,
            jitter: 0.2,
            poll_interval_ms: 1_000,
        }
    }
}

impl DeliverySettings {
    /// Checks the settings; the error names the offending key under `delivery.`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            ("request_timeout_ms", self.request_timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            (
                "max_in_flight_per_endpoint",
                self.max_in_flight_per_endpoint as u64,
            ),
            (
                "max_endpoints_in_flight",
                self.max_endpoints_in_flight as u64,
            ),
            ("batch_size", self.batch_size as u64),
            ("poll_interval_ms", self.poll_interval_ms),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err((key, "must be greater than 0".into()));
            }
        }
        if !(self.backoff_factor.is_finite() && self.backoff_factor >= 1.0) {
            return Err(("backoff_factor", "must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&self.jitter) {
            return Err(("jitter", "must be at least 0 and below 1".into()));
        }
        // A failed delivery is retried within 10 seconds the first time, jitter included.
        if self.first_retry_ms as f64 * (1.0 + self.jitter) > 10_000.0 {
            return Err((
                "first_retry_ms",
                "with its jitter it must stay within 10000 (the first retry comes within 10 s)"
                    .into(),
            ));
        }
        if self.max_retry_delay_ms < self.first_retry_ms {
            return Err((
                "max_retry_delay_ms",
                "must be at least first_retry_ms".into(),
            ));
        }
        Ok(())
    }

    /// The wait after `failed` attempts (1 = the first attempt failed), before jitter.
    pub fn backoff(&self, failed: u32) -> Duration {
        let exponent = i32::try_from(failed.saturating_sub(1).min(64)).unwrap_or(64);
        let ms = (self.first_retry_ms as f64 * self.backoff_factor.powi(exponent))
            .min(self.max_retry_delay_ms as f64);
        Duration::from_millis(ms as u64)
    }

    pub fn jittered(&self, wait: Duration) -> Duration {
        if self.jitter <= 0.0 {
            return wait;
        }
        let factor = rand::rng().random_range(1.0 - self.jitter..=1.0 + self.jitter);
        wait.mul_f64(factor)
    }

    /// The waits before jitter of the retries that fit in `retry_for`.
    pub fn schedule(&self, retry_for: Duration) -> Vec<Duration> {
        let mut total = Duration::ZERO;
        (1..)
            .map(|n| self.backoff(n))
            .take_while(|wait| {
                total += *wait;
                total <= retry_for
            })
            .collect()
    }

    /// How long a replica keeps an endpoint once it took it: one attempt's worst case and
    /// a margin. A replica that dies leaves the endpoint to another after this; a live one
    /// renews it before every attempt that might outlast it.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(2 * self.request_timeout_ms + 1_000)
    }
}

/// The HMAC key of a team's `webhook.secret`, parsed once when configuration is read.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

/// The HMAC key of a `whsec_…` secret: the base64-decoded part after the prefix.
pub fn signing_key(secret: &str) -> Result<SigningKey, String> {
    let encoded = secret
        .strip_prefix("whsec_")
        .ok_or_else(|| "must start with whsec_".to_owned())?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| "the part after whsec_ must be base64".to_owned())?;
    if key.is_empty() {
        return Err("the part after whsec_ must not be empty".into());
    }
    Ok(SigningKey(key))
}

/// Why a team's webhook must never reach `ip`, if it must not: link-local addresses
/// (169.254.0.0/16, fe80::/10) hold the clouds' instance metadata services (credentials of
/// the machine itself), and a few metadata services live elsewhere. Internal addresses are
/// allowed: internal apps live there. An IPv4 address carried inside IPv6 (IPv4-mapped
/// `::ffff:0:0/96`, IPv4-compatible `::/96`, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`)
/// is judged as that IPv4 address, since the network delivers it there.
///
/// The one predicate for every check: `config check` and start (`check_webhook_host`) and
/// the delivery connector, on the address actually connected to.
pub fn forbidden_address(ip: IpAddr) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) if v4.is_link_local() => Some("link-local (cloud metadata) address"),
        // Alibaba Cloud's metadata service.
        IpAddr::V4(v4) if v4 == Ipv4Addr::new(100, 100, 100, 200) => Some("cloud metadata address"),
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some("link-local address"),
        // AWS's metadata service over IPv6.
        IpAddr::V6(v6) if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) => {
            Some("cloud metadata address")
        }
        _ => None,
    }
}

/// The IPv4 address an IPv6 address stands for, where the network takes it there.
fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    // The deprecated IPv4-compatible form `::a.b.c.d`; `::` and `::1` are not IPv4.
    if !v6.is_loopback()
        && !v6.is_unspecified()
        && let Some(v4) = v6.to_ipv4()
    {
        return Some(v4);
    }
    let [a, b, c, ..] = v6.segments();
    // NAT64: the well-known prefix (RFC 6052) and the local-use one (RFC 8215), whose
    // translators put the IPv4 address in the last 32 bits.
    let nat64 = (a, b) == (0x64, 0xff9b) && (c == 1 || v6.segments()[2..6] == [0; 4]);
    nat64.then(|| {
        let octets = v6.octets();
        Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15])
    })
}

/// Host names that name a metadata service wherever they resolve.
const METADATA_HOSTS: &[&str] = &["metadata.google.internal", "metadata.goog", "metadata"];

/// Refuses a team webhook URL whose host is a forbidden address or a metadata host name,
/// however the address is written. The host is read as a WHATWG URL parser (the `url`
/// crate) reads it, which turns what resolvers accept for IPv4 (decimal `2852039166`, hex
/// `0xa9fea9fe`, octal `0251.0376.0251.0376`, shortened `169.254.43518`) into the address;
/// the host awc will connect to (its `http::Uri`) is read the same way, so the two parsers
/// cannot be played against each other. Other names are checked when connecting, on the
/// address actually reached (DNS may change between this check and a delivery).
pub fn check_webhook_host(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| match e {
        // A zone id (`[fe80::1%25eth0]`) is only meaningful for link-local addresses.
        url::ParseError::InvalidIpv6Address if url.contains('%') => {
            "has a zone id (%25…) in its IPv6 host; zone ids name link-local addresses, which team webhooks may not reach".to_owned()
        }
        e => format!("is not a valid URL ({e})"),
    })?;
    let host = parsed
        .host()
        .ok_or_else(|| "has no host".to_owned())?
        .to_owned();
    check_host(&host)?;
    // What awc connects to: the same host, unless the two parsers disagree.
    let uri: actix_web::http::Uri = url.parse().map_err(|_| "is not a valid URL".to_owned())?;
    let uri_host = uri.host().ok_or_else(|| "has no host".to_owned())?;
    let uri_host = url::Host::parse(uri_host)
        .map_err(|_| "is not a valid URL (its host cannot be read)".to_owned())?;
    check_host(&uri_host)
}

fn check_host(host: &url::Host<String>) -> Result<(), String> {
    let ip = match host {
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if METADATA_HOSTS.contains(&name.as_str()) {
                return Err(format!(
                    "{name} is a cloud metadata service; team webhooks may not point there"
                ));
            }
            return Ok(());
        }
        url::Host::Ipv4(v4) => IpAddr::V4(*v4),
        url::Host::Ipv6(v6) => IpAddr::V6(*v6),
    };
    let Some(why) = forbidden_address(ip) else {
        return Ok(());
    };
    // Say which IPv4 address an IPv6 one carries, so the refusal is understood.
    let carried = match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map(|v4| format!(" (IPv4 {v4})")),
        IpAddr::V4(_) => None,
    };
    Err(format!(
        "{ip}{} is a {why}; team webhooks may not point there",
        carried.unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link-local or metadata address, in every form a resolver accepts.
    const DISGUISED_METADATA_URLS: &[&str] = &[
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.0.1:8080/x",
        "http://2852039166/",
        "http://0xa9fea9fe/",
        "http://0xA9FEA9FE/",
        "http://0251.0376.0251.0376/",
        "http://0251.254.169.254/",
        "http://169.254.43518/",
        "http://169.16689662/",
        "http://169.254.169.254./",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[::169.254.169.254]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[64:ff9b::169.254.169.254]/",
        "http://[64:ff9b:1::a9fe:a9fe]/",
        "http://[fe80::1]/hooks",
        "http://[fe80::1%25eth0]/",
        "http://[FE80::a9fe:a9fe%eth0]/",
        "http://[febf::1]/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.google.internal./computeMetadata/v1/",
        "https://user:pw@169.254.169.254/",
    ];

    #[test]
    fn metadata_and_link_local_hosts_are_refused_in_every_form_and_internal_ones_are_not() {
        for url in DISGUISED_METADATA_URLS {
            assert!(check_webhook_host(url).is_err(), "{url}");
        }
        for url in [
            "http://127.0.0.1:9100/hooks",
            "http://10.0.0.1/",
            "http://167772161/",
            "https://10.1.2.3/hooks",
            "http://[::1]:9000/",
            "http://[::ffff:10.0.0.1]/",
            "http://[64:ff9b::a00:1]/",
            "https://sales.internal/hooks",
            "http://hooks/",
            "http://192.168.1.20/",
            "http://169.255.0.1/",
        ] {
            assert_eq!(check_webhook_host(url), Ok(()), "{url}");
        }
    }

    #[test]
    fn refusals_say_which_address_was_meant() {
        let err = check_webhook_host("http://0xa9fea9fe/").unwrap_err();
        assert!(err.contains("169.254.169.254"), "{err}");
        let err = check_webhook_host("http://[fe80::1%25eth0]/").unwrap_err();
        assert!(err.contains("zone id"), "{err}");
        let err = check_webhook_host("http://[64:ff9b::a9fe:a9fe]/").unwrap_err();
        assert!(
            err.contains("(IPv4 169.254.169.254) is a link-local"),
            "{err}"
        );
    }

    #[test]
    fn the_connect_time_predicate_sees_ipv4_inside_ipv6() {
        for ip in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "::169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1:2:3:4:a9fe:a9fe",
            "fe80::1",
        ] {
            assert!(forbidden_address(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in [
            "::1",
            "::",
            "10.0.0.1",
            "::ffff:127.0.0.1",
            "2001:db8::a9fe:a9fe",
        ] {
            assert_eq!(forbidden_address(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn the_default_schedule_starts_within_ten_seconds_and_spans_about_a_day() {
        let settings = DeliverySettings::default();
        settings.validate().unwrap();
        let schedule = settings.schedule(Duration::from_secs(24 * 3600));
        assert!(schedule[0] <= Duration::from_secs(10));
        assert!(schedule.windows(2).all(|w| w[0] <= w[1]));
        let total: Duration = schedule.iter().sum();
        assert!(
            (Duration::from_secs(12 * 3600)..=Duration::from_secs(24 * 3600)).contains(&total),
            "{total:?}"
        );
        for _ in 0..100 {
            let first = settings.jittered(settings.backoff(1));
            assert!(first <= Duration::from_secs(10), "{first:?}");
        }
    }

    #[test]
    fn settings_that_break_the_contract_are_refused() {
        let slow_first = DeliverySettings {
            first_retry_ms: 20_000,
            ..Default::default()
        };
        assert_eq!(slow_first.validate().unwrap_err().0, "first_retry_ms");
        let shrinking = DeliverySettings {
            backoff_factor: 0.5,
            ..Default::default()
        };
        assert_eq!(shrinking.validate().unwrap_err().0, "backoff_factor");
    }

    #[test]
    fn whsec_secrets_are_base64_after_the_prefix() {
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(key.as_bytes().len(), 24);
        assert!(!format!("{key:?}").contains("Mf"));
        assert!(signing_key("whsec_!!").is_err());
        assert!(signing_key("whsec_").is_err());
        assert!(signing_key("nope").is_err());
    }
}
