//! `wa-groups-gateway sandbox`: the simulated Meta alone (only the `/sandbox` routes, no
//! gateway), so other teams can point their own Graph client at it in their tests.

use std::net::TcpListener;

use crate::process::BoundServer;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use secrecy::ExposeSecret;

use super::{SandboxOptions, SandboxState};
use crate::config::Settings;
use crate::telemetry::request_context;

/// The simulated Meta on its own: `build` binds a server with only the `/sandbox` routes.
pub struct Standalone;

impl Standalone {
    /// Binds `host:port` (port 0 picks a free one). Webhooks go to `webhook_url`, or are only
    /// kept in `GET /sandbox/webhooks` when it is `None`.
    pub fn build(
        settings: &Settings,
        host: &str,
        port: u16,
        webhook_url: Option<String>,
    ) -> std::io::Result<BoundServer> {
        let listener = TcpListener::bind((host, port))?;
        let port = listener.local_addr()?.port();
        let state = SandboxState::new(SandboxOptions::from_settings(settings, webhook_url));
        let mut server = HttpServer::new(move || {
            App::new()
                .service(state.scope())
                .default_service(web::to(crate::error::not_found))
                .wrap(from_fn(request_context))
        })
        .listen(listener)?
        .shutdown_timeout(settings.server.shutdown_grace_seconds);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        Ok(BoundServer::new(
            port,
            server.run(),
            crate::supervisor::Supervisor::default(),
        ))
    }
}

/// The `sandbox` command, once its options are checked: serves until stopped. The command
/// line runs it (`process::run_server`), so this module needs nothing from the command line.
pub async fn serve(
    settings: Settings,
    host: String,
    port: u16,
    webhook_url: Option<String>,
) -> Result<(), String> {
    let app = Standalone::build(&settings, &host, port, webhook_url.clone())
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    let base = format!("http://{host}:{}", app.port());
    eprintln!("{}", banner(&settings, &base, webhook_url.as_deref()));
    app.run_until_stopped().await.map_err(|e| e.to_string())
}

/// `--webhook-url` must be an http(s) URL.
pub fn check_webhook_url(webhook_url: Option<&str>) -> Result<(), String> {
    match webhook_url {
        Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
            Err("--webhook-url must be an http(s) URL".into())
        }
        _ => Ok(()),
    }
}

/// How to use the running simulation. A token is shown only when it is the sandbox's own
/// placeholder: a configured token may be a real one and is never printed.
fn banner(settings: &Settings, base: &str, webhook_url: Option<&str>) -> String {
    let v = &settings.graph.api_version;
    let mut out = format!(
        "Sandbox: Meta's Groups API simulated on {base}\n  Graph base URL: {base}/sandbox/graph/{v}\n"
    );
    for (pn, token) in &settings.phone_numbers {
        let placeholder = format!("sandbox-token-{pn}");
        let shown = if token.expose_secret() == placeholder {
            placeholder.as_str()
        } else {
            "the access token configured for it"
        };
        out.push_str(&format!(
            "  phone number {pn}: Authorization: Bearer {shown}\n"
        ));
    }
    match webhook_url {
        Some(url) => out.push_str(&format!(
            "  webhooks: POSTed to {url}, signed with webhooks.app_secret (X-Hub-Signature-256)\n"
        )),
        None => out.push_str(
            "  webhooks: not sent (no --webhook-url); read them at GET /sandbox/webhooks\n",
        ),
    }
    out.push_str(&format!(
        "  users' side: POST {base}/sandbox/groups/{{group_id}}/join {{\"wa_id\": \"16505551234\"}}; more at GET {base}/sandbox"
    ));
    out
}
