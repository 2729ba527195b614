//! `/console/`: the platform teams' web page (README, "Console"). Plain HTML, CSS and ES
//! modules compiled into the binary: no build step, no CDN, nothing fetched at run time but
//! the gateway's own public `/v1` API, which the page calls with the admin token it keeps in
//! the tab's session storage. Outside the OpenAPI document: these are files, not API.

use actix_web::http::header;
use actix_web::{HttpResponse, Scope, web};

use crate::error::ApiError;

/// Where the console is served; `/console` redirects here.
pub const PATH: &str = "/console/";

/// The page's whole security policy, on every console response. Scripts and styles only
/// from the gateway itself (no inline script or style), API calls only to it, no frames
/// around it, no form posted anywhere (a form submitted before its script ran would
/// otherwise put the token in a URL), and Trusted Types with no policy: assigning a string
/// to `innerHTML` or the like throws, so values from the API can only ever be text.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'; \
     require-trusted-types-for 'script'; trusted-types 'none'";

/// A file of the console: its name under `/console/`, its media type and its bytes.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = &[
    Asset {
        name: "",
        media_type: "text/html; charset=utf-8",
        body: include_str!("console/index.html"),
    },
    Asset {
        name: "console.css",
        media_type: "text/css; charset=utf-8",
        body: include_str!("console/console.css"),
    },
    Asset {
        name: "app.js",
        media_type: JS,
        body: include_str!("console/app.js"),
    },
    Asset {
        name: "api.js",
        media_type: JS,
        body: include_str!("console/api.js"),
    },
    Asset {
        name: "dom.js",
        media_type: JS,
        body: include_str!("console/dom.js"),
    },
    Asset {
        name: "pages.js",
        media_type: JS,
        body: include_str!("console/pages.js"),
    },
];

/// The console's routes: `/console` (redirect), `/console/` and its files.
pub fn scope() -> Scope {
    web::scope("/console")
        .route(
            "",
            web::get().to(|| async {
                HttpResponse::PermanentRedirect()
                    .insert_header((header::LOCATION, PATH))
                    .finish()
            }),
        )
        .route("/{file:.*}", web::get().to(asset))
}

async fn asset(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let asset = ASSETS
        .iter()
        .find(|a| a.name == file.as_str())
        .ok_or_else(|| ApiError::NotFound("no such console file".into()))?;
    Ok(HttpResponse::Ok()
        .content_type(asset.media_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        // Compiled into the binary: a new version must be picked up at once.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(asset.body))
}

/// The link that signs the admin team in at once: its token in the fragment, which browsers
/// never send to a server; the page moves it to session storage and out of the address bar.
pub fn sign_in_link(base: &str, token: &str) -> String {
    format!("{base}{PATH}#token={token}")
}
