//! The `x-ratelimit-*` response headers: what admission found, written the way OpenAI writes them.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::HttpResponseBuilder;

use super::plan::{format_reset, RateHeaders};

/// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, as OpenAI sends them.
pub fn rate_headers(res: &mut HttpResponseBuilder, h: &RateHeaders) {
    const NAMES: [[&str; 3]; 2] = [
        [
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ],
        [
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ],
    ];
    for (names, window) in NAMES.iter().zip([h.requests, h.tokens]) {
        if let Some(w) = window {
            res.insert_header((
                HeaderName::from_static(names[0]),
                HeaderValue::from(w.limit),
            ));
            res.insert_header((
                HeaderName::from_static(names[1]),
                HeaderValue::from(w.remaining),
            ));
            if let Ok(v) = HeaderValue::from_str(&format_reset(w.reset_ms)) {
                res.insert_header((HeaderName::from_static(names[2]), v));
            }
        }
    }
}
