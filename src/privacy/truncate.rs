//! Size caps: text fields (default 20,000 characters, with a marker saying how much was cut), inline base64
//! images / data URIs (replaced by a marker with their decoded size), JSON nesting depth and array length.

use super::redact::Counts;

/// Caps `text` at `max_chars` characters. The kept prefix is followed by `…[truncated N chars]`, where N is
/// the number of characters cut. Data URIs are replaced first.
pub fn cap(text: &str, max_chars: usize) -> String {
    cap_counting(text, max_chars, &mut Counts::new())
}

/// [`cap`], counting what it did into `counts`: `image` per data URI replaced, `truncated` per text cut.
pub fn cap_counting(text: &str, max_chars: usize, counts: &mut Counts) -> String {
    let (text, images) = strip_data_uris(text);
    if images > 0 {
        *counts.entry(IMAGE).or_insert(0) += images;
    }
    match text.char_indices().nth(max_chars) {
        None => text.into_owned(),
        Some((cut, _)) => {
            *counts.entry(TRUNCATED).or_insert(0) += 1;
            let cut_chars = text[cut..].chars().count();
            format!("{}…[truncated {cut_chars} chars]", &text[..cut])
        }
    }
}

/// Count keys of [`cap_counting`] (beside the secret kinds of [`super::redact`]).
pub const TRUNCATED: &str = "truncated";
pub const IMAGE: &str = "image";

/// Markers the caps leave in stored text, with their count key: how `doctor --privacy` finds them again.
pub const MARKERS: [(&str, &str); 2] = [("…[truncated ", TRUNCATED), ("[image: ", IMAGE)];

/// Caps an optional field in place.
pub fn cap_field(field: &mut Option<String>, max_chars: usize) {
    if let Some(text) = field.as_mut() {
        if text.len() > max_chars || text.contains("data:") {
            *text = cap(text, max_chars);
        }
    }
}

/// Caps every string inside a JSON value.
pub fn cap_json(value: &mut serde_json::Value, max_chars: usize) {
    match value {
        serde_json::Value::String(s) if s.len() > max_chars || s.contains("data:") => {
            *s = cap(s, max_chars)
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| cap_json(v, max_chars)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| cap_json(v, max_chars)),
        _ => {}
    }
}

/// Caps nesting below `max_depth` (deeper values become `"[truncated: nested deeper than N]"`) and arrays
/// at `max_items` (the rest replaced by one `"[… N more items]"` element).
pub fn limit_json(value: &mut serde_json::Value, max_depth: usize, max_items: usize) {
    fn walk(v: &mut serde_json::Value, depth: usize, max_depth: usize, max_items: usize) {
        use serde_json::Value;
        let nested = matches!(v, Value::Array(_) | Value::Object(_));
        if nested && depth >= max_depth {
            *v = Value::String(format!("[truncated: nested deeper than {max_depth}]"));
            return;
        }
        match v {
            Value::Array(items) => {
                if items.len() > max_items {
                    let more = items.len() - max_items;
                    items.truncate(max_items);
                    items.push(Value::String(format!("[… {more} more items]")));
                }
                items
                    .iter_mut()
                    .for_each(|i| walk(i, depth + 1, max_depth, max_items));
            }
            Value::Object(map) => map
                .values_mut()
                .for_each(|i| walk(i, depth + 1, max_depth, max_items)),
            _ => {}
        }
    }
    walk(value, 0, max_depth, max_items);
}

/// Replaces `data:<mime>;base64,<payload>` with `[image: <mime>, <bytes> bytes]` (decoded size); returns the
/// text and how many were replaced.
fn strip_data_uris(text: &str) -> (std::borrow::Cow<'_, str>, u64) {
    if !text.contains(";base64,") {
        return (std::borrow::Cow::Borrowed(text), 0);
    }
    let mut replaced = 0;
    let mut out = String::with_capacity(text.len().min(4096));
    let mut rest = text;
    while let Some(start) = rest.find("data:") {
        let after = &rest[start + 5..];
        let Some(semi) = after.find(";base64,") else {
            break;
        };
        let mime = &after[..semi];
        if mime.is_empty()
            || mime.len() > 100
            || mime.contains(|c: char| c.is_whitespace() || c == '"')
        {
            out.push_str(&rest[..start + 5]);
            rest = after;
            continue;
        }
        let payload = &after[semi + 8..];
        let len = payload
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='))
            .unwrap_or(payload.len());
        out.push_str(&rest[..start]);
        out.push_str(&format!("[image: {mime}, {} bytes]", len * 3 / 4));
        replaced += 1;
        rest = &payload[len..];
    }
    out.push_str(rest);
    (std::borrow::Cow::Owned(out), replaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_with_a_marker_counting_cut_chars() {
        let text = "é".repeat(25_000);
        let capped = cap(&text, 20_000);
        assert!(capped.starts_with(&"é".repeat(20_000)));
        assert!(capped.ends_with("…[truncated 5000 chars]"));
        assert_eq!(cap("short", 20_000), "short");
    }

    #[test]
    fn caps_json_depth_and_array_length() {
        // Three levels of containers are kept (root, b, c); the fourth (d) becomes a marker.
        let mut v = serde_json::json!({ "a": [1, 2, 3, 4, 5], "b": { "c": { "d": { "e": 1 } } } });
        limit_json(&mut v, 3, 3);
        assert_eq!(
            v,
            serde_json::json!({ "a": [1, 2, 3, "[… 2 more items]"], "b": { "c": { "d": "[truncated: nested deeper than 3]" } } })
        );
    }

    #[test]
    fn replaces_data_uris_with_their_size() {
        let payload = "A".repeat(64_284); // 48,213 decoded bytes
        let text = format!("see data:image/png;base64,{payload}\" end");
        assert_eq!(
            cap(&text, 20_000),
            "see [image: image/png, 48213 bytes]\" end"
        );
    }

    #[test]
    fn counts_images_and_cuts() {
        let mut counts = Counts::new();
        let img = format!("data:image/jpeg;base64,{}", "QUJD".repeat(10));
        let text = format!("{img} and {img} then {}", "x".repeat(30_000));
        let capped = cap_counting(&text, 20_000, &mut counts);
        assert!(capped
            .starts_with("[image: image/jpeg, 30 bytes] and [image: image/jpeg, 30 bytes] then x"));
        assert!(capped.ends_with(&format!("…[truncated {} chars]", 30_000 + 69 - 20_000)));
        assert_eq!(counts.get(IMAGE), Some(&2));
        assert_eq!(counts.get(TRUNCATED), Some(&1));
        cap_counting("short", 20_000, &mut counts);
        assert_eq!(
            counts.values().sum::<u64>(),
            3,
            "nothing counted for text left alone"
        );
    }
}
