//! The HTTP plumbing both servers share: RFC 9457 problem responses
//! ([`problem`]), the request-id and request-metrics middleware
//! ([`observe`]), liveness, readiness and metrics answers ([`health`]), the
//! OpenAPI pieces (bearer scheme, Swagger UI, the committed-document
//! check: [`openapi`]) and the protective layers every server wears
//! ([`layers`]: request timeout, request-body timeout, panics caught).
//! Each server keeps its own routes, state and error enum.

pub mod health;
pub mod layers;
pub mod observe;
pub mod openapi;
pub mod problem;
