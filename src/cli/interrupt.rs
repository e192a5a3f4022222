//! Ctrl-C, and the SIGTERM a Slurm job gets at its time limit, stop a command's training
//! cleanly: the trainer stops at its next step, its heartbeat says "stopped", and `--resume`
//! continues from the last checkpoint. A second signal ends the process at once.

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::task::TaskControl;

/// The exit status of a process ended by a second signal (128 + SIGINT, as shells report it).
const FORCED_EXIT_STATUS: i32 = 130;

/// A control that the first SIGINT or SIGTERM cancels.
pub fn cancelled_by_signals() -> std::io::Result<TaskControl> {
    let control = TaskControl::new();
    for signal in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as the previous signal left it.
        signal_hook::flag::register_conditional_shutdown(
            signal,
            FORCED_EXIT_STATUS,
            control.cancel_flag(),
        )?;
        signal_hook::flag::register(signal, control.cancel_flag())?;
    }
    Ok(control)
}
