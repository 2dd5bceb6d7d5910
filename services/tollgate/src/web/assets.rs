//! The UI's static files, compiled into the binary and served under names that carry a hash of
//! their content (`app.3f2a…css`), so browsers may keep them for a year and still never run an
//! old script against a new page.

use std::sync::OnceLock;

use actix_web::http::header::{self, ContentType};
use actix_web::{web, HttpResponse};
use sha2::{Digest, Sha256};

struct Asset {
    name: &'static str,
    body: &'static [u8],
    mime: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        body: include_bytes!("../../../../web/static/app.css"),
        mime: "text/css; charset=utf-8",
    },
    Asset {
        name: "app.js",
        body: include_bytes!("../../../../web/static/app.js"),
        mime: "text/javascript; charset=utf-8",
    },
];

/// Each asset's served name: `stem.<12 hex digits of its SHA-256>.ext`.
fn hashed_names() -> &'static Vec<String> {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = hex::encode(Sha256::digest(a.body));
                let (stem, ext) = a.name.rsplit_once('.').unwrap_or((a.name, ""));
                format!("{stem}.{}.{ext}", &digest[..12])
            })
            .collect()
    })
}

/// The URL of an asset by its plain name (`app.css`), for templates.
pub(crate) fn url(name: &str) -> String {
    ASSETS
        .iter()
        .zip(hashed_names())
        .find(|(a, _)| a.name == name)
        .map(|(_, hashed)| format!("/assets/{hashed}"))
        .unwrap_or_default()
}

/// `GET /assets/{name}`: only the current hashed names exist.
pub(crate) async fn serve(name: web::Path<String>) -> HttpResponse {
    let found = ASSETS
        .iter()
        .zip(hashed_names())
        .find(|(_, hashed)| **hashed == *name);
    match found {
        Some((a, _)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, a.mime))
            .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
            .insert_header(("x-content-type-options", "nosniff"))
            .body(a.body),
        None => HttpResponse::NotFound()
            .content_type(ContentType::plaintext())
            .body("not found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_content_hash() {
        let css = url("app.css");
        assert!(
            css.starts_with("/assets/app.") && css.ends_with(".css"),
            "{css}"
        );
        assert_eq!(css.len(), "/assets/app..css".len() + 12);
        assert_eq!(url("nope.css"), "");
    }
}
