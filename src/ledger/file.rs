//! The files that hold patient data (the ledger, its lock, the outbox) on disk: created `0600`
//! in folders created `0700`, found where a path really leads (a symlink is the file it points
//! to, so two spellings of one ledger share one lock), and watched so that a ledger deleted or
//! replaced under a running run is noticed instead of silently forgotten.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Owner read/write only: names, LINE ids and message texts are patient data.
pub const FILE_MODE: u32 = 0o600;
/// Owner only, for folders steprule creates.
pub const DIR_MODE: u32 = 0o700;

/// A data file opened (created if missing) at the place its path resolves to.
#[derive(Debug)]
pub struct DataFile {
    /// The resolved path: symlinks followed, absolute.
    pub path: PathBuf,
    /// Kept open so that an unlinked file is still recognisable as the one opened.
    file: Arc<File>,
    device: u64,
    inode: u64,
    /// The mode the file had when it was found looser than [`FILE_MODE`] and tightened.
    pub tightened_from: Option<u32>,
}

impl DataFile {
    /// Opens `path` for reading and writing, creating it (and its folders) if needed.
    pub fn open(path: &Path) -> io::Result<DataFile> {
        create_parent(path)?;
        DataFile::from_file(path, Arc::new(open_private(path)?))
    }

    /// As [`DataFile::open`], for an SQLite database: its descriptor is never closed while the
    /// process lives. Closing any descriptor of a file drops every POSIX lock the process holds
    /// on it, SQLite's included (fcntl locks belong to the process, not the descriptor). A
    /// ledger opened twice in one process (`serve`'s writer, then each `--run-every` pass) would
    /// lose the writer's locks when the pass ended, and the next connection to close anywhere
    /// would delete the write-ahead log the writer still writes to: its events lost. SQLite
    /// keeps its own descriptors open for the same reason. One descriptor per database file
    /// the process opens (a ledger, or a ledger that replaced it), reused by later opens.
    pub fn open_database(path: &Path) -> io::Result<DataFile> {
        static KEPT: Mutex<Vec<(u64, u64, Arc<File>)>> = Mutex::new(Vec::new());
        create_parent(path)?;
        let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
        // Looked up by a stat of the path: no descriptor of an open database is opened or
        // closed to find out.
        let known = std::fs::metadata(path).ok().and_then(|m| {
            kept.iter()
                .find(|(device, inode, _)| *device == m.dev() && *inode == m.ino())
                .map(|(_, _, file)| file.clone())
        });
        let file = match known {
            Some(file) => file,
            None => {
                let file = Arc::new(open_private(path)?);
                let metadata = file.metadata()?;
                kept.push((metadata.dev(), metadata.ino(), file.clone()));
                file
            }
        };
        drop(kept);
        DataFile::from_file(path, file)
    }

    fn from_file(path: &Path, file: Arc<File>) -> io::Result<DataFile> {
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let path = std::fs::canonicalize(path)?;
        let mode = metadata.permissions().mode() & 0o777;
        let tightened_from = if mode & !FILE_MODE != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
            Some(mode)
        } else {
            None
        };
        Ok(DataFile {
            path,
            device: metadata.dev(),
            inode: metadata.ino(),
            file,
            tightened_from,
        })
    }

    /// Whether the file at [`DataFile::path`] is still the one opened: not deleted, not
    /// replaced by another file (a restore, a `mv`), not renamed away.
    pub fn still_in_place(&self) -> bool {
        let unlinked = self.file.metadata().map(|m| m.nlink() == 0).unwrap_or(true);
        if unlinked {
            return false;
        }
        match std::fs::metadata(&self.path) {
            Ok(now) => now.dev() == self.device && now.ino() == self.inode,
            Err(_) => false,
        }
    }

    pub fn file(&self) -> &File {
        &self.file
    }
}

/// `path` opened for reading and writing, created `0600` if missing.
fn open_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
}

/// What to do about an error opening a data file, for the message.
pub fn advice(error: &io::Error, flag: &str) -> String {
    match error.kind() {
        io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied => {
            format!("{error}; give {flag} a writable place")
        }
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            format!("{error}; free some space and run again")
        }
        io::ErrorKind::InvalidInput | io::ErrorKind::IsADirectory => {
            format!("{error}; {flag} takes a file")
        }
        _ => error.to_string(),
    }
}

/// Creates the folders above `path` that are missing, each `0700`.
pub fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir),
        None => Ok(()),
    }
}

/// Tightens an existing companion file (SQLite's `-wal` and `-shm`) to [`FILE_MODE`].
pub fn tighten_if_present(path: &Path) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.permissions().mode() & 0o777 & !FILE_MODE != 0 => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE))
        }
        Ok(_) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// `path` with `suffix` added to its file name (`ledger.db` → `ledger.db.lock`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_files_and_folders_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/ledger.db");
        let file = DataFile::open(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&dir.path().join("a/b")), 0o700);
        assert_eq!(file.tightened_from, None);
    }

    #[test]
    fn an_existing_readable_file_is_tightened_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let file = DataFile::open(&path).unwrap();
        assert_eq!(file.tightened_from, Some(0o644));
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_symlink_resolves_to_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.db");
        let alias = dir.path().join("alias.db");
        std::os::unix::fs::symlink(&real, &alias).unwrap();
        let via_alias = DataFile::open(&alias).unwrap();
        let direct = DataFile::open(&real).unwrap();
        assert_eq!(via_alias.path, direct.path);
    }

    #[test]
    fn deleting_or_replacing_the_file_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let file = DataFile::open(&path).unwrap();
        assert!(file.still_in_place());
        std::fs::remove_file(&path).unwrap();
        assert!(!file.still_in_place());
        std::fs::write(&path, b"another").unwrap();
        assert!(!file.still_in_place(), "a new file under the same name");
    }

    #[test]
    fn a_folder_is_not_a_data_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(DataFile::open(dir.path()).is_err());
    }
}
