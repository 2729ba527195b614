use std::process::ExitCode;

fn main() -> ExitCode {
    // One TLS provider for the whole process: awc panics if it has to pick between two.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    wa_groups_gateway::cli::run()
}
