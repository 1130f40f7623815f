//! Prometheus plumbing shared by the services: each keeps its own metric
//! names and registry; this is registering and rendering them.

use prometheus::core::Collector;
use prometheus::{Encoder, Registry, TextEncoder};

/// Registers every collector in `registry`.
pub fn register_all(
    registry: &Registry,
    collectors: Vec<Box<dyn Collector>>,
) -> Result<(), prometheus::Error> {
    collectors
        .into_iter()
        .try_for_each(|collector| registry.register(collector))
}

/// The Prometheus text exposition of everything in `registry`.
pub fn render(registry: &Registry) -> String {
    let mut out = Vec::new();
    // Encoding into a Vec only fails on a malformed metric family, which
    // registration already ruled out.
    let _ = TextEncoder::new().encode(&registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}
