//! The `flotilla` binary: everything lives in the library; this only hands over to it.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    flotilla::cli::main()
}
