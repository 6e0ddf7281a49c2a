//! Runs the real `steprule` binary the way a user does.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Runs `steprule ARGS` in `dir`, without colours and without a terminal.
pub fn steprule(dir: &Path, args: &[&str]) -> Run {
    steprule_with_env(dir, args, &[])
}

/// [`steprule`] with `env` set (and no `STEPRULE_LEDGER_URL` from the caller's shell unless
/// `env` sets it).
pub fn steprule_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_steprule"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("LINE_CHANNEL_ACCESS_TOKEN")
        .env_remove("STEPRULE_LEDGER_URL")
        .envs(env.iter().copied())
        .output()
        .expect("the steprule binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}
