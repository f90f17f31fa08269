//! The backend conformance suite on the file backend.

use async_trait::async_trait;
use btps_trust::conformance::{self, Factory};
use btps_trust::file::FileStore;
use tempfile::TempDir;

use crate::open_dir;

struct Files(TempDir);

#[async_trait]
impl Factory<FileStore> for Files {
    async fn fresh(&self) -> FileStore {
        let dir = tempfile::tempdir_in(self.0.path()).unwrap().keep();
        open_dir(&dir)
    }

    async fn reopen(&self, store: FileStore) -> Option<FileStore> {
        let dir = store.dir().to_path_buf();
        drop(store);
        Some(open_dir(&dir))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_backend_passes_the_conformance_suite() {
    conformance::run_all(&Files(tempfile::tempdir().unwrap())).await;
}
