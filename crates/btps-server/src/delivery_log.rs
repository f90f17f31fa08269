//! The delivery hook: an append-only JSON-lines file of every accepted transporter artifact,
//! written and fsynced before the artifact is acknowledged.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use btps_types::json::{Object, Value};

use crate::error::{Result, ServerError};
use crate::reply::encode_line;

/// An open delivery log. Lines are the artifacts exactly as received (re-serialized with the
/// same JS rules, so the bytes that were signed are reproduced).
#[derive(Clone, Debug)]
pub struct DeliveryLog {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl DeliveryLog {
    /// Opens (creating) `path` for appending.
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| ServerError::io(format!("create {}", dir.display()), e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| ServerError::io(format!("open {}", path.display()), e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one artifact and fsyncs.
    ///
    /// # Errors
    ///
    /// I/O errors (the caller replies `BTP_ERROR_SERVER_BUSY`).
    pub async fn append(&self, artifact: &Object) -> Result<()> {
        let line = encode_line(&Value::Object(artifact.clone()));
        let file = Arc::clone(&self.file);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut f = file
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f.write_all(&line)?;
            f.sync_data()
        })
        .await
        .map_err(|e| ServerError::io("delivery log task", std::io::Error::other(e)))?
        .map_err(|e| ServerError::io(format!("append {}", path.display()), e))
    }
}
