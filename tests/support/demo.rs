//! The demo example as a program a test runs.

use std::path::PathBuf;
use std::process::Command;

/// Builds the demo example as this test was built, and returns its path.
pub fn demo_binary() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "--quiet",
        "--example",
        "demo",
        "--all-features",
    ]);
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "building the demo failed: {status}");
    // This test is <target>/<profile>/deps/fleet-<hash>; the demo is <target>/<profile>/examples.
    let exe = std::env::current_exe().expect("the test's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("profile dir");
    let demo = profile_dir.join("examples").join("demo");
    assert!(demo.is_file(), "no demo at {}", demo.display());
    demo
}
