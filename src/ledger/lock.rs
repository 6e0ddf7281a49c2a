//! One run at a time per ledger: an OS file lock beside it. The OS drops the lock when the
//! process dies, even by SIGKILL, so a crashed run never blocks the next one. The lock is taken
//! beside the file the ledger's path resolves to, so a symlink or another spelling of the same
//! ledger meets the same lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Held while a run uses the ledger; released on drop.
#[derive(Debug)]
pub struct LedgerLock {
    _file: File,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another steprule run is using this ledger ({path}); try again when it has finished")]
    Busy { path: String },
    #[error("cannot lock {path}: {message}")]
    Io { path: String, message: String },
}

impl LedgerLock {
    /// Takes the lock for the ledger at `ledger`, without waiting. `ledger` should be the
    /// resolved path ([`super::Ledger::path`] or [`super::file::DataFile`]); a path that does
    /// not exist yet is resolved through its folder.
    pub fn acquire(ledger: &Path) -> Result<LedgerLock, LockError> {
        let io = |path: &Path, e: std::io::Error| LockError::Io {
            path: path.display().to_string(),
            message: super::file::advice(&e, "--ledger"),
        };
        super::file::create_parent(ledger).map_err(|e| io(ledger, e))?;
        let resolved = resolve(ledger).map_err(|e| io(ledger, e))?;
        let path = super::file::with_suffix(&resolved, ".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(super::file::FILE_MODE)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(LedgerLock { _file: file, path }),
            Err(TryLockError::WouldBlock) => Err(LockError::Busy {
                path: ledger.display().to_string(),
            }),
            Err(TryLockError::Error(e)) => Err(io(&path, e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Where `path` leads: the file itself if it exists (symlinks followed), else the resolved
/// folder with the file name.
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    match std::fs::canonicalize(path) {
        Ok(resolved) => Ok(resolved),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(path).is_ok() {
                // A dangling symlink: the ledger will be created where it points.
                let target = std::fs::read_link(path)?;
                let target = path.parent().unwrap_or(Path::new("")).join(target);
                return resolve(&target);
            }
            let parent = path.parent().filter(|d| !d.as_os_str().is_empty());
            let dir = std::fs::canonicalize(parent.unwrap_or(Path::new(".")))?;
            Ok(dir.join(path.file_name().unwrap_or_default()))
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_ledger_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("ledger.db");
        let first = LedgerLock::acquire(&ledger).unwrap();
        assert!(matches!(
            LedgerLock::acquire(&ledger),
            Err(LockError::Busy { .. })
        ));
        drop(first);
        assert!(LedgerLock::acquire(&ledger).is_ok());
    }

    #[test]
    fn a_symlink_to_the_ledger_meets_the_same_lock() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("l.db");
        let alias = dir.path().join("alias.db");
        std::os::unix::fs::symlink(&ledger, &alias).unwrap();
        let _first = LedgerLock::acquire(&ledger).unwrap();
        assert!(matches!(
            LedgerLock::acquire(&alias),
            Err(LockError::Busy { .. })
        ));
        let dotted = dir.path().join(".").join("l.db");
        assert!(matches!(
            LedgerLock::acquire(&dotted),
            Err(LockError::Busy { .. })
        ));
    }
}
