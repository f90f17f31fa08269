//! Writing files that hold secrets: private keys and profiles (refresh tokens). The writes
//! themselves live in [`btps_client::fsutil`].

pub(crate) use btps_client::fsutil::{create_private_dir, write_atomic, write_new};

/// `path` made absolute against the current directory (as it is when that fails).
pub(crate) fn absolute(path: &std::path::Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
