//! Running a server command (`serve`, `sandbox`) as the process, and the bound server it
//! runs: below both the CLI and the standalone sandbox, so neither imports the other.

use std::process::ExitCode;

use actix_web::dev::Server;

use crate::supervisor::Supervisor;

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

/// An HTTP server bound to its port (`serve`'s gateway or `sandbox`'s simulated Meta),
/// serving once awaited.
pub struct BoundServer {
    port: u16,
    server: Server,
    tasks: Supervisor,
}

impl BoundServer {
    pub fn new(port: u16, server: Server, tasks: Supervisor) -> BoundServer {
        BoundServer {
            port,
            server,
            tasks,
        }
    }

    /// The supervisor of its background tasks (tests run tasks of their own under it).
    pub fn tasks(&self) -> Supervisor {
        self.tasks.clone()
    }

    /// The port it listens on: the one picked by the system when port 0 was asked for.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
