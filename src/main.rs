use std::process::ExitCode;

sense::process_allocator!();

fn main() -> ExitCode {
    // Die quietly like other Unix tools when stdout is a closed pipe (`sense info … | head`),
    // instead of panicking inside println!.
    // SAFETY: setting a signal disposition to the default before any thread is spawned.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    sense::cli::run()
}
