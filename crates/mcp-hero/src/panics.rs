//! The process's panic hook (S16): a panic is logged with where it happened, never with its
//! message, which may hold a value (a `Debug` of a request, a header, a secret).
//!
//! Rust's default hook prints the payload to stderr; assertions and `expect` messages format
//! values into it. This hook replaces it for the gateway process, so the gateway log shows the
//! file, line and thread, and the operator finds the cause from the code, not from a value.

/// Replaces the default panic hook with one that logs through `tracing` without the payload.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map_or_else(
            || "unknown".to_owned(),
            |location| {
                format!(
                    "{}:{}:{}",
                    location.file(),
                    location.line(),
                    location.column()
                )
            },
        );
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        tracing::error!(
            location = %location,
            thread,
            "panic; its message is not logged, as it may hold a secret"
        );
    }));
}
