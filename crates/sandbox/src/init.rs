//! TODO skeleton for init
