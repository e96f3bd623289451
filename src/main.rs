fn main() -> std::process::ExitCode {
    flotilla::cli::main()
}
