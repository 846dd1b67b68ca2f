//! The `scimdesk` binary: everything is in the library; this only hands over the exit code.

/// mimalloc rather than glibc's allocator: a wave's many short-lived JSON documents and HTTP
/// buffers spent about a third of the process's CPU in glibc's malloc and free
/// (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    scimdesk::cli::main()
}
