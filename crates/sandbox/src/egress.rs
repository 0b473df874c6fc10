//! TODO skeleton for egress
