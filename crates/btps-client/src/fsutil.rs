//! Durable file writes for keys, key rings and profiles: new files with a mode, atomic
//! replacement (temporary file, fsync, rename, directory fsync), private directories.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Creates `dir` and its missing parents; directories created here get mode 0700.
///
/// # Errors
///
/// The I/O error of the first directory that could not be created.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

fn open_options(mode: u32) -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options
}

/// Writes a new file with `mode` (permission bits on Unix) and syncs it; fails with
/// `AlreadyExists` if `path` exists.
///
/// # Errors
///
/// The I/O error of creating, writing or syncing the file.
pub fn write_new(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut file = open_options(mode).open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Replaces `path` atomically: writes a temporary file next to it with `mode`, syncs it,
/// renames it over `path`, then syncs the directory. A reader sees the old or the new
/// contents, never a mix, and a crash leaves at most a stray temporary file.
///
/// # Errors
///
/// The I/O error of writing, renaming or syncing; the temporary file is removed.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    // A leftover of a crashed process with the same id.
    let _ = fs::remove_file(&tmp);
    let result = write_new(&tmp, contents, mode)
        .and_then(|()| fs::rename(&tmp, path))
        .and_then(|()| sync_dir(dir));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn atomic_replace_and_modes() {
        let dir = std::env::temp_dir().join(format!("btps-fsutil-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let dir = TempDir(dir);
        let sub = dir.0.join("a/b");
        create_private_dir(&sub).unwrap();
        let path = sub.join("p.toml");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(&sub)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["p.toml"], "no temporary file left");
        let err = write_new(&path, b"three", 0o600).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&sub), 0o700);
        }
    }
}
