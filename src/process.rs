//! Running a server command (`serve`, `sandbox`) as the process: below both the CLI and
//! the standalone sandbox, so neither imports the other.

use std::process::ExitCode;

/// Runs a server command (`serve`, `sandbox`) on actix's runtime until the server stops; an
/// error, from starting or from serving, is printed and the exit code says failure.
pub fn run_server(server: impl Future<Output = Result<(), String>>) -> ExitCode {
    match actix_web::rt::System::new().block_on(server) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
