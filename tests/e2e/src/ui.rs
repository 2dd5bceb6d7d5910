//! A browser's HTTP side, for the web UI's tests: its own cookie jar (the session cookies are
//! `Secure`, which reqwest's jar would not send over plain HTTP as a browser does to
//! localhost), no redirects followed, and the forms' CSRF tokens read off the pages.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};

/// What a page answered.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Page {
    /// The first form's `_csrf` value on the page.
    pub fn csrf(&self) -> String {
        csrf_of(&self.body).unwrap_or_else(|| panic!("no _csrf on the page:\n{}", self.body))
    }
}

/// The first `name="_csrf" value="…"` of an HTML body.
/// The first figure a page marks `data-metric="name"` (the overview's and portal's windows
/// start with today).
pub fn metric(body: &str, name: &str) -> String {
    let tag = format!(r#"data-metric="{name}">"#);
    let at = body
        .find(&tag)
        .unwrap_or_else(|| panic!("no {name}:\n{body}"))
        + tag.len();
    unescape(&body[at..body[at..].find('<').unwrap() + at])
}

pub fn csrf_of(body: &str) -> Option<String> {
    let at = body.find(r#"name="_csrf" value=""#)?;
    let rest = &body[at + r#"name="_csrf" value=""#.len()..];
    rest.find('"').map(|end| rest[..end].to_owned())
}

/// Undoes the escaping of text in a page (`&#x2f;` and the like).
pub fn unescape(text: &str) -> String {
    text.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// One browser: a cookie jar against one gateway.
#[derive(Clone)]
pub struct Browser {
    base: String,
    client: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, method: Method, path: &str, form: Option<&[(&str, &str)]>) -> Page {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("cookie", self.cookie_header());
        if let Some(f) = form {
            req = req.form(f);
        }
        let res = req.send().await.unwrap();
        for set in res.headers().get_all("set-cookie") {
            let c = actix_web::cookie::Cookie::parse(set.to_str().unwrap().to_owned()).unwrap();
            if c.value().is_empty() {
                self.cookies.remove(c.name());
            } else {
                self.cookies
                    .insert(c.name().to_owned(), c.value().to_owned());
            }
        }
        let status = res.status();
        let headers = res.headers().clone();
        let location = headers
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = res.text().await.unwrap();
        Page {
            status,
            location,
            body,
            headers,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(Method::POST, path, Some(form)).await
    }

    /// Posts a form with the CSRF token of the page at `from`.
    pub async fn submit(&mut self, from: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.get(from).await.csrf();
        let mut form: Vec<(&str, &str)> = vec![("_csrf", &csrf)];
        form.extend_from_slice(fields);
        self.post(action, &form).await
    }

    /// Signs an operator in; panics unless it works.
    pub async fn operator_sign_in(&mut self, name: &str, password: &str) {
        let page = self
            .submit(
                "/admin/login",
                "/admin/login",
                &[("name", name), ("password", password)],
            )
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        assert_eq!(page.location.as_deref(), Some("/admin"));
    }

    /// Follows a portal sign-in link (its path); panics unless it signs in.
    pub async fn follow_link(&mut self, link_path: &str) {
        let page = self.submit(link_path, link_path, &[]).await;
        assert_eq!(page.status, 303, "{}", page.body);
        assert_eq!(page.location.as_deref(), Some("/portal"));
    }
}

/// Creates an operator with the CLI against `database_url`.
pub fn create_operator(database_url: &str, name: &str, role: &str, password: &str) {
    let (code, out, err) = crate::run_cli(
        &["operator", "create", name, "--role", role],
        &[
            ("TOLLGATE_DATABASE_URL", database_url),
            ("TOLLGATE_OPERATOR_PASSWORD", password),
        ],
    );
    assert_eq!(code, 0, "operator create: {out}\n{err}");
}

/// The path of the portal link on an invitation page.
pub fn invitation_link(page: &Page) -> String {
    let body = unescape(&page.body);
    let at = body
        .find("/portal/link/")
        .unwrap_or_else(|| panic!("no link on the page:\n{body}"));
    body[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '/' || *c == '_')
        .collect()
}

/// A small chat completion with `key` through `gw`; its status.
pub async fn chat_status(gw: &crate::Gateway, key: &str) -> u16 {
    gw.anonymous(Method::POST, "/v1/chat/completions")
        .bearer_auth(key)
        .json(&serde_json::json!({"model": "gpt-test", "max_tokens": 100,
            "messages": [{"role": "user", "content": "one two three"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A tenant's ledger figures from the admin API, in dollars: (spent, credit).
pub async fn ledger(
    gw: &crate::Gateway,
    tenant: &str,
) -> (rust_decimal::Decimal, rust_decimal::Decimal) {
    let b = gw
        .admin(Method::GET, &format!("/tenants/{tenant}/balance"), None)
        .await;
    let usd = |f: &str| b[f].as_str().unwrap().parse().unwrap();
    (usd("spent_usd"), usd("credit_usd"))
}
