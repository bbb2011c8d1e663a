//! `switchboard`: run the whole system locally (`up`) or one component (`gateway`, `sms`, …), apply
//! migrations, and operate a running system (send, query, status, dead letters, tail). The commands
//! live in [`switchboard::cli`].

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use switchboard::cli::Cli;

/// mimalloc instead of the C library's allocator: a request or a batch allocates and frees many
/// small buffers across threads, and glibc's allocator spent a sixth of the gateway's CPU on that
/// (docs/benchmarks.md). Built with its `override` feature, it also serves the C library's
/// `malloc`, which the bundled SQLite calls for every value it binds and every record it builds.
/// Built with `no_thp`, it asks for no transparent huge pages (Cargo.toml says why).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(switchboard::cli::execute(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
