//! Reports: aggregation of the store's facts and their rendering as a table or JSON.
//!
//! `report session --json` has a fixed shape that later checks and tools depend on:
//! `{"sessions":[{"agent","agent_version","session_id","project","start","end","prompts","generations",
//! "generation_errors","tool_calls","tool_errors","subagents","tokens":{"input","cache_read","cache_write",
//! "output","reasoning"},"cost_usd","cost_source","unpriced_models":[]}],"totals":{…same counters and tokens,
//! "cost_usd"}}`. Other groupings print `{"grouping", "rows":[{"key", …counters}], "totals"}`; daily, weekly and
//! monthly rows add `"agents":[{"agent", …counters}]`, the row split by agent program.

pub mod aggregate;
pub mod blocks;
pub mod layout;
mod render;

pub use aggregate::{aggregate, Aggregate, Grouping, Totals, Window};
pub use render::printable;
pub use render::{render_json, render_table, select_rows, wrap, Selection, TableOptions, LEGEND};
