//! `tokentrace watch`: the long-running collector. File notifications ([`fs`]) trigger the same import
//! `report` and `sync` run (`ingest`), and a delivery thread ([`flush`]) runs `sync`'s engine
//! (`sinks::deliver`) as traces grow: one engine, two drivers. [`lock`] keeps it to one `watch` per store.

pub mod flush;
pub mod fs;
pub mod lock;
pub mod push;
pub mod worker;
