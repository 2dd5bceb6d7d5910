//! Small helpers: the clock, URL redaction, and chunking of multi-row statements.

/// Splits `records` into chunks whose sizes come from a small fixed set (powers of 4 up to
/// `max`), so a multi-row INSERT has only a handful of distinct shapes and each stays a cached
/// prepared statement instead of being parsed again for every batch size.
pub(crate) fn fixed_chunks<T>(mut records: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if records.is_empty() {
            return None;
        }
        let mut size = 1;
        while size * 4 <= records.len().min(max) {
            size *= 4;
        }
        let (chunk, rest) = records.split_at(size);
        records = rest;
        Some(chunk)
    })
}

/// Milliseconds since the Unix epoch: the time stamps every record and audit entry carries.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A database URL with any password replaced, for error messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{fixed_chunks, redact};

    #[test]
    fn chunks_cover_everything_in_few_shapes() {
        let v: Vec<u32> = (0..2345).collect();
        let sizes: Vec<usize> = fixed_chunks(&v, 1000).map(<[u32]>::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 2345);
        assert!(
            sizes.iter().all(|s| [1, 4, 16, 64, 256].contains(s)),
            "{sizes:?}"
        );
        assert_eq!(fixed_chunks(&v[..0], 1000).count(), 0);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite:x.db"), "sqlite:x.db");
    }
}
