//! `phab-scim` binary: parse the command line and hand over to the library.

fn main() -> std::process::ExitCode {
    phab_scim::cli::main()
}
