//! The SQLite metering writer: usage records and their ledger postings written by one rusqlite
//! connection, synchronously, on a blocking thread — a whole batch in one hop.
//!
//! Why not sqlx here: sqlx-sqlite runs each connection on a worker thread and sends every
//! statement, and every returned row, across a channel. A metering batch is about seven
//! statements and returns a row per record and per posting; profiled at saturation, that
//! handing back and forth (context switches) was most of the gateway's metering CPU. Here a batch
//! costs one hand-over to the blocking pool and one back, and each row is a cached prepared
//! statement executed in-process. The SQL, the idempotency rules and the posting logic are the
//! ones the Postgres path uses ([`crate::metering`]); the same tests run on both.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::error::StoreError;
use crate::metering as m;
use crate::record::RequestRecord;

/// How often the checkpointer copies the write-ahead log back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// The writer's busy timeout otherwise.
const WRITER_BUSY: Duration = Duration::from_secs(10);

/// The writer's connection, opened on first use and reopened after an error.
///
/// The writer's commits never checkpoint (`wal_autocheckpoint = 0`): a checkpoint copies the
/// log's pages into the database file and syncs it, several milliseconds that every request
/// waiting on that commit would pay. A checkpointer thread with its own connection does it
/// instead, every [`CHECKPOINT_EVERY`], in `PASSIVE` mode (it never blocks the writer); it ends
/// when the writer is dropped.
///
/// Passive checkpoints alone do not bound the log: under sustained load a writer or a reader
/// is always on it, so it is never reset and grows (0.6–1.3 GiB after ten minutes at
/// saturation). So once the log is past `wal_limit`, it is reset. Under load the writer does
/// that itself, right after a batch, with a `RESTART` checkpoint: a checkpointer asking for it
/// would starve, since the writer takes the write lock again as soon as it commits. It does not
/// wait: if a reader or the checkpointer is in the way, the next batch tries again (waiting up
/// to 100 ms instead put 20–25 ms on the p99 of requests at 2000 req/s). The checkpointer keeps
/// copying the log back meanwhile, so the reset has little left to copy. After a reset, commits
/// write the log from its start again, and every connection's `journal_size_limit` cuts the
/// file to `wal_limit` bytes: its blocks are reused, not allocated anew. When the writer is idle
/// the checkpointer truncates the log to zero bytes (`TRUNCATE`), and so does
/// [`Writer::close`] at shutdown.
pub(crate) struct Writer {
    path: PathBuf,
    /// The write-ahead log beside it (`<path>-wal`).
    wal_path: PathBuf,
    synchronous: &'static str,
    conn: Mutex<Option<Connection>>,
    /// Whether the checkpointer thread runs (if it could not start, commits checkpoint).
    checkpointer: std::sync::OnceLock<bool>,
    /// The log's bound, in bytes.
    wal_limit: u64,
    /// The log's size at the last look (the writer's after a batch, or the checkpointer's).
    wal_bytes: AtomicU64,
    /// Resets (`RESTART` or `TRUNCATE` checkpoints) because the log passed its bound.
    truncations: AtomicU64,
    /// Batches written since the checkpointer's last look (it truncates only when idle).
    batches: AtomicU64,
}

impl Writer {
    pub(crate) fn new(path: PathBuf, synchronous: &'static str, wal_limit: u64) -> Arc<Self> {
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push("-wal");
        Arc::new(Self {
            path,
            wal_path: PathBuf::from(wal_path),
            synchronous,
            conn: Mutex::new(None),
            checkpointer: std::sync::OnceLock::new(),
            wal_limit,
            wal_bytes: AtomicU64::new(0),
            truncations: AtomicU64::new(0),
            batches: AtomicU64::new(0),
        })
    }

    /// The log's size at the last look, and the resets for passing the bound so far.
    pub(crate) fn wal(&self) -> (u64, u64) {
        (
            self.wal_bytes.load(Ordering::Relaxed),
            self.truncations.load(Ordering::Relaxed),
        )
    }

    /// Looks at the log's size (and remembers it for [`Writer::wal`]).
    fn measure_wal(&self) -> u64 {
        let size = std::fs::metadata(&self.wal_path).map_or(0, |m| m.len());
        self.wal_bytes.store(size, Ordering::Relaxed);
        size
    }

    /// A `RESTART` or `TRUNCATE` checkpoint (`mode`) on `conn`, within its busy timeout: `true`
    /// if it completed, `false` if a reader or a checkpoint in progress was in the way (the next
    /// attempt tries again).
    fn reset_on(&self, conn: &Connection, mode: Reset) -> rusqlite::Result<bool> {
        let sql = match mode {
            Reset::Restart => "PRAGMA wal_checkpoint(RESTART)",
            Reset::Truncate => "PRAGMA wal_checkpoint(TRUNCATE)",
        };
        let done = match conn.query_row(sql, [], |r| r.get::<_, i64>(0)) {
            Ok(busy) => busy == 0,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy =>
            {
                false
            }
            Err(e) => return Err(e),
        };
        self.measure_wal();
        Ok(done)
    }

    /// Checkpoints the whole log and truncates it, then closes the writer's connection (the
    /// next batch, if any, opens a new one). Blocking.
    pub(crate) fn close(&self) -> Result<(), StoreError> {
        let mut guard = self
            .conn
            .lock()
            .map_err(|_| StoreError::Writer("the SQLite writer's lock is poisoned".into()))?;
        let conn = match guard.take() {
            Some(conn) => conn,
            None => self.open(true)?,
        };
        self.reset_on(&conn, Reset::Truncate)?;
        Ok(())
    }

    fn start_checkpointer(self: &Arc<Self>) -> bool {
        let writer = Arc::downgrade(self);
        let path = self.path.clone();
        let limit = self.wal_limit;
        let spawned = std::thread::Builder::new()
            .name("tg-sqlite-checkpoint".into())
            .spawn(move || {
                let mut conn: Option<Connection> = None;
                loop {
                    std::thread::sleep(CHECKPOINT_EVERY);
                    let Some(w) = writer.upgrade() else {
                        return;
                    };
                    if conn.is_none() {
                        conn = open_checkpointer(&path, limit);
                    }
                    let Some(c) = &conn else { continue };
                    let size = w.measure_wal();
                    // Past the bound with the writer idle (no batch for a whole pass): truncate
                    // here. Otherwise copy what the log holds back into the database, so that
                    // the writer's reset, when it comes, has little left to copy.
                    let idle = w.batches.swap(0, Ordering::Relaxed) == 0;
                    if size <= limit || !idle {
                        if let Err(e) =
                            c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                        {
                            tracing::warn!(error = %e, "SQLite checkpoint failed");
                            conn = None;
                        }
                    } else {
                        match w.reset_on(c, Reset::Truncate) {
                            Ok(done) => {
                                if done {
                                    w.truncations.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "SQLite truncating checkpoint failed");
                                conn = None;
                            }
                        }
                    }
                    drop(w);
                }
            });
        match spawned {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the SQLite checkpointer; commits checkpoint");
                false
            }
        }
    }

    fn open(&self, checkpointer: bool) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(WRITER_BUSY)?;
        // The pool's connections already put the file in WAL mode; this one follows it.
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        conn.pragma_update(None, "synchronous", self.synchronous)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        if checkpointer {
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        }
        conn.pragma_update(None, "journal_size_limit", self.wal_limit.to_string())?;
        Ok(conn)
    }

    /// Writes `records` and posts the usage of the newly inserted billed ones, in one
    /// transaction; returns how many were new. Blocking: call it from a blocking thread.
    pub(crate) fn record(self: &Arc<Self>, records: &[RequestRecord]) -> Result<u64, StoreError> {
        let checkpointer = *self.checkpointer.get_or_init(|| self.start_checkpointer());
        let mut guard = self
            .conn
            .lock()
            .map_err(|_| StoreError::Writer("the SQLite writer's lock is poisoned".into()))?;
        let conn = match guard.as_mut() {
            Some(conn) => conn,
            None => guard.insert(self.open(checkpointer)?),
        };
        let result = record_in(conn, records);
        if result.is_err() {
            // A fresh connection for the retry: whatever state this one is in is dropped.
            *guard = None;
        } else if checkpointer {
            self.batches.fetch_add(1, Ordering::Relaxed);
            if self.measure_wal() > self.wal_limit {
                // No waiting (the next batch is waiting on this one): if a reader or the
                // checkpointer is in the way, the next batch tries again.
                let truncated = conn
                    .busy_timeout(Duration::ZERO)
                    .and_then(|()| self.reset_on(conn, Reset::Restart));
                match (truncated, conn.busy_timeout(WRITER_BUSY)) {
                    (Ok(true), Ok(())) => {
                        self.truncations.fetch_add(1, Ordering::Relaxed);
                    }
                    (Ok(false), Ok(())) => {}
                    (Err(e), _) | (_, Err(e)) => {
                        tracing::warn!(error = %e, "SQLite truncating checkpoint failed");
                        *guard = None;
                    }
                }
            }
        }
        result
    }
}

/// The checkpointer's own connection (`None`, with a warning, if it cannot be opened: the next
/// pass tries again).
fn open_checkpointer(path: &std::path::Path, wal_limit: u64) -> Option<Connection> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|c| c.busy_timeout(Duration::from_secs(1)).map(|()| c))
    .and_then(|c| {
        c.pragma_update(None, "journal_size_limit", wal_limit.to_string())
            .map(|()| c)
    })
    .map_err(|e| tracing::warn!(error = %e, "SQLite checkpointer cannot open the database"))
    .ok()
}

/// How a checkpoint resets the log: `RESTART` (the next commit writes from its start; the file is
/// then cut to `journal_size_limit`, and its blocks are reused rather than allocated again) or
/// `TRUNCATE` (the file cut to zero bytes).
#[derive(Clone, Copy)]
enum Reset {
    Restart,
    Truncate,
}

/// Writes `records` and posts the usage of the newly inserted billed ones, in one transaction
/// (the general path's statements one row at a time: [`crate::metering::record_requests`]);
/// returns how many were new.
fn record_in(conn: &mut Connection, records: &[RequestRecord]) -> Result<u64, StoreError> {
    // IMMEDIATE: the write lock from the start, so the balances read below cannot change.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut new_ids = insert_rows(&tx, records)?;
    let inserted = u64::try_from(new_ids.len()).unwrap_or(u64::MAX);
    roll_up(&tx, records, &new_ids)?;
    let billed = m::billed(records, &mut new_ids);
    if !billed.is_empty() {
        let credit = credit_balances(&tx, &billed)?;
        let postings = m::usage_rows(&billed, credit);
        post_rows(&tx, &postings)?;
    }
    tx.commit()?;
    Ok(inserted)
}

/// Inserts `records` (a replayed id is skipped); returns the ids inserted.
fn insert_rows(
    conn: &Connection,
    records: &[RequestRecord],
) -> Result<HashSet<String>, StoreError> {
    let mut new_ids: HashSet<String> = HashSet::new();
    let mut insert = conn.prepare_cached(&m::INSERT_REQUEST_ROW)?;
    for r in records {
        let t = r.tokens;
        let b = r.billing;
        let inserted = insert
            .execute(params![
                r.id,
                r.created_at_ms,
                r.endpoint,
                r.public_model,
                r.provider,
                r.deployment,
                r.stream,
                r.outcome.as_str(),
                i32::from(r.status),
                i32::try_from(r.attempts).unwrap_or(i32::MAX),
                t.map(|t| t.prompt),
                t.map(|t| t.completion),
                t.map(|t| t.total),
                t.map(|t| t.cached),
                t.map(|t| t.cache_write),
                t.map(|t| t.reasoning),
                r.latency_ms,
                r.ttft_ms,
                r.error_code,
                r.tenant_id,
                r.key_id,
                r.usage_estimated,
                b.and_then(|b| b.price_version),
                b.map(|b| b.cost.0),
                b.map(|b| b.price.0),
                b.map(|b| b.absorbed.0),
            ])
            .map_err(StoreError::from_sqlite_sum)?;
        if inserted == 1 {
            new_ids.insert(r.id.clone());
        }
    }
    Ok(new_ids)
}

/// Adds the new records to their usage rollups, one upsert per group and level.
fn roll_up(
    conn: &Connection,
    records: &[RequestRecord],
    new_ids: &HashSet<String>,
) -> Result<(), StoreError> {
    let levels = crate::rollup::usage(records, new_ids)?;
    for (level, sums) in crate::rollup::LEVELS.iter().zip(levels) {
        let mut upsert = conn.prepare_cached(&crate::rollup::upsert_sql(level, false))?;
        for ((period, texts), s) in sums {
            let values = std::iter::once(rusqlite::types::Value::Integer(period))
                .chain(texts.into_iter().map(rusqlite::types::Value::Text))
                .chain(s.into_iter().map(rusqlite::types::Value::Integer));
            upsert
                .execute(rusqlite::params_from_iter(values))
                .map_err(StoreError::from_sqlite_sum)?;
        }
    }
    Ok(())
}

/// The credit balances of the tenants billed, by account (absent: no row yet).
fn credit_balances(
    conn: &Connection,
    billed: &[m::Billed<'_>],
) -> Result<HashMap<String, i64>, StoreError> {
    let mut credit = HashMap::new();
    let mut read = conn.prepare_cached(m::SELECT_BALANCE)?;
    for account in m::credit_accounts(billed) {
        let balance: Option<i64> = read
            .query_row(params![account], |row| row.get(0))
            .optional()?;
        if let Some(balance) = balance {
            credit.insert(account, balance);
        }
    }
    Ok(credit)
}

/// Inserts `postings` (a key already posted is skipped) and moves the balances of the ones
/// inserted, as [`crate::metering::post`] does.
fn post_rows(conn: &Connection, postings: &[m::PostingRow]) -> Result<(), StoreError> {
    let mut posted: HashSet<String> = HashSet::with_capacity(postings.len());
    {
        let mut insert = conn.prepare_cached(&m::INSERT_POSTING_ROW)?;
        for p in postings {
            let n = insert.execute(params![
                p.key,
                p.at_ms,
                p.debit,
                p.credit,
                p.amount,
                p.tenant_id,
                p.request_id
            ])?;
            if n == 1 {
                posted.insert(p.key.clone());
            }
        }
    }
    let deltas = m::balance_deltas(postings, &posted)?;
    let mut upsert = conn.prepare_cached(&m::UPSERT_BALANCE_ROW)?;
    for (account, delta) in deltas {
        upsert.execute(params![account, delta])?;
    }
    Ok(())
}
