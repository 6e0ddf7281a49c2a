//! The HTML checker the page tests share: loads a page in a real headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs) and returns its DOM and console, and lists every
//! attribute or style that would fetch something from the network.
//!
//! Without `/usr/bin/chromium` the browser checks print a skip line and pass, unless
//! `STEPRULE_REQUIRE_CHROMIUM=1` (CI) makes them fail.

#![allow(dead_code)]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Longest a page may take to load before the browser is killed and the check fails.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The browser, or `None` (with a line saying the check is skipped) when it is not installed
/// and not required.
pub fn chromium() -> Option<&'static Path> {
    let path = Path::new(CHROMIUM);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("STEPRULE_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
        panic!("{CHROMIUM} is missing and STEPRULE_REQUIRE_CHROMIUM=1: install Debian's chromium");
    }
    eprintln!("SKIPPED: {CHROMIUM} is not installed; the page was not checked in a browser");
    None
}

/// What the browser made of a page.
pub struct Loaded {
    pub code: Option<i32>,
    /// The DOM after loading, as `--dump-dom` prints it.
    pub dom: String,
    /// Every console message the page caused (`console.error`, uncaught exceptions, …).
    pub console: Vec<String>,
    pub stderr: String,
}

/// Loads `page` in a fresh headless profile with nothing in the background reaching the
/// network, and returns its DOM and console. The browser and its helpers are killed when the
/// page takes longer than [`TIMEOUT`].
pub fn load(chromium: &Path, page: &Path) -> Loaded {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--enable-logging=stderr", "--v=0", "--dump-dom"])
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a timeout kills the renderers too.
        .process_group(0)
        .spawn()
        .unwrap();
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            let group = libc::pid_t::try_from(child.id()).unwrap();
            // SAFETY: signals the process group of the child spawned above, and nothing else.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            let _ = child.wait();
            panic!(
                "chromium did not finish loading {} in {TIMEOUT:?}",
                page.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = stderr.join().unwrap();
    Loaded {
        code: status.code(),
        dom: stdout.join().unwrap(),
        console: stderr
            .lines()
            .filter(|line| line.contains(":CONSOLE"))
            .map(str::to_owned)
            .collect(),
        stderr,
    }
}

/// Loads `page` and asserts that the browser finished and the page said nothing on the
/// console; returns the DOM.
pub fn load_cleanly(chromium: &Path, page: &Path) -> String {
    let loaded = load(chromium, page);
    assert_eq!(loaded.code, Some(0), "{}", loaded.stderr);
    assert!(
        loaded.console.is_empty(),
        "console messages: {:#?}",
        loaded.console
    );
    assert!(loaded.dom.contains("</html>"), "{}", loaded.dom);
    loaded.dom
}

/// Every attribute or style in `html` that makes a browser fetch something from another
/// host: `src`, `href`, `srcset`, `poster`, `action`, `data` values and CSS `url()` /
/// `@import` starting with `http:`, `https:` or `//`. Text that shows a URL is not a fetch.
pub fn external_references(html: &str) -> Vec<String> {
    const FETCHING: [&str; 7] = [
        "src",
        "href",
        "xlink:href",
        "srcset",
        "poster",
        "action",
        "data",
    ];
    let remote = |value: &str| {
        let value = value
            .trim()
            .trim_matches(['"', '\''])
            .trim()
            .to_ascii_lowercase();
        value.starts_with("http:") || value.starts_with("https:") || value.starts_with("//")
    };
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        // A tag runs to the first `>` outside quotes.
        let tag = &rest[open + 1..];
        let mut quote: Option<char> = None;
        let mut end = tag.len();
        for (i, c) in tag.char_indices() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '>') => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let tag = &tag[..end];
        rest = &rest[(open + 1 + end).min(rest.len())..];
        for (i, _) in tag.match_indices('=') {
            let name = tag[..i]
                .trim_end()
                .rsplit(|c: char| c.is_whitespace())
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            let value = tag[i + 1..].trim_start();
            let value = match value.chars().next() {
                Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
                _ => value
                    .split(|c: char| c.is_whitespace())
                    .next()
                    .unwrap_or(""),
            };
            if FETCHING.contains(&name.as_str()) && remote(value) {
                found.push(format!("{name}={value}"));
            }
        }
    }
    let lower = html.to_ascii_lowercase();
    for (at, _) in lower.match_indices("url(") {
        if remote(&lower[at + 4..].chars().take(12).collect::<String>()) {
            found.push(lower[at..].chars().take(40).collect());
        }
    }
    if lower.contains("@import") {
        found.push("@import".into());
    }
    found
}
