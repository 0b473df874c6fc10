//! TODO skeleton for landlock
