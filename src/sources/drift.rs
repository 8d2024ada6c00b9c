//! Format drift: line types and usage fields a parser met but does not know.
//!
//! Agents change their files every week. A parser that silently skips what it does not know under-counts
//! the day a release adds a new kind of line; so every parser tallies what it could not classify, by agent
//! version, and `doctor` lists it ("Claude Code 2.1.340: 3 unknown line types: …"). Each source keeps the
//! types it knows and deliberately ignores in an explicit list (see its README), so "unknown" means
//! "nobody looked at this yet". Only names and a value-free skeleton of one example line are kept: drift
//! records never carry content.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::{Agent, Drift};

/// What kind of thing drifted (the `what` of a [`Drift`] record).
pub const LINE_TYPE: &str = "line type";
/// A token-usage field the parser does not read (it may be one that should be counted).
pub const USAGE_FIELD: &str = "usage field";

/// Per-chunk tally of unknowns; drained into [`Drift`] records at the end of each chunk.
#[derive(Debug, Default)]
pub struct DriftTally {
    items: BTreeMap<(&'static str, String), (u64, Option<String>)>,
}

impl DriftTally {
    /// Counts one occurrence of `name`; `example` is asked for on the first occurrence in the chunk only.
    pub fn note(
        &mut self,
        what: &'static str,
        name: &str,
        example: impl FnOnce() -> Option<String>,
    ) {
        match self.items.get_mut(&(what, name.to_string())) {
            Some(slot) => slot.0 += 1,
            None => {
                self.items.insert((what, name.to_string()), (1, example()));
            }
        }
    }

    /// Moves the tally into records for `agent` at `version`.
    pub fn drain(
        &mut self,
        agent: Agent,
        version: Option<&str>,
        out: &mut Vec<crate::model::Record>,
    ) {
        for ((what, name), (count, example)) in std::mem::take(&mut self.items) {
            out.push(crate::model::Record::Drift(Drift {
                agent,
                agent_version: version.map(str::to_string),
                what: what.to_string(),
                name,
                count,
                example,
            }));
        }
    }
}

/// A value-free outline of a JSON line: keys with the kind of their value, to two levels; `type` and
/// `subtype` keep their (short) string values so the example says what the line is. At most 300 chars.
pub fn skeleton(line: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(line).ok()?;
    let mut s = String::new();
    outline(&v, 0, &mut s);
    if s.len() > 300 {
        let mut end = 297;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    Some(s)
}

fn outline(v: &Value, depth: usize, s: &mut String) {
    match v {
        Value::Object(map) if depth < 2 => {
            s.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                s.push_str(&format!("{k:?}:"));
                match (k.as_str(), v) {
                    ("type" | "subtype", Value::String(t)) if t.len() <= 40 => {
                        s.push_str(&format!("{t:?}"))
                    }
                    _ => outline(v, depth + 1, s),
                }
            }
            s.push('}');
        }
        Value::Object(_) => s.push_str("{…}"),
        Value::Array(_) => s.push_str("[…]"),
        Value::String(_) => s.push_str("str"),
        Value::Number(_) => s.push_str("num"),
        Value::Bool(_) => s.push_str("bool"),
        Value::Null => s.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skeleton_names_keys_and_kinds_but_no_values() {
        let s = skeleton(
            br#"{"type":"atis-latch","atis":"secret text","n":3,"o":{"a":[1],"b":{"c":1}}}"#,
        )
        .unwrap();
        assert_eq!(
            s,
            r#"{"type":"atis-latch","atis":str,"n":num,"o":{"a":[…],"b":{…}}}"#
        );
        assert!(!s.contains("secret"));
    }

    #[test]
    fn a_tally_counts_per_name_and_keeps_the_first_example() {
        let mut t = DriftTally::default();
        t.note(LINE_TYPE, "x", || Some("one".into()));
        t.note(LINE_TYPE, "x", || Some("two".into()));
        t.note(USAGE_FIELD, "y", || None);
        let mut out = Vec::new();
        t.drain(Agent::Claude, Some("2.1.340"), &mut out);
        let drifts: Vec<_> = out
            .iter()
            .map(|r| match r {
                crate::model::Record::Drift(d) => {
                    (d.what.clone(), d.name.clone(), d.count, d.example.clone())
                }
                _ => panic!("not drift"),
            })
            .collect();
        assert_eq!(
            drifts,
            vec![
                ("line type".into(), "x".into(), 2, Some("one".into())),
                ("usage field".into(), "y".into(), 1, None)
            ]
        );
        t.drain(Agent::Claude, None, &mut out);
        assert_eq!(out.len(), 2, "a drained tally is empty");
    }
}
