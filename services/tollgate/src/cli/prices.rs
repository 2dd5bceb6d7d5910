//! `tollgate prices …`: the versioned price catalog.

use std::process::ExitCode;

use tollgate_domain::pricing::catalog::{apply_overrides, import_litellm, Overrides};
use tollgate_store::Store;

use super::admin::{flag, print, usage};

/// Where `prices import` reads the public price list by default (the repository's sibling
/// `shared/` folder, as checked out for development).
pub const DEFAULT_PRICE_LIST: &str = "../shared/data/model_prices_and_context_window.json";

pub async fn run(
    store: &Store,
    actor: &str,
    words: &[&str],
    flags: &[(String, String)],
) -> ExitCode {
    match words {
        ["prices", "import"] => import(store, actor, flags).await,
        ["prices", "versions"] => match store.price_versions().await {
            Ok(v) => {
                print(&v);
                ExitCode::SUCCESS
            }
            Err(e) => failed(&e),
        },
        ["prices", "show", provider, model] => {
            let version = match flag(flags, "price-version").map(str::parse::<i64>) {
                Some(Ok(v)) => Some(v),
                Some(Err(_)) => return usage("--price-version takes a number"),
                None => match store.latest_price_version().await {
                    Ok(v) => v.map(|v| v.version),
                    Err(e) => return failed(&e),
                },
            };
            let Some(version) = version else {
                return usage("no price catalog yet: run `tollgate prices import`");
            };
            match store.price(version, provider, model).await {
                Ok(Some(entry)) => {
                    print(&serde_json::json!({"version": version, "price": entry}));
                    ExitCode::SUCCESS
                }
                Ok(None) => usage(&format!(
                    "no price for {provider}/{model} in version {version}"
                )),
                Err(e) => failed(&e),
            }
        }
        _ => usage(&format!("unknown command {:?}", words.join(" "))),
    }
}

fn failed(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(1)
}

async fn import(store: &Store, actor: &str, flags: &[(String, String)]) -> ExitCode {
    let from = flag(flags, "from").unwrap_or(DEFAULT_PRICE_LIST);
    let mut source = String::new();
    let mut report = Default::default();
    if from != "none" {
        let text = match std::fs::read_to_string(from) {
            Ok(t) => t,
            Err(e) => return usage(&format!("reading {from}: {e}")),
        };
        report = match import_litellm(&text) {
            Ok(r) => r,
            Err(e) => return usage(&format!("{from}: {e}")),
        };
        source = format!("import:{from}");
    }
    let tollgate_domain::pricing::catalog::ImportReport {
        mut entries,
        skipped,
        duplicates,
    } = report;
    let imported = entries.len();
    let mut overridden = 0;
    if let Some(path) = flag(flags, "overrides") {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => return usage(&format!("reading {path}: {e}")),
        };
        let o: Overrides = match toml::from_str(&text) {
            Ok(o) => o,
            Err(e) => return usage(&format!("{path}: {e}")),
        };
        overridden = o.price.len();
        apply_overrides(&mut entries, o.price);
        if !source.is_empty() {
            source.push(' ');
        }
        source.push_str(&format!("overrides:{path}"));
    }
    if entries.is_empty() {
        return usage("nothing to import: give --from and/or --overrides");
    }
    let note = format!("{} by {actor}", flag(flags, "note").unwrap_or("imported"));
    match store.create_price_version(&source, &note, &entries).await {
        Ok(v) => {
            print(&serde_json::json!({
                "version": v,
                "imported": imported,
                "overrides": overridden,
                "skipped": skipped,
                "duplicates": duplicates,
            }));
            ExitCode::SUCCESS
        }
        Err(e) => failed(&e),
    }
}
