//! What the SQL both backends share asks of a database, gathered in one trait, [`Backend`], so
//! that a statement is written once as a function generic over `B: Backend` and runs on SQLite
//! and Postgres alike (numbered `$N` parameters work in both). The few differences are
//! [`Dialect`]'s, implemented in each backend's module.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

/// The few places where the shared SQL differs between the databases.
pub(crate) trait Dialect: Database {
    /// The row-locking clause of a balance read: Postgres locks the rows it reads for the rest of
    /// the transaction (`" FOR UPDATE"`); SQLite has no such clause and needs none (one writer at
    /// a time).
    const LOCK: &'static str;
    /// Whether a generated multi-row statement numbers its parameters (`$1`, Postgres) or uses
    /// SQLite's positional `?` (binding thousands of `$N` parameters makes SQLite look each name
    /// up: measured at 12% of the gateway's CPU under load).
    const NUMBERED: bool;
    /// The day number of the first day of the UTC calendar month of the day number in the
    /// column `day` ([`crate::rollup::month_of`], in SQL).
    const MONTH_OF_DAY: &'static str;
    /// What keeps metering writers off the rollups while they are rebuilt (Postgres locks the
    /// tables; SQLite's one writer waits for the rebuild's transaction anyway).
    const LOCK_ROLLUPS: &'static str;
    /// What an `INTEGER` column decodes as: `i32` on Postgres; SQLite keeps every integer in 64
    /// bits.
    type Integer: Into<i64> + for<'r> Decode<'r, Self> + Type<Self>;

    /// How many rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

/// Names the type `T`, so that a bound on `T` can stand among a trait's supertraits: Rust implies
/// a trait's supertraits and the bounds of its associated types wherever the trait is a bound,
/// but not its other `where` clauses. `B: Is<T, T = T> + Is<T, T: Bound>` is `T: Bound`, implied.
pub(crate) trait Is<T: ?Sized> {
    type T: ?Sized;
}

impl<D, T: ?Sized> Is<T> for D {
    type T = T;
}

/// A column type the shared SQL both binds and reads.
pub(crate) trait Value<'a, DB: Database>:
    Encode<'a, DB> + Decode<'a, DB> + Type<DB>
{
}

impl<'a, DB: Database, T: Encode<'a, DB> + Decode<'a, DB> + Type<DB>> Value<'a, DB> for T {}

/// A database the shared SQL runs on: every bound its statements need of sqlx, written once here
/// and implied by `B: Backend` (each as a pair of [`Is`] supertraits). A connection and a pool
/// run statements; `i64`, `i32`, `bool` and `String` are bound and read, `Option<i64>`,
/// `Option<String>`, `Option<&str>`, `&str` and `&[u8]` bound, `Vec<u8>` read; columns are found
/// by name or by position. Implemented, by the one blanket impl, for every database that has
/// them all and a [`Dialect`]: SQLite and Postgres.
pub(crate) trait Backend:
    Dialect
    + for<'q> Database<Arguments<'q>: IntoArguments<'q, Self>>
    + for<'c> Is<&'c mut Self::Connection, T = &'c mut Self::Connection>
    + for<'c> Is<&'c mut Self::Connection, T: Executor<'c, Database = Self>>
    + Is<i64, T = i64>
    + for<'a> Is<i64, T: Value<'a, Self>>
    + Is<i32, T = i32>
    + for<'a> Is<i32, T: Value<'a, Self>>
    + Is<bool, T = bool>
    + for<'a> Is<bool, T: Value<'a, Self>>
    + Is<String, T = String>
    + for<'a> Is<String, T: Value<'a, Self>>
    + Is<Option<i64>, T = Option<i64>>
    + for<'a> Is<Option<i64>, T: Encode<'a, Self>>
    + Is<Option<String>, T = Option<String>>
    + for<'a> Is<Option<String>, T: Encode<'a, Self>>
    + for<'a> Is<Option<&'a str>, T = Option<&'a str>>
    + for<'a> Is<Option<&'a str>, T: Encode<'a, Self>>
    + for<'a> Is<&'a str, T = &'a str>
    + for<'a> Is<&'a str, T: Encode<'a, Self> + Type<Self> + ColumnIndex<Self::Row>>
    + for<'a> Is<&'a [u8], T = &'a [u8]>
    + for<'a> Is<&'a [u8], T: Encode<'a, Self> + Type<Self>>
    + Is<Vec<u8>, T = Vec<u8>>
    + for<'a> Is<Vec<u8>, T: Decode<'a, Self> + Type<Self>>
    + Is<usize, T = usize>
    + Is<usize, T: ColumnIndex<Self::Row>>
{
}

impl<DB> Backend for DB
where
    DB: Dialect,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> i64: Value<'a, DB>,
    for<'a> i32: Value<'a, DB>,
    for<'a> bool: Value<'a, DB>,
    for<'a> String: Value<'a, DB>,
    for<'a> Option<i64>: Encode<'a, DB>,
    for<'a> Option<String>: Encode<'a, DB>,
    for<'a> Option<&'a str>: Encode<'a, DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB> + ColumnIndex<DB::Row>,
    for<'a> &'a [u8]: Encode<'a, DB> + Type<DB>,
    for<'a> Vec<u8>: Decode<'a, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
}

/// A backend's store as the shared SQL sees it: the pool of its database. A storage trait
/// implemented once for every backend's store is implemented for `S: Pooled<Db = B>` with
/// `B: Backend` (a bound on the associated type itself would not carry [`Backend`]'s implied
/// bounds into the implementation).
pub(crate) trait Pooled: Sync {
    type Db: Database;
    fn pool(&self) -> &Pool<Self::Db>;
}
