//! The admin document and the admin routes agree, both ways.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use actix_web::http::{Method, StatusCode};
use actix_web::test::{call_service, init_service, TestRequest};
use actix_web::{web, App, HttpResponse};
use serde_json::Value;

use super::{configure, document, ROUTES};

/// Every (method, path) the served document lists, once per operation.
fn documented() -> Vec<(String, String)> {
    let doc: Value = serde_json::from_str(document()).unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in [
            "get", "put", "post", "delete", "options", "head", "patch", "trace",
        ] {
            if item.get(method).is_some() {
                ops.push((method.to_owned(), path.clone()));
            }
        }
    }
    ops
}

#[test]
fn every_route_is_documented_and_every_documented_operation_is_a_route() {
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(routes.len(), ROUTES.len(), "a route is registered twice");
    let documented = documented();
    let doc: BTreeSet<(String, String)> = documented.iter().cloned().collect();
    let undocumented: Vec<_> = routes.difference(&doc).collect();
    let unrouted: Vec<_> = doc.difference(&routes).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routes not in the document (or under another method or path): {undocumented:?}; \
         documented operations that are no route: {unrouted:?}"
    );
    assert_eq!(documented.len(), ROUTES.len());
}

/// What the application answers where no route matches.
const NO_ROUTE: StatusCode = StatusCode::IM_A_TEAPOT;

#[actix_web::test]
async fn every_documented_operation_reaches_a_handler() {
    // No application state: a matched route answers 500 from its first extractor.
    let app = init_service(
        App::new()
            .service(web::scope("/admin/api").configure(configure))
            .default_service(web::to(|| async { HttpResponse::new(NO_ROUTE) })),
    )
    .await;
    let ops = documented();
    assert!(ops.len() >= 24, "{} operations", ops.len());
    for (method, path) in ops {
        let uri = format!("/admin/api{}", path.replace(['{', '}'], ""));
        let req = TestRequest::default()
            .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
            .uri(&uri)
            .to_request();
        let status = call_service(&app, req).await.status();
        assert!(
            ![
                NO_ROUTE,
                StatusCode::NOT_FOUND,
                StatusCode::METHOD_NOT_ALLOWED
            ]
            .contains(&status),
            "{method} {uri}: {status}"
        );
    }
    let req = TestRequest::get().uri("/admin/api/nowhere").to_request();
    assert_eq!(call_service(&app, req).await.status(), NO_ROUTE);
}

#[test]
fn the_document_is_openapi_3_1_with_the_schemas_clients_read() {
    let doc: Value = serde_json::from_str(document()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], "/admin/api");
    let schemas = &doc["components"]["schemas"];
    for name in [
        "Limits",
        "Policy",
        "NewTenant",
        "Tenant",
        "NewKey",
        "Key",
        "CreatedKey",
        "TenantPatch",
        "KeyPatch",
        "NewGrant",
        "Grant",
        "Balance",
        "DeploymentState",
    ] {
        assert!(schemas[name].is_object(), "{name}");
    }
    // Money is a decimal string, never a number.
    let daily = &schemas["Limits"]["properties"]["daily_spend_usd"];
    assert!(daily.to_string().contains("\"string\""), "{daily}");
    assert!(!daily.to_string().contains("integer"), "{daily}");
    assert_eq!(
        doc["components"]["securitySchemes"]["operatorJwt"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["responses"]["Error"].is_object());
}
