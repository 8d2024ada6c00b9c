//! Metrics for the dashboards teams already run: the metric set computed from the store ([`collect`]) and
//! its Prometheus text exposition ([`prometheus`]), served by `watch --metrics-listen` ([`serve`]) and
//! printed by `tokentrace metrics`.

pub mod collect;
pub mod openmetrics;
pub mod prometheus;
pub mod serve;
