//! The auth matrix (DESIGN §3, §4 order of checks, §5): every way a caller can fail
//! authentication or authorization gets its exact status, and nothing of it reaches Meta.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use wa_groups_gateway::domain::synthetic_jpeg_header;
use wiremock::matchers::{any, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

const RSA_KID: &str = "rsa-key";
const ALL_SCOPES: &str = "groups:read groups:write groups:delete groups:invite groups:message";

/// A throwaway RSA key pair generated for these tests only; it protects nothing.
const RSA_PRIVATE_PEM: &str = r"-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDNNp5D4xh6yIpt
SsUz2auqFBFd6azV+WbTs9MS7gf3/IKOk49qA1hLNtJi8jNGYoZnL4k5ZLtkvlmu
C/atuC1E+UMtKf0VfhlNpAyijLatxj0F71e+Ob9jFrb7Mi4O5eO0BJVU9w1rw8e0
B/5PyZ7KbZBEQK9v/PD9JKjaaqupQoJ1q/D8MY1pUy3fvPHD3PMkwwJsVXZxU5pV
A/Iy1Ni/O8l6O1qkGs6SDnxjEhDftPl3VgYnqoIJuk4Wd1Pme504SsazJft90O2l
D+w9HQiPynaikkQydce5fckfE+D5wXL0ZwZjrlkmSx5nZL1pQgfZdFDi4PpWe462
uU844mS7AgMBAAECggEAMi57ASrVX6EOiK9SDd3appqFrKtpwmFcjcRZhzWB6Vhs
LKVU2p26x5m+VMfZVgrdxvnO2qQRVw9dKrxuNAjnuQgjLzYnV0wgr+W/2TgDq/bg
EUV39WJ1tKtnT4Hz1VzOE8VTJxXKyGF1wkZ6H9Sz6dhlAOu4evAlliGS0OZo19il
fx21WiSBAJeoRKZ2nKhj5zHR7Huy1pDiVJq3r/2RSwao5tiVIAsVMuTodFyRqDRW
lMT23Mx16ckK2S2AjT5f24nh6cvDTcuJfdb1XQenoMNKfDblcGGg4kfdIUr9k2oB
EL2m1mm1M+a9D/VUQP7PK9cOUj6OVpZF766XeKCFMQKBgQDx9qaALch7zLQQo4zX
o8eFhSPeLGI7j/PIHwcap7vRNmogctspKYOWMsA4AH/0DqfSS9VIE8AI6uXx55Iy
r+niBHswUsanotqEJiN+8KVrlMFxV4cXeWT67uK8d4uM/TS4Q0g2jiGlABZfCBE/
A+JofDUTpI1MtX/ieC/Q7sJlBQKBgQDZHjMF6Q6zigRoZ28VYQzTQctnXi3VaLX4
hlowihZbc9yenyMsQubg/qEOFcBPJ4jwdQXP6JrpOOp1QkgsUbXY0dSMUWTWRkNC
NajOOrhD/57/OxyHLfJVTpprfWQd9LJ790RTXQhhgXuPoXwAIclN2rQaTa4M0N0O
5pNYy4POvwKBgH+9bqOHCCvLo1iRb568mW41Hv2BQw8c7V++ebqpyO8nohmlaWyu
vQiDnJU0Nlj7j7/nRx85Rg2vLVxrm/RkiL5JDVwypywDPwe7NswiccJ9Ey8qPWi4
LwaHLW7AUg1J9BY/dxVOLhb1F9pt4OT6wQHWaRMIsYxI2c4PE3djRX+dAoGBAIIH
PQVwIxbRNHyWXYePPNAUWk3IsGhbsodpZwAk4ujYRatVoQnz8zOSK0A1NJvzEGb5
noZ6RrQgGwIotPKd6Os2FzYF1P8iy0sOuc7wicRnhYBTlW07ziLa1U5EpT3veykU
1/2Y/NjwY+CMFKg7k8SlkzEhjngsagdvfZUzJPgfAoGBAMe4G6fT+LoRNj+lyYvb
9LUfrl+neDil9CmukYHxzKuYY0erQy+4+n5lnlZvbtPDzBDqPphlzywxo+YS5HD7
HcYlJo78M7B+dF4unqGhjIEuvTqw5kWmQ2KYoItE1SXhHgWSTRzwbbpj6WO84nNh
X5mqQhDfF/WaPEaSg4vVAHL7
-----END PRIVATE KEY-----";

const RSA_PUBLIC_PEM: &str = r"-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAzTaeQ+MYesiKbUrFM9mr
qhQRXems1flm07PTEu4H9/yCjpOPagNYSzbSYvIzRmKGZy+JOWS7ZL5Zrgv2rbgt
RPlDLSn9FX4ZTaQMooy2rcY9Be9Xvjm/Yxa2+zIuDuXjtASVVPcNa8PHtAf+T8me
ym2QRECvb/zw/SSo2mqrqUKCdavw/DGNaVMt37zxw9zzJMMCbFV2cVOaVQPyMtTY
vzvJejtapBrOkg58YxIQ37T5d1YGJ6qCCbpOFndT5nudOErGsyX7fdDtpQ/sPR0I
j8p2opJEMnXHuX3JHxPg+cFy9GcGY65ZJkseZ2S9aUIH2XRQ4uD6VnuOtrlPOOJk
uwIDAQAB
-----END PUBLIC KEY-----";

/// A second, asymmetric key live next to the HS256 one (as during a rotation).
fn rsa_key_config() -> String {
    format!(
        "\n[[auth.keys]]\nkid = \"{RSA_KID}\"\nalgorithm = \"RS256\"\npublic_key_pem = '''\n{RSA_PUBLIC_PEM}\n'''\n"
    )
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The claims of a valid `sales` token with every group scope; each case breaks one thing.
fn good_claims(app: &TestApp) -> Value {
    let now = now();
    json!({
        "iss": app.settings.auth.issuer,
        "aud": app.settings.auth.audience,
        "sub": "sales",
        "exp": now + 3600,
        "iat": now,
        "jti": uuid(),
        "scope": ALL_SCOPES,
    })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims
        .as_object_mut()
        .expect("claims are an object")
        .remove(key);
    claims
}

fn signed(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("token")
}

fn hs256_with(kid: Option<&str>, claims: &Value, secret: &[u8]) -> String {
    signed(
        Algorithm::HS256,
        kid,
        claims,
        &EncodingKey::from_secret(secret),
    )
}

/// Signed like the gateway's own tokens: HS256 with the configured secret and kid.
fn hs256(claims: &Value) -> String {
    hs256_with(Some(KID), claims, SIGNING_SECRET.as_bytes())
}

fn rs256(kid: &str, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).expect("rsa key");
    signed(Algorithm::RS256, Some(kid), claims, &key)
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
}

/// A token whose header is written by hand (any `alg`) and whose signature is
/// HMAC-SHA256 keyed with `hmac_key`, whatever the header says.
fn hand_signed(header: &Value, claims: &Value, hmac_key: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let signature = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(hmac_key),
        Algorithm::HS256,
    )
    .expect("hmac");
    format!("{input}.{signature}")
}

fn bearer(token: &str) -> Credentials {
    Credentials::Authorization(format!("Bearer {token}"))
}

#[derive(Clone, Debug)]
enum Credentials {
    Missing,
    /// The raw `Authorization` header value.
    Authorization(String),
    /// `?access_token=` and no header.
    Query(String),
}

#[derive(Clone, Debug)]
enum Payload {
    Empty,
    Json(Value),
    Jpeg(Vec<u8>),
}

#[derive(Clone, Debug)]
struct Call {
    method: Method,
    path: String,
    payload: Payload,
}

fn call(method: Method, path: impl Into<String>, payload: Payload) -> Call {
    Call {
        method,
        path: path.into(),
        payload,
    }
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// Every /v1 route, each with a body that would pass validation, so only auth can refuse it.
fn every_route(group: &str) -> Vec<Call> {
    use Method as M;
    use Payload::{Empty, Jpeg, Json};
    let g = |suffix: &str| format!("/v1/groups/{group}{suffix}");
    vec![
        call(
            M::POST,
            format!("/v1/phone-numbers/{PN}/groups"),
            Json(json!({"subject": "Leak?"})),
        ),
        call(M::GET, format!("/v1/phone-numbers/{PN}/groups"), Empty),
        call(M::GET, "/v1/group-requests/req_0123456789abcdef", Empty),
        call(M::GET, g(""), Empty),
        call(M::PATCH, g(""), Json(json!({"subject": "Renamed"}))),
        call(
            M::PUT,
            g("/profile-picture"),
            Jpeg(synthetic_jpeg_header(192, 192)),
        ),
        call(M::DELETE, g(""), Empty),
        call(M::GET, g("/invite-link"), Empty),
        call(M::POST, g("/invite-link"), Empty),
        call(
            M::POST,
            g("/invitations"),
            Json(
                json!({"to": "+16505551234", "template": {"name": "group_invite", "language": "en_US"}}),
            ),
        ),
        call(
            M::POST,
            g("/messages"),
            Json(json!({"type": "text", "text": {"body": "Hello?"}})),
        ),
        call(M::GET, g("/join-requests"), Empty),
        call(
            M::POST,
            g("/join-requests/approve"),
            Json(json!({"join_request_ids": ["JR1"]})),
        ),
        call(
            M::POST,
            g("/join-requests/reject"),
            Json(json!({"join_request_ids": ["JR1"]})),
        ),
        call(M::GET, "/v1/events", Empty),
        call(
            M::POST,
            g("/participants/remove"),
            Json(json!({"participants": ["+16505551234"]})),
        ),
    ]
}

async fn send(app: &TestApp, credentials: &Credentials, call: &Call) -> reqwest::Response {
    let mut url = app.url(&call.path);
    if let Credentials::Query(token) = credentials {
        let sep = if url.contains('?') { '&' } else { '?' };
        url = format!("{url}{sep}access_token={token}");
    }
    let mut req = app.http.request(call.method.clone(), url);
    if let Credentials::Authorization(value) = credentials {
        req = req.header("authorization", value);
    }
    req = match &call.payload {
        Payload::Empty => req,
        Payload::Json(body) => req.json(body),
        Payload::Jpeg(bytes) => req.header("content-type", "image/jpeg").body(bytes.clone()),
    };
    req.send().await.expect("request")
}

/// Meta answers anything, so a leaked call would be recorded (and would succeed).
async fn answer_everything(app: &TestApp) {
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"success": true, "request_id": "X"})),
        )
        .with_priority(u8::MAX)
        .mount(&app.meta)
        .await;
}

/// Checks a refusal: status, problem+json, `X-Request-Id`, and for 401 the challenge.
/// Returns the problem body.
async fn refused(res: reqwest::Response, status: u16, case: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "{case}");
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if status == 401 {
        let challenge = header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer"),
            "{case}: WWW-Authenticate was {challenge:?}"
        );
    }
    let ct = header("content-type").unwrap_or_default();
    assert!(
        ct.starts_with("application/problem+json"),
        "{case}: content-type {ct:?}"
    );
    let request_id = header("x-request-id").unwrap_or_default();
    assert!(!request_id.is_empty(), "{case}: no X-Request-Id");
    let body: Value = res.json().await.expect("problem json");
    assert_eq!(body["status"], status, "{case}: {body}");
    assert_eq!(body["request_id"], request_id.as_str(), "{case}: {body}");
    body
}

// ---- 401 ---------------------------------------------------------------------------------

#[tokio::test]
async fn every_bad_credential_is_401_on_every_route_and_nothing_reaches_meta() {
    let app = spawn_app_with(&rsa_key_config()).await;
    let group = app.create_group(&app.sales(), PN, "Auth matrix").await;
    answer_everything(&app).await;
    let good = good_claims(&app);
    let now = now();
    let alg_none_header = json!({"alg": "none", "typ": "JWT", "kid": KID});
    // A valid support token whose payload is swapped for sales' claims: signature mismatch.
    let tampered = {
        let support = app.token("support", &["groups:read"]);
        let parts: Vec<&str> = support.split('.').collect();
        format!("{}.{}.{}", parts[0], b64(&good), parts[2])
    };
    let cases: Vec<(&str, Credentials)> = vec![
        ("no Authorization header", Credentials::Missing),
        (
            "Basic scheme",
            Credentials::Authorization(format!("Basic {}", STANDARD.encode("sales:secret"))),
        ),
        (
            "Basic scheme carrying a valid JWT",
            Credentials::Authorization(format!("Basic {}", hs256(&good))),
        ),
        (
            "a valid JWT without a scheme",
            Credentials::Authorization(hs256(&good)),
        ),
        (
            "Bearer and no token",
            Credentials::Authorization("Bearer".into()),
        ),
        ("malformed token", bearer("not-a-jwt")),
        ("three segments of garbage", bearer("aaa.bbb.ccc")),
        ("a 100 KB token", bearer(&"a".repeat(100_000))),
        (
            "alg none, empty signature",
            bearer(&format!("{}.{}.", b64(&alg_none_header), b64(&good))),
        ),
        (
            "alg none with an HMAC signature",
            bearer(&hand_signed(
                &alg_none_header,
                &good,
                SIGNING_SECRET.as_bytes(),
            )),
        ),
        (
            "signed with the wrong HS256 secret",
            bearer(&hs256_with(
                Some(KID),
                &good,
                b"another-secret-of-some-length",
            )),
        ),
        ("claims tampered after signing", bearer(&tampered)),
        (
            "expired beyond the 30 s leeway",
            bearer(&hs256(&with(
                with(good.clone(), "exp", json!(now - 120)),
                "iat",
                json!(now - 3600),
            ))),
        ),
        (
            "nbf beyond the 30 s leeway",
            bearer(&hs256(&with(good.clone(), "nbf", json!(now + 120)))),
        ),
        (
            "wrong iss",
            bearer(&hs256(&with(good.clone(), "iss", json!("someone-else")))),
        ),
        (
            "wrong aud",
            bearer(&hs256(&with(good.clone(), "aud", json!("other-api")))),
        ),
        (
            "empty aud list",
            bearer(&hs256(&with(good.clone(), "aud", json!([])))),
        ),
        (
            "scope as a list",
            bearer(&hs256(&with(
                good.clone(),
                "scope",
                json!(["groups:read", "groups:write"]),
            ))),
        ),
        (
            "phone_numbers not a list",
            bearer(&hs256(&with(good.clone(), "phone_numbers", json!(PN)))),
        ),
        (
            "aud list without ours",
            bearer(&hs256(&with(
                good.clone(),
                "aud",
                json!(["other-api", "wa-groups"]),
            ))),
        ),
        (
            "unknown kid",
            bearer(&hs256_with(
                Some("who-is-this"),
                &good,
                SIGNING_SECRET.as_bytes(),
            )),
        ),
        (
            "missing kid",
            bearer(&hs256_with(None, &good, SIGNING_SECRET.as_bytes())),
        ),
        (
            "unknown team",
            bearer(&hs256(&with(good.clone(), "sub", json!("ghost")))),
        ),
        (
            "team name in another case",
            bearer(&hs256(&with(good.clone(), "sub", json!("Sales")))),
        ),
        ("missing jti", bearer(&hs256(&without(good.clone(), "jti")))),
        (
            "missing scope",
            bearer(&hs256(&without(good.clone(), "scope"))),
        ),
        ("missing exp", bearer(&hs256(&without(good.clone(), "exp")))),
        ("missing iat", bearer(&hs256(&without(good.clone(), "iat")))),
        ("missing sub", bearer(&hs256(&without(good.clone(), "sub")))),
        ("missing iss", bearer(&hs256(&without(good.clone(), "iss")))),
        ("missing aud", bearer(&hs256(&without(good.clone(), "aud")))),
        (
            "exp as a string",
            bearer(&hs256(&with(
                good.clone(),
                "exp",
                json!((now + 3600).to_string()),
            ))),
        ),
        (
            "token in the query string",
            Credentials::Query(hs256(&good)),
        ),
        (
            "header says RS256, HMAC-signed with the HS256 secret",
            bearer(&hand_signed(
                &json!({"alg": "RS256", "typ": "JWT", "kid": KID}),
                &good,
                SIGNING_SECRET.as_bytes(),
            )),
        ),
        (
            "RS256-signed token presented for the HS256 kid",
            bearer(&rs256(KID, &good)),
        ),
        (
            "HS256 token for the RSA kid, HMAC keyed with its public key",
            bearer(&hand_signed(
                &json!({"alg": "HS256", "typ": "JWT", "kid": RSA_KID}),
                &good,
                RSA_PUBLIC_PEM.as_bytes(),
            )),
        ),
        (
            "HS512 token for the HS256 kid",
            bearer(&signed(
                Algorithm::HS512,
                Some(KID),
                &good,
                &EncodingKey::from_secret(SIGNING_SECRET.as_bytes()),
            )),
        ),
    ];
    assert!(cases.len() >= 14);
    let routes = every_route(&group);
    for (name, credentials) in &cases {
        let before = app.upstream_requests().await.len();
        for route in &routes {
            let case = format!("{name}: {route}");
            let res = send(&app, credentials, route).await;
            let body = refused(res, 401, &case).await;
            assert_eq!(body["title"], "Authentication required", "{case}");
            // No response ever contains a full JWT (DESIGN §5).
            if let Credentials::Authorization(value) | Credentials::Query(value) = credentials {
                let token = value.rsplit(' ').next().unwrap_or(value);
                if token.len() > 20 {
                    assert!(!body.to_string().contains(token), "{case}: token echoed");
                }
            }
        }
        let leaked = app.upstream_requests().await.len() - before;
        assert_eq!(leaked, 0, "{name}: {leaked} request(s) reached Meta");
    }
}

/// Edge tokens that are valid: the positive side of the matrix, so the 401s above are not
/// a gateway that refuses everything.
#[tokio::test]
async fn tokens_at_the_edges_of_the_rules_are_accepted() {
    let app = spawn_app_with(&rsa_key_config()).await;
    answer_everything(&app).await;
    let good = good_claims(&app);
    let now = now();
    let audience = app.settings.auth.audience.clone();
    let cases: Vec<(&str, Credentials)> = vec![
        ("the gateway's own token", bearer(&app.sales())),
        ("a hand-built HS256 token", bearer(&hs256(&good))),
        (
            "a hand-signed HS256 token (control for the alg cases)",
            bearer(&hand_signed(
                &json!({"alg": "HS256", "typ": "JWT", "kid": KID}),
                &good,
                SIGNING_SECRET.as_bytes(),
            )),
        ),
        (
            "aud as a list containing ours",
            bearer(&hs256(&with(
                good.clone(),
                "aud",
                json!(["other-api", audience]),
            ))),
        ),
        (
            "expired within the leeway",
            bearer(&hs256(&with(good.clone(), "exp", json!(now - 10)))),
        ),
        (
            "nbf within the leeway",
            bearer(&hs256(&with(good.clone(), "nbf", json!(now + 10)))),
        ),
        (
            "nbf in the past",
            bearer(&hs256(&with(good.clone(), "nbf", json!(now - 60)))),
        ),
        (
            "RS256 with the RSA kid (rotation)",
            bearer(&rs256(RSA_KID, &good)),
        ),
        (
            "phone_numbers naming the number",
            bearer(&hs256(&with(good.clone(), "phone_numbers", json!([PN])))),
        ),
        (
            "unknown scopes next to the right one",
            bearer(&hs256(&with(
                good.clone(),
                "scope",
                json!("groups:everything groups:read"),
            ))),
        ),
    ];
    for (name, credentials) in &cases {
        let route = call(
            Method::GET,
            format!("/v1/phone-numbers/{PN}/groups"),
            Payload::Empty,
        );
        let res = send(&app, credentials, &route).await;
        assert_eq!(
            res.status(),
            200,
            "{name}: {}",
            res.text().await.unwrap_or_default()
        );
    }
    assert!(app.upstream_requests().await.is_empty());
}

// ---- 403 ---------------------------------------------------------------------------------

#[tokio::test]
async fn missing_scopes_and_grants_are_403_and_nothing_reaches_meta() {
    let app = spawn_app().await;
    let sales = app.sales();
    let on_pn = app.create_group(&sales, PN, "On PN").await;
    let on_pn2 = app.create_group(&sales, PN2, "On PN2").await;
    answer_everything(&app).await;

    let only = |team: &str, scopes: &[&str]| app.token(team, scopes);
    let narrowed = |team: &str, numbers: &[&str]| {
        app.token_for_numbers(
            team,
            &[
                "groups:read",
                "groups:write",
                "groups:delete",
                "groups:invite",
                "groups:message",
            ],
            Some(numbers.iter().map(|n| n.to_string()).collect()),
        )
    };
    let good = good_claims(&app);
    let routes_on = |pn: &str, group: &str| {
        every_route(group)
            .into_iter()
            .map(|mut c| {
                c.path = c.path.replace(
                    &format!("/phone-numbers/{PN}/"),
                    &format!("/phone-numbers/{pn}/"),
                );
                c
            })
            .collect::<Vec<_>>()
    };
    let route = |method: Method, p: &str, payload: Payload| call(method, p.to_owned(), payload);
    let create = |pn: &str| {
        route(
            Method::POST,
            &format!("/v1/phone-numbers/{pn}/groups"),
            Payload::Json(json!({"subject": "Nope"})),
        )
    };
    let list = |pn: &str| {
        route(
            Method::GET,
            &format!("/v1/phone-numbers/{pn}/groups"),
            Payload::Empty,
        )
    };
    let group = |g: &str| route(Method::GET, &format!("/v1/groups/{g}"), Payload::Empty);
    let delete = |g: &str| route(Method::DELETE, &format!("/v1/groups/{g}"), Payload::Empty);
    let patch = |g: &str| {
        route(
            Method::PATCH,
            &format!("/v1/groups/{g}"),
            Payload::Json(json!({"subject": "Renamed"})),
        )
    };
    let invite = |g: &str| {
        route(
            Method::POST,
            &format!("/v1/groups/{g}/invitations"),
            Payload::Json(
                json!({"to": "+16505551234", "template": {"name": "group_invite", "language": "en_US"}}),
            ),
        )
    };
    let message = |g: &str| {
        route(
            Method::POST,
            &format!("/v1/groups/{g}/messages"),
            Payload::Json(json!({"type": "text", "text": {"body": "Hello?"}})),
        )
    };

    let mut cases: Vec<(String, String, Call)> = vec![
        (
            "groups:read calling create".into(),
            only("sales", &["groups:read"]),
            create(PN),
        ),
        (
            "groups:read calling update".into(),
            only("sales", &["groups:read"]),
            patch(&on_pn),
        ),
        (
            "groups:write calling delete".into(),
            only("sales", &["groups:write"]),
            delete(&on_pn),
        ),
        (
            "groups:read+write calling invitations".into(),
            only("sales", &["groups:read", "groups:write"]),
            invite(&on_pn),
        ),
        (
            "every other group scope calling messages".into(),
            only(
                "sales",
                &[
                    "groups:read",
                    "groups:write",
                    "groups:delete",
                    "groups:invite",
                ],
            ),
            message(&on_pn),
        ),
        (
            "groups:message calling invitations".into(),
            only("sales", &["groups:message"]),
            invite(&on_pn),
        ),
        (
            "groups:write calling get".into(),
            only("sales", &["groups:write"]),
            group(&on_pn),
        ),
        (
            "groups:write calling events".into(),
            only("sales", &["groups:write", "groups:delete", "groups:invite"]),
            route(Method::GET, "/v1/events", Payload::Empty),
        ),
        (
            "groups:write calling list".into(),
            only("sales", &["groups:write"]),
            list(PN),
        ),
        (
            "groups:invite calling delete".into(),
            only("sales", &["groups:invite"]),
            delete(&on_pn),
        ),
        (
            "admin on a non-admin team calling list".into(),
            only("sales", &["admin"]),
            list(PN),
        ),
        (
            "admin on a non-admin team calling create".into(),
            only("sales", &["admin"]),
            create(PN),
        ),
        (
            "admin on a non-admin team calling delete".into(),
            only("sales", &["admin"]),
            delete(&on_pn),
        ),
        (
            "admin alone on the admin team is not groups:read".into(),
            only("platform", &["admin"]),
            list(PN),
        ),
        (
            "unknown scope only".into(),
            hs256(&with(good.clone(), "scope", json!("groups:everything"))),
            list(PN),
        ),
        (
            "comma-separated scopes are not scopes".into(),
            hs256(&with(
                good.clone(),
                "scope",
                json!("groups:read,groups:write"),
            )),
            create(PN),
        ),
        (
            "scope names are case-sensitive".into(),
            hs256(&with(good.clone(), "scope", json!("GROUPS:READ"))),
            list(PN),
        ),
        (
            "empty scope".into(),
            hs256(&with(good.clone(), "scope", json!(""))),
            list(PN),
        ),
        (
            "support listing PN2 (not granted)".into(),
            app.token("support", &["groups:read"]),
            list(PN2),
        ),
        (
            "support creating on PN2 (not granted)".into(),
            app.token("support", &["groups:write"]),
            create(PN2),
        ),
        (
            "support narrowed to PN2 cannot widen its grants".into(),
            narrowed("support", &[PN2]),
            list(PN2),
        ),
        (
            "support narrowed to PN2 loses PN".into(),
            narrowed("support", &[PN2]),
            list(PN),
        ),
        (
            "sales narrowed to PN listing PN2".into(),
            narrowed("sales", &[PN]),
            list(PN2),
        ),
        (
            "sales narrowed to PN creating on PN2".into(),
            narrowed("sales", &[PN]),
            create(PN2),
        ),
        (
            "sales narrowed to PN reading a PN2 group".into(),
            narrowed("sales", &[PN]),
            group(&on_pn2),
        ),
        (
            "sales narrowed to PN deleting a PN2 group".into(),
            narrowed("sales", &[PN]),
            delete(&on_pn2),
        ),
        (
            "sales narrowed to PN inviting to a PN2 group".into(),
            narrowed("sales", &[PN]),
            invite(&on_pn2),
        ),
        (
            "sales narrowed to nothing".into(),
            narrowed("sales", &[]),
            list(PN),
        ),
        (
            "a number configured nowhere".into(),
            sales.clone(),
            list("333333"),
        ),
    ];
    // Every PN2 group route for a token narrowed to PN.
    for c in routes_on(PN2, &on_pn2) {
        if c.path.starts_with("/v1/groups/") || c.path.starts_with("/v1/phone-numbers/") {
            cases.push((
                format!("sales narrowed to PN: {c}"),
                narrowed("sales", &[PN]),
                c,
            ));
        }
    }
    for (name, token, route) in &cases {
        let before = app.upstream_requests().await.len();
        let res = send(&app, &bearer(token), route).await;
        let body = refused(res, 403, &format!("{name}: {route}")).await;
        assert_eq!(body["title"], "Not allowed", "{name}");
        let leaked = app.upstream_requests().await.len() - before;
        assert_eq!(leaked, 0, "{name}: {leaked} request(s) reached Meta");
    }
}

// ---- 404 ---------------------------------------------------------------------------------

/// The problem with the group id masked, so two 404s for different ids can be compared.
fn masked(mut problem: Value, id: &str) -> Value {
    let detail = problem["detail"]
        .as_str()
        .unwrap_or_default()
        .replace(id, "<id>");
    problem["detail"] = json!(detail);
    problem["request_id"] = json!("<request>");
    problem
}

#[tokio::test]
async fn another_teams_group_is_404_exactly_like_an_unknown_one() {
    let app = spawn_app().await;
    let theirs = app.create_group(&app.sales(), PN, "Sales only").await;
    answer_everything(&app).await;
    let unknown = format!("G{}", uuid());
    let support = app.token(
        "support",
        &[
            "groups:read",
            "groups:write",
            "groups:delete",
            "groups:invite",
            "groups:message",
        ],
    );
    // Admin does not lift ownership on the team routes either.
    let platform = app.token(
        "platform",
        &[
            "admin",
            "groups:read",
            "groups:write",
            "groups:delete",
            "groups:invite",
            "groups:message",
        ],
    );
    for token in [&support, &platform] {
        for route in every_route(&theirs) {
            if !route.path.starts_with("/v1/groups/") {
                continue;
            }
            let before = app.upstream_requests().await.len();
            let res = send(&app, &bearer(token), &route).await;
            let not_owned = refused(res, 404, &format!("not owned: {route}")).await;
            let unknown_route = Call {
                path: route.path.replace(&theirs, &unknown),
                ..route.clone()
            };
            let res = send(&app, &bearer(token), &unknown_route).await;
            let missing = refused(res, 404, &format!("unknown: {unknown_route}")).await;
            assert_eq!(
                masked(not_owned, &theirs),
                masked(missing, &unknown),
                "{route}: a group of another team must look unknown"
            );
            assert_eq!(
                app.upstream_requests().await.len(),
                before,
                "{route} reached Meta"
            );
        }
    }
    // A group on a number the caller is not even granted is still 404, not 403: a 403 would
    // tell support that the id exists.
    let on_pn2 = app.create_group(&app.sales(), PN2, "Sales PN2").await;
    let before = app.upstream_requests().await.len();
    for route in every_route(&on_pn2) {
        if !route.path.starts_with("/v1/groups/") {
            continue;
        }
        let res = send(&app, &bearer(&support), &route).await;
        refused(res, 404, &format!("not owned, number not granted: {route}")).await;
    }
    assert_eq!(app.upstream_requests().await.len(), before);
    // And it does not show in their listing.
    let list: Value = app
        .get(&format!("/v1/phone-numbers/{PN}/groups"), &support)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["groups"], json!([]));
}

#[tokio::test]
async fn another_teams_group_request_is_404_exactly_like_an_unknown_one() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(format!("/{API_VERSION}/{PN}/groups")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"request_id": "R-404"})))
        .mount(&app.meta)
        .await;
    let res = app
        .post_json(
            &format!("/v1/phone-numbers/{PN}/groups"),
            &app.sales(),
            &json!({"subject": "S"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let request_id = res.json::<Value>().await.expect("json")["request_id"]
        .as_str()
        .expect("request_id")
        .to_owned();
    let before = app.upstream_requests().await.len();
    let support = app.token("support", &["groups:read"]);
    let theirs = refused(
        app.get(&format!("/v1/group-requests/{request_id}"), &support)
            .await,
        404,
        "another team's request",
    )
    .await;
    let unknown_id = "req_00000000000000000000000000000000";
    let unknown = refused(
        app.get(&format!("/v1/group-requests/{unknown_id}"), &support)
            .await,
        404,
        "unknown request",
    )
    .await;
    assert_eq!(masked(theirs, &request_id), masked(unknown, unknown_id));
    assert_eq!(app.upstream_requests().await.len(), before);
}

// ---- order of checks (DESIGN §4) ---------------------------------------------------------

#[tokio::test]
async fn checks_run_in_the_documented_order() {
    let app = spawn_app().await;
    let theirs = app.create_group(&app.sales(), PN, "Order").await;
    answer_everything(&app).await;
    let before = app.upstream_requests().await.len();
    let bad_create = |pn: &str| {
        call(
            Method::POST,
            format!("/v1/phone-numbers/{pn}/groups?wait_seconds=99"),
            Payload::Json(json!({"subject": "   ", "colour": "red"})),
        )
    };
    let read_only = app.token("support", &["groups:read"]);
    let support_all = app.token(
        "support",
        &[
            "groups:read",
            "groups:write",
            "groups:delete",
            "groups:invite",
            "groups:message",
        ],
    );
    let good = good_claims(&app);

    // 401 before 400: a bad token with a bad body and a bad path.
    let expired = hs256(&with(good.clone(), "exp", json!(now() - 3600)));
    for credentials in [Credentials::Missing, bearer(&expired), bearer("garbage")] {
        refused(
            send(&app, &credentials, &bad_create("12a")).await,
            401,
            "bad token + bad body",
        )
        .await;
    }
    // 400 before 403: no scope, and a bad body — every broken field listed.
    let p = refused(
        send(&app, &bearer(&read_only), &bad_create("12a")).await,
        400,
        "no scope + bad body",
    )
    .await;
    let mut fields = error_fields(&p);
    fields.sort();
    assert_eq!(
        fields,
        ["colour", "phone_number_id", "subject", "wait_seconds"],
        "{p}"
    );
    // 400 before 403: number not granted (PN2), and a bad body.
    let p = refused(
        send(&app, &bearer(&support_all), &bad_create(PN2)).await,
        400,
        "no grant + bad body",
    )
    .await;
    assert!(error_fields(&p).contains(&"subject".to_owned()), "{p}");
    // 403 once the shape is right.
    let good_create = call(
        Method::POST,
        format!("/v1/phone-numbers/{PN}/groups"),
        Payload::Json(json!({"subject": "Fine"})),
    );
    refused(
        send(&app, &bearer(&read_only), &good_create).await,
        403,
        "no scope",
    )
    .await;
    // 400 before 404: another team's group with a bad body.
    let patch = |body: Value| {
        call(
            Method::PATCH,
            format!("/v1/groups/{theirs}"),
            Payload::Json(body),
        )
    };
    let p = refused(
        send(&app, &bearer(&support_all), &patch(json!({"subject": 7}))).await,
        400,
        "not owned + bad body",
    )
    .await;
    assert_eq!(error_fields(&p), ["subject"], "{p}");
    // 403 before 404: no scope on another team's (or an unknown) group.
    for g in [theirs.as_str(), "Gunknown"] {
        let delete = call(Method::DELETE, format!("/v1/groups/{g}"), Payload::Empty);
        refused(
            send(&app, &bearer(&read_only), &delete).await,
            403,
            "no scope + not owned",
        )
        .await;
    }
    // 401 before 413: a bad token with a body over the JSON limit.
    let huge = call(
        Method::POST,
        format!("/v1/phone-numbers/{PN}/groups"),
        Payload::Json(json!({"subject": "S", "description": "d".repeat(200 * 1024)})),
    );
    refused(
        send(&app, &bearer(&expired), &huge).await,
        401,
        "bad token + huge body",
    )
    .await;
    // 404 once scope and shape are right.
    refused(
        send(
            &app,
            &bearer(&support_all),
            &patch(json!({"subject": "Mine now"})),
        )
        .await,
        404,
        "not owned",
    )
    .await;
    assert_eq!(
        app.upstream_requests().await.len(),
        before,
        "nothing reached Meta"
    );
}

// ---- admin routes -----------------------------------------------------------------------

/// `admin` is honoured only for a team whose config says `admin = true` (DESIGN §3).
#[tokio::test]
async fn admin_scope_counts_only_for_an_admin_team() {
    let app = spawn_app().await;
    answer_everything(&app).await;
    let admin_routes = [
        call(Method::GET, "/v1/admin/audit", Payload::Empty),
        call(
            Method::GET,
            format!("/v1/admin/phone-numbers/{PN}/groups"),
            Payload::Empty,
        ),
        call(
            Method::POST,
            "/v1/admin/tokens",
            Payload::Json(json!({"team": "sales", "scopes": ["groups:read"]})),
        ),
    ];
    let pretender = app.token("sales", &["admin", "groups:read", "groups:write"]);
    for route in &admin_routes {
        refused(
            send(&app, &bearer(&pretender), route).await,
            403,
            &format!("sales admin: {route}"),
        )
        .await;
    }
    assert!(app.upstream_requests().await.is_empty());
    // The same scope on the admin team is honoured (the audit log is local).
    let platform = app.token("platform", &["admin"]);
    let res = send(&app, &bearer(&platform), &admin_routes[0]).await;
    assert_eq!(
        res.status(),
        200,
        "platform admin: {}",
        res.text().await.unwrap_or_default()
    );
}

// ---- scheme and revocation -----------------------------------------------------------------

/// RFC 7235 §2.1: the auth scheme is a case-insensitive token.
#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = spawn_app().await;
    let token = app.token("sales", &["groups:read"]);
    for scheme in ["Bearer", "bearer", "BEARER", "BeArEr"] {
        let route = call(
            Method::GET,
            format!("/v1/phone-numbers/{PN}/groups"),
            Payload::Empty,
        );
        let res = send(
            &app,
            &Credentials::Authorization(format!("{scheme} {token}")),
            &route,
        )
        .await;
        assert_eq!(res.status(), 200, "scheme {scheme}");
    }
}

/// DESIGN §3: authorization needs "jti not revoked"; §5: revoked is 401; §4:
/// `DELETE /v1/admin/tokens/{jti}` revokes at once on the replica that answered.
#[tokio::test]
async fn a_revoked_token_is_401_at_once() {
    let app = spawn_app().await;
    answer_everything(&app).await;
    let sales = app.token("sales", &["groups:read"]);
    let list = call(
        Method::GET,
        format!("/v1/phone-numbers/{PN}/groups"),
        Payload::Empty,
    );
    assert_eq!(send(&app, &bearer(&sales), &list).await.status(), 200);
    let platform = app.token("platform", &["admin"]);
    let res = app
        .delete(&format!("/v1/admin/tokens/{}", jti_of(&sales)), &platform)
        .await;
    assert!(
        res.status().is_success(),
        "revoke answered {}",
        res.status()
    );
    refused(
        send(&app, &bearer(&sales), &list).await,
        401,
        "revoked token",
    )
    .await;
    // Another token of the same team is unaffected.
    let other = app.token("sales", &["groups:read"]);
    assert_eq!(send(&app, &bearer(&other), &list).await.status(), 200);
    assert!(app.upstream_requests().await.is_empty());
}

// ---- token rules beyond the signature (DESIGN §3) ------------------------------------------

/// The status of a local read (`GET /v1/phone-numbers/{PN}/groups`) with `token`, and the
/// problem's detail when refused.
async fn read_with(app: &TestApp, token: &str) -> (u16, String) {
    let route = call(
        Method::GET,
        format!("/v1/phone-numbers/{PN}/groups"),
        Payload::Empty,
    );
    let res = send(app, &bearer(token), &route).await;
    let status = res.status().as_u16();
    if status == 200 {
        return (status, String::new());
    }
    let body = refused(res, status, "read").await;
    (
        status,
        body["detail"].as_str().unwrap_or_default().to_owned(),
    )
}

/// A token whose `jti` could not be revoked (it cannot travel in the revocation URL or
/// argument) is refused outright; ids in the documented alphabet, up to 128, are accepted.
#[tokio::test]
async fn a_token_whose_jti_could_not_be_revoked_is_401() {
    let app = spawn_app().await;
    answer_everything(&app).await;
    let good = good_claims(&app);
    let refused_ids = [
        json!(""),
        json!(" "),
        json!("é"),
        json!("a".repeat(300)),
        json!("a".repeat(129)),
        json!("a/b"),
        json!("a%2Fb"),
        json!("a b"),
        json!("tab\there"),
        json!(7),
        json!(null),
    ];
    for jti in refused_ids {
        let token = hs256(&with(good.clone(), "jti", jti.clone()));
        let (status, detail) = read_with(&app, &token).await;
        assert_eq!(status, 401, "jti {jti}: {detail}");
        // Asked twice: a refused token is not remembered as verified either.
        assert_eq!(read_with(&app, &token).await.0, 401, "jti {jti} again");
    }
    for jti in [
        "a".repeat(128),
        "0b8f6c1e-9d1a-4c5b-8f3e-1a2b3c4d5e6f".to_owned(),
        "01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned(),
        "aGVsbG8_d29ybGQ-.~".to_owned(),
    ] {
        let token = hs256(&with(good.clone(), "jti", json!(jti)));
        let (status, detail) = read_with(&app, &token).await;
        assert_eq!(status, 200, "jti {jti}: {detail}");
    }
    assert!(app.upstream_requests().await.is_empty());
}

/// RFC 7515 §4.1.11: a `crit` header names extensions the recipient must understand, and
/// `b64` (RFC 7797) changes what the signature covers. The gateway understands none, so
/// such a token is refused whatever the value, even correctly signed.
#[tokio::test]
async fn a_header_with_crit_or_b64_is_401() {
    let app = spawn_app().await;
    answer_everything(&app).await;
    let good = good_claims(&app);
    let header = |extra: Value| {
        let mut h = json!({"alg": "HS256", "typ": "JWT", "kid": KID});
        for (k, v) in extra.as_object().expect("object") {
            h[k] = v.clone();
        }
        h
    };
    let cases = [
        json!({"crit": ["exp"]}),
        json!({"crit": ["b64"], "b64": false}),
        json!({"crit": []}),
        json!({"crit": null}),
        json!({"crit": "exp"}),
        json!({"b64": false}),
        json!({"b64": true}),
    ];
    for extra in cases {
        let token = hand_signed(&header(extra.clone()), &good, SIGNING_SECRET.as_bytes());
        let (status, detail) = read_with(&app, &token).await;
        assert_eq!(status, 401, "header with {extra}: {detail}");
    }
    // The same token without the extension (the control), and with an unknown member that
    // claims nothing, is accepted.
    for extra in [json!({}), json!({"x-note": "harmless"})] {
        let token = hand_signed(&header(extra.clone()), &good, SIGNING_SECRET.as_bytes());
        let (status, detail) = read_with(&app, &token).await;
        assert_eq!(status, 200, "header with {extra}: {detail}");
    }
    assert!(app.upstream_requests().await.is_empty());
}

/// `exp - iat` is bounded by `auth.max_token_ttl_seconds` for every token, wherever it was
/// signed, and a token issued in the future (beyond the leeway) is refused: a leaked key
/// cannot mint tokens that outlive its rotation.
#[tokio::test]
async fn endless_and_future_tokens_are_401() {
    let app = spawn_app().await;
    answer_everything(&app).await;
    let max = i64::try_from(app.settings.auth.max_token_ttl_seconds).unwrap();
    assert_eq!(max, 90 * 86_400);
    let leeway = i64::try_from(app.settings.auth.leeway_seconds).unwrap();
    let now = now();
    let lived = |iat: i64, exp: i64| {
        let claims = with(good_claims(&app), "iat", json!(iat));
        hs256(&with(claims, "exp", json!(exp)))
    };
    let refused_tokens = [
        ("a 100-year token", lived(now, now + 100 * 365 * 86_400)),
        ("one second over the maximum", lived(now, now + max + 1)),
        (
            "issued long ago, over the maximum in all",
            lived(now - max, now + 60),
        ),
        ("issued in an hour", lived(now + 3600, now + 7200)),
        (
            "issued just beyond the leeway",
            lived(now + leeway + 30, now + 3600),
        ),
        (
            "issued in the year 3000",
            lived(32_503_680_000, 32_503_683_600),
        ),
        ("iat as a string", {
            let claims = with(good_claims(&app), "iat", json!(now.to_string()));
            hs256(&claims)
        }),
    ];
    for (name, token) in &refused_tokens {
        let (status, detail) = read_with(&app, token).await;
        assert_eq!(status, 401, "{name}: {detail}");
        assert_eq!(read_with(&app, token).await.0, 401, "{name}, asked again");
    }
    let accepted = [
        ("exactly the maximum", lived(now, now + max)),
        ("issued within the leeway", lived(now + 10, now + 3600)),
        (
            "issued long ago, within the maximum",
            lived(now - max + 3600, now + 60),
        ),
    ];
    for (name, token) in &accepted {
        let (status, detail) = read_with(&app, token).await;
        assert_eq!(status, 200, "{name}: {detail}");
    }
    assert!(app.upstream_requests().await.is_empty());
}

/// The bound follows configuration: a gateway configured for one hour refuses a two-hour
/// token it would have accepted with the default.
#[tokio::test]
async fn the_lifetime_bound_on_verification_is_configurable() {
    let app = spawn_app_with("\n[auth]\nmax_token_ttl_seconds = 3600\n").await;
    answer_everything(&app).await;
    let now = now();
    let lived = |exp: i64| hs256(&with(good_claims(&app), "exp", json!(exp)));
    assert_eq!(read_with(&app, &lived(now + 7200)).await.0, 401);
    assert_eq!(read_with(&app, &lived(now + 3600)).await.0, 200);
    // Zero would refuse every token: it is a configuration error naming the key.
    let refused = wa_groups_gateway::config::Settings::from_toml_overrides(
        "[auth]\nmax_token_ttl_seconds = 0\n",
    )
    .expect_err("0 is refused")
    .to_string();
    assert!(refused.contains("auth.max_token_ttl_seconds"), "{refused}");
}
