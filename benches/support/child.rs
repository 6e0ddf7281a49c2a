//! A bench's child process, waited for with its own peak resident set, for the benches that
//! time the real binary (`run`, `report`).

/// What `wait4` says of a reaped child: its exit code, its own peak resident set (not the
/// bench's, nor an earlier child's: `wait4` reports the one process reaped) and the CPU time it
/// used (user and system, all its threads), where the platform reports them.
pub struct Waited {
    pub code: Option<i32>,
    pub peak_rss: Option<u64>,
    #[allow(dead_code)] // only the run bench prints it
    pub cpu: Option<std::time::Duration>,
}

/// Waits for `child`: its exit code and peak resident set.
#[allow(dead_code)] // the run bench takes the CPU time too
pub fn wait(child: std::process::Child) -> Result<(Option<i32>, Option<u64>), String> {
    let waited = wait_used(child)?;
    Ok((waited.code, waited.peak_rss))
}

/// Waits for `child`, with what it used (see [`Waited`]).
#[cfg(unix)]
pub fn wait_used(child: std::process::Child) -> Result<Waited, String> {
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
    let peak_rss = u64::try_from(usage.ru_maxrss).ok().map(|n| n * unit);
    let seconds = |time: libc::timeval| {
        let whole = u64::try_from(time.tv_sec).ok()?;
        let micros = u32::try_from(time.tv_usec).ok()?;
        Some(
            std::time::Duration::from_secs(whole) + std::time::Duration::from_micros(micros.into()),
        )
    };
    let cpu = seconds(usage.ru_utime)
        .zip(seconds(usage.ru_stime))
        .map(|(u, s)| u + s);
    Ok(Waited {
        code,
        peak_rss,
        cpu,
    })
}

#[cfg(not(unix))]
pub fn wait_used(mut child: std::process::Child) -> Result<Waited, String> {
    let status = child.wait().map_err(|e| e.to_string())?;
    Ok(Waited {
        code: status.code(),
        peak_rss: None,
        cpu: None,
    })
}

/// The CPU time the machine's hypervisor gave to other guests while this one wanted it
/// (`steal` in the first line of `/proc/stat`), so far: a child's wall time includes what was
/// stolen during it, which no change to steprule can win back. None off Linux, or when the
/// file cannot be read.
#[cfg(target_os = "linux")]
#[allow(dead_code)] // only the run bench prints it
pub fn stolen() -> Option<std::time::Duration> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = text.lines().next()?.strip_prefix("cpu ")?;
    // user nice system idle iowait irq softirq steal …, in clock ticks.
    let ticks: u64 = cpu.split_whitespace().nth(7)?.parse().ok()?;
    // SAFETY: sysconf takes an int and has no other effect.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok()?;
    (per_second > 0).then(|| std::time::Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

#[cfg(not(target_os = "linux"))]
#[allow(dead_code)] // as above
pub fn stolen() -> Option<std::time::Duration> {
    None
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
