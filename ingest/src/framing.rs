//! Cutting a byte stream into records: one line each, or one pretty-printed JSON document that
//! spans many lines.
//!
//! Audit logs are JSON lines, but the same events also arrive as a single pretty-printed Event,
//! an `EventList` or an Event Hub batch written over many lines. A line that opens a JSON value
//! without closing it (`{`, `[`, or one that ends with `{`, `[`, `,` or `:`) starts a document that
//! ends when its brackets balance. A line that starts a new value at column 0 while a document is
//! open means the open one was truncated: it is handed over as it is (and will fail to decode)
//! and the new line is framed afresh, so a truncated record never swallows good lines after it.

use std::io::{self, BufRead};

/// Where a record starts and how big it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramedRecord {
    /// Line number (1-based) of the record's first line.
    pub line: u64,
    /// Byte offset of the record's first byte in the stream.
    pub offset: u64,
    /// `Some(size)` when the record exceeded the size limit: its bytes were not kept.
    pub oversized: Option<u64>,
}

struct Line {
    bytes: Vec<u8>,
    number: u64,
    offset: u64,
    oversized: Option<u64>,
}

/// Frames records out of a buffered reader.
pub struct Framer<R> {
    reader: R,
    next_line: u64,
    next_offset: u64,
    max_record: usize,
    pushback: Option<Line>,
}

impl<R: BufRead> Framer<R> {
    /// A framer over `reader` that refuses records longer than `max_record` bytes.
    pub fn new(reader: R, max_record: usize) -> Self {
        Framer {
            reader,
            next_line: 1,
            next_offset: 0,
            max_record,
            pushback: None,
        }
    }

    /// Bytes consumed from the reader so far.
    pub fn offset(&self) -> u64 {
        self.next_offset
    }

    /// Appends the next record's bytes to `out` and says where it came from; `None` at the end.
    pub fn next_into(&mut self, out: &mut Vec<u8>) -> io::Result<Option<FramedRecord>> {
        loop {
            let start = out.len();
            let Some(line) = self.take_line(out)? else {
                return Ok(None);
            };
            if let Some(size) = line.oversized {
                out.truncate(start);
                return Ok(Some(FramedRecord {
                    line: line.number,
                    offset: line.offset,
                    oversized: Some(size),
                }));
            }
            let text = trim(&out[start..]);
            if text.is_empty() {
                out.truncate(start);
                continue;
            }
            let record = FramedRecord {
                line: line.number,
                offset: line.offset,
                oversized: None,
            };
            if !opens_document(text) {
                return Ok(Some(record));
            }
            let mut depth = Depth::default();
            depth.scan(&out[start..]);
            loop {
                if depth.closed() {
                    return Ok(Some(record));
                }
                let line_start = out.len();
                let Some(next) = self.take_line(out)? else {
                    return Ok(Some(record));
                };
                if next.oversized.is_some() || starts_new_value(&out[line_start..]) {
                    let bytes = out[line_start..].to_vec();
                    out.truncate(line_start);
                    self.pushback = Some(Line { bytes, ..next });
                    return Ok(Some(record));
                }
                depth.scan(&out[line_start..]);
                if out.len() - start > self.max_record {
                    let size = (out.len() - start) as u64;
                    out.truncate(start);
                    self.skip_document(&mut depth)?;
                    return Ok(Some(FramedRecord {
                        oversized: Some(size),
                        ..record
                    }));
                }
            }
        }
    }

    /// Skips the rest of an oversized document.
    fn skip_document(&mut self, depth: &mut Depth) -> io::Result<()> {
        let mut scratch = Vec::new();
        while !depth.closed() {
            scratch.clear();
            let Some(line) = self.take_line(&mut scratch)? else {
                return Ok(());
            };
            if starts_new_value(&scratch) {
                self.pushback = Some(Line {
                    bytes: std::mem::take(&mut scratch),
                    ..line
                });
                return Ok(());
            }
            depth.scan(&scratch);
        }
        Ok(())
    }

    /// Appends the next line (without its line ending) to `out`.
    fn take_line(&mut self, out: &mut Vec<u8>) -> io::Result<Option<Line>> {
        if let Some(line) = self.pushback.take() {
            out.extend_from_slice(&line.bytes);
            return Ok(Some(Line {
                bytes: Vec::new(),
                ..line
            }));
        }
        let number = self.next_line;
        let offset = self.next_offset;
        let start = out.len();
        let mut total: u64 = 0;
        let mut saw_any = false;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                break;
            }
            saw_any = true;
            let (chunk, consumed, done) = match memchr::memchr(b'\n', buf) {
                Some(i) => (&buf[..i], i + 1, true),
                None => (buf, buf.len(), false),
            };
            total += chunk.len() as u64;
            if total as usize <= self.max_record {
                out.extend_from_slice(chunk);
            }
            self.reader.consume(consumed);
            self.next_offset += consumed as u64;
            if done {
                break;
            }
        }
        if !saw_any {
            return Ok(None);
        }
        self.next_line += 1;
        if out.last() == Some(&b'\r') && total as usize <= self.max_record {
            out.pop();
        }
        let oversized = if total as usize > self.max_record {
            out.truncate(start);
            Some(total)
        } else {
            None
        };
        Ok(Some(Line {
            bytes: Vec::new(),
            number,
            offset,
            oversized,
        }))
    }
}

fn trim(b: &[u8]) -> &[u8] {
    b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b).trim_ascii()
}

/// A line that opens a JSON value and visibly continues on the next line.
fn opens_document(text: &[u8]) -> bool {
    matches!(text.first(), Some(b'{' | b'['))
        && matches!(text.last(), Some(b'{' | b'[' | b',' | b':'))
        && !text.starts_with(b"[INFO]")
}

/// A line that starts a new top-level value at column 0 (pretty printers indent nested lines).
fn starts_new_value(line: &[u8]) -> bool {
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    matches!(line.first(), Some(b'{' | b'['))
}

/// Bracket depth of a JSON text scanned line by line, strings excluded.
#[derive(Default)]
struct Depth {
    depth: i64,
    opened: bool,
    in_string: bool,
    escaped: bool,
}

impl Depth {
    fn scan(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    self.opened = true;
                }
                b'}' | b']' => self.depth -= 1,
                _ => {}
            }
        }
        // JSON strings never span lines.
        self.in_string = false;
        self.escaped = false;
    }

    fn closed(&self) -> bool {
        self.opened && self.depth <= 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(input: &str, max: usize) -> Vec<(String, u64, Option<u64>)> {
        let mut f = Framer::new(input.as_bytes(), max);
        let mut out = Vec::new();
        let mut records = Vec::new();
        loop {
            out.clear();
            match f.next_into(&mut out).unwrap() {
                Some(r) => {
                    records.push((String::from_utf8(out.clone()).unwrap(), r.line, r.oversized))
                }
                None => return records,
            }
        }
    }

    #[test]
    fn json_lines_are_one_record_each_and_blank_lines_are_skipped() {
        let r = frame("{\"a\":1}\n\n{\"b\":2}\r\n{\"c\":3}", 1024);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0], ("{\"a\":1}".into(), 1, None));
        assert_eq!(r[1], ("{\"b\":2}".into(), 3, None));
        assert_eq!(
            r[2],
            ("{\"c\":3}".into(), 4, None),
            "a last line without newline still counts"
        );
    }

    #[test]
    fn a_pretty_printed_document_is_one_record() {
        let doc = "{\n  \"kind\": \"EventList\",\n  \"items\": [\n    {\"a\": \"}\"}\n  ]\n}\n{\"next\":1}\n";
        let r = frame(doc, 1024);
        assert_eq!(r.len(), 2);
        assert!(r[0].0.starts_with('{') && r[0].0.ends_with('}'));
        assert_eq!(r[1], ("{\"next\":1}".into(), 7, None));
    }

    #[test]
    fn a_truncated_document_does_not_swallow_the_lines_after_it() {
        let input = "{\"kind\":\"Event\",\n{\"ok\":1}\n{\"ok\":2}\n";
        let r = frame(input, 1024);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].0, "{\"kind\":\"Event\",");
        assert_eq!(r[1].0, "{\"ok\":1}");
        assert_eq!(r[1].1, 2);
    }

    #[test]
    fn oversized_lines_are_reported_with_their_size_and_skipped() {
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(100));
        let input = format!("{{\"a\":1}}\n{big}\n{{\"b\":2}}\n");
        let r = frame(&input, 50);
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].2, Some(big.len() as u64));
        assert_eq!(r[1].0, "");
        assert_eq!(r[2].0, "{\"b\":2}");
    }

    #[test]
    fn byte_order_mark_does_not_hide_a_document_start() {
        let r = frame("\u{feff}{\n  \"a\": 1\n}\n", 1024);
        assert_eq!(r.len(), 1);
    }
}
