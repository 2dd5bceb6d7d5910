//! The versioned price catalog. A version is an immutable, complete snapshot of every
//! `(provider, model)` price sheet; a price change creates a new version (nothing is updated or
//! deleted), and each usage record names the version that priced it. The statements are shared
//! by both backends (generic over [`Backend`]); [`crate::Store`] implements [`Prices`] with them.

use std::future::Future;

use sqlx::{Pool, Row};
use tollgate_domain::pricing::catalog::CatalogEntry;
use tollgate_domain::pricing::PriceSheet;

use crate::backend::Backend;
use crate::error::StoreError;
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

/// The price catalog: immutable versions of every `(provider, model)` price sheet.
pub trait Prices {
    /// Stores `entries` as the next catalog version, in one transaction.
    fn create_price_version(
        &self,
        source: &str,
        note: &str,
        entries: &[CatalogEntry],
    ) -> impl Future<Output = Result<PriceVersion, StoreError>> + Send;

    /// Every version, newest first.
    fn price_versions(&self) -> impl Future<Output = Result<Vec<PriceVersion>, StoreError>> + Send;

    /// The newest version, if any.
    fn latest_price_version(
        &self,
    ) -> impl Future<Output = Result<Option<PriceVersion>, StoreError>> + Send;

    /// Every entry of a version, by provider and model.
    fn prices(
        &self,
        version: i64,
    ) -> impl Future<Output = Result<Vec<CatalogEntry>, StoreError>> + Send;

    /// One entry of a version.
    fn price(
        &self,
        version: i64,
        provider: &str,
        model: &str,
    ) -> impl Future<Output = Result<Option<CatalogEntry>, StoreError>> + Send;
}

/// Rows per multi-row INSERT (7 parameters each; well under both backends' limits).
const CHUNK: usize = 400;

const VERSION_COLUMNS: &str = "version, created_at_ms, source, note, entries";

fn version_from_row<'r, R>(r: &'r R) -> Result<PriceVersion, StoreError>
where
    R: Row,
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(PriceVersion {
        version: r.try_get("version")?,
        created_at_ms: r.try_get("created_at_ms")?,
        source: r.try_get("source")?,
        note: r.try_get("note")?,
        entries: r.try_get("entries")?,
    })
}

fn entry_from_row<'r, R>(r: &'r R) -> Result<CatalogEntry, StoreError>
where
    R: Row,
    &'r str: sqlx::ColumnIndex<R>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
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

/// [`Prices::create_price_version`].
pub(crate) async fn create_price_version<B: Backend>(
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

/// [`Prices::price_versions`].
pub(crate) async fn price_versions<B: Backend>(
    pool: &Pool<B>,
) -> Result<Vec<PriceVersion>, StoreError> {
    let sql = format!("SELECT {VERSION_COLUMNS} FROM price_versions ORDER BY version DESC");
    let rows = sqlx::query(&sql).fetch_all(pool).await?;
    rows.iter().map(version_from_row).collect()
}

/// [`Prices::latest_price_version`].
pub(crate) async fn latest_price_version<B: Backend>(
    pool: &Pool<B>,
) -> Result<Option<PriceVersion>, StoreError> {
    let sql = format!("SELECT {VERSION_COLUMNS} FROM price_versions ORDER BY version DESC LIMIT 1");
    let row = sqlx::query(&sql).fetch_optional(pool).await?;
    row.as_ref().map(version_from_row).transpose()
}

/// [`Prices::prices`].
pub(crate) async fn prices<B: Backend>(
    pool: &Pool<B>,
    version: i64,
) -> Result<Vec<CatalogEntry>, StoreError> {
    const SQL: &str = "SELECT provider, model, sheet, max_input_tokens, max_output_tokens \
         FROM prices WHERE version = $1 ORDER BY provider, model";
    let rows = sqlx::query(SQL).bind(version).fetch_all(pool).await?;
    rows.iter().map(entry_from_row).collect()
}

/// [`Prices::price`].
pub(crate) async fn price<B: Backend>(
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
    row.as_ref().map(entry_from_row).transpose()
}
