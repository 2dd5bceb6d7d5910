//! What a page answers when it cannot be shown: an HTML page with the status, or a redirect to
//! the sign-in page for a browser that is not signed in.

use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// No valid session: a page asked for is a redirect to the area's sign-in page.
    #[error("Sign in to continue.")]
    SignedOut { login: &'static str, get: bool },
    /// The form's CSRF token is missing or wrong.
    #[error(
        "This form has expired or did not come from this site. Go back, reload and try again."
    )]
    Csrf,
    #[error("Your role may not do that.")]
    Forbidden,
    #[error("No such {0}.")]
    NotFound(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("Too many failed sign-ins. Try again in a few minutes.")]
    TooManyAttempts,
    #[error("{}", .0.public_message())]
    Api(#[from] ApiError),
    #[error("Something went wrong on our side.")]
    Internal(String),
}

impl From<super::render::RenderError> for UiError {
    fn from(e: super::render::RenderError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<tollgate_store::StoreError> for UiError {
    fn from(e: tollgate_store::StoreError) -> Self {
        Self::Api(ApiError::Store(e))
    }
}

impl From<crate::tenancy::TenancyError> for UiError {
    fn from(e: crate::tenancy::TenancyError) -> Self {
        Self::Api(e.into())
    }
}

impl ResponseError for UiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SignedOut { get: true, .. } => StatusCode::SEE_OTHER,
            Self::SignedOut { get: false, .. } => StatusCode::UNAUTHORIZED,
            Self::Csrf | Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            Self::Api(e) => e.status_code(),
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::SignedOut { login, get: true } = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, *login))
                .finish();
        }
        let status = self.status_code();
        if status.is_server_error() {
            tracing::warn!(error = ?self, "page failed");
        }
        let body = super::render::error_page(status, &self.to_string());
        HttpResponse::build(status)
            .content_type(ContentType::html())
            .body(body)
    }
}
