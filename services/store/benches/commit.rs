//! What metering adds to the durable write a request waits for, measured at the store, without
//! HTTP, the mock or a load generator in the way.
//!
//! ```sh
//! cargo bench -p tollgate-store --bench commit                       # SQLite (a temp file)
//! cargo bench -p tollgate-store --bench commit -- --database postgres://postgres@127.0.0.1:5432/postgres
//! ```
//!
//! Every request the gateway answers waits for its record's commit (the request log's group
//! commit); with metering, that transaction also holds the request's ledger postings and balance
//! updates. This times `RequestLog::record_requests` for batches of each size in two kinds, in
//! alternating blocks on the same database so that the disk's and the machine's drift falls on
//! both alike:
//!
//! - **unmetered**: records of a tenant key with no charge (what admission-only requests write);
//! - **metered**: the same records with a charge (a postpaid tenant: a receivable and a provider
//!   cost posting each, plus the balances), what every billed request writes.
//!
//! It prints, per batch size and kind, the batch's write time at p50/p90/p99/p99.9 and the CPU per
//! record of this process (the SQLite writer runs here) and, on Postgres, of every `postgres`
//! process. With `--database postgres://…/db` a fresh database is created on that server.
//!
//! Its last line is the regression guard (docs/benchmarks.md keeps the baseline): what metering
//! costs the write as ratios, metered over unmetered, for the backend — write p50 and p99 at the
//! smallest batch size (a lone request's commit) and CPU per record at the largest (where the
//! CPU figure is readable): `ratio sqlite: p50 ×1.25, p99 ×1.35 (batches of 1); CPU per record
//! ×2.18 (batches of 64)`.

use std::time::{Duration, Instant};

use tollgate_domain::money::Nanos;
use tollgate_store::testing::fresh_postgres_database;
use tollgate_store::{
    AuditEntry, Charge, Outcome, RequestLog, RequestRecord, Store, Tenant, Tenants, TokenCounts,
};

type Error = Box<dyn std::error::Error>;

struct Args {
    database: Option<String>,
    sizes: Vec<usize>,
    /// Batches per kind and size.
    batches: usize,
    /// Batches per block (kinds alternate block by block).
    block: usize,
}

fn parse_args() -> Result<Args, Error> {
    let mut args = Args {
        database: None,
        sizes: vec![1, 2, 4, 16, 64],
        batches: 2000,
        block: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--database" => args.database = Some(value()?),
            "--sizes" => {
                args.sizes = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--batches" => args.batches = value()?.parse()?,
            "--block" => args.block = value()?.parse()?,
            // `cargo bench` passes this to every bench target.
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    if args.block == 0 || args.batches == 0 {
        return Err("--batches and --block must be positive".into());
    }
    Ok(args)
}

fn record(id: String, at_ms: i64, metered: bool) -> RequestRecord {
    RequestRecord {
        id,
        created_at_ms: at_ms,
        endpoint: "chat.completions".into(),
        public_model: "bench".into(),
        tenant_id: Some("ten_bench".into()),
        key_id: Some("key_bench".into()),
        provider: Some("mock".into()),
        deployment: Some("mock".into()),
        stream: false,
        outcome: Outcome::Ok,
        status: 200,
        attempts: 1,
        tokens: Some(TokenCounts {
            prompt: 12,
            completion: 16,
            total: 28,
            ..TokenCounts::default()
        }),
        latency_ms: 1,
        ttft_ms: None,
        error_code: None,
        usage_estimated: false,
        billing: metered.then_some(Charge {
            price_version: Some(1),
            cost: Nanos(9_000),
            price: Nanos(9_900),
            absorbed: Nanos::ZERO,
        }),
    }
}

fn tenant() -> Tenant {
    Tenant {
        name: "bench".into(),
        ..tollgate_store::testing::tenant("ten_bench", 0)
    }
}

/// utime + stime of this process, in seconds.
fn own_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| stat_ticks(&stat))
        .map_or(f64::NAN, |t| t as f64 / 100.0)
}

/// utime + stime, in clock ticks, from a `/proc/PID/stat` line.
fn stat_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some(field(11)? + field(12)?)
}

/// utime + stime of the processes `pick` selects, in seconds.
fn cpu_seconds(pick: impl Fn(&str) -> bool) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return f64::NAN;
    };
    let mut ticks = 0u64;
    for entry in dir.flatten() {
        let pid = entry.file_name();
        let Some(pid) = pid
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if !pick(comm.trim()) {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        ticks += stat_ticks(&stat).unwrap_or(0);
    }
    // USER_HZ is 100 on every Linux this runs on.
    ticks as f64 / 100.0
}

#[derive(Default)]
struct Sample {
    times: Vec<Duration>,
    own_cpu: f64,
    postgres_cpu: f64,
    records: usize,
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e6
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    let (url, postgres) = match &args.database {
        Some(admin) if admin.starts_with("postgres") => {
            (fresh_postgres_database(admin).await?, true)
        }
        Some(url) => (url.clone(), false),
        None => (
            format!("sqlite:{}", dir.path().join("commit.db").display()),
            false,
        ),
    };
    let store = Store::connect(&url, 4).await?;
    store.migrate().await?;
    let audit = AuditEntry {
        at_ms: 0,
        actor: "bench".into(),
        action: "tenant.create".into(),
        target_kind: "tenant".into(),
        target_id: "ten_bench".into(),
        detail: serde_json::json!({}),
    };
    store.create_tenant(&tenant(), &audit).await?;
    let own = own_cpu_seconds;
    let pg = || {
        if postgres {
            cpu_seconds(|comm| comm == "postgres")
        } else {
            0.0
        }
    };

    println!(
        "backend {}; {} batches per kind and size, alternating in blocks of {}",
        store.backend(),
        args.batches,
        args.block
    );
    println!("\n| batch | kind | write p50 | p90 | p99 | p99.9 | CPU µs/record (this process) | Postgres CPU µs/record |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    let mut seq = 0u64;
    let base_ms = tollgate_store::now_ms();
    // (size, p50, p99, CPU per record) of each kind, unmetered then metered.
    let mut figures: Vec<[(usize, f64, f64, f64); 2]> = Vec::new();
    for &size in &args.sizes {
        // Warm-up: statements prepared, pages cached.
        for metered in [false, true] {
            for _ in 0..20 {
                let batch = next_batch(&mut seq, base_ms, size, metered);
                store.record_requests(&batch).await?;
            }
        }
        let mut samples = [Sample::default(), Sample::default()];
        let mut done = 0;
        while done < args.batches {
            let n = args.block.min(args.batches - done);
            for (kind, sample) in samples.iter_mut().enumerate() {
                let metered = kind == 1;
                let batches: Vec<Vec<RequestRecord>> = (0..n)
                    .map(|_| next_batch(&mut seq, base_ms, size, metered))
                    .collect();
                let (cpu0, pg0) = (own(), pg());
                for batch in &batches {
                    let t = Instant::now();
                    let inserted = store.record_requests(batch).await?;
                    sample.times.push(t.elapsed());
                    if inserted != batch.len() as u64 {
                        return Err(
                            format!("{inserted} of {} records inserted", batch.len()).into()
                        );
                    }
                }
                sample.own_cpu += own() - cpu0;
                sample.postgres_cpu += pg() - pg0;
                sample.records += n * size;
            }
            done += n;
        }
        let mut row = [(size, 0.0, 0.0, 0.0); 2];
        for (kind, sample) in samples.iter_mut().enumerate() {
            sample.times.sort();
            let per = |s: f64| s / sample.records as f64 * 1e6;
            // The CPU the write costs wherever it runs: this process, plus Postgres's.
            row[kind] = (
                size,
                quantile(&sample.times, 0.5),
                quantile(&sample.times, 0.99),
                per(sample.own_cpu + sample.postgres_cpu),
            );
            println!(
                "| {size} | {} | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.1} | {} |",
                if kind == 1 { "metered" } else { "unmetered" },
                quantile(&sample.times, 0.5),
                quantile(&sample.times, 0.9),
                quantile(&sample.times, 0.99),
                quantile(&sample.times, 0.999),
                per(sample.own_cpu),
                if postgres {
                    format!("{:.1}", per(sample.postgres_cpu))
                } else {
                    "–".into()
                },
            );
        }
        figures.push(row);
    }
    let smallest = figures.iter().min_by_key(|f| f[0].0);
    let largest = figures.iter().max_by_key(|f| f[0].0);
    if let (Some(s), Some(l)) = (smallest, largest) {
        println!(
            "\nratio {}: p50 ×{:.2}, p99 ×{:.2} (batches of {}); CPU per record ×{:.2} (batches of {})",
            store.backend(),
            s[1].1 / s[0].1,
            s[1].2 / s[0].2,
            s[0].0,
            l[1].3 / l[0].3,
            l[0].0,
        );
    }
    store.close().await;
    Ok(())
}

/// Records with fresh, time-ordered ids (as the gateway's are).
fn next_batch(seq: &mut u64, base_ms: i64, size: usize, metered: bool) -> Vec<RequestRecord> {
    (0..size)
        .map(|_| {
            *seq += 1;
            let at = base_ms + i64::try_from(*seq / 16).unwrap_or(i64::MAX);
            record(format!("{at:012x}{:016x}", *seq), at, metered)
        })
        .collect()
}
