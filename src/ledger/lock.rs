//! One run at a time per ledger: an OS file lock beside it. The OS drops the lock when the
//! process dies, even by SIGKILL, so a crashed run never blocks the next one.

use std::fs::{File, OpenOptions, TryLockError};
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
    /// Takes the lock for the ledger at `ledger`, without waiting.
    pub fn acquire(ledger: &Path) -> Result<LedgerLock, LockError> {
        let mut name = ledger.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let io = |e: std::io::Error| LockError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(LedgerLock { _file: file, path }),
            Err(TryLockError::WouldBlock) => Err(LockError::Busy {
                path: ledger.display().to_string(),
            }),
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
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
}
