//! The journal: a crash-safe JSON-lines record of every operation, read back by `--resume`.
