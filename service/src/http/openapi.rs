//! OpenAPI pieces both servers use: the bearer security scheme, the
//! document as committed under `openapi/`, the check that the committed
//! file is what the code serves, and Swagger UI (assets vendored).

use std::path::Path;

use axum::Router;
use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_swagger_ui::SwaggerUi;

/// Where Swagger UI is served.
pub const DOCS_PATH: &str = "/docs";
/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/openapi.json";
/// Assets Swagger UI loads, all served from the binary.
pub const SWAGGER_ASSETS: [&str; 3] = [
    "/docs/swagger-ui.css",
    "/docs/swagger-ui-bundle.js",
    "/docs/swagger-initializer.js",
];

/// A bearer-token security scheme, added to a document's components.
pub struct BearerScheme {
    /// The scheme's name, as routes' `security(...)` refer to it.
    pub name: &'static str,
    /// What the token is and where it is configured.
    pub description: &'static str,
}

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut OpenApi) {
        let scheme = Http::builder()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(self.description))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(self.name, SecurityScheme::Http(scheme));
    }
}

/// The document as pretty JSON with a final newline, exactly as committed.
pub fn document_json(document: &OpenApi) -> String {
    let mut text = document.to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

/// `None` when `committed` (a file under the repository) holds exactly
/// `generated`; else what to run to bring it up to date.
pub fn drift(committed: &Path, generated: &str, regenerate: &str) -> Option<String> {
    let on_disk = std::fs::read_to_string(committed).unwrap_or_default();
    (on_disk != generated).then(|| {
        format!(
            "{} is out of date with the code; regenerate it with:\n    {regenerate}",
            committed.display()
        )
    })
}

/// Swagger UI at [`DOCS_PATH`] reading `document` from [`DOCUMENT_PATH`].
pub fn docs<S: Clone + Send + Sync + 'static>(document: OpenApi) -> Router<S> {
    Router::new().merge(SwaggerUi::new(DOCS_PATH).url(DOCUMENT_PATH, document))
}
