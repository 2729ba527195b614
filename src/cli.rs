//! The command line (README, "Command line"). Every command reads the same configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use std::io::Write;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

use crate::auth::{TokenIssuer, parse_ttl};
use crate::config::{GraphMode, Settings};
use crate::startup::Application;
use crate::tokens::{self, TokenRequest};

#[derive(Parser)]
#[command(
    name = "wa-groups-gateway",
    version,
    about = "Internal gateway to Meta's WhatsApp Groups API"
)]
pub struct Cli {
    /// One more configuration file, read after config/{APP_ENVIRONMENT}.toml.
    #[arg(long, global = true, env = "WAGW_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Team tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Teams managed at runtime (DESIGN §11): stored, in force on every replica within a
    /// second.
    Team {
        #[command(subcommand)]
        action: crate::cli_registry::TeamAction,
    },
    /// Phone numbers and their access tokens managed at runtime (the token read from stdin).
    PhoneNumber {
        #[command(subcommand)]
        action: crate::cli_registry::PhoneNumberAction,
    },
    /// Storage maintenance.
    Storage {
        #[command(subcommand)]
        action: crate::cli_registry::StorageAction,
    },
    /// Run the simulated Graph API alone (no gateway), for other teams' tests.
    Sandbox {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Port to listen on (0 picks a free one).
        #[arg(long, default_value_t = 8081)]
        port: u16,
        /// Where to POST the webhooks Meta would send (signed with webhooks.app_secret);
        /// without it they are only kept for GET /sandbox/webhooks.
        #[arg(long, value_name = "URL")]
        webhook_url: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum TokenAction {
    /// Mint a token for a team and print it.
    Issue {
        /// A team of configuration, or one made through the admin API or `team put` (read
        /// from storage).
        #[arg(long)]
        team: String,
        /// Scopes: groups:read, groups:write, groups:delete, groups:invite, groups:message, admin.
        #[arg(long = "scope", required = true, num_args = 1..)]
        scopes: Vec<String>,
        /// Narrow the token to these of the team's phone numbers.
        #[arg(long = "phone-number", num_args = 1..)]
        phone_numbers: Vec<String>,
        /// Lifetime, such as 3600, 12h or 30d; default 30 days, or auth.max_token_ttl_seconds
        /// when that is shorter.
        #[arg(long)]
        ttl: Option<String>,
        /// Sign with this key instead of the signing key.
        #[arg(long)]
        kid: Option<String>,
    },
    /// Revoke a token by its jti: stored, and refused by every gateway on this storage
    /// within a second, restarts included.
    Revoke {
        /// The token's `jti` claim (printed by `token issue`).
        jti: String,
    },
}

#[derive(Subcommand)]
pub enum ConfigAction {
    /// Validate the configuration and print it with every secret redacted; exits non-zero
    /// naming the first bad key.
    Check,
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Config {
        action: ConfigAction::Check,
    }) = &cli.command
    {
        return crate::config_check::run(cli.config.as_deref());
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Sandbox {
            host,
            port,
            webhook_url,
        } => sandbox(settings, host, port, webhook_url),
        Command::Openapi => match serde_json::to_string_pretty(&crate::openapi::spec()) {
            Ok(json) => {
                // `openapi | head` closes stdout early: that is not an error worth a panic.
                let _ = writeln!(std::io::stdout(), "{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Token {
            action:
                TokenAction::Issue {
                    team,
                    scopes,
                    phone_numbers,
                    ttl,
                    kid,
                },
        } => match issue_token(
            &settings,
            &team,
            &scopes,
            &phone_numbers,
            ttl.as_deref(),
            kid.as_deref(),
        ) {
            Ok(token) => {
                println!("{}", token.token);
                eprintln!("jti: {}\nexpires_at: {}", token.jti, token.expires_at);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Token {
            action: TokenAction::Revoke { jti },
        } => match revoke_token(&settings, &jti) {
            Ok(()) => {
                eprintln!(
                    "revoked {jti}: gateways on {} refuse it within a second",
                    settings.storage.url
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Team { action } => printed(crate::cli_registry::team(&settings, action)),
        Command::PhoneNumber { action } => printed(crate::cli_registry::phone_number(
            &settings,
            action,
            &mut std::io::stdin(),
        )),
        Command::Storage { action } => printed(crate::cli_registry::storage(&settings, action)),
        // Handled before the configuration is loaded, so its errors are reported the same way.
        Command::Config {
            action: ConfigAction::Check,
        } => crate::config_check::run(cli.config.as_deref()),
    }
}

/// Prints a command's answer, or its error (exit status 2).
fn printed(answer: Result<String, String>) -> ExitCode {
    match answer {
        Ok(out) => {
            let _ = writeln!(std::io::stdout(), "{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Stores the revocation in the gateway's storage; running replicas read it within a second.
pub fn revoke_token(settings: &Settings, jti: &str) -> Result<(), String> {
    let jti = crate::domain::TokenId::parse(jti).map_err(|m| format!("JTI {m}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime.block_on(async {
        let storage = crate::storage::Storage::connect(settings.storage.url.expose_secret(), 1)
            .await
            .map_err(|e| format!("storage {} is unusable: {e}", settings.storage.url))?;
        storage
            .tokens
            .revoke(jti.as_str(), "cli")
            .await
            .map_err(|e| format!("cannot store the revocation: {e}"))
    })
}

/// Mints a token after the checks `POST /v1/admin/tokens` applies too (`tokens::approve`):
/// known team, known scopes (admin only for admin teams), numbers within the team's grants,
/// a TTL within `auth.max_token_ttl_seconds`. Errors name the command-line option.
pub fn issue_token(
    settings: &Settings,
    team: &str,
    scopes: &[String],
    phone_numbers: &[String],
    ttl: Option<&str>,
    kid: Option<&str>,
) -> Result<crate::auth::IssuedToken, String> {
    if let Some(key) = settings
        .exposed_development_secrets()
        .into_iter()
        .find(|k| k.starts_with("auth.keys"))
    {
        return Err(format!(
            "{key} is the public development key, accepted only while server.host is loopback ({} is not): \
             a gateway listening there made its own key at start (and printed a demo token); \
             set your own key to mint tokens",
            settings.server.host
        ));
    }
    let ttl_seconds = ttl
        .map(|t| parse_ttl(t).map_err(|m| format!("--ttl: {m}")))
        .transpose()?;
    let request = TokenRequest {
        team: team.to_owned(),
        scopes: scopes
            .iter()
            .flat_map(|s| s.split_whitespace())
            .map(str::to_owned)
            .collect(),
        phone_numbers: (!phone_numbers.is_empty()).then(|| phone_numbers.to_vec()),
        ttl_seconds,
    };
    // A team of configuration needs no storage (a token can be minted where the database is
    // out of reach); any other is looked up among the stored teams, as the gateway would.
    let teams = match settings.teams.contains_key(team) {
        true => settings.teams.clone(),
        false => crate::cli_registry::teams_in_force(settings).map_err(|e| {
            format!("--team {team} is not a team of configuration, and the stored teams cannot be read: {e}")
        })?,
    };
    let approved = tokens::approve(&teams, settings.auth.max_token_ttl_seconds, &request).map_err(
        |errors| {
            errors
                .iter()
                .map(|e| format!("{}: {}", option_of(&e.field), e.message))
                .collect::<Vec<_>>()
                .join("; ")
        },
    )?;
    let issuer = TokenIssuer::new(&settings.auth, kid).map_err(|e| e.to_string())?;
    issuer
        .issue(
            &approved.team,
            &approved.scopes,
            approved.phone_numbers,
            approved.ttl_seconds,
        )
        .map_err(|e| format!("cannot sign: {e}"))
}

/// The option a field of `tokens::approve` came from.
fn option_of(field: &str) -> &'static str {
    match field.split('[').next().unwrap_or(field) {
        "team" => "--team",
        "scopes" => "--scope",
        "phone_numbers" => "--phone-number",
        _ => "--ttl",
    }
}

/// `sandbox`: the simulated Meta alone.
fn sandbox(settings: Settings, host: String, port: u16, webhook_url: Option<String>) -> ExitCode {
    use crate::sandbox::standalone;
    if let Err(e) = standalone::check_webhook_url(webhook_url.as_deref()) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    crate::telemetry::init(&settings.telemetry);
    crate::process::run_server(standalone::serve(settings, host, port, webhook_url))
}

fn serve(mut settings: Settings) -> ExitCode {
    crate::telemetry::init(&settings.telemetry);
    // The public development secrets work only on loopback. Beyond it (the container
    // without configuration), the sandbox runs with secrets of its own, made for this run.
    let replaced = settings.replace_development_secrets();
    if !replaced.is_empty() {
        tracing::warn!(
            keys = replaced.join(", "),
            host = settings.server.host,
            "the public development secrets are accepted only on loopback: replaced by random ones for this run (set your own to keep tokens valid across restarts)"
        );
    }
    let demo_token = replaced
        .iter()
        .any(|k| k.starts_with("auth.keys"))
        .then(|| demo_token(&settings))
        .flatten();
    crate::process::run_server(async move {
        let mode = settings.graph.mode;
        let host = settings.server.host.clone();
        // For the hint below; `sales` when there is no non-admin team at all.
        let demo_team = demo_team(&settings).unwrap_or_else(|| "sales".to_owned());
        let console_token = console_token(&settings);
        let app = Application::build(settings)
            .await
            .map_err(|e| e.to_string())?;
        let base = format!("http://{host}:{}", app.port());
        tracing::info!(mode = ?mode, "wa-groups-gateway listening on {base}");
        eprintln!("Swagger UI: {base}/swagger-ui/");
        if let Some((team, token)) = &console_token {
            eprintln!(
                "Console, signed in as the admin team {team} (its token, valid 24 h, is in the link's #fragment): {}",
                crate::console::sign_in_link(&base, token)
            );
        }
        if let Some((team, token)) = &demo_token {
            // Printed once, on stdout, for whoever started the container: the key it is
            // signed with exists only in this process.
            println!(
                "A demo token for team {team} (groups:read groups:write groups:delete groups:invite, valid 24 h; the signing key was generated at start):\nTOKEN={token}"
            );
        } else if mode == GraphMode::Sandbox {
            eprintln!(
                "Sandbox mode: Meta is simulated in process. A demo token:\n  \
                 TOKEN=$(cargo run -q -- token issue --team {demo_team} --scope groups:read groups:write groups:delete groups:invite groups:message)\n\
                 Play the WhatsApp users' side: POST {base}/sandbox/groups/{{group_id}}/join {{\"wa_id\": \"16505551234\"}}, \
                 then POST {base}/sandbox/groups/{{group_id}}/messages {{\"wa_id\": \"16505551234\", \"text\": \"Hi!\"}} \
                 (all sandbox controls: GET {base}/sandbox)"
            );
        }
        app.run_until_stopped().await.map_err(|e| e.to_string())
    })
}

/// An admin token for the console's sign-in link (README, "Console"): only in sandbox mode
/// on loopback, where nobody else can reach the gateway and the signing key is the public
/// development one anyway. `platform` when configured, else any administrator team.
pub fn console_token(settings: &Settings) -> Option<(String, String)> {
    if settings.graph.mode != GraphMode::Sandbox || !settings.server.is_loopback() {
        return None;
    }
    let team = match settings.teams.get("platform") {
        Some(t) if t.admin => "platform".to_owned(),
        _ => settings
            .teams
            .iter()
            .find(|(_, t)| t.admin)
            .map(|(name, _)| name.clone())?,
    };
    let token = TokenIssuer::new(&settings.auth, None)
        .ok()?
        .issue(
            &team,
            &[crate::auth::Scope::Admin],
            None,
            (24 * 3600).min(settings.auth.max_token_ttl_seconds),
        )
        .ok()?
        .token;
    Some((team, token))
}

/// The demo's team: `sales` when configured, else any non-admin team.
fn demo_team(settings: &Settings) -> Option<String> {
    match settings.teams.contains_key("sales") {
        true => Some("sales".to_owned()),
        false => settings
            .teams
            .iter()
            .find(|(_, t)| !t.admin)
            .map(|(name, _)| name.clone()),
    }
}

/// A token for the demo's non-admin team with every group scope, signed with a key made at
/// start: without it nobody could use a container started without configuration.
fn demo_token(settings: &Settings) -> Option<(String, String)> {
    let team = demo_team(settings)?;
    let scopes = [
        crate::auth::Scope::GroupsRead,
        crate::auth::Scope::GroupsWrite,
        crate::auth::Scope::GroupsDelete,
        crate::auth::Scope::GroupsInvite,
    ];
    let token = TokenIssuer::new(&settings.auth, None)
        .ok()?
        // Within the maximum, or every gateway would refuse it.
        .issue(
            &team,
            &scopes,
            None,
            (24 * 3600).min(settings.auth.max_token_ttl_seconds),
        )
        .ok()?
        .token;
    Some((team, token))
}
