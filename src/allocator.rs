//! The process allocator of the programs built on this crate: the `sense` binary and the
//! benches (so that they measure what users run), each declaring it with
//! [`process_allocator!`](crate::process_allocator). Tests keep the system allocator, and may
//! install their own (the parser fuzz test counts allocations).
//!
//! Why not the system one: a training step allocates and frees tensor buffers of megabytes;
//! glibc's malloc gives them back to the kernel and takes page faults to get them again on the
//! next step, which cost 14–29 % of a CPU training step (bench/README.md, "The allocator").
//! mimalloc reuses them.

#[doc(hidden)]
pub use mimalloc::MiMalloc as ProcessAllocator;

/// Installs the process allocator (see [`crate::allocator`]) as the program's
/// `#[global_allocator]`; invoke once, at the top level of a binary's crate.
#[macro_export]
macro_rules! process_allocator {
    () => {
        #[global_allocator]
        static PROCESS_ALLOCATOR: $crate::allocator::ProcessAllocator =
            $crate::allocator::ProcessAllocator;
    };
}
