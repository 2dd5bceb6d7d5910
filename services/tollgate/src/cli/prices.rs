//! `tollgate prices …`: the versioned price catalog.

use sha2::{Digest, Sha256};
use tollgate_domain::pricing::catalog::{
    apply_overrides, import_litellm, read_snapshot, write_snapshot, ImportReport, Overrides,
    SNAPSHOT_HEADER,
};
use tollgate_store::{Prices, Store};

use super::args::{PricesCommand, BUILTIN_PRICE_LIST};
use super::output::{print, Failure};

/// The price snapshot built into the binary: `tollgate prices import`'s default source.
pub const BUILTIN_PRICES: &str = include_str!("../../../../data/prices.jsonl");

pub async fn run(store: &Store, actor: &str, command: &PricesCommand) -> Result<(), Failure> {
    match command {
        PricesCommand::Import {
            from,
            overrides,
            note,
        } => import(store, actor, from, overrides.as_deref(), note).await,
        PricesCommand::Snapshot { from, out } => snapshot(from, out.as_deref()),
        PricesCommand::Versions => print(&store.price_versions().await?),
        PricesCommand::Show {
            provider,
            model,
            price_version,
        } => show(store, provider, model, *price_version).await,
    }
}

async fn show(
    store: &Store,
    provider: &str,
    model: &str,
    version: Option<i64>,
) -> Result<(), Failure> {
    let version = match version {
        Some(v) => Some(v),
        None => store.latest_price_version().await?.map(|v| v.version),
    };
    let Some(version) = version else {
        return Err(Failure::Usage(
            "no price catalog yet: run `tollgate prices import`".into(),
        ));
    };
    match store.price(version, provider, model).await? {
        Some(entry) => print(&serde_json::json!({"version": version, "price": entry})),
        None => Err(Failure::Usage(format!(
            "no price for {provider}/{model} in version {version}"
        ))),
    }
}

fn read(path: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure::Usage(format!("reading {path}: {e}")))
}

async fn import(
    store: &Store,
    actor: &str,
    from: &str,
    overrides: Option<&str>,
    note: &str,
) -> Result<(), Failure> {
    let (report, mut source) = prices_from(from)?;
    let ImportReport {
        mut entries,
        skipped,
        duplicates,
    } = report;
    let imported = entries.len();
    let mut overridden = 0;
    if let Some(path) = overrides {
        let o: Overrides =
            toml::from_str(&read(path)?).map_err(|e| Failure::Usage(format!("{path}: {e}")))?;
        overridden = o.price.len();
        apply_overrides(&mut entries, o.price);
        if !source.is_empty() {
            source.push(' ');
        }
        source.push_str(&format!("overrides:{path}"));
    }
    if entries.is_empty() {
        return Err(Failure::Usage(
            "nothing to import: give --from and/or --overrides".into(),
        ));
    }
    let note = format!("{note} by {actor}");
    let version = store.create_price_version(&source, &note, &entries).await?;
    print(&serde_json::json!({
        "version": version,
        "imported": imported,
        "overrides": overridden,
        "skipped": skipped,
        "duplicates": duplicates,
    }))
}

/// The prices `--from` names: the built-in snapshot, a snapshot file, the public price list, or
/// none; and the catalog version's source for them.
fn prices_from(from: &str) -> Result<(ImportReport, String), Failure> {
    let snapshot = |text: &str, name: &str| {
        let (entries, _) =
            read_snapshot(text).map_err(|e| Failure::Usage(format!("{name}: {e}")))?;
        Ok::<_, Failure>(ImportReport {
            entries,
            ..ImportReport::default()
        })
    };
    match from {
        "none" => Ok((ImportReport::default(), String::new())),
        BUILTIN_PRICE_LIST => Ok((
            snapshot(BUILTIN_PRICES, "the built-in snapshot")?,
            "snapshot:builtin".into(),
        )),
        path => {
            let text = read(path)?;
            let report = if text.starts_with(SNAPSHOT_HEADER) {
                snapshot(&text, path)?
            } else {
                import_litellm(&text).map_err(|e| Failure::Usage(format!("{path}: {e}")))?
            };
            Ok((report, format!("import:{path}")))
        }
    }
}

/// `prices snapshot`: the public price list as Tollgate's snapshot, to `out` or standard output.
/// Its comment lines depend only on the list (no date), so the same list gives the same file.
pub fn snapshot(from: &str, out: Option<&std::path::Path>) -> Result<(), Failure> {
    let text = read(from)?;
    let report = import_litellm(&text).map_err(|e| Failure::Usage(format!("{from}: {e}")))?;
    let name = std::path::Path::new(from)
        .file_name()
        .map_or_else(|| from.to_owned(), |n| n.to_string_lossy().into_owned());
    let about = [
        format!(
            "from {name} (sha256 {})",
            hex::encode(Sha256::digest(text.as_bytes()))
        ),
        "LiteLLM's public price list, MIT licence; see data/README.md".into(),
        format!(
            "{} priced models; {} entries without a provider or a per-token price and {} \
             prefixed duplicates left out",
            report.entries.len(),
            report.skipped,
            report.duplicates
        ),
        "regenerate: tollgate prices snapshot --from <the list> --out data/prices.jsonl".into(),
    ];
    let written = write_snapshot(&report.entries, &about)
        .map_err(|e| Failure::Runtime(format!("{from}: {e}")))?;
    match out {
        Some(path) => {
            std::fs::write(path, written)
                .map_err(|e| Failure::Runtime(format!("writing {}: {e}", path.display())))?;
            print(&serde_json::json!({
                "written": path.display().to_string(),
                "models": report.entries.len(),
                "skipped": report.skipped,
                "duplicates": report.duplicates,
            }))
        }
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(written.as_bytes())
                .map_err(|e| Failure::Runtime(format!("writing the snapshot: {e}")))
        }
    }
}
