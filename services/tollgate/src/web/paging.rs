//! What the list pages share: their query string, and cursor paging (a page asks the store for
//! one row more than it shows; that row's presence means there is a next page).

use actix_web::HttpRequest;
use serde::de::DeserializeOwned;

use super::error::UiError;

/// The query string as `T`; a malformed one is a 400 page.
pub(crate) fn query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, UiError> {
    serde_urlencoded::from_str(req.query_string()).map_err(|e| UiError::BadRequest(e.to_string()))
}

/// Cuts `rows` to `size`; if there were more, the next page's link query: `keep` and `after`
/// (the cursor of the last row shown).
pub(crate) fn next_page<T>(
    rows: &mut Vec<T>,
    size: usize,
    cursor: impl Fn(&T) -> String,
    keep: &[(&str, &str)],
) -> Option<String> {
    if rows.len() <= size {
        return None;
    }
    rows.truncate(size);
    let after = rows.last().map(cursor)?;
    let mut pairs: Vec<(&str, &str)> = keep.to_vec();
    pairs.push(("after", &after));
    serde_urlencoded::to_string(pairs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_next_page_only_when_there_is_one_more_row() {
        let mut rows = vec![1, 2, 3];
        assert_eq!(next_page(&mut rows, 3, |r| r.to_string(), &[]), None);
        let mut rows = vec![1, 2, 3, 4];
        let next = next_page(&mut rows, 3, |r| r.to_string(), &[("q", "a b")]);
        assert_eq!(next.as_deref(), Some("q=a+b&after=3"));
        assert_eq!(rows, [1, 2, 3]);
    }
}
