//! A bench's child process, waited for with its own peak resident set, for the benches that
//! time the real binary (`run`, `report`).

/// Waits for `child` and reads its own peak resident set (not the bench's, nor an earlier
/// child's: `wait4` reports the one process reaped).
#[cfg(unix)]
pub fn wait(child: std::process::Child) -> Result<(Option<i32>, Option<u64>), String> {
    let pid = libc::pid_t::try_from(child.id()).map_err(|e| e.to_string())?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; zero is a valid value for every field.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own unreaped child; both pointers are to live locals.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("wait4: {error}"));
        }
    }
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    // Linux reports kilobytes, macOS bytes.
    let unit = if cfg!(target_os = "macos") { 1 } else { 1024 };
    let peak = u64::try_from(usage.ru_maxrss).ok().map(|n| n * unit);
    Ok((code, peak))
}

#[cfg(not(unix))]
pub fn wait(mut child: std::process::Child) -> Result<(Option<i32>, Option<u64>), String> {
    let status = child.wait().map_err(|e| e.to_string())?;
    Ok((status.code(), None))
}

/// Writes every dirty page out before a timed child starts (not timed): files an earlier child
/// or the bench wrote (exports, outputs, ledgers: hundreds of MB) would otherwise be written
/// back by the kernel during the next child, on the same two cores.
pub fn settle_disk() {
    #[cfg(unix)]
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe {
        libc::sync()
    };
}

/// Reads `path` through once before a timed child starts (not timed), so that every contestant
/// reads its input from the page cache. This machine's memory reclaimer (`kdamond`) drops cold
/// pages between repeats, and a repeat that met its input on disk measured the disk: DuckDB's
/// query always followed its own scan of the file, `plan` sometimes did not.
#[allow(dead_code)] // the report and pg benches read no export
pub fn warm(path: &std::path::Path) -> Result<(), String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::copy(&mut file, &mut std::io::sink())
        .map(drop)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A target's verdict, as the benches print it beside a figure.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "ok"
    } else {
        "MISSED"
    }
}

/// A peak resident set from [`wait`], in megabytes ("n/a" where the platform gives none).
pub fn megabytes(bytes: Option<u64>) -> String {
    match bytes {
        Some(bytes) => format!("{:.0} MB", bytes as f64 / 1e6),
        None => "n/a".into(),
    }
}
