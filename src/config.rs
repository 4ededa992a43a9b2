//! TOML configuration -> validated `Config`; a bad file fails at start naming the key.
