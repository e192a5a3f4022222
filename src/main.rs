use std::process::ExitCode;

fn main() -> ExitCode {
    sense::cli::run()
}
