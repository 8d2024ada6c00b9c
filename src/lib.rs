//! tokentrace: agent session files → trace model → priced store → reports (and, later, OTLP / Langfuse).
//!
//! Data flows one way (DESIGN §2): [`sources`] parse files into [`model`] records, [`pricing`] and
//! [`privacy`] enrich them in [`ingest`], [`store`] keeps them, [`report`] aggregates them, [`status`] shows
//! what runs now, [`cli`] drives it.

pub mod cli;
pub mod config;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod pricing;
pub mod privacy;
pub mod report;
pub mod sinks;
pub mod sources;
pub mod status;
pub mod store;
pub mod ui;
pub mod watch;
