//! The versioned price catalog. A version is an immutable, complete snapshot of every
//! `(provider, model)` price sheet; a price change creates a new version (nothing is updated or
//! deleted), and each usage record names the version that priced it.

use sqlx::{Pool, Row};
use tollgate_domain::pricing::catalog::CatalogEntry;
use tollgate_domain::pricing::PriceSheet;

use crate::backend::{Backend, Pooled};
use crate::error::StoreError;
use crate::store::Store;
use crate::util::now_ms;

/// A catalog version's header.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PriceVersion {
    pub version: i64,
    pub created_at_ms: i64,
    pub source: String,
    pub note: String,
    pub entries: i64,
}

/// Rows per multi-row INSERT (7 parameters each; well under both backends' limits).
const CHUNK: usize = 400;

const VERSION_COLUMNS: &str = "version, created_at_ms, source, note, entries";

fn version_from_row<B: Backend>(r: &B::Row) -> Result<PriceVersion, StoreError> {
    Ok(PriceVersion {
        version: r.try_get("version")?,
        created_at_ms: r.try_get("created_at_ms")?,
        source: r.try_get("source")?,
        note: r.try_get("note")?,
        entries: r.try_get("entries")?,
    })
}

fn entry_from_row<B: Backend>(r: &B::Row) -> Result<CatalogEntry, StoreError> {
    let sheet: String = r.try_get("sheet")?;
    let sheet: PriceSheet = serde_json::from_str(&sheet)
        .map_err(|e| StoreError::Corrupt(format!("prices.sheet: {e}")))?;
    let count = |c: &'static str| -> Result<Option<u64>, StoreError> {
        let v: Option<i64> = r.try_get(c)?;
        Ok(v.and_then(|v| u64::try_from(v).ok()))
    };
    Ok(CatalogEntry {
        provider: r.try_get("provider")?,
        model: r.try_get("model")?,
        sheet,
        max_input_tokens: count("max_input_tokens")?,
        max_output_tokens: count("max_output_tokens")?,
    })
}

fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO prices (version, provider, model, sheet, max_input_tokens, max_output_tokens) VALUES ",
    );
    for i in 0..rows {
        let b = i * 6;
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6
        ));
    }
    sql
}

fn count(v: Option<u64>) -> Option<i64> {
    v.and_then(|v| i64::try_from(v).ok())
}

/// Dispatched to the backend the store holds, whose pool runs the shared statements below.
impl Store {
    /// Stores `entries` as the next catalog version, in one transaction.
    pub async fn create_price_version(
        &self,
        source: &str,
        note: &str,
        entries: &[CatalogEntry],
    ) -> Result<PriceVersion, StoreError> {
        match self {
            Self::Sqlite(s) => create_price_version(s.pool(), source, note, entries).await,
            Self::Postgres(s) => create_price_version(s.pool(), source, note, entries).await,
        }
    }

    /// Every version, newest first.
    pub async fn price_versions(&self) -> Result<Vec<PriceVersion>, StoreError> {
        match self {
            Self::Sqlite(s) => price_versions(s.pool()).await,
            Self::Postgres(s) => price_versions(s.pool()).await,
        }
    }

    /// The newest version, if any.
    pub async fn latest_price_version(&self) -> Result<Option<PriceVersion>, StoreError> {
        match self {
            Self::Sqlite(s) => latest_price_version(s.pool()).await,
            Self::Postgres(s) => latest_price_version(s.pool()).await,
        }
    }

    /// Every entry of a version, by provider and model.
    pub async fn prices(&self, version: i64) -> Result<Vec<CatalogEntry>, StoreError> {
        match self {
            Self::Sqlite(s) => prices(s.pool(), version).await,
            Self::Postgres(s) => prices(s.pool(), version).await,
        }
    }

    /// One entry of a version.
    pub async fn price(
        &self,
        version: i64,
        provider: &str,
        model: &str,
    ) -> Result<Option<CatalogEntry>, StoreError> {
        match self {
            Self::Sqlite(s) => price(s.pool(), version, provider, model).await,
            Self::Postgres(s) => price(s.pool(), version, provider, model).await,
        }
    }
}

async fn create_price_version<B: Backend>(
    pool: &Pool<B>,
    source: &str,
    note: &str,
    entries: &[CatalogEntry],
) -> Result<PriceVersion, StoreError> {
    let entries_len = i64::try_from(entries.len()).unwrap_or(i64::MAX);
    let sheets: Vec<String> = entries
        .iter()
        .map(|e| serde_json::to_string(&e.sheet).unwrap_or_default())
        .collect();
    let mut tx = pool.begin().await?;
    let latest: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM price_versions")
        .fetch_one(&mut *tx)
        .await?;
    let v = PriceVersion {
        version: latest.unwrap_or(0) + 1,
        created_at_ms: now_ms(),
        source: source.to_owned(),
        note: note.to_owned(),
        entries: entries_len,
    };
    sqlx::query(&format!(
        "INSERT INTO price_versions ({VERSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
    ))
    .bind(v.version)
    .bind(v.created_at_ms)
    .bind(&v.source)
    .bind(&v.note)
    .bind(v.entries)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::from_write)?;
    for (chunk, sheets) in entries.chunks(CHUNK).zip(sheets.chunks(CHUNK)) {
        let sql = insert_sql(chunk.len());
        let mut q = sqlx::query(&sql);
        for (e, sheet) in chunk.iter().zip(sheets) {
            q = q
                .bind(v.version)
                .bind(&e.provider)
                .bind(&e.model)
                .bind(sheet)
                .bind(count(e.max_input_tokens))
                .bind(count(e.max_output_tokens));
        }
        q.execute(&mut *tx).await.map_err(StoreError::from_write)?;
    }
    tx.commit().await?;
    Ok(v)
}

async fn price_versions<B: Backend>(pool: &Pool<B>) -> Result<Vec<PriceVersion>, StoreError> {
    let sql = format!("SELECT {VERSION_COLUMNS} FROM price_versions ORDER BY version DESC");
    let rows = sqlx::query(&sql).fetch_all(pool).await?;
    rows.iter().map(version_from_row::<B>).collect()
}

async fn latest_price_version<B: Backend>(
    pool: &Pool<B>,
) -> Result<Option<PriceVersion>, StoreError> {
    let sql = format!("SELECT {VERSION_COLUMNS} FROM price_versions ORDER BY version DESC LIMIT 1");
    let row = sqlx::query(&sql).fetch_optional(pool).await?;
    row.as_ref().map(version_from_row::<B>).transpose()
}

async fn prices<B: Backend>(pool: &Pool<B>, version: i64) -> Result<Vec<CatalogEntry>, StoreError> {
    const SQL: &str = "SELECT provider, model, sheet, max_input_tokens, max_output_tokens \
         FROM prices WHERE version = $1 ORDER BY provider, model";
    let rows = sqlx::query(SQL).bind(version).fetch_all(pool).await?;
    rows.iter().map(entry_from_row::<B>).collect()
}

async fn price<B: Backend>(
    pool: &Pool<B>,
    version: i64,
    provider: &str,
    model: &str,
) -> Result<Option<CatalogEntry>, StoreError> {
    const SQL: &str = "SELECT provider, model, sheet, max_input_tokens, max_output_tokens \
         FROM prices WHERE version = $1 AND provider = $2 AND model = $3";
    let row = sqlx::query(SQL)
        .bind(version)
        .bind(provider)
        .bind(model)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(entry_from_row::<B>).transpose()
}
