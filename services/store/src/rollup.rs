//! The usage rollups a batch of new records adds to, at three levels ([`LEVELS`]):
//! - `usage_daily`: one row per UTC day, tenant, key, public model and provider (`''` where the
//!   record has none), for anything one tenant or key sees;
//! - `usage_daily_models`: one row per day, model and provider, for the views across all tenants
//!   by day, model or provider (the overview);
//! - `usage_monthly_keys`: one row per UTC calendar month, tenant and key, for the views across
//!   all tenants by tenant or key over whole months.
//!
//! Every write path adds its batch's new records in the batch's own transaction: the Postgres
//! writer's one statement (its `rolled` steps, in SQL), and the SQLite writer and the general path
//! by summing the batch here and upserting each group once. Not a trigger: a SQLite row trigger
//! measured +6 µs of writer CPU per record, and a Postgres statement trigger +100 µs of Postgres
//! CPU per batch.

use std::collections::{BTreeMap, HashSet};

use tollgate_domain::calendar::{civil_from_days, days_from_civil};

use crate::error::StoreError;
use crate::record::RequestRecord;

const DAY_MS: i64 = 86_400_000;

/// The sum columns of every rollup table, after its key columns ([`SUM_COLUMNS`]).
macro_rules! rollup_columns {
    () => {
        "requests, errors, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, \
        reasoning_tokens, cost_nanos, price_nanos)"
    };
}

/// The sums of a group of request log rows, in [`rollup_columns!`] order after `COUNT(*)`.
macro_rules! rollup_sums {
    () => {
        "SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), COALESCE(SUM(prompt_tokens), 0), \
        COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cached_tokens), 0), \
        COALESCE(SUM(cache_write_tokens), 0), COALESCE(SUM(reasoning_tokens), 0), \
        COALESCE(SUM(cost_nanos), 0), COALESCE(SUM(price_nanos), 0) "
    };
}

pub(crate) use {rollup_columns, rollup_sums};

/// One rollup table: its period column (a day number: the day, or a month's first day) and its
/// text key columns, after which come the [`SUM_COLUMNS`].
pub(crate) struct Level {
    pub(crate) table: &'static str,
    period: &'static str,
    columns: &'static [&'static str],
    /// Whether the key ends with the writer's [`shard`] (a row every writer would otherwise add
    /// to).
    sharded: bool,
}

/// The three levels, in the order [`usage`] returns their sums.
pub(crate) const LEVELS: [Level; 3] = [
    Level {
        table: "usage_daily",
        period: "day",
        columns: &["tenant_id", "key_id", "public_model", "provider"],
        sharded: false,
    },
    Level {
        table: "usage_daily_models",
        period: "day",
        columns: &["public_model", "provider"],
        sharded: true,
    },
    Level {
        table: "usage_monthly_keys",
        period: "month",
        columns: &["tenant_id", "key_id"],
        sharded: false,
    },
];

/// A rollup row's key: the period's day number, then the level's text columns.
pub(crate) type RollKey = (i64, Vec<String>);

/// A rollup row's sums: requests, errors, prompt, completion, cached, cache-write and reasoning
/// tokens, cost and price.
pub(crate) type DaySums = [i64; 9];

/// One level's sums for a batch, in key order (so concurrent writers take the rows in one order).
pub(crate) type Sums = BTreeMap<RollKey, DaySums>;

/// This writer process's shard of the rows in `usage_daily_models` (the Postgres writer uses its
/// connection's backend id instead): 16 rows at most per day, model and provider.
pub(crate) fn shard() -> i64 {
    i64::from(std::process::id() % 16)
}

/// The day number of the first day of `day`'s UTC calendar month.
pub(crate) fn month_of(day: i64) -> i64 {
    let (y, m, _) = civil_from_days(day);
    days_from_civil(y, m, 1)
}

fn add_to(out: &mut Sums, key: RollKey, add: &DaySums) -> Result<(), StoreError> {
    let sums = out.entry(key).or_insert([0; 9]);
    for (s, a) in sums.iter_mut().zip(add) {
        *s = s
            .checked_add(*a)
            .ok_or_else(|| StoreError::Invalid("a usage rollup sum overflows".into()))?;
    }
    Ok(())
}

/// The sums of the new records of a batch (`new_ids`; a repeated id counts once), at each of
/// [`LEVELS`]. A sum past 64 bits is refused, as the database would refuse it.
pub(crate) fn usage(
    records: &[RequestRecord],
    new_ids: &HashSet<String>,
) -> Result<[Sums; 3], StoreError> {
    let mut out: [Sums; 3] = Default::default();
    let mut seen: HashSet<&str> = HashSet::with_capacity(new_ids.len());
    for r in records {
        if !new_ids.contains(&r.id) || !seen.insert(r.id.as_str()) {
            continue;
        }
        let day = r.created_at_ms.div_euclid(DAY_MS);
        let key = (
            day,
            vec![
                r.tenant_id.clone().unwrap_or_default(),
                r.key_id.clone().unwrap_or_default(),
                r.public_model.clone(),
                r.provider.clone().unwrap_or_default(),
            ],
        );
        let t = r.tokens.unwrap_or_default();
        let b = r.billing;
        let add = [
            1,
            i64::from(r.status >= 400),
            t.prompt,
            t.completion,
            t.cached,
            t.cache_write,
            t.reasoning,
            b.map_or(0, |b| b.cost.0),
            b.map_or(0, |b| b.price.0),
        ];
        add_to(&mut out[0], key, &add)?;
    }
    let [daily, models, months] = &mut out;
    for ((day, k), sums) in daily.iter() {
        add_to(models, (*day, vec![k[2].clone(), k[3].clone()]), sums)?;
        add_to(
            months,
            (month_of(*day), vec![k[0].clone(), k[1].clone()]),
            sums,
        )?;
    }
    Ok(out)
}

/// Adds one group's sums to its row of `level`: the period, the text columns, then the nine sums,
/// as `$N` (Postgres) or `?` (SQLite) parameters (the shard is written in).
pub(crate) fn upsert_sql(level: &Level, numbered: bool) -> String {
    let n = 1 + level.columns.len() + SUM_COLUMNS.len();
    let mut values: Vec<String> = (1..=n)
        .map(|n| {
            if numbered {
                format!("${n}")
            } else {
                "?".into()
            }
        })
        .collect();
    let mut keys = vec![level.period];
    keys.extend(level.columns);
    if level.sharded {
        keys.push("shard");
        values.insert(keys.len() - 1, shard().to_string());
    }
    let sums: Vec<String> = SUM_COLUMNS
        .iter()
        .map(|c| format!("{c} = {}.{c} + excluded.{c}", level.table))
        .collect();
    format!(
        "INSERT INTO {} ({}, {}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}",
        level.table,
        keys.join(", "),
        SUM_COLUMNS.join(", "),
        values.join(", "),
        keys.join(", "),
        sums.join(", ")
    )
}

/// The rollups' sum columns, in [`DaySums`] order.
pub(crate) const SUM_COLUMNS: [&str; 9] = [
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_nanos",
    "price_nanos",
];

/// Adds the new records to their usage rollups, one upsert per group and level (the general
/// path).
pub(crate) async fn add<B: crate::backend::Backend>(
    tx: &mut sqlx::Transaction<'_, B>,
    records: &[RequestRecord],
    new_ids: &HashSet<String>,
) -> Result<(), StoreError> {
    for (level, sums) in LEVELS.iter().zip(usage(records, new_ids)?) {
        let upsert = upsert_sql(level, B::NUMBERED);
        for ((period, texts), sums) in sums {
            let mut q = sqlx::query(&upsert).bind(period);
            for t in texts {
                q = q.bind(t);
            }
            for v in sums {
                q = q.bind(v);
            }
            q.execute(&mut **tx).await.map_err(StoreError::from_sum)?;
        }
    }
    Ok(())
}

/// Recomputes the three rollups: `usage_daily` from the request log, the others from it, in one
/// transaction (metering writers wait for it). For an upgrade whose older replicas went on
/// writing the log (and older rollups) after the migration that filled a newer rollup had run.
/// Returns each level's row count.
pub(crate) async fn rebuild<B: crate::backend::Backend>(
    pool: &sqlx::Pool<B>,
) -> Result<[i64; 3], StoreError> {
    let sums = SUM_COLUMNS.join(", ");
    let summed: Vec<String> = SUM_COLUMNS.iter().map(|c| format!("SUM({c})")).collect();
    let summed = summed.join(", ");
    let statements = [
        concat!(
            "INSERT INTO usage_daily (day, tenant_id, key_id, public_model, provider, ",
            rollup_columns!(),
            " SELECT created_at_ms / 86400000, COALESCE(tenant_id, ''), COALESCE(key_id, ''), \
             public_model, COALESCE(provider, ''), COUNT(*), ",
            rollup_sums!(),
            "FROM request_log GROUP BY 1, 2, 3, 4, 5"
        )
        .to_owned(),
        format!(
            "INSERT INTO usage_daily_models (day, public_model, provider, shard, {sums}) \
             SELECT day, public_model, provider, 0, {summed} FROM usage_daily \
             GROUP BY day, public_model, provider"
        ),
        format!(
            "INSERT INTO usage_monthly_keys (month, tenant_id, key_id, {sums}) \
             SELECT {}, tenant_id, key_id, {summed} FROM usage_daily GROUP BY 1, 2, 3",
            B::MONTH_OF_DAY
        ),
    ];
    let mut tx = pool.begin().await?;
    if !B::LOCK_ROLLUPS.is_empty() {
        sqlx::query(B::LOCK_ROLLUPS).execute(&mut *tx).await?;
    }
    for level in &LEVELS {
        sqlx::query(&format!("DELETE FROM {}", level.table))
            .execute(&mut *tx)
            .await?;
    }
    for statement in &statements {
        sqlx::query(statement)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_sum)?;
    }
    let mut counts = [0i64; 3];
    for (count, level) in counts.iter_mut().zip(&LEVELS) {
        *count = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", level.table))
            .fetch_one(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, at_ms: i64) -> RequestRecord {
        RequestRecord {
            id: id.into(),
            created_at_ms: at_ms,
            endpoint: "chat".into(),
            public_model: "m".into(),
            tenant_id: Some("t".into()),
            key_id: Some("k".into()),
            provider: Some("p".into()),
            deployment: None,
            stream: false,
            outcome: crate::record::Outcome::Ok,
            status: 200,
            attempts: 1,
            tokens: None,
            latency_ms: 1,
            ttft_ms: None,
            error_code: None,
            usage_estimated: false,
            billing: None,
        }
    }

    #[test]
    fn a_batch_sums_by_day_and_group_counting_each_new_id_once() {
        let mut a = record("r1", 5);
        a.status = 500;
        let b = record("r2", DAY_MS + 5);
        let c = record("r3", 7);
        let old = record("r0", 9);
        let batch = [a.clone(), b, c, a, old];
        let new: HashSet<String> = ["r1", "r2", "r3"].iter().map(|s| s.to_string()).collect();
        let [daily, models, months] = usage(&batch, &new).unwrap_or_default();
        assert_eq!(daily.len(), 2);
        let first = daily.values().next().copied().unwrap_or_default();
        assert_eq!(first[0], 2, "r1 once, r3; r0 was not new");
        assert_eq!(first[1], 1, "one error");
        assert_eq!(daily.keys().map(|k| k.0).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(models.keys().map(|k| k.0).collect::<Vec<_>>(), [0, 1]);
        // 1970-01-01 and -02 are one month.
        assert_eq!(months.len(), 1);
        let month = months.values().next().copied().unwrap_or_default();
        assert_eq!(month[0], 3);
    }

    #[test]
    fn months_start_on_their_first_day() {
        assert_eq!(month_of(0), 0);
        assert_eq!(month_of(31), 31, "1970-02-01");
        assert_eq!(month_of(58), 31, "1970-02-28");
        // 2024-02-29 is in February 2024, which starts on day 19754.
        assert_eq!(month_of(days_from_civil(2024, 2, 29)), 19_754);
        assert_eq!(month_of(-1), days_from_civil(1969, 12, 1));
    }

    #[test]
    fn upserts_name_their_level_and_shard() {
        let sql = upsert_sql(&LEVELS[1], true);
        assert!(sql.starts_with(
            "INSERT INTO usage_daily_models (day, public_model, provider, shard, requests,"
        ));
        assert!(
            sql.contains(&format!("VALUES ($1, $2, $3, {}, $4,", shard())),
            "{sql}"
        );
        assert!(
            sql.ends_with("price_nanos = usage_daily_models.price_nanos + excluded.price_nanos")
        );
        let sql = upsert_sql(&LEVELS[2], false);
        assert!(
            sql.contains("ON CONFLICT (month, tenant_id, key_id) DO UPDATE"),
            "{sql}"
        );
        assert_eq!(sql.matches('?').count(), 12);
    }
}
