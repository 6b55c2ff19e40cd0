//! The demo example as a program a test runs.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

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

/// Runs the demo with `args` and `env`, standard input closed, off the runtime's threads (the
/// demo's servers may be this test's).
pub async fn run<A, K, V>(args: Vec<A>, env: Vec<(K, V)>) -> Output
where
    A: AsRef<OsStr> + Send + 'static,
    K: AsRef<OsStr> + Send + 'static,
    V: AsRef<OsStr> + Send + 'static,
{
    let demo = demo_binary();
    tokio::task::spawn_blocking(move || {
        Command::new(demo)
            .args(args)
            .envs(env)
            .stdin(Stdio::null())
            .output()
            .expect("the demo runs")
    })
    .await
    .expect("the demo's task")
}

/// The `--json` report of a run that succeeded: the last line of its standard output.
///
/// # Panics
///
/// When the run failed (with its output) or printed no JSON report.
pub fn report(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().expect("a report line")).expect("JSON")
}
