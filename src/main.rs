//! The `offboard` binary: the command line of DESIGN.md §3. Each command lives in
//! `cli/`; the service itself is `offboard_core`, the sandboxes `offboard_sandbox`,
//! the benchmarks `offboard_bench`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
