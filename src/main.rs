fn main() -> std::process::ExitCode {
    vellum::cli::main()
}
