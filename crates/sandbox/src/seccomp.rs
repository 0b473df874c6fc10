//! TODO skeleton for seccomp
