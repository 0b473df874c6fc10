//! The protocol versions the gateway speaks and how one is chosen for a session.

/// Every version the gateway accepts, newest first; all three are the "legacy" session era.
pub const SUPPORTED_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

/// The version offered when a client asks for one the gateway does not know.
pub const LATEST_VERSION: &str = SUPPORTED_VERSIONS[0];

/// The version for a session: the client's if the gateway speaks it, else the newest.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|asked| SUPPORTED_VERSIONS.iter().find(|known| **known == asked))
        .copied()
        .unwrap_or(LATEST_VERSION)
}

/// Whether the gateway speaks `version`.
pub fn is_supported(version: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&version)
}

/// Whether SSE streams start with a priming event (an id and empty data), which only clients of
/// 2025-11-25 and later expect.
pub fn sends_priming_event(version: &str) -> bool {
    version >= "2025-11-25"
}
