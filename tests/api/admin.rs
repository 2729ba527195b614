//! The platform team's side (DESIGN §3 keys, §4 admin rows): key rotation and asymmetric
//! algorithms, token issuing limits, revocation across replicas and restarts, the audit log,
//! group adoption, and the refusal of every admin route to everyone else.

use secrecy::ExposeSecret;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::Method;
use serde_json::{Value, json};
use wa_groups_gateway::config::{AuthSettings, Settings};
use wa_groups_gateway::domain::synthetic_jpeg_header;
use wa_groups_gateway::startup::Application;
use wiremock::matchers::{any, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

// ---- helpers --------------------------------------------------------------------------------

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn segment(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).expect("segment");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64")).expect("json")
}

fn jti_of(token: &str) -> String {
    segment(token, 1)["jti"].as_str().expect("jti").to_owned()
}

/// A token built by hand: base64url(header).base64url(claims), signed by `sign`.
fn jwt(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        b64(&serde_json::to_vec(header).expect("json")),
        b64(&serde_json::to_vec(claims).expect("json"))
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

fn hmac_sha256(key: &[u8], input: &[u8]) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    aws_lc_rs::hmac::sign(&key, input).as_ref().to_vec()
}

/// Valid claims of a `sales` token that may read groups.
fn sales_claims(app: &TestApp) -> Value {
    let now = now();
    json!({
        "iss": app.settings.auth.issuer,
        "aud": app.settings.auth.audience,
        "sub": "sales",
        "exp": now + 3600,
        "iat": now,
        "jti": uuid(),
        "scope": "groups:read",
    })
}

fn pem(label: &str, der: &[u8]) -> String {
    let text = STANDARD.encode(der);
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A key pair made by aws-lc-rs for one test, with its PEMs (SPKI public, PKCS#8 private).
struct TestKey {
    kid: String,
    alg: &'static str,
    public_pem: String,
    private_pem: String,
    signer: Signer,
}

impl TestKey {
    fn rsa(kid: &str) -> TestKey {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa key");
        let private: Pkcs8V1Der = pair.as_der().expect("pkcs8");
        let public: PublicKeyX509Der = pair.public_key().as_der().expect("spki");
        TestKey {
            kid: kid.into(),
            alg: "RS256",
            public_pem: pem("PUBLIC KEY", public.as_ref()),
            private_pem: pem("PRIVATE KEY", private.as_ref()),
            signer: Signer::Rsa(pair),
        }
    }

    fn ec(kid: &str) -> TestKey {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("p-256 key");
        let private = pair.to_pkcs8v1().expect("pkcs8");
        let public: PublicKeyX509Der = pair.public_key().as_der().expect("spki");
        TestKey {
            kid: kid.into(),
            alg: "ES256",
            public_pem: pem("PUBLIC KEY", public.as_ref()),
            private_pem: pem("PRIVATE KEY", private.as_ref()),
            signer: Signer::Ec(pair),
        }
    }

    fn ed(kid: &str) -> TestKey {
        let pair = Ed25519KeyPair::generate().expect("ed25519 key");
        let private = pair.to_pkcs8v1().expect("pkcs8");
        let public: PublicKeyX509Der = pair.public_key().as_der().expect("spki");
        TestKey {
            kid: kid.into(),
            alg: "EdDSA",
            public_pem: pem("PUBLIC KEY", public.as_ref()),
            private_pem: pem("PRIVATE KEY", private.as_ref()),
            signer: Signer::Ed(pair),
        }
    }

    /// RS256 = RSASSA-PKCS1-v1_5 SHA-256; ES256 = P-256 SHA-256 as fixed r||s (RFC 7518
    /// §3.4); EdDSA = Ed25519.
    fn sign(&self, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Rsa(k) => {
                let mut signature = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, input, &mut signature)
                    .expect("rsa signature");
                signature
            }
            Signer::Ec(k) => k.sign(&rng, input).expect("ecdsa").as_ref().to_vec(),
            Signer::Ed(k) => k.sign(input).as_ref().to_vec(),
        }
    }

    /// A token signed by this key, whose header says `alg` and `kid`.
    fn token_as(&self, alg: &str, kid: &str, claims: &Value) -> String {
        jwt(
            &json!({"alg": alg, "typ": "JWT", "kid": kid}),
            claims,
            |input| self.sign(input),
        )
    }

    fn token(&self, claims: &Value) -> String {
        self.token_as(self.alg, &self.kid, claims)
    }

    /// An `[[auth.keys]]` entry with the public key inline.
    fn config(&self) -> String {
        format!(
            "\n[[auth.keys]]\nkid = \"{}\"\nalgorithm = \"{}\"\npublic_key_pem = '''\n{}'''\n",
            self.kid, self.alg, self.public_pem
        )
    }

    /// An `[[auth.keys]]` entry reading both halves from files in `dir`.
    fn config_from_files(&self, dir: &Path, signing: bool) -> String {
        let public = dir.join(format!("{}.pub.pem", self.kid));
        let private = dir.join(format!("{}.pem", self.kid));
        std::fs::write(&public, &self.public_pem).expect("write public key");
        std::fs::write(&private, &self.private_pem).expect("write private key");
        format!(
            "\n[[auth.keys]]\nkid = \"{}\"\nalgorithm = \"{}\"\npublic_key_pem_file = {:?}\nprivate_key_pem_file = {:?}\nsigning = {signing}\n",
            self.kid, self.alg, public, private
        )
    }
}

/// The auth settings of a configuration whose only keys are `keys_toml`.
fn auth_with(keys_toml: &str) -> AuthSettings {
    Settings::from_toml_overrides(keys_toml)
        .expect("key configuration is valid")
        .auth
}

/// The test configuration's HS256 key, as TOML.
fn original_key(signing: bool) -> String {
    format!(
        "\n[[auth.keys]]\nkid = \"{KID}\"\nalgorithm = \"HS256\"\nsecret = \"{SIGNING_SECRET}\"\nsigning = {signing}\n"
    )
}

/// Another gateway on `settings`: a second replica or a restart (same database).
struct Replica {
    address: String,
    http: reqwest::Client,
}

async fn replica(settings: Settings) -> Replica {
    let app = Application::build(settings).await.expect("replica builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    Replica {
        address,
        http: reqwest::Client::new(),
    }
}

/// The status of `GET /v1/phone-numbers/{PN}/groups` (a local read) with `token`.
async fn list_status(http: &reqwest::Client, base: &str, token: &str) -> u16 {
    http.get(format!("{base}/v1/phone-numbers/{PN}/groups"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

fn platform(app: &TestApp) -> String {
    app.token("platform", &["admin"])
}

async fn issue(app: &TestApp, body: &Value) -> reqwest::Response {
    app.post_json("/v1/admin/tokens", &platform(app), body)
        .await
}

/// Every audit record matching `query`, newest first, following the cursors.
async fn audit(app: &TestApp, query: &str) -> Vec<Value> {
    let admin = platform(app);
    let mut records = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("/v1/admin/audit?limit=1000&{query}");
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let res = app.get(&url, &admin).await;
        assert_eq!(res.status(), 200, "audit {url}");
        let page: Value = res.json().await.expect("json");
        records.extend(page["records"].as_array().expect("records").iter().cloned());
        match page["paging"]["after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => return records,
        }
    }
}

fn with_request_id(
    app: &TestApp,
    method: Method,
    path: &str,
    request_id: &str,
) -> reqwest::RequestBuilder {
    app.http
        .request(method, app.url(path))
        .header("x-request-id", request_id)
}

// ---- keys -------------------------------------------------------------------------------

#[tokio::test]
async fn tokens_signed_elsewhere_with_rs256_es256_and_eddsa_are_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rsa = TestKey::rsa("rsa-2026");
    let ec = TestKey::ec("ec-2026");
    let ed = TestKey::ed("ed-2026");
    // Inline PEM for two, `_file` for the third.
    let ec_file = dir.path().join("ec.pub.pem");
    std::fs::write(&ec_file, &ec.public_pem).expect("write");
    let ec_config = format!(
        "\n[[auth.keys]]\nkid = \"{}\"\nalgorithm = \"ES256\"\npublic_key_pem_file = {:?}\n",
        ec.kid, ec_file
    );
    let app = spawn_app_with(&format!("{}{ec_config}{}", rsa.config(), ed.config())).await;
    let claims = sales_claims(&app);
    for key in [&rsa, &ec, &ed] {
        let token = key.token(&claims);
        assert_eq!(
            list_status(&app.http, &app.address, &token).await,
            200,
            "{} token",
            key.alg
        );
    }
    // The gateway's own HS256 key keeps working beside them.
    assert_eq!(
        list_status(&app.http, &app.address, &app.sales()).await,
        200
    );
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn the_algorithm_comes_from_the_key_never_from_the_token() {
    let rsa = TestKey::rsa("rsa-key");
    let ec = TestKey::ec("ec-key");
    let ed = TestKey::ed("ed-key");
    let stranger = TestKey::rsa("rsa-key");
    let app = spawn_app_with(&format!("{}{}{}", rsa.config(), ec.config(), ed.config())).await;
    let claims = sales_claims(&app);
    let input_of = |header: &Value| {
        format!(
            "{}.{}",
            b64(&serde_json::to_vec(header).unwrap()),
            b64(&serde_json::to_vec(&claims).unwrap())
        )
    };
    let der_es256 = {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": "ec-key"});
        let input = input_of(&header);
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &STANDARD
                .decode(
                    ec.private_pem
                        .lines()
                        .filter(|l| !l.starts_with("-----"))
                        .collect::<String>(),
                )
                .unwrap(),
        )
        .expect("same key, ASN.1 signatures");
        let sig = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "RSA-signed, header RS256, kid of the ES256 key",
            rsa.token_as("RS256", "ec-key", &claims),
        ),
        (
            "EdDSA-signed, header EdDSA, kid of the ES256 key",
            ed.token_as("EdDSA", "ec-key", &claims),
        ),
        (
            "ES256-signed, header ES256, kid of the EdDSA key",
            ec.token_as("ES256", "ed-key", &claims),
        ),
        (
            "ES256-signed, header ES384, kid of the ES256 key",
            ec.token_as("ES384", "ec-key", &claims),
        ),
        (
            "RS256 with the RSA kid, signed by another RSA key",
            stranger.token(&claims),
        ),
        (
            "HS256 with the RSA kid, HMAC keyed with the RSA public PEM",
            jwt(
                &json!({"alg": "HS256", "typ": "JWT", "kid": "rsa-key"}),
                &claims,
                |i| hmac_sha256(rsa.public_pem.as_bytes(), i),
            ),
        ),
        (
            "HS256 with the EdDSA kid, HMAC keyed with the EdDSA public PEM",
            jwt(
                &json!({"alg": "HS256", "typ": "JWT", "kid": "ed-key"}),
                &claims,
                |i| hmac_sha256(ed.public_pem.as_bytes(), i),
            ),
        ),
        (
            "HS256 with the ES256 kid, HMAC keyed with the ES256 public PEM",
            jwt(
                &json!({"alg": "HS256", "typ": "JWT", "kid": "ec-key"}),
                &claims,
                |i| hmac_sha256(ec.public_pem.as_bytes(), i),
            ),
        ),
        (
            "alg none with the ES256 kid",
            jwt(
                &json!({"alg": "none", "typ": "JWT", "kid": "ec-key"}),
                &claims,
                |_| Vec::new(),
            ),
        ),
        (
            "RS256 token for the HS256 kid",
            rsa.token_as("RS256", KID, &claims),
        ),
        (
            "ES256 signature in DER form instead of fixed r||s",
            der_es256,
        ),
    ];
    for (name, token) in &cases {
        let res = app
            .get(&format!("/v1/phone-numbers/{PN}/groups"), token)
            .await;
        assert_eq!(res.status(), 401, "{name}");
        assert!(
            res.headers()
                .get("www-authenticate")
                .is_some_and(|v| v.to_str().unwrap_or("").starts_with("Bearer")),
            "{name}"
        );
    }
    // The controls: each key with its own algorithm is accepted.
    for key in [&rsa, &ec, &ed] {
        assert_eq!(
            list_status(&app.http, &app.address, &key.token(&claims)).await,
            200,
            "{}",
            key.alg
        );
    }
}

/// The README's rotation: add the new key everywhere, sign with it, retire the old one.
/// Callers keep their tokens throughout; only the old key's tokens stop at retirement.
#[tokio::test]
async fn keys_rotate_without_callers_restarting() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let new_key = TestKey::ed("ed-2027");
    let old_token = app.token("sales", &["groups:read"]);
    assert_eq!(list_status(&app.http, &app.address, &old_token).await, 200);

    // Steps 1 and 2: both keys, the new one signs (its private half from a file).
    let mut overlap = app.settings.clone();
    overlap.auth = auth_with(&format!(
        "{}{}",
        original_key(false),
        new_key.config_from_files(dir.path(), true)
    ));
    let during = replica(overlap).await;
    let res = during
        .http
        .post(format!("{}/v1/admin/tokens", during.address))
        .bearer_auth(platform(&app))
        .json(&json!({"team": "sales", "scopes": ["groups:read"]}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 201);
    let new_token = res.json::<Value>().await.expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let header = segment(&new_token, 0);
    assert_eq!(header["kid"], "ed-2027");
    assert_eq!(header["alg"], "EdDSA");
    // The gateway's EdDSA signature verifies with an independent library.
    let (input, signature) = new_token.rsplit_once('.').expect("three segments");
    UnparsedPublicKey::new(
        &ED25519,
        match &new_key.signer {
            Signer::Ed(k) => k.public_key().as_ref().to_vec(),
            _ => unreachable!(),
        },
    )
    .verify(
        input.as_bytes(),
        &URL_SAFE_NO_PAD.decode(signature).expect("base64"),
    )
    .expect("a valid Ed25519 signature");
    for token in [&old_token, &new_token] {
        assert_eq!(list_status(&during.http, &during.address, token).await, 200);
    }
    // A replica still on the old configuration does not know the new kid yet: that is why
    // the new key must reach every replica before anything is signed with it.
    assert_eq!(list_status(&app.http, &app.address, &new_token).await, 401);

    // Step 3: the old key retired; a restart with only the new key.
    let mut retired = app.settings.clone();
    retired.auth = auth_with(&new_key.config_from_files(dir.path(), true));
    let after = replica(retired).await;
    assert_eq!(
        list_status(&after.http, &after.address, &old_token).await,
        401
    );
    assert_eq!(
        list_status(&after.http, &after.address, &new_token).await,
        200
    );
}

// ---- issuing ------------------------------------------------------------------------------

#[tokio::test]
async fn issuing_refuses_what_configuration_does_not_allow_naming_the_field() {
    let app = spawn_app().await;
    let max = app.settings.auth.max_token_ttl_seconds;
    assert_eq!(max, 90 * 86_400, "the default maximum is 90 days");
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "unknown team",
            json!({"team": "ghost", "scopes": ["groups:read"]}),
            vec!["team"],
        ),
        (
            "unknown scope",
            json!({"team": "sales", "scopes": ["groups:everything"]}),
            vec!["scopes[0]"],
        ),
        (
            "admin for a non-admin team",
            json!({"team": "sales", "scopes": ["groups:read", "admin"]}),
            vec!["scopes[1]"],
        ),
        (
            "number outside the team's grants",
            json!({"team": "support", "scopes": ["groups:read"], "phone_numbers": [PN2]}),
            vec!["phone_numbers[0]"],
        ),
        (
            "ttl over the maximum",
            json!({"team": "sales", "scopes": ["groups:read"], "ttl_seconds": max + 1}),
            vec!["ttl_seconds"],
        ),
        (
            "no scope",
            json!({"team": "sales", "scopes": []}),
            vec!["scopes"],
        ),
        (
            "everything at once",
            json!({"team": "ghost", "scopes": ["nope"], "phone_numbers": ["12a"], "ttl_seconds": 0}),
            vec!["phone_numbers[0]", "scopes[0]", "team", "ttl_seconds"],
        ),
        (
            "wrong types and an unknown field",
            json!({"team": 7, "scopes": "groups:read", "ttl_seconds": -1, "colour": "red"}),
            vec!["colour", "scopes", "team", "ttl_seconds"],
        ),
        (
            "null optional field",
            json!({"team": "sales", "scopes": ["groups:read"], "phone_numbers": null}),
            vec!["phone_numbers"],
        ),
    ];
    for (name, body, expected) in cases {
        let res = issue(&app, &body).await;
        assert_eq!(res.status(), 400, "{name}");
        let p = problem(res).await;
        let mut fields = error_fields(&p);
        fields.sort();
        assert_eq!(fields, expected, "{name}: {p}");
    }
    // The command line applies the same rules, naming its options.
    let cli = |team: &str, scopes: &[&str], numbers: &[&str], ttl: &str| {
        wa_groups_gateway::cli::issue_token(
            &app.settings,
            team,
            &scopes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &numbers.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            Some(ttl),
            None,
        )
        .map(|t| t.jti)
    };
    let refused = [
        (cli("ghost", &["groups:read"], &[], "1h"), "--team"),
        (cli("sales", &["groups:nope"], &[], "1h"), "--scope"),
        (cli("sales", &["admin"], &[], "1h"), "--scope"),
        (
            cli("support", &["groups:read"], &[PN2], "1h"),
            "--phone-number",
        ),
        (cli("sales", &["groups:read"], &[], "91d"), "--ttl"),
    ];
    for (result, option) in refused {
        let message = result.expect_err("refused");
        assert!(message.contains(option), "{message}");
    }
    assert!(cli("platform", &["admin"], &[], "90d").is_ok());
}

#[tokio::test]
async fn an_issued_token_works_and_is_shaped_as_asked() {
    let app = spawn_app().await;
    let res = issue(
        &app,
        &json!({"team": "sales", "scopes": ["groups:read"], "phone_numbers": [PN2], "ttl_seconds": 600}),
    )
    .await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        res.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let body: Value = res.json().await.expect("json");
    let token = body["token"].as_str().expect("token").to_owned();
    let claims = segment(&token, 1);
    assert_eq!(body["jti"], claims["jti"]);
    assert_eq!(claims["sub"], "sales");
    assert_eq!(claims["scope"], "groups:read");
    assert_eq!(claims["phone_numbers"], json!([PN2]));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    let expires_at = chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap())
        .expect("RFC 3339");
    assert_eq!(expires_at.timestamp(), claims["exp"].as_i64().unwrap());
    // Narrowed to PN2: PN is refused, PN2 works.
    let on = |pn: &str| format!("/v1/phone-numbers/{pn}/groups");
    assert_eq!(app.get(&on(PN2), &token).await.status(), 200);
    assert_eq!(app.get(&on(PN), &token).await.status(), 403);

    // Without ttl_seconds: 30 days; admin for the admin team is fine.
    let res = issue(&app, &json!({"team": "platform", "scopes": ["admin"]})).await;
    assert_eq!(res.status(), 201);
    let admin_token = res.json::<Value>().await.expect("json")["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let claims = segment(&admin_token, 1);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        30 * 86_400
    );
    assert_eq!(app.get("/v1/admin/audit", &admin_token).await.status(), 200);

    // The issuance is audited with the new token's jti, never the token itself.
    let records = audit(&app, "team=platform").await;
    let issued: Vec<&Value> = records
        .iter()
        .filter(|r| r["route"] == "/v1/admin/tokens" && r["method"] == "POST")
        .collect();
    assert_eq!(issued.len(), 2, "{records:?}");
    assert!(
        issued
            .iter()
            .any(|r| r["details"]["issued_jti"] == body["jti"]
                && r["details"]["issued_team"] == "sales"
                && r["status"] == 201)
    );
    let all = serde_json::to_string(&audit(&app, "").await).unwrap();
    assert!(
        !all.contains(&token) && !all.contains(&admin_token),
        "no token in the audit log"
    );
}

#[tokio::test]
async fn the_maximum_ttl_is_configurable() {
    let app = spawn_app_with("\n[auth]\nmax_token_ttl_seconds = 3600\n").await;
    assert_eq!(app.settings.auth.max_token_ttl_seconds, 3600);
    let res = issue(
        &app,
        &json!({"team": "sales", "scopes": ["groups:read"], "ttl_seconds": 3601}),
    )
    .await;
    assert_eq!(error_fields(&problem(res).await), ["ttl_seconds"]);
    // Without ttl_seconds the default shrinks to the maximum.
    let res = issue(&app, &json!({"team": "sales", "scopes": ["groups:read"]})).await;
    assert_eq!(res.status(), 201);
    let claims = segment(
        res.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap(),
        1,
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    // So does the command line's default when --ttl is not given.
    let token = wa_groups_gateway::cli::issue_token(
        &app.settings,
        "sales",
        &["groups:read".to_owned()],
        &[],
        None,
        None,
    )
    .expect("the default TTL fits the maximum")
    .token;
    let claims = segment(&token, 1);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
}

// ---- revocation ----------------------------------------------------------------------------

/// Polls `base` until `token` is refused; answers how long that took.
async fn refused_within(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        if list_status(http, base, token).await == 401 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "still accepted after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_revoked_token_is_refused_by_every_replica_and_after_restarts() {
    let app = spawn_app().await;
    let other = replica(app.settings.clone()).await;
    let sales = app.token("sales", &["groups:read"]);
    let jti = jti_of(&sales);
    assert_eq!(list_status(&other.http, &other.address, &sales).await, 200);

    let res = app
        .delete(&format!("/v1/admin/tokens/{jti}"), &platform(&app))
        .await;
    assert_eq!(res.status(), 204);
    // At once here…
    let res = app
        .get(&format!("/v1/phone-numbers/{PN}/groups"), &sales)
        .await;
    assert_eq!(res.status(), 401);
    assert!(
        problem(res).await["detail"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
    // …within a second on the other replica…
    refused_within(
        &other.http,
        &other.address,
        &sales,
        Duration::from_millis(1500),
    )
    .await;
    // …and from the first request after a restart.
    let restarted = replica(app.settings.clone()).await;
    assert_eq!(
        list_status(&restarted.http, &restarted.address, &sales).await,
        401
    );
    // Other tokens of the team are unaffected; revoking again is harmless.
    let fresh = app.token("sales", &["groups:read"]);
    assert_eq!(
        list_status(&restarted.http, &restarted.address, &fresh).await,
        200
    );
    let res = app
        .delete(&format!("/v1/admin/tokens/{jti}"), &platform(&app))
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .delete("/v1/admin/tokens/has%20space", &platform(&app))
        .await;
    assert_eq!(error_fields(&problem(res).await), ["jti"]);

    // The revocation is in the audit log.
    let records = audit(&app, "team=platform").await;
    let revoked: Vec<&Value> = records
        .iter()
        .filter(|r| r["details"]["revoked_jti"] == jti.as_str())
        .collect();
    assert_eq!(revoked.len(), 2, "{records:?}");
    assert_eq!(revoked[0]["route"], "/v1/admin/tokens/{jti}");
    assert_eq!(revoked[0]["method"], "DELETE");
    assert_eq!(revoked[0]["status"], 204);
}

#[tokio::test]
async fn token_revoke_on_the_command_line_reaches_running_gateways() {
    let app = spawn_app().await;
    let sales = app.token("sales", &["groups:read"]);
    assert_eq!(list_status(&app.http, &app.address, &sales).await, 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_wa-groups-gateway"))
        .args(["token", "revoke", &jti_of(&sales)])
        .current_dir(dir.path())
        .env("APP_ENVIRONMENT", "admin-test")
        .env(
            "WAGW__STORAGE__URL",
            app.settings.storage.url.expose_secret(),
        )
        .env_remove("WAGW_CONFIG")
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    refused_within(&app.http, &app.address, &sales, Duration::from_millis(1500)).await;
}

// ---- audit -------------------------------------------------------------------------------

/// (request id, method, path, JSON body, route template, status)
type AuditedCall = (
    &'static str,
    Method,
    String,
    Option<Value>,
    &'static str,
    u16,
);

#[tokio::test]
async fn every_mutating_call_leaves_one_audit_record_with_its_details() {
    let app = spawn_app().await;
    let sales = app.sales();
    let sales_jti = jti_of(&sales);

    // The creation: the group id is not known when the call is answered.
    let meta_request = format!("meta-req-{}", uuid());
    let group = format!("G{}", uuid());
    let guard = Mock::given(method("POST"))
        .and(path(format!("/{API_VERSION}/{PN}/groups")))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-fb-trace-id", "TraceCreate")
                .set_body_json(
                    json!({"messaging_product": "whatsapp", "request_id": meta_request}),
                ),
        )
        .expect(1)
        .mount_as_scoped(&app.meta)
        .await;
    let res = with_request_id(
        &app,
        Method::POST,
        &format!("/v1/phone-numbers/{PN}/groups"),
        "audit-create",
    )
    .bearer_auth(&sales)
    .json(&json!({"subject": "Audited"}))
    .send()
    .await
    .expect("request");
    assert_eq!(res.status(), 202);
    let create_request_id = res.json::<Value>().await.unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    drop(guard);
    let hook = lifecycle_webhook(
        PN,
        vec![json!({
            "timestamp": "1755548877", "group_id": group, "type": "group_create",
            "request_id": meta_request, "subject": "Audited",
            "invite_link": "https://chat.whatsapp.com/L", "join_approval_mode": "auto_approve"
        })],
    );
    assert_eq!(app.send_webhook(&hook).await.status(), 200);
    app.wait_for_request(&sales, &create_request_id, "created")
        .await;

    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-fb-trace-id", "TraceOK")
                .set_body_json(json!({
                    "success": true, "request_id": "MR",
                    "invite_link": "https://chat.whatsapp.com/NEW",
                    "messages": [{"id": "wamid.X"}],
                    "approved_join_requests": ["JR1"], "rejected_join_requests": ["JR1"]
                })),
        )
        .with_priority(u8::MAX)
        .mount(&app.meta)
        .await;
    let g = |suffix: &str| format!("/v1/groups/{group}{suffix}");
    let invitation =
        json!({"to": "+16505551234", "template": {"name": "group_invite", "language": "en_US"}});
    let calls: Vec<AuditedCall> = vec![
        (
            "audit-patch",
            Method::PATCH,
            g(""),
            Some(json!({"subject": "Renamed"})),
            "/v1/groups/{group_id}",
            202,
        ),
        (
            "audit-picture",
            Method::PUT,
            g("/profile-picture"),
            None,
            "/v1/groups/{group_id}/profile-picture",
            202,
        ),
        (
            "audit-reset-link",
            Method::POST,
            g("/invite-link"),
            None,
            "/v1/groups/{group_id}/invite-link",
            200,
        ),
        (
            "audit-invite",
            Method::POST,
            g("/invitations"),
            Some(invitation.clone()),
            "/v1/groups/{group_id}/invitations",
            202,
        ),
        (
            "audit-approve",
            Method::POST,
            g("/join-requests/approve"),
            Some(json!({"join_request_ids": ["JR1"]})),
            "/v1/groups/{group_id}/join-requests/approve",
            200,
        ),
        (
            "audit-reject",
            Method::POST,
            g("/join-requests/reject"),
            Some(json!({"join_request_ids": ["JR1"]})),
            "/v1/groups/{group_id}/join-requests/reject",
            200,
        ),
        (
            "audit-remove",
            Method::POST,
            g("/participants/remove"),
            Some(json!({"participants": ["+16505551234"]})),
            "/v1/groups/{group_id}/participants/remove",
            202,
        ),
    ];
    for (request_id, m, p, body, _, status) in &calls {
        let mut req = with_request_id(&app, m.clone(), p, request_id).bearer_auth(&sales);
        req = match body {
            Some(b) => req.json(b),
            None if p.ends_with("/profile-picture") => req
                .header("content-type", "image/jpeg")
                .body(synthetic_jpeg_header(192, 192)),
            None => req,
        };
        let res = req.send().await.expect("request");
        assert_eq!(res.status().as_u16(), *status, "{request_id}");
    }
    // Meta refuses an invitation: its status, code and trace are recorded. (Not a scoped
    // mock: wiremock 0.6 deactivates the wrong mock when priorities reordered its set.)
    Mock::given(method("POST"))
        .and(path(format!("/{API_VERSION}/{PN}/messages")))
        .respond_with(ResponseTemplate::new(400).set_body_json(meta_error(
            131203,
            "Recipient has not accepted our new Terms of Service",
        )))
        .up_to_n_times(1)
        .mount(&app.meta)
        .await;
    let res = with_request_id(
        &app,
        Method::POST,
        &g("/invitations"),
        "audit-invite-refused",
    )
    .bearer_auth(&sales)
    .json(&invitation)
    .send()
    .await
    .expect("request");
    assert_eq!(res.status(), 400);
    // A read is not audited; nor is an attempt without a token (anyone could send those as
    // fast as they like: they are counted, not stored).
    let res = with_request_id(&app, Method::GET, &g("/invite-link"), "audit-read")
        .bearer_auth(&sales)
        .send()
        .await
        .expect("request");
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let res = with_request_id(&app, Method::DELETE, &g(""), "audit-anonymous")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 401);
    let res = with_request_id(&app, Method::DELETE, &g(""), "audit-delete")
        .bearer_auth(&sales)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 204);

    let records = audit(&app, &format!("group_id={group}")).await;
    let by_id =
        |id: &str| -> Vec<&Value> { records.iter().filter(|r| r["request_id"] == id).collect() };
    assert!(by_id("audit-read").is_empty(), "reads are not audited");

    let create = by_id("audit-create");
    assert_eq!(create.len(), 1, "{records:#?}");
    let create = create[0];
    assert_eq!(create["method"], "POST");
    assert_eq!(
        create["route"],
        "/v1/phone-numbers/{phone_number_id}/groups"
    );
    assert_eq!(create["create_request_id"], create_request_id.as_str());
    assert_eq!(create["team"], "sales");
    assert_eq!(create["jti"], sales_jti.as_str());
    assert_eq!(create["phone_number_id"], PN);
    assert_eq!(create["upstream_status"], 200);
    assert_eq!(create["fbtrace_id"], "TraceCreate");
    assert_eq!(create["status"], 202);

    let mut expected: Vec<(&str, &str, &str, u16)> = calls
        .iter()
        .map(|(id, m, _, _, route, status)| (*id, m.as_str(), *route, *status))
        .collect();
    expected.push(("audit-delete", "DELETE", "/v1/groups/{group_id}", 204));
    for (id, m, route, status) in expected {
        let rows = by_id(id);
        assert_eq!(rows.len(), 1, "{id}: {records:#?}");
        let r = rows[0];
        assert_eq!(r["method"], m, "{id}");
        assert_eq!(r["route"], route, "{id}");
        assert_eq!(r["team"], "sales", "{id}");
        assert_eq!(r["jti"], sales_jti.as_str(), "{id}");
        assert_eq!(r["phone_number_id"], PN, "{id}");
        assert_eq!(r["group_id"], group.as_str(), "{id}");
        assert_eq!(r["upstream_status"], 200, "{id}");
        assert_eq!(r["fbtrace_id"], "TraceOK", "{id}");
        assert_eq!(r["status"], status, "{id}");
        assert!(
            r["occurred_at"]
                .as_str()
                .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok())
        );
    }
    let refused = by_id("audit-invite-refused");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["status"], 400);
    assert_eq!(refused[0]["upstream_status"], 400);
    assert_eq!(refused[0]["upstream_code"], 131203);
    assert_eq!(refused[0]["fbtrace_id"], "AbCdEfTrace");
    assert!(
        by_id("audit-anonymous").is_empty(),
        "no record without a token"
    );

    // Newest first, ids unique; the group's records are the 10 authenticated calls above.
    assert_eq!(records.len(), 10, "{records:#?}");
    let ids: Vec<i64> = records
        .iter()
        .map(|r| r["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    assert_eq!(records[0]["request_id"], "audit-delete");
    assert_eq!(records.last().unwrap()["request_id"], "audit-create");
    // No token anywhere in it.
    let text = serde_json::to_string(&records).unwrap();
    assert!(!text.contains(&sales));
}

#[tokio::test]
async fn the_audit_log_filters_and_pages() {
    let app = spawn_app().await;
    let sales = app.sales();
    let support = app.token("support", &["groups:write"]);
    Mock::given(method("POST"))
        .and(path(format!("/{API_VERSION}/{PN}/groups")))
        .respond_with(|_: &wiremock::Request| {
            ResponseTemplate::new(200).set_body_json(json!({"request_id": format!("R{}", uuid())}))
        })
        .mount(&app.meta)
        .await;
    let started = chrono::Utc::now();
    for (i, token) in [&sales, &support, &sales, &sales, &support]
        .iter()
        .enumerate()
    {
        let res = app
            .post_json(
                &format!("/v1/phone-numbers/{PN}/groups"),
                token,
                &json!({"subject": format!("S{i}")}),
            )
            .await;
        assert_eq!(res.status(), 202);
    }
    let support_rows = audit(&app, "team=support").await;
    assert_eq!(support_rows.len(), 2);
    assert!(support_rows.iter().all(|r| r["team"] == "support"));
    let sales_rows = audit(&app, "team=sales").await;
    assert_eq!(sales_rows.len(), 3);
    let since = (started - chrono::Duration::seconds(1)).to_rfc3339();
    let recent = audit(
        &app,
        &format!("team=sales&since={}", since.replace('+', "%2B")),
    )
    .await;
    assert_eq!(recent.len(), 3);
    let future = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert!(audit(&app, &format!("since={future}")).await.is_empty());

    // Pages of two, newest first, cover the same records as one big page.
    let admin = platform(&app);
    let mut paged = Vec::new();
    let mut url = "/v1/admin/audit?team=sales&limit=2".to_owned();
    loop {
        let page: Value = app.get(&url, &admin).await.json().await.unwrap();
        let records = page["records"].as_array().unwrap();
        assert!(records.len() <= 2);
        paged.extend(records.iter().map(|r| r["id"].clone()));
        match page["paging"]["after"].as_str() {
            Some(a) => url = format!("/v1/admin/audit?team=sales&limit=2&after={a}"),
            None => break,
        }
    }
    let whole: Vec<Value> = sales_rows.iter().map(|r| r["id"].clone()).collect();
    assert_eq!(paged, whole);

    // Bad filters are 400s naming the parameter.
    for (query, field) in [
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
        ("after=bogus", "after"),
        ("group_id=not%20a%20group", "group_id"),
        ("teams=sales", "teams"),
    ] {
        let res = app.get(&format!("/v1/admin/audit?{query}"), &admin).await;
        assert_eq!(error_fields(&problem(res).await), [field], "{query}");
    }
}

// ---- ownership ------------------------------------------------------------------------------

#[tokio::test]
async fn a_group_created_at_meta_is_listed_adopted_and_moved() {
    let app = spawn_app_with("\n[teams.marketing]\nphone_numbers = [\"222222\"]\n").await;
    let sales = app.sales();
    let support = app.token("support", &["groups:read"]);
    let owned = app.create_group(&sales, PN, "Ours").await;
    let external = format!("Gmeta{}", uuid());
    let admin = platform(&app);

    // Meta's listing has both; the gateway adds each owner.
    Mock::given(method("GET"))
        .and(path(format!("/{API_VERSION}/{PN}/groups")))
        .and(query_param("limit", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"groups": [
                {"id": owned, "subject": "Ours", "created_at": 1755548877},
                {"id": external, "subject": "Made at Meta", "created_at": "1755548000"}
            ]},
            "paging": {"cursors": {"before": "QkVGT1JF", "after": "QUZURVI="}, "next": "https://graph.facebook.com/next"}
        })))
        .expect(1)
        .mount(&app.meta)
        .await;
    let res = app
        .get(
            &format!("/v1/admin/phone-numbers/{PN}/groups?limit=2"),
            &admin,
        )
        .await;
    assert_eq!(res.status(), 200);
    let listing: Value = res.json().await.unwrap();
    assert_eq!(listing["groups"][0]["id"], owned.as_str());
    assert_eq!(listing["groups"][0]["owner"], "sales");
    assert_eq!(listing["groups"][1]["id"], external.as_str());
    assert_eq!(listing["groups"][1]["owner"], Value::Null);
    assert_eq!(listing["groups"][1]["subject"], "Made at Meta");
    assert_eq!(listing["paging"]["after"], "QUZURVI=");
    // The cursor goes back to Meta as is.
    Mock::given(method("GET"))
        .and(path(format!("/{API_VERSION}/{PN}/groups")))
        .and(query_param("after", "QUZURVI="))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {"groups": []}})))
        .expect(1)
        .mount(&app.meta)
        .await;
    let res = app
        .get(
            &format!("/v1/admin/phone-numbers/{PN}/groups?after=QUZURVI%3D"),
            &admin,
        )
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["groups"], json!([]));

    // Not adopted yet: invisible to teams.
    assert_eq!(
        app.get(&format!("/v1/groups/{external}"), &support)
            .await
            .status(),
        404
    );

    // Adoption asks Meta whether the group exists on that number.
    Mock::given(method("GET"))
        .and(path(format!("/{API_VERSION}/{external}")))
        .and(query_param("fields", "subject"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-fb-trace-id", "TraceAdopt")
                .set_body_json(json!({"id": external, "subject": "Made at Meta"})),
        )
        .expect(2)
        .mount(&app.meta)
        .await;
    let owner_path = format!("/v1/admin/groups/{external}/owner");
    let res = app
        .send_json(
            Method::PUT,
            &owner_path,
            &admin,
            &json!({"team": "support", "phone_number_id": PN}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"group_id": external, "phone_number_id": PN, "owner": "support", "subject": "Made at Meta"})
    );
    let info = Mock::given(method("GET"))
        .and(path(format!("/{API_VERSION}/{external}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": external, "subject": "Made at Meta"})),
        )
        .mount_as_scoped(&app.meta)
        .await;
    assert_eq!(
        app.get(
            &format!("/v1/groups/{external}?fields=description"),
            &support
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        app.get(&format!("/v1/groups/{external}?fields=description"), &sales)
            .await
            .status(),
        404
    );
    drop(info);
    let mine: Value = app
        .get(&format!("/v1/phone-numbers/{PN}/groups"), &support)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["groups"][0]["id"], external.as_str());

    // Moving it to another team.
    let res = app
        .send_json(
            Method::PUT,
            &owner_path,
            &admin,
            &json!({"team": "sales", "phone_number_id": PN}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap()["previous_owner"],
        "support"
    );
    let support_list: Value = app
        .get(&format!("/v1/phone-numbers/{PN}/groups"), &support)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(support_list["groups"], json!([]));

    // The ownership changes are audited under the group.
    let records = audit(&app, &format!("group_id={external}")).await;
    let changes: Vec<&Value> = records
        .iter()
        .filter(|r| r["route"] == "/v1/admin/groups/{group_id}/owner")
        .collect();
    assert_eq!(changes.len(), 2, "{records:#?}");
    assert_eq!(
        changes[0]["details"],
        json!({"owner": "sales", "previous_owner": "support"})
    );
    assert_eq!(changes[1]["details"], json!({"owner": "support"}));
    assert_eq!(changes[1]["team"], "platform");
    assert_eq!(changes[1]["phone_number_id"], PN);
    assert_eq!(changes[1]["upstream_status"], 200);
    assert_eq!(changes[1]["fbtrace_id"], "TraceAdopt");
    assert_eq!(changes[1]["method"], "PUT");
}

#[tokio::test]
async fn adoption_fails_with_metas_error_or_a_400_naming_the_field() {
    let app = spawn_app_with("\n[teams.marketing]\nphone_numbers = [\"222222\"]\n").await;
    let admin = platform(&app);
    let missing = format!("Gmissing{}", uuid());
    Mock::given(method("GET"))
        .and(path(format!("/{API_VERSION}/{missing}")))
        .respond_with(ResponseTemplate::new(400).set_body_json(meta_error(131041, "Unknown group")))
        .expect(1)
        .mount(&app.meta)
        .await;
    let owner = |g: &str| format!("/v1/admin/groups/{g}/owner");
    let res = app
        .send_json(
            Method::PUT,
            &owner(&missing),
            &admin,
            &json!({"team": "sales", "phone_number_id": PN}),
        )
        .await;
    assert_eq!(res.status(), 400);
    let p = problem(res).await;
    assert_eq!(p["upstream"]["code"], 131041, "{p}");
    // Nothing was recorded as owned.
    let listing = app
        .get(
            &format!("/v1/groups/{missing}"),
            &app.token("sales", &["groups:read"]),
        )
        .await;
    assert_eq!(listing.status(), 404);

    let before = app.upstream_requests().await.len();
    for (body, field) in [
        (json!({"team": "ghost", "phone_number_id": PN}), "team"),
        (
            json!({"team": "marketing", "phone_number_id": PN}),
            "phone_number_id",
        ),
        (
            json!({"team": "sales", "phone_number_id": "12a"}),
            "phone_number_id",
        ),
        (json!({"team": "sales"}), "phone_number_id"),
        (
            json!({"team": "sales", "phone_number_id": PN, "note": "x"}),
            "note",
        ),
    ] {
        let res = app
            .send_json(Method::PUT, &owner("Gany"), &admin, &body)
            .await;
        assert_eq!(error_fields(&problem(res).await), [field], "{body}");
    }
    assert_eq!(
        app.upstream_requests().await.len(),
        before,
        "Meta was not asked"
    );
}

// ---- authorization ----------------------------------------------------------------------------

#[tokio::test]
async fn every_admin_route_refuses_everyone_but_administrators() {
    let app = spawn_app().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": {"groups": []}, "id": "G1", "subject": "S"})),
        )
        .mount(&app.meta)
        .await;
    let victim = app.token("sales", &["groups:read"]);
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::GET,
            format!("/v1/admin/phone-numbers/{PN}/groups"),
            None,
        ),
        (
            Method::PUT,
            "/v1/admin/groups/G1/owner".into(),
            Some(json!({"team": "sales", "phone_number_id": PN})),
        ),
        (Method::GET, "/v1/admin/audit".into(), None),
        (
            Method::POST,
            "/v1/admin/tokens".into(),
            Some(json!({"team": "sales", "scopes": ["groups:read"]})),
        ),
        (
            Method::DELETE,
            format!("/v1/admin/tokens/{}", jti_of(&victim)),
            None,
        ),
        (Method::GET, "/v1/admin/events/unowned".into(), None),
        (Method::GET, "/v1/admin/webhook-endpoints".into(), None),
    ];
    let all_group_scopes = [
        "groups:read",
        "groups:write",
        "groups:delete",
        "groups:invite",
    ];
    let outsiders = [
        (
            "sales with admin (not an admin team)",
            app.token("sales", &["admin", "groups:read"]),
        ),
        (
            "support with every group scope",
            app.token("support", &all_group_scopes),
        ),
        (
            "platform without admin",
            app.token("platform", &all_group_scopes),
        ),
    ];
    for (who, token) in &outsiders {
        for (m, p, body) in &routes {
            let mut req = app.http.request(m.clone(), app.url(p)).bearer_auth(token);
            if let Some(b) = body {
                req = req.json(b);
            }
            let res = req.send().await.expect("request");
            assert_eq!(res.status(), 403, "{who}: {m} {p}");
            assert_eq!(problem(res).await["title"], "Not allowed");
        }
    }
    for (m, p, body) in &routes {
        let mut req = app.http.request(m.clone(), app.url(p));
        if let Some(b) = body {
            req = req.json(b);
        }
        assert_eq!(req.send().await.expect("request").status(), 401, "{m} {p}");
    }
    assert!(
        app.upstream_requests().await.is_empty(),
        "nothing reached Meta"
    );
    assert_eq!(
        list_status(&app.http, &app.address, &victim).await,
        200,
        "not revoked"
    );
    // The administrator gets through on each.
    let admin = platform(&app);
    for (m, p, body) in &routes {
        let mut req = app.http.request(m.clone(), app.url(p)).bearer_auth(&admin);
        if let Some(b) = body {
            req = req.json(b);
        }
        let status = req.send().await.expect("request").status();
        assert!(status.is_success(), "admin: {m} {p}: {status}");
    }
}

// ---- config check ------------------------------------------------------------------------------

fn config_check(dir: &Path, file: &Path) -> std::process::Output {
    crate::fleet::binary(dir, "admin-test")
        .args(["config", "check", "--config"])
        .arg(file)
        .env("WAGW_TEST_META_TOKEN", "CANARY-env-access-token")
        .output()
        .expect("the binary runs")
}

#[tokio::test]
async fn config_check_prints_the_configuration_with_every_secret_redacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ed = TestKey::ed("ed-check");
    let keys = ed.config_from_files(dir.path(), false);
    let private_inline = format!(
        "\n[[auth.keys]]\nkid = \"inline-private\"\nalgorithm = \"EdDSA\"\npublic_key_pem = '''\n{}'''\nprivate_key_pem = '''\n{}'''\n",
        ed.public_pem, ed.private_pem
    );
    let file = dir.path().join("prod.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[graph]
mode = "live"
[[auth.keys]]
kid = "hs"
algorithm = "HS256"
secret = "CANARY-hs256-secret"
signing = true
{keys}{private_inline}
[webhooks]
verify_token = "CANARY-verify-token"
app_secret = "CANARY-app-secret"
[phone_numbers.111]
access_token = "CANARY-inline-access-token"
[phone_numbers.222]
access_token = {{ env = "WAGW_TEST_META_TOKEN" }}
[teams.sales]
phone_numbers = ["111", "222"]
webhook = {{ url = "https://sales.example/hooks", secret = "whsec_Q0FOQVJZLXdlYmhvb2stc2VjcmV0LXZhbHVl" }}
"#
        ),
    )
    .expect("write config");
    let out = config_check(dir.path(), &file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for secret in ["CANARY", "whsec_", "BEGIN PRIVATE KEY"] {
        assert!(!stdout.contains(secret), "{secret} leaked:\n{stdout}");
        assert!(!stderr.contains(secret), "{secret} leaked:\n{stderr}");
    }
    for shown in [
        "mode = \"live\"",
        "kid = \"ed-check\"",
        "algorithm = \"EdDSA\"",
        "url = \"https://sales.example/hooks\"",
        "env = \"WAGW_TEST_META_TOKEN\"",
        "[phone_numbers.111]",
        "secret = \"<redacted>\"",
        "app_secret = \"<redacted>\"",
        "private_key_pem = \"<redacted>\"",
    ] {
        assert!(stdout.contains(shown), "{shown} missing:\n{stdout}");
    }

    // A bad value: non-zero exit, the key named.
    std::fs::write(&file, "[graph]\nmode = \"live\"\ntimeout_ms = 0\n").expect("write");
    let out = config_check(dir.path(), &file);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("graph.timeout_ms"), "{stderr}");
    // Key material that does not parse is caught too.
    std::fs::write(
        &file,
        "[[auth.keys]]\nkid = \"bad\"\nalgorithm = \"ES256\"\npublic_key_pem = \"garbage\"\n",
    )
    .expect("write");
    let out = config_check(dir.path(), &file);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("auth.keys[0]"), "{stderr}");
}

// ---- narrowing only narrows (DESIGN §3) -----------------------------------------------------

/// An administrator team granted both numbers, so that a token narrowed to one of them is a
/// real narrowing.
const OPS: &str = "\n[teams.ops]\nphone_numbers = [\"111111\", \"222222\"]\nadmin = true\n";

/// An `ops` admin token narrowed to `numbers`.
fn narrowed_admin(app: &TestApp, numbers: &[&str]) -> String {
    app.token_for_numbers(
        "ops",
        &["admin"],
        Some(numbers.iter().map(|n| n.to_string()).collect()),
    )
}

#[tokio::test]
async fn a_narrowed_admin_issues_only_narrower_tokens() {
    let app = spawn_app_with(OPS).await;
    let narrowed = narrowed_admin(&app, &[PN]);
    let refused = [
        (
            "an unnarrowed token for a team",
            json!({"team": "sales", "scopes": ["groups:read"]}),
        ),
        (
            "an unnarrowed admin token for itself",
            json!({"team": "ops", "scopes": ["admin"]}),
        ),
        (
            "a token for the other number",
            json!({"team": "sales", "scopes": ["groups:read"], "phone_numbers": [PN2]}),
        ),
        (
            "a token for both numbers",
            json!({"team": "ops", "scopes": ["admin"], "phone_numbers": [PN, PN2]}),
        ),
    ];
    for (name, body) in &refused {
        let res = app.post_json("/v1/admin/tokens", &narrowed, body).await;
        assert_eq!(res.status(), 403, "{name}");
        assert_eq!(problem(res).await["title"], "Not allowed", "{name}");
    }
    // A token narrowed to nothing grants nothing, so it issues nothing.
    let to_nothing = narrowed_admin(&app, &[]);
    let res = app
        .post_json(
            "/v1/admin/tokens",
            &to_nothing,
            &json!({"team": "sales", "scopes": ["groups:read"], "phone_numbers": [PN]}),
        )
        .await;
    assert_eq!(res.status(), 403);
    // Invalid bodies are still 400 first, naming the field (DESIGN §4 order).
    let res = app
        .post_json(
            "/v1/admin/tokens",
            &narrowed,
            &json!({"team": "sales", "scopes": ["groups:read"], "phone_numbers": []}),
        )
        .await;
    assert_eq!(error_fields(&problem(res).await), ["phone_numbers"]);

    // Within its own numbers it issues, and what it issues is narrowed as asked.
    for body in [
        json!({"team": "sales", "scopes": ["groups:read"], "phone_numbers": [PN]}),
        json!({"team": "ops", "scopes": ["admin"], "phone_numbers": [PN]}),
    ] {
        let res = app.post_json("/v1/admin/tokens", &narrowed, &body).await;
        assert_eq!(res.status(), 201, "{body}");
        let issued: Value = res.json().await.expect("json");
        let token = issued["token"].as_str().expect("token");
        assert_eq!(segment(token, 1)["phone_numbers"], json!([PN]), "{body}");
    }
    // The whole team's admin token still issues unnarrowed tokens.
    let whole = app.token("ops", &["admin"]);
    let res = app
        .post_json(
            "/v1/admin/tokens",
            &whole,
            &json!({"team": "sales", "scopes": ["groups:read"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn a_narrowed_admin_reads_only_the_audit_records_of_its_numbers() {
    let app = spawn_app_with(OPS).await;
    let sales = app.sales();
    // Records on each number, and one on no number (an issuance).
    for pn in [PN, PN2] {
        Mock::given(method("POST"))
            .and(path(format!("/{API_VERSION}/{pn}/groups")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"request_id": uuid()})))
            .mount(&app.meta)
            .await;
        app.request_creation(&sales, pn, "Audited").await;
    }
    let whole = app.token("ops", &["admin"]);
    let res = app
        .post_json(
            "/v1/admin/tokens",
            &whole,
            &json!({"team": "sales", "scopes": ["groups:read"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let numbers_of = |records: &[Value]| -> Vec<Option<String>> {
        records
            .iter()
            .map(|r| r["phone_number_id"].as_str().map(str::to_owned))
            .collect()
    };
    let read = |token: String, query: &'static str| {
        let app = &app;
        async move {
            let res = app
                .get(&format!("/v1/admin/audit?limit=1000{query}"), &token)
                .await;
            assert_eq!(res.status(), 200, "audit{query}");
            let page: Value = res.json().await.expect("json");
            page["records"].as_array().expect("records").clone()
        }
    };
    // The whole team sees all three kinds: the control.
    let all = numbers_of(&read(whole.clone(), "").await);
    for expected in [Some(PN.to_owned()), Some(PN2.to_owned()), None] {
        assert!(all.contains(&expected), "{expected:?} missing: {all:?}");
    }
    let narrowed = narrowed_admin(&app, &[PN]);
    for query in ["", "&team=sales", "&team=ops"] {
        let seen = numbers_of(&read(narrowed.clone(), query).await);
        assert!(
            seen.iter().all(|n| n.as_deref() == Some(PN)),
            "narrowed to {PN}, query {query:?}, saw {seen:?}"
        );
        if query != "&team=ops" {
            assert!(!seen.is_empty(), "its own number's records are shown");
        }
    }
    let to_other = narrowed_admin(&app, &[PN2]);
    let seen = numbers_of(&read(to_other, "").await);
    assert!(!seen.is_empty() && seen.iter().all(|n| n.as_deref() == Some(PN2)));
    assert!(read(narrowed_admin(&app, &[]), "").await.is_empty());
}

#[tokio::test]
async fn a_narrowed_admin_lists_and_moves_only_groups_of_its_numbers() {
    let app = spawn_app_with(OPS).await;
    let sales = app.sales();
    let on_pn = app.create_group(&sales, PN, "On the first number").await;
    let on_pn2 = app.create_group(&sales, PN2, "On the second number").await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": {"groups": []}, "id": "G", "subject": "S"})),
        )
        .mount(&app.meta)
        .await;
    let narrowed = narrowed_admin(&app, &[PN]);
    let before = app.upstream_requests().await.len();
    let owner = |group: &str| format!("/v1/admin/groups/{group}/owner");
    let refused = [
        (
            "list the other number's groups",
            Method::GET,
            format!("/v1/admin/phone-numbers/{PN2}/groups"),
            None,
        ),
        (
            "move a group of the other number onto its own",
            Method::PUT,
            owner(&on_pn2),
            Some(json!({"team": "support", "phone_number_id": PN})),
        ),
        (
            "move a group of the other number there",
            Method::PUT,
            owner(&on_pn2),
            Some(json!({"team": "sales", "phone_number_id": PN2})),
        ),
        (
            "move its own group to the other number",
            Method::PUT,
            owner(&on_pn),
            Some(json!({"team": "sales", "phone_number_id": PN2})),
        ),
    ];
    for (name, m, p, body) in &refused {
        let mut req = app
            .http
            .request(m.clone(), app.url(p))
            .bearer_auth(&narrowed);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.expect("request");
        assert_eq!(res.status(), 403, "{name}");
    }
    assert_eq!(
        app.upstream_requests().await.len(),
        before,
        "nothing reached Meta"
    );
    let res = app
        .get(&format!("/v1/phone-numbers/{PN2}/groups"), &sales)
        .await;
    let listed: Value = res.json().await.expect("json");
    assert_eq!(listed["groups"][0]["id"], on_pn2.as_str(), "not moved");

    // Its own number: listed, and its group moved.
    let res = app
        .get(&format!("/v1/admin/phone-numbers/{PN}/groups"), &narrowed)
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .send_json(
            Method::PUT,
            &owner(&on_pn),
            &narrowed,
            &json!({"team": "support", "phone_number_id": PN}),
        )
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn what_concerns_no_single_number_needs_an_unnarrowed_admin() {
    let app = spawn_app_with(OPS).await;
    let victim = app.token("sales", &["groups:read"]);
    let revoke = format!("/v1/admin/tokens/{}", jti_of(&victim));
    for token in [
        narrowed_admin(&app, &[PN]),
        narrowed_admin(&app, &[PN, PN2]),
    ] {
        let res = app.delete(&revoke, &token).await;
        assert_eq!(res.status(), 403, "revoke");
        let res = app.get("/v1/admin/webhook-endpoints", &token).await;
        assert_eq!(res.status(), 403, "webhook endpoints");
    }
    assert_eq!(
        list_status(&app.http, &app.address, &victim).await,
        200,
        "not revoked"
    );
    let whole = app.token("ops", &["admin"]);
    assert_eq!(app.delete(&revoke, &whole).await.status(), 204);
    assert_eq!(list_status(&app.http, &app.address, &victim).await, 401);
    assert_eq!(
        app.get("/v1/admin/webhook-endpoints", &whole)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_narrowed_admin_reads_only_the_unowned_events_of_its_numbers() {
    let app = spawn_app_with(OPS).await;
    for (pn, group) in [(PN, "GOUTSIDE1"), (PN2, "GOUTSIDE2")] {
        let hook = lifecycle_webhook(
            pn,
            vec![
                json!({"timestamp": "5", "group_id": group, "type": "group_create",
                "request_id": format!("NOT-OURS-{group}"), "subject": "Made elsewhere",
                "invite_link": "https://chat.whatsapp.com/X"}),
            ],
        );
        assert_eq!(app.send_webhook(&hook).await.status(), 200);
    }
    let groups_seen = |token: String| {
        let app = &app;
        async move {
            let res = app.get("/v1/admin/events/unowned", &token).await;
            assert_eq!(res.status(), 200);
            let page: Value = res.json().await.expect("json");
            page["events"]
                .as_array()
                .expect("events")
                .iter()
                .filter_map(|e| e["group_id"].as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        }
    };
    // Webhooks are processed in the background: wait until the whole team sees both.
    let whole = app.token("ops", &["admin"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while groups_seen(whole.clone()).await.len() < 2 {
        assert!(Instant::now() < deadline, "the unowned events never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        groups_seen(narrowed_admin(&app, &[PN])).await,
        ["GOUTSIDE1"]
    );
    assert_eq!(
        groups_seen(narrowed_admin(&app, &[PN2])).await,
        ["GOUTSIDE2"]
    );
    assert!(groups_seen(narrowed_admin(&app, &[])).await.is_empty());
}

// ---- token ids and lifetimes -----------------------------------------------------------------

/// A `jti` no token can carry cannot be revoked: 400 naming `jti` instead of a 204 that
/// would pretend the token is dead.
#[tokio::test]
async fn revoking_a_jti_no_token_can_carry_is_400_naming_jti() {
    let app = spawn_app().await;
    let admin = platform(&app);
    let too_long = "a".repeat(129);
    for jti in ["a%2Fb", "%C3%A9", "a%20b", "a%00", too_long.as_str()] {
        let res = app.delete(&format!("/v1/admin/tokens/{jti}"), &admin).await;
        assert_eq!(res.status(), 400, "{jti}");
        assert_eq!(error_fields(&problem(res).await), ["jti"], "{jti}");
    }
    let longest = "a".repeat(128);
    for jti in ["a.b~c_d-e", longest.as_str()] {
        let res = app.delete(&format!("/v1/admin/tokens/{jti}"), &admin).await;
        assert_eq!(res.status(), 204, "{jti}");
    }
    // The command line says the same.
    let refused = wa_groups_gateway::cli::revoke_token(&app.settings, "a/b").expect_err("a/b");
    assert!(refused.contains("JTI"), "{refused}");
}

/// `token issue --ttl` above the maximum: an error naming the maximum, and a non-zero exit.
#[tokio::test]
async fn token_issue_refuses_a_ttl_above_the_maximum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("issue.toml");
    std::fs::write(
        &file,
        format!(
            "[auth]\nmax_token_ttl_seconds = 7200\n{}\n[phone_numbers.111]\naccess_token = \"t\"\n[teams.sales]\nphone_numbers = [\"111\"]\n",
            original_key(true)
        ),
    )
    .expect("write config");
    let issue = |ttl: &str| {
        crate::fleet::binary(dir.path(), "admin-test")
            .args([
                "token",
                "issue",
                "--team",
                "sales",
                "--scope",
                "groups:read",
            ])
            .args(["--ttl", ttl, "--config"])
            .arg(&file)
            .output()
            .expect("the binary runs")
    };
    let out = issue("3h");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "no token printed");
    assert!(
        stderr.contains("--ttl") && stderr.contains("7200"),
        "{stderr}"
    );
    let out = issue("2h");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
