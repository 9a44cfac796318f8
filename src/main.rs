//! The `offboard` binary: everything lives in the library; see `cli`.

fn main() -> std::process::ExitCode {
    offboard::cli::main()
}
