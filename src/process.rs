//! Running a server command (`serve`, `sandbox`) as the process, and the bound server it
//! runs: below both the CLI and the standalone sandbox, so neither imports the other.

use std::process::ExitCode;

use actix_web::dev::Server;

use crate::supervisor::Supervisor;

/// Runs a server command (`serve`, `sandbox`) on actix's runtime until the server stops; an
/// error, from starting or from serving, is printed and the exit code says failure.
pub fn run_server(server: impl Future<Output = Result<(), String>>) -> ExitCode {
    give_large_buffers_back_when_freed();
    match actix_web::rt::System::new().block_on(server) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Request bodies (a webhook POST may be 16 MiB) are the large blocks a flood allocates.
/// glibc's malloc raises its mmap threshold each time such a block is freed (up to 32 MiB),
/// after which large blocks come from the threads' heap arenas and stay resident once freed:
/// after a flood of chunked webhook POSTs, RSS stayed some 60 MiB above its baseline for
/// good. A fixed threshold keeps every block of 128 KiB or more in a mapping of its own,
/// returned to the system when freed (the same flood now ends within 10 MiB of it).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn give_large_buffers_back_when_freed() {
    // SAFETY: mallopt only sets a parameter of the allocator; it is called before the
    // server's threads start.
    let set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
    if set != 1 {
        tracing::warn!(
            "the allocator's mmap threshold could not be set: memory freed after a flood may stay resident"
        );
    }
}

/// Other allocators (musl's) give large blocks back on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn give_large_buffers_back_when_freed() {}

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
