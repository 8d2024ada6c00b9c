//! Reads complete JSONL lines from a byte offset, in bounded chunks.
//!
//! Rules every source relies on (DESIGN §5):
//! - a line without its final `\n` is not consumed yet (the agent may still be writing it), so the returned
//!   offset stops before it;
//! - a line that is not valid JSON, or not valid UTF-8, is reported as a [`LineIssue`] and skipped without
//!   losing the lines around it (invalid UTF-8 is first repaired with U+FFFD replacements and parsed again).

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

/// Upper bound of bytes read into one chunk (one store transaction). A single longer line still forms a chunk.
pub const CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// Upper bound of lines in one chunk.
pub const CHUNK_LINES: usize = 20_000;

/// One complete line of a file.
pub struct Line<'a> {
    /// Byte offset of the first byte of the line.
    pub offset: u64,
    /// The line without its `\n` (and without a trailing `\r`).
    pub bytes: &'a [u8],
}

/// A problem with one line; the line is skipped or repaired, the rest of the file is read.
#[derive(Debug, Clone, PartialEq)]
pub struct LineIssue {
    /// Byte offset of the line.
    pub offset: u64,
    pub message: String,
}

/// Parses one line into a JSON value, repairing invalid UTF-8.
/// Returns the value and an issue when something had to be repaired, or an issue when the line is unusable.
pub fn parse_json_line<T: serde::de::DeserializeOwned>(
    line: &Line<'_>,
) -> Result<(T, Option<LineIssue>), LineIssue> {
    match serde_json::from_slice::<T>(line.bytes) {
        Ok(v) => Ok((v, None)),
        Err(err) => {
            if std::str::from_utf8(line.bytes).is_err() {
                let repaired = String::from_utf8_lossy(line.bytes);
                match serde_json::from_str::<T>(&repaired) {
                    Ok(v) => Ok((
                        v,
                        Some(LineIssue {
                            offset: line.offset,
                            message: "invalid UTF-8 replaced with U+FFFD".into(),
                        }),
                    )),
                    Err(err) => Err(LineIssue {
                        offset: line.offset,
                        message: format!("invalid UTF-8 and not JSON: {err}"),
                    }),
                }
            } else {
                Err(LineIssue {
                    offset: line.offset,
                    message: format!("not a JSON line ({} bytes): {err}", line.bytes.len()),
                })
            }
        }
    }
}

/// Reads a file from an offset in chunks of complete lines.
pub struct ChunkReader<R> {
    reader: BufReader<R>,
    /// Offset of the next unread byte.
    offset: u64,
    buf: Vec<u8>,
    eof: bool,
}

impl<R: Read + Seek> ChunkReader<R> {
    /// Positions the reader at `offset`.
    pub fn new(mut inner: R, offset: u64) -> std::io::Result<Self> {
        inner.seek(SeekFrom::Start(offset))?;
        Ok(ChunkReader {
            reader: BufReader::with_capacity(256 * 1024, inner),
            offset,
            buf: Vec::new(),
            eof: false,
        })
    }

    /// Offset just past the last complete line handed out.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Calls `each` for every complete line of the next chunk. Returns `false` once the file holds no further
    /// complete line (a trailing partial line is left for a later read).
    pub fn next_chunk(&mut self, mut each: impl FnMut(Line<'_>)) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let mut bytes = 0usize;
        let mut lines = 0usize;
        while bytes < CHUNK_BYTES && lines < CHUNK_LINES {
            self.buf.clear();
            let n = self.reader.read_until(b'\n', &mut self.buf)?;
            if n == 0 || self.buf.last() != Some(&b'\n') {
                // EOF, possibly after a partial line: do not consume it.
                self.eof = true;
                break;
            }
            let mut line: &[u8] = &self.buf[..n - 1];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let start = self.offset;
            self.offset += n as u64;
            bytes += n;
            lines += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            each(Line {
                offset: start,
                bytes: line,
            });
        }
        Ok(lines > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn collect(data: &[u8], offset: u64) -> (Vec<(u64, String)>, u64) {
        let mut reader = ChunkReader::new(Cursor::new(data.to_vec()), offset).unwrap();
        let mut out = Vec::new();
        while reader
            .next_chunk(|l| out.push((l.offset, String::from_utf8_lossy(l.bytes).into_owned())))
            .unwrap()
        {}
        (out, reader.offset())
    }

    #[test]
    fn partial_last_line_is_not_consumed() {
        let (lines, offset) = collect(b"{\"a\":1}\n{\"b\":2}\n{\"c\":", 0);
        assert_eq!(
            lines,
            vec![(0, "{\"a\":1}".to_string()), (8, "{\"b\":2}".to_string())]
        );
        assert_eq!(offset, 16);
    }

    #[test]
    fn resumes_from_offset_and_skips_blank_lines() {
        let (lines, offset) = collect(b"{\"a\":1}\n\n{\"b\":2}\r\n", 8);
        assert_eq!(lines, vec![(9, "{\"b\":2}".to_string())]);
        assert_eq!(offset, 18);
    }

    #[test]
    fn invalid_utf8_is_repaired_with_an_issue() {
        let bytes = b"{\"t\":\"caf\xe9\"}";
        let line = Line { offset: 5, bytes };
        let (v, issue) = parse_json_line::<serde_json::Value>(&line).unwrap();
        assert_eq!(v["t"], "caf\u{fffd}");
        assert_eq!(issue.unwrap().offset, 5);
    }

    #[test]
    fn corrupt_json_is_an_issue() {
        let line = Line {
            offset: 7,
            bytes: b"{\"t\":",
        };
        let err = parse_json_line::<serde_json::Value>(&line).unwrap_err();
        assert_eq!(err.offset, 7);
        assert!(err.message.contains("not a JSON line"));
    }
}
