//! Coalescing the records of one chunk before they reach the store.
//!
//! Parsers stream: Claude Code writes one `assistant` line per content block of a model call (thinking, text,
//! each tool use) with the same message id and usage, so the same generation is emitted once per line; tool
//! calls are emitted at their call and again at their result; turn spans and traces grow with every line.
//! In the 1 GB Claude benchmark 40 % of the records repeat an id already in their chunk, and each was an
//! upsert of a wide, indexed row on the single writer thread. [`coalesce`] folds them on the parse
//! threads instead.
//!
//! The rules are the store's upsert rules (`store/write.rs`, `upsert_*`), applied in order: folding records
//! `a` then `b` and upserting the result leaves the store exactly as upserting `a` and then `b` would
//! (`tests/coalesce.rs` imports every corpus run both ways and compares the stores). A field the later record
//! leaves unset keeps the earlier value; start times keep the first value, end times the maximum; columns
//! written only on insert (kind, session key, root span id) keep the first record's.

use std::collections::HashMap;

use super::{Observation, Record, Session, Trace};

/// Folds records that share an id (observation id, trace id, session key) into the first of them, keeping
/// the order of first appearance. Records of other kinds (drift tallies) are left as they are. Two
/// observations of one id that name different traces are left apart: the store marks both traces changed.
pub fn coalesce(records: &mut Vec<Record>) {
    if records.len() < 2 {
        return;
    }
    let mut first: HashMap<(u8, String), usize> = HashMap::with_capacity(records.len());
    let mut keep = vec![true; records.len()];
    for i in 0..records.len() {
        let key = match &records[i] {
            Record::Observation(o) => (0, o.id.clone()),
            Record::Trace(t) => (1, t.id.clone()),
            Record::Session(s) => (2, s.key.clone()),
            Record::Drift(_) => continue,
        };
        let Some(&j) = first.get(&key) else {
            first.insert(key, i);
            continue;
        };
        let (head, tail) = records.split_at_mut(i);
        let merged = match (&mut head[j], &mut tail[0]) {
            (Record::Observation(a), Record::Observation(b)) => observation(a, b),
            (Record::Trace(a), Record::Trace(b)) => {
                trace(a, b);
                true
            }
            (Record::Session(a), Record::Session(b)) => {
                session(a, b);
                true
            }
            _ => false,
        };
        if merged {
            keep[i] = false;
        } else {
            // The later record stays on its own; later duplicates fold into it.
            first.insert(key, i);
        }
    }
    let mut flags = keep.into_iter();
    records.retain(|_| flags.next().unwrap_or(true));
}

/// `later.or(earlier)`: the store's `COALESCE(excluded.x, row.x)`.
fn newer<T>(earlier: &mut Option<T>, later: &mut Option<T>) {
    if later.is_some() {
        *earlier = later.take();
    }
}

/// The store's end-time rule: the maximum of the values that are set.
fn max_end(earlier: &mut Option<i64>, later: Option<i64>) {
    *earlier = match (*earlier, later) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
}

/// Folds `b` into `a` (see `upsert_observation`); false when they name different traces.
fn observation(a: &mut Observation, b: &mut Observation) -> bool {
    if a.trace_id.is_some() && b.trace_id.is_some() && a.trace_id != b.trace_id {
        return false;
    }
    // The flag follows the later record when it carries usage or an agent cost (the values it judged).
    let flag = if b.usage.is_some() || b.agent_cost.is_some() {
        b.flag.take()
    } else {
        b.flag.take().or(a.flag.take())
    };
    a.flag = flag;
    newer(&mut a.trace_id, &mut b.trace_id);
    if a.parent_id.is_none() {
        a.parent_id = b.parent_id.take();
    }
    if !b.name.is_empty() {
        a.name = std::mem::take(&mut b.name);
    }
    if !b.key.is_empty() {
        a.key = std::mem::take(&mut b.key);
    }
    if a.start_ms.is_none() {
        a.start_ms = b.start_ms;
    }
    max_end(&mut a.end_ms, b.end_ms);
    newer(&mut a.completion_start_ms, &mut b.completion_start_ms);
    newer(&mut a.level, &mut b.level);
    newer(&mut a.status_message, &mut b.status_message);
    newer(&mut a.model, &mut b.model);
    newer(&mut a.response_model, &mut b.response_model);
    newer(&mut a.provider, &mut b.provider);
    newer(&mut a.usage, &mut b.usage);
    newer(&mut a.agent_cost, &mut b.agent_cost);
    newer(&mut a.cost, &mut b.cost);
    newer(&mut a.input, &mut b.input);
    newer(&mut a.output, &mut b.output);
    newer(&mut a.metadata, &mut b.metadata);
    newer(&mut a.tool_call_id, &mut b.tool_call_id);
    newer(&mut a.finish_reason, &mut b.finish_reason);
    newer(&mut a.response_id, &mut b.response_id);
    true
}

/// Folds `b` into `a` (see `upsert_trace`).
fn trace(a: &mut Trace, b: &mut Trace) {
    a.is_prompt |= b.is_prompt;
    newer(&mut a.name, &mut b.name);
    if a.start_ms.is_none() {
        a.start_ms = b.start_ms;
    }
    max_end(&mut a.end_ms, b.end_ms);
    newer(&mut a.input, &mut b.input);
    newer(&mut a.output, &mut b.output);
}

/// Folds `b` into `a` (see `upsert_session`). The session stays with this chunk's file unless both records
/// come from a file that does not own it.
fn session(a: &mut Session, b: &mut Session) {
    newer(&mut a.agent_version, &mut b.agent_version);
    newer(&mut a.cwd, &mut b.cwd);
    a.start_ms = match (a.start_ms, b.start_ms) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    };
    max_end(&mut a.end_ms, b.end_ms);
    newer(&mut a.parent_session, &mut b.parent_session);
    newer(&mut a.name, &mut b.name);
    newer(&mut a.channel, &mut b.channel);
    newer(&mut a.user, &mut b.user);
    newer(&mut a.metadata, &mut b.metadata);
    newer(&mut a.agent_cost, &mut b.agent_cost);
    a.secondary_file &= b.secondary_file;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Kind, Usage};

    fn obs(id: &str) -> Observation {
        Observation::new(id.into(), "claude:s", Kind::Generation, "", "")
    }

    #[test]
    fn folds_repeated_generations_in_first_appearance_order() {
        let mut a = obs("g1");
        a.start_ms = Some(10);
        a.end_ms = Some(20);
        a.name = "claude-x".into();
        a.trace_id = Some("t".into());
        let mut b = obs("g1");
        b.start_ms = Some(15);
        b.end_ms = Some(30);
        b.output = Some("text".into());
        b.usage = Some(Usage {
            input: 7,
            ..Usage::default()
        });
        let other = obs("g2");
        let mut records = vec![
            Record::Observation(Box::new(a)),
            Record::Observation(Box::new(other)),
            Record::Observation(Box::new(b)),
        ];
        coalesce(&mut records);
        assert_eq!(records.len(), 2);
        let Record::Observation(g) = &records[0] else {
            panic!("first record is the generation")
        };
        assert_eq!(g.id, "g1");
        assert_eq!(
            g.name, "claude-x",
            "an empty later name keeps the earlier one"
        );
        assert_eq!((g.start_ms, g.end_ms), (Some(10), Some(30)));
        assert_eq!(g.trace_id.as_deref(), Some("t"));
        assert_eq!(g.output.as_deref(), Some("text"));
        assert_eq!(g.usage.map(|u| u.input), Some(7));
        let Record::Observation(g2) = &records[1] else {
            panic!("second record is g2")
        };
        assert_eq!(g2.id, "g2");
    }

    #[test]
    fn flag_follows_the_record_that_carries_usage() {
        let mut a = obs("g");
        a.flag = Some("rejected: input".into());
        a.usage = Some(Usage::default());
        let mut b = obs("g");
        b.usage = Some(Usage::default());
        let mut records = vec![
            Record::Observation(Box::new(a.clone())),
            Record::Observation(Box::new(b)),
        ];
        coalesce(&mut records);
        let Record::Observation(g) = &records[0] else {
            panic!()
        };
        assert_eq!(g.flag, None, "new usage without a flag clears it");
        let b = obs("g");
        let mut records = vec![
            Record::Observation(Box::new(a)),
            Record::Observation(Box::new(b)),
        ];
        coalesce(&mut records);
        let Record::Observation(g) = &records[0] else {
            panic!()
        };
        assert_eq!(g.flag.as_deref(), Some("rejected: input"));
    }

    #[test]
    fn observations_of_different_traces_stay_apart() {
        let mut a = obs("g");
        a.trace_id = Some("t1".into());
        let mut b = obs("g");
        b.trace_id = Some("t2".into());
        let mut records = vec![
            Record::Observation(Box::new(a)),
            Record::Observation(Box::new(b)),
        ];
        coalesce(&mut records);
        assert_eq!(records.len(), 2);
    }

    #[test]
    fn sessions_keep_the_earliest_start_and_the_owning_file() {
        let s = |start, end, secondary| Session {
            key: "claude:s".into(),
            session_id: "s".into(),
            start_ms: Some(start),
            end_ms: Some(end),
            secondary_file: secondary,
            ..Session::default()
        };
        let mut records = vec![
            Record::Session(s(50, 60, true)),
            Record::Session(s(40, 55, false)),
        ];
        coalesce(&mut records);
        let Record::Session(m) = &records[0] else {
            panic!()
        };
        assert_eq!(
            (m.start_ms, m.end_ms, m.secondary_file),
            (Some(40), Some(60), false)
        );
    }
}
