//! `tollgate prices …` against the configured store (SQLite, or Postgres when
//! `TOLLGATE_TEST_POSTGRES` is set): import the built-in price snapshot with the operator's
//! overrides, read prices back exactly, make new versions, refuse bad input with exit code 2;
//! write a snapshot from a public-format price list and import it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use tollgate_e2e::run_cli;

const OVERRIDES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/demo/prices.toml");

#[tokio::test]
async fn prices_import_show_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let url = tollgate_store::testing::database_url_for_test(dir.path())
        .await
        .unwrap();
    let env = [("TOLLGATE_DATABASE_URL", url.as_str()), ("USER", "carol")];

    let (code, _, err) = run_cli(&["prices", "show", "openai", "gpt-4o"], &env);
    assert_eq!(code, 2);
    assert!(err.contains("no price catalog yet"), "{err}");

    let (code, out, err) = run_cli(
        &[
            "prices",
            "import",
            "--overrides",
            OVERRIDES,
            "--note",
            "launch",
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["version"]["version"], 1);
    assert_eq!(report["overrides"], 2);
    assert!(report["imported"].as_u64().unwrap() > 2_000, "{report}");
    assert_eq!(report["version"]["note"], "launch by cli:carol");
    assert_eq!(
        report["version"]["source"],
        format!("snapshot:builtin overrides:{OVERRIDES}")
    );

    // Decimal strings, exactly as the list's text says (2.5e-06, 1e-05, 1.25e-06).
    let (code, out, err) = run_cli(&["prices", "show", "openai", "gpt-4o"], &env);
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["version"], 1);
    assert_eq!(shown["price"]["input"], "0.0000025");
    assert_eq!(shown["price"]["output"], "0.00001");
    assert_eq!(shown["price"]["cache_read"], "0.00000125");
    let (code, out, _) = run_cli(&["prices", "show", "mock", "mock-gpt"], &env);
    assert_eq!(code, 0);
    let mock: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(mock["price"]["input"], "0.000001");
    assert_eq!(mock["price"]["max_output_tokens"], 4096);

    // Overrides alone make a second version; the first is unchanged.
    let (code, out, err) = run_cli(
        &[
            "prices",
            "import",
            "--from",
            "none",
            "--overrides",
            OVERRIDES,
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    let v2: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v2["version"]["version"], 2);
    assert_eq!(v2["version"]["entries"], 2);
    let (code, _, err) = run_cli(&["prices", "show", "openai", "gpt-4o"], &env);
    assert_eq!(code, 2, "version 2 has only the overrides");
    assert!(
        err.contains("no price for openai/gpt-4o in version 2"),
        "{err}"
    );
    let (code, out, _) = run_cli(
        &["prices", "show", "openai", "gpt-4o", "--price-version", "1"],
        &env,
    );
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["price"]["input"],
        "0.0000025"
    );
    let (code, out, _) = run_cli(&["prices", "versions"], &env);
    assert_eq!(code, 0);
    let versions: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 2);

    // Bad input: exit 2, nothing stored.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[price]]\nprovider = \"x\"\nmodel = \"y\"\ninput = \"cheap\"\n",
    )
    .unwrap();
    let (code, _, err) = run_cli(
        &[
            "prices",
            "import",
            "--from",
            "none",
            "--overrides",
            bad.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run_cli(&["prices", "import", "--from", "/nonexistent.json"], &env);
    assert_eq!(code, 2);
    assert!(err.contains("reading /nonexistent.json"), "{err}");
    let (_, out, _) = run_cli(&["prices", "versions"], &env);
    assert_eq!(
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A snapshot written from a list in the public format (no store needed), then imported.
    let list = dir.path().join("list.json");
    std::fs::write(
        &list,
        r#"{"new-model": {"litellm_provider": "acme", "input_cost_per_token": 3.75e-08,
            "output_cost_per_token": "oops"}, "ok-model": {"litellm_provider": "acme",
            "input_cost_per_token": 3.75e-08, "output_cost_per_token": 1.5e-07}}"#,
    )
    .unwrap();
    let (code, _, err) = run_cli(
        &["prices", "snapshot", "--from", list.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2, "a price that is not a number is refused");
    assert!(err.contains("new-model.output_cost_per_token"), "{err}");
    std::fs::write(
        &list,
        r#"{"ok-model": {"litellm_provider": "acme", "input_cost_per_token": 3.75e-08,
            "output_cost_per_token": 1.5e-07, "max_input_tokens": 8192}, "free": {}}"#,
    )
    .unwrap();
    let snapshot = dir.path().join("prices.jsonl");
    let (code, out, err) = run_cli(
        &[
            "prices",
            "snapshot",
            "--from",
            list.to_str().unwrap(),
            "--out",
            snapshot.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let written: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (written["models"].as_u64(), written["skipped"].as_u64()),
        (Some(1), Some(1))
    );
    let text = std::fs::read_to_string(&snapshot).unwrap();
    assert!(
        text.starts_with("# tollgate price snapshot v1\n# from list.json (sha256 "),
        "{text}"
    );
    assert!(
        text.ends_with(
            "{\"provider\":\"acme\",\"model\":\"ok-model\",\"input\":\"0.0000000375\",\
         \"output\":\"0.00000015\",\"max_input_tokens\":8192}\n"
        ),
        "{text}"
    );
    let (code, out, err) = run_cli(
        &["prices", "import", "--from", snapshot.to_str().unwrap()],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    let v3: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v3["version"]["version"].as_i64(), v3["imported"].as_i64()),
        (Some(3), Some(1))
    );
    let (_, out, _) = run_cli(&["prices", "show", "acme", "ok-model"], &env);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["price"]["input"],
        "0.0000000375"
    );
}
