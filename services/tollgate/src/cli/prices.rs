//! `tollgate prices …`: the versioned price catalog.

use tollgate_domain::pricing::catalog::{apply_overrides, import_litellm, ImportReport, Overrides};
use tollgate_store::{Prices, Store};

use super::args::PricesCommand;
use super::output::{print, Failure};

pub async fn run(store: &Store, actor: &str, command: &PricesCommand) -> Result<(), Failure> {
    match command {
        PricesCommand::Import {
            from,
            overrides,
            note,
        } => import(store, actor, from, overrides.as_deref(), note).await,
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
    let mut source = String::new();
    let mut report = ImportReport::default();
    if from != "none" {
        report =
            import_litellm(&read(from)?).map_err(|e| Failure::Usage(format!("{from}: {e}")))?;
        source = format!("import:{from}");
    }
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
