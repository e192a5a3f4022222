//! The desktop app.

pub mod scatter;
