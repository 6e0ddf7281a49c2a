//! The binary's allocator options (issue 13, `src/main.rs`): set as the binary loads, before
//! mimalloc reads its options and reserves its first arena, and left alone when the
//! environment sets them. mimalloc prints its options as it starts when `MIMALLOC_VERBOSE` is
//! set, so the real binary says which values took: options set in `main` instead would come
//! too late and it would print mimalloc's defaults (`purge_delay` 1000).

#![allow(clippy::unwrap_used)]

use std::process::Command;

/// The value mimalloc printed for `option` at start (`option 'NAME': VALUE`).
fn printed_option(extra_env: &[(&str, &str)], option: &str) -> Option<String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_steprule"));
    command.arg("--version").env("MIMALLOC_VERBOSE", "1");
    for variable in ["MIMALLOC_PURGE_DELAY", "MIMALLOC_ARENA_EAGER_COMMIT"] {
        command.env_remove(variable);
    }
    command.envs(extra_env.iter().copied());
    let output = command.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let prefix = format!("option '{option}': ");
    stderr
        .lines()
        .find_map(|line| line.trim().strip_prefix(&prefix).map(str::to_owned))
}

#[test]
#[cfg(target_os = "linux")]
fn the_options_are_set_before_mimalloc_starts() {
    assert_eq!(printed_option(&[], "purge_delay").as_deref(), Some("50"));
    assert_eq!(
        printed_option(&[], "arena_eager_commit").as_deref(),
        Some("0")
    );
}

#[test]
fn an_option_in_the_environment_is_left_as_set() {
    let set = [("MIMALLOC_PURGE_DELAY", "7")];
    assert_eq!(printed_option(&set, "purge_delay").as_deref(), Some("7"));
    let set = [("MIMALLOC_ARENA_EAGER_COMMIT", "1")];
    assert_eq!(
        printed_option(&set, "arena_eager_commit").as_deref(),
        Some("1")
    );
}
