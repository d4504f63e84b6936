//! The `sg-host` binary.

fn main() -> std::process::ExitCode {
    sg_host::cli::main()
}
