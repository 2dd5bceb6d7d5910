//! The CLI's contract without a server (the server itself is driven by tests/e2e). Having an
//! integration test here also makes `cargo test` build the `tollgate` binary the e2e suite spawns.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn tollgate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .env_remove("TOLLGATE_CONFIG")
        .env_remove("TOLLGATE_OPERATOR_KEY")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_help_and_usage_errors() {
    let (code, out, _) = tollgate(&["--version"]);
    assert_eq!(
        (code, out.trim()),
        (0, concat!("tollgate ", env!("CARGO_PKG_VERSION")))
    );
    let (code, out, _) = tollgate(&["help"]);
    assert_eq!(code, 0);
    assert!(out.contains("check-config") && out.contains("EXIT CODES"));
    let (code, _, err) = tollgate(&["--config"]);
    assert_eq!(code, 2);
    // clap's wording (issue 18 replaced the hand-written parser): it names the flag and its value.
    assert!(
        err.contains("a value is required for '--config <PATH>'"),
        "{err}"
    );
}

#[test]
fn configuration_errors_exit_2() {
    let (code, out, err) = tollgate(&["check-config"]);
    assert_eq!(code, 0, "the defaults are valid: {err}");
    assert!(out.contains("configuration OK"), "{out}");
    let (code, _, err) = tollgate(&["check-config", "--config", "/nonexistent/tollgate.toml"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read /nonexistent/tollgate.toml"),
        "{err}"
    );
}
