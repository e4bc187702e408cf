//! A strict, allocation-light JSON reader for the hot path of audit decoding.
//!
//! serde_json's generic machinery (a visitor call, an `Option` wrapper and a key match per
//! member) cost more than the bytes it read: two thirds of an audit event's decoding went to it.
//! This reader walks a record whose shape the caller knows, borrows every string that has no
//! escapes, and skips unneeded values while still checking them against the JSON grammar.
//!
//! It is a fast path, not a second parser with its own verdicts: whenever it meets anything it
//! is unsure of (a control character, a number that is not a plain count, a duplicate member
//! of a typed struct, nesting past [`MAX_DEPTH`]) it gives up with [`GiveUp`], and the caller
//! parses the record with serde_json, whose result (or error message) then stands. So a record
//! it accepts must be one serde_json accepts with the same values; the tests check that.

use std::borrow::Cow;

/// The reader gave up on a record; serde_json decides about it instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GiveUp;

/// What a reading step returns.
pub(crate) type Step<T> = Result<T, GiveUp>;

/// Deepest nesting the reader follows (serde_json's own limit is 128, so a record the reader
/// gives up on for depth still gets serde_json's verdict).
const MAX_DEPTH: usize = 100;

/// Whether `text` holds any byte below 0x20. Records with none (the apiserver writes compact
/// lines) can have their strings scanned for only `"` and `\`; the rest go to serde_json.
pub(crate) fn has_control_bytes(text: &str) -> bool {
    // No early exit, so the compiler can read many bytes per instruction.
    text.as_bytes()
        .chunks(64)
        .any(|chunk| chunk.iter().fold(0u8, |seen, b| seen | u8::from(*b < 0x20)) != 0)
}

/// A record of printable ASCII only (bytes 0x20 to 0x7F): valid UTF-8 without control bytes,
/// as the apiserver writes nearly every record, so it goes to the fast reader unchecked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plain<'a>(&'a str);

impl<'a> Plain<'a> {
    /// The text.
    pub(crate) fn text(self) -> &'a str {
        self.0
    }
}

/// `bytes` as [`Plain`] text when every byte is printable ASCII. One pass, 64 bytes a step with
/// SSE2, instead of a UTF-8 check and then a search for control bytes (two passes over every
/// record); records with other bytes take those two checks.
pub(crate) fn plain(bytes: &[u8]) -> Option<Plain<'_>> {
    if !is_plain(bytes) {
        return None;
    }
    // SAFETY: ASCII is valid UTF-8.
    Some(Plain(unsafe { std::str::from_utf8_unchecked(bytes) }))
}

/// Whether every byte of `bytes` is in 0x20..=0x7F.
fn is_plain(bytes: &[u8]) -> bool {
    let plain_byte = |b: &u8| (0x20..0x80).contains(b);
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
            _mm_set1_epi8,
        };
        let blocks = bytes.chunks_exact(64);
        let rest = blocks.remainder();
        for block in blocks {
            // SAFETY: SSE2 is part of the x86-64 baseline; each load reads 16 of the 64 bytes
            // of `block`. Compared as signed bytes, 0x80..=0xFF are negative: one comparison
            // with 0x20 finds both control bytes and bytes outside ASCII.
            let odd = unsafe {
                let space = _mm_set1_epi8(0x20);
                let at = |i: usize| {
                    _mm_cmplt_epi8(
                        _mm_loadu_si128(block.as_ptr().add(i).cast::<__m128i>()),
                        space,
                    )
                };
                let all = _mm_or_si128(_mm_or_si128(at(0), at(16)), _mm_or_si128(at(32), at(48)));
                _mm_movemask_epi8(all)
            };
            if odd != 0 {
                return false;
            }
        }
        rest.iter().all(plain_byte)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        bytes.iter().all(plain_byte)
    }
}

/// A cursor over one JSON text without control bytes (see [`has_control_bytes`]).
pub(crate) struct JsonReader<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> JsonReader<'a> {
    /// A reader at the start of `text`. The caller has checked [`has_control_bytes`] is false.
    pub(crate) fn new(text: &'a str) -> Self {
        JsonReader { text, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The next byte that is not a space (other JSON whitespace is a control byte, and records
    /// with those are not read here).
    #[inline]
    fn peek(&mut self) -> Step<u8> {
        let bytes = self.bytes();
        while let Some(&b) = bytes.get(self.pos) {
            if b != b' ' {
                return Ok(b);
            }
            self.pos += 1;
        }
        Err(GiveUp)
    }

    #[inline]
    fn eat(&mut self, expected: u8) -> Step<()> {
        if self.peek()? == expected {
            self.pos += 1;
            Ok(())
        } else {
            Err(GiveUp)
        }
    }

    /// Consumes a container's opening byte and, when `close` follows at once, that too: whether
    /// an item follows.
    fn open(&mut self, open: u8, close: u8) -> Step<bool> {
        self.eat(open)?;
        if self.peek()? == close {
            self.pos += 1;
            Ok(false)
        } else {
            Ok(true)
        }
    }

    /// After an item of a container that `close` ends: consumes the comma (another item
    /// follows) or the close (none does).
    fn next_item(&mut self, close: u8) -> Step<bool> {
        match self.peek()? {
            b',' => {
                self.pos += 1;
                Ok(true)
            }
            b if b == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(GiveUp),
        }
    }

    /// Where the reader is, as a byte offset into its text.
    #[inline]
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// The text between two positions of the reader.
    pub(crate) fn text_between(&self, from: usize, to: usize) -> Option<&'a str> {
        self.text.get(from..to)
    }

    /// Succeeds when only spaces are left.
    pub(crate) fn end(&mut self) -> Step<()> {
        match self.peek() {
            Err(GiveUp) => Ok(()),
            Ok(_) => Err(GiveUp),
        }
    }

    /// Consumes a `null` if one comes next.
    #[inline]
    fn null(&mut self) -> Step<bool> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn literal(&mut self, word: &[u8]) -> Step<()> {
        self.pos = literal_end(self.bytes(), self.pos, word)?;
        Ok(())
    }

    /// A string, from its opening quote: its text between the quotes as written, and whether
    /// it has escapes. Escapes are checked for form (serde_json checks surrogates only when it
    /// decodes a string, which [`Self::string`] does). Always inlined: most strings are short,
    /// and a call's set-up and return would cost a good part of reading one.
    #[inline(always)]
    fn raw_string(&mut self) -> Step<(&'a str, bool)> {
        if self.peek()? != b'"' {
            return Err(GiveUp);
        }
        let (end, escaped) = string_end(self.bytes(), self.pos)?;
        // Both ends are ASCII quotes, so the slice is on character boundaries.
        let text = self.text.get(self.pos + 1..end - 1).ok_or(GiveUp)?;
        self.pos = end;
        Ok((text, escaped))
    }

    /// A string value, unescaped; borrowed when it has no escapes. Always inlined, like
    /// [`Self::raw_string`].
    #[inline(always)]
    pub(crate) fn string(&mut self) -> Step<Cow<'a, str>> {
        let (raw, escaped) = self.raw_string()?;
        if escaped {
            unescape(raw).map(Cow::Owned)
        } else {
            Ok(Cow::Borrowed(raw))
        }
    }

    /// A string or `null`. Always inlined, like [`Self::raw_string`].
    #[inline(always)]
    pub(crate) fn opt_string(&mut self) -> Step<Option<Cow<'a, str>>> {
        if self.null()? {
            Ok(None)
        } else {
            self.string().map(Some)
        }
    }

    /// An array of strings, or `null`.
    pub(crate) fn opt_strings(&mut self) -> Step<Option<Vec<Cow<'a, str>>>> {
        if self.null()? {
            return Ok(None);
        }
        let mut more = self.open(b'[', b']')?;
        // Room for the usual few items at once: growing from empty takes the vector's
        // out-of-line growth path.
        let mut items = if more {
            Vec::with_capacity(4)
        } else {
            Vec::new()
        };
        while more {
            items.push(self.string()?);
            more = self.next_item(b']')?;
        }
        Ok(Some(items))
    }

    /// A non-negative integer that fits an `i32`, or `null` (anything else: give up).
    pub(crate) fn opt_count(&mut self) -> Step<Option<i32>> {
        self.opt_plain_integer(10)
    }

    /// A non-negative integer that fits an `i64` (up to 18 digits), or `null` (anything else,
    /// a sign included: give up; serde_json reads `-0` as a float).
    pub(crate) fn opt_natural(&mut self) -> Step<Option<i64>> {
        self.opt_plain_integer(18)
    }

    /// A plain non-negative integer of at most `max` digits, or `null`.
    fn opt_plain_integer<T: std::str::FromStr>(&mut self, max: usize) -> Step<Option<T>> {
        if self.null()? {
            return Ok(None);
        }
        let bytes = self.bytes();
        let start = self.pos;
        let digits = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let end = start + digits;
        // No leading zeros, no fraction or exponent; a sign or anything odd goes to serde_json.
        if digits == 0
            || digits > max
            || (digits > 1 && bytes[start] == b'0')
            || matches!(bytes.get(end), Some(b'.' | b'e' | b'E'))
        {
            return Err(GiveUp);
        }
        self.pos = end;
        self.text[start..end].parse().map(Some).map_err(|_| GiveUp)
    }

    /// `true`, `false` or `null`.
    pub(crate) fn opt_bool(&mut self) -> Step<Option<bool>> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|()| Some(true)),
            b'f' => self.literal(b"false").map(|()| Some(false)),
            b'n' => self.literal(b"null").map(|()| None),
            _ => Err(GiveUp),
        }
    }

    /// Reads an array (or `null`, giving `false`), calling `item` with the reader at each item,
    /// which `item` must consume.
    pub(crate) fn array(&mut self, mut item: impl FnMut(&mut Self) -> Step<()>) -> Step<bool> {
        if self.null()? {
            return Ok(false);
        }
        let mut more = self.open(b'[', b']')?;
        while more {
            item(self)?;
            more = self.next_item(b']')?;
        }
        Ok(true)
    }

    /// Any value, or `null` as `None`, as its JSON text.
    pub(crate) fn opt_raw(&mut self) -> Step<Option<&'a str>> {
        if self.null()? {
            Ok(None)
        } else {
            self.raw().map(Some)
        }
    }

    /// Like [`Self::opt_raw`], but an object is read by `read_object` (which must consume it)
    /// instead of being skipped.
    pub(crate) fn opt_raw_reading_objects(
        &mut self,
        read_object: impl FnOnce(&mut Self) -> Step<()>,
    ) -> Step<Option<&'a str>> {
        if self.null()? {
            return Ok(None);
        }
        // `null` peeked: the value starts here.
        let start = self.pos;
        if self.bytes()[start] == b'{' {
            read_object(self)?;
        } else {
            self.skip(0)?;
        }
        Ok(Some(&self.text[start..self.pos]))
    }

    /// Whether a string comes next.
    pub(crate) fn peek_is_string(&mut self) -> Step<bool> {
        Ok(self.peek()? == b'"')
    }

    /// Any value (`null` included) as its JSON text, checked against the grammar.
    pub(crate) fn raw(&mut self) -> Step<&'a str> {
        self.peek()?;
        let start = self.pos;
        self.skip(0)?;
        Ok(&self.text[start..self.pos])
    }

    /// Passes over any value, checking it against the grammar.
    pub(crate) fn skip_value(&mut self) -> Step<()> {
        self.skip(0)
    }

    fn skip(&mut self, depth: usize) -> Step<()> {
        let first = self.peek()?;
        if self.skip_scalar(first)? {
            Ok(())
        } else {
            self.skip_container(first, depth)
        }
    }

    /// Passes over the string, number or literal that starts with `first` (just peeked), or
    /// says it is a container (`false`, nothing consumed). Inlined into the loops over a
    /// container's items, so that only nested containers cost a call: most skipped values are
    /// strings.
    #[inline(always)]
    fn skip_scalar(&mut self, first: u8) -> Step<bool> {
        let bytes = self.bytes();
        match first {
            b'"' => self.pos = string_end(bytes, self.pos)?.0,
            b'{' | b'[' => return Ok(false),
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'n' => self.literal(b"null")?,
            b'-' | b'0'..=b'9' => self.pos = number_end(bytes, self.pos)?,
            _ => return Err(GiveUp),
        }
        Ok(true)
    }

    /// Passes over the object or array that starts with `first` (just peeked), nested `depth`
    /// deep.
    fn skip_container(&mut self, first: u8, depth: usize) -> Step<()> {
        if depth >= MAX_DEPTH {
            return Err(GiveUp);
        }
        let bytes = self.bytes();
        let close = if first == b'{' { b'}' } else { b']' };
        let mut more = self.open(first, close)?;
        while more {
            if first == b'{' {
                self.pos = member_name_end(bytes, spaces(bytes, self.pos))?;
            }
            let item = self.peek()?;
            if !self.skip_scalar(item)? {
                self.skip_container(item, depth + 1)?;
            }
            more = self.next_item(close)?;
        }
        Ok(())
    }

    /// Reads an object (or `null`, giving `false`), calling `member` with each member's name as
    /// written (escapes and all), its name unescaped, and the reader at its value, which
    /// `member` must consume.
    pub(crate) fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a str, Cow<'a, str>) -> Step<()>,
    ) -> Step<bool> {
        self.object_predicting(
            |_| None::<((), usize)>,
            |r, name| match name {
                Member::Known(()) => Err(GiveUp),
                Member::Named(raw, name) => member(r, raw, name),
            },
        )
    }

    /// Like [`Self::object`], but `predict` is shown the bytes where each member starts and may
    /// recognise its name there: it returns the member's id and how many bytes its name, in
    /// quotes, and the colon take. Writers put the members of a record in a fixed order, so a
    /// caller that predicts the next name is spared reading and matching most of them.
    pub(crate) fn object_predicting<K>(
        &mut self,
        mut predict: impl FnMut(&[u8]) -> Option<(K, usize)>,
        mut member: impl FnMut(&mut Self, Member<'a, K>) -> Step<()>,
    ) -> Step<bool> {
        if self.null()? {
            return Ok(false);
        }
        let mut more = self.open(b'{', b'}')?;
        while more {
            self.peek()?;
            if let Some((id, used)) = predict(&self.bytes()[self.pos..]) {
                self.pos += used;
                member(self, Member::Known(id))?;
            } else {
                let (raw, escaped) = self.raw_string()?;
                let name = if escaped {
                    Cow::Owned(unescape(raw)?)
                } else {
                    Cow::Borrowed(raw)
                };
                self.eat(b':')?;
                member(self, Member::Named(raw, name))?;
            }
            more = self.next_item(b'}')?;
        }
        Ok(true)
    }
}

/// A member of an object, as [`JsonReader::object_predicting`] hands it over.
pub(crate) enum Member<'a, K> {
    /// Recognised from the bytes ahead (its name and colon are consumed).
    Known(K),
    /// Read: its name as written, and unescaped.
    Named(&'a str, Cow<'a, str>),
}

/// Whether `bytes` starts with `prefix`, compared a word at a time without a call: the names of
/// members are short, and calling `memcmp` for each cost more than comparing them.
#[inline]
pub(crate) fn starts_with(bytes: &[u8], prefix: &[u8]) -> bool {
    let n = prefix.len();
    let Some(head) = bytes.get(..n) else {
        return false;
    };
    let word = |s: &[u8], at: usize| s.get(at..).and_then(<[u8]>::first_chunk::<8>).copied();
    let half = |s: &[u8], at: usize| s.get(at..).and_then(<[u8]>::first_chunk::<4>).copied();
    match n {
        0..4 => head.iter().zip(prefix).all(|(a, b)| a == b),
        4..8 => half(head, 0) == half(prefix, 0) && half(head, n - 4) == half(prefix, n - 4),
        _ => {
            let mut at = 0;
            while at + 8 < n {
                if word(head, at) != word(prefix, at) {
                    return false;
                }
                at += 8;
            }
            // The last (possibly overlapping) word.
            word(head, n - 8) == word(prefix, n - 8)
        }
    }
}

/// The position after the spaces from `at` on.
#[inline]
fn spaces(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at) == Some(&b' ') {
        at += 1;
    }
    at
}

/// The position after the string whose opening quote is at `at`, and whether it has escapes
/// (checked for form). Most strings have none: that case is small enough to inline into every
/// caller, and the rest continues out of line (a call's set-up would cost as much as the
/// common case itself).
#[inline(always)]
fn string_end(bytes: &[u8], at: usize) -> Step<(usize, bool)> {
    match quote_or_backslash(bytes, at + 1) {
        Some(end) if bytes[end] == b'"' => Ok((end + 1, false)),
        Some(escape) => escaped_string_end(bytes, escape),
        None => Err(GiveUp),
    }
}

/// [`string_end`] from the string's first backslash, at `at`.
#[inline(never)]
fn escaped_string_end(bytes: &[u8], mut at: usize) -> Step<(usize, bool)> {
    loop {
        at += match bytes.get(at + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => 2,
            Some(b'u') => {
                let hex = bytes.get(at + 2..at + 6).ok_or(GiveUp)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(GiveUp);
                }
                6
            }
            _ => return Err(GiveUp),
        };
        at = quote_or_backslash(bytes, at).ok_or(GiveUp)?;
        if bytes[at] == b'"' {
            return Ok((at + 1, true));
        }
    }
}

/// The position after a member's name and its colon, the name's quote being at `at`.
#[inline]
fn member_name_end(bytes: &[u8], at: usize) -> Step<usize> {
    if bytes.get(at) != Some(&b'"') {
        return Err(GiveUp);
    }
    let at = spaces(bytes, string_end(bytes, at)?.0);
    if bytes.get(at) == Some(&b':') {
        Ok(at + 1)
    } else {
        Err(GiveUp)
    }
}

/// The position after `word` (`true`, `false`, `null`) at `at`.
#[inline]
fn literal_end(bytes: &[u8], at: usize, word: &[u8]) -> Step<usize> {
    if bytes.get(at..).is_some_and(|rest| rest.starts_with(word)) {
        Ok(at + word.len())
    } else {
        Err(GiveUp)
    }
}

/// The position after the number at `at`:
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn number_end(bytes: &[u8], mut at: usize) -> Step<usize> {
    let digits_from = |at: usize| {
        bytes.get(at..).map_or(0, |rest| {
            rest.iter().take_while(|b| b.is_ascii_digit()).count()
        })
    };
    if bytes.get(at) == Some(&b'-') {
        at += 1;
    }
    let int = digits_from(at);
    if int == 0 || (int > 1 && bytes[at] == b'0') {
        return Err(GiveUp);
    }
    at += int;
    if bytes.get(at) == Some(&b'.') {
        let frac = digits_from(at + 1);
        if frac == 0 {
            return Err(GiveUp);
        }
        at += 1 + frac;
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(bytes.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        let exp = digits_from(at);
        if exp == 0 {
            return Err(GiveUp);
        }
        at += exp;
    }
    Ok(at)
}

/// The position of the first `"` or `\\` in `bytes` from `at` on: sixteen bytes at a time
/// where SSE2 is sure to be there (every x86-64), then eight at a time in a word. Most strings
/// in an event are short, and `memchr`'s set-up cost more than the search.
#[inline]
fn quote_or_backslash(bytes: &[u8], at: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    let at = match quote_or_backslash_sse2(bytes, at) {
        Ok(found) => return Some(found),
        Err(rest) => rest,
    };
    quote_or_backslash_words(bytes, at)
}

/// The first `"` or `\\` from `at` on within whole 16-byte blocks (`Ok`), or where the
/// blocks ended without one (`Err`), fewer than 16 bytes before the end.
#[cfg(target_arch = "x86_64")]
#[inline]
fn quote_or_backslash_sse2(bytes: &[u8], mut at: usize) -> Result<usize, usize> {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of the x86-64 baseline, so these instructions always exist; every
    // load reads 16 bytes at `at`, and the loop runs only while `at + 16 <= bytes.len()`.
    unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        while at + 16 <= bytes.len() {
            let block = _mm_loadu_si128(bytes.as_ptr().add(at).cast::<__m128i>());
            let hits = _mm_or_si128(
                _mm_cmpeq_epi8(block, quote),
                _mm_cmpeq_epi8(block, backslash),
            );
            let mask = _mm_movemask_epi8(hits) as u32;
            if mask != 0 {
                return Ok(at + mask.trailing_zeros() as usize);
            }
            at += 16;
        }
    }
    Err(at)
}

/// [`quote_or_backslash`] eight bytes at a time in a word (only near the end of a record,
/// so kept out of line).
#[inline(never)]
fn quote_or_backslash_words(bytes: &[u8], mut at: usize) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    while let Some(chunk) = bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        let word = u64::from_le_bytes(*chunk);
        let quotes = word ^ (ONES * u64::from(b'"'));
        let backslashes = word ^ (ONES * u64::from(b'\\'));
        // A byte of `x` is zero exactly where the high bit of `(x - ONES) & !x` is set at the
        // lowest such byte (higher ones may be false alarms, and are not looked at).
        let hits = ((quotes.wrapping_sub(ONES) & !quotes)
            | (backslashes.wrapping_sub(ONES) & !backslashes))
            & HIGHS;
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    bytes
        .get(at..)?
        .iter()
        .position(|b| *b == b'"' || *b == b'\\')
        .map(|i| at + i)
}

/// Marks a member of a typed struct as read; a second one gives up (serde_json reports a
/// duplicate field there).
pub(crate) fn first(seen: &mut bool) -> Step<()> {
    if std::mem::replace(seen, true) {
        Err(GiveUp)
    } else {
        Ok(())
    }
}

/// The text of a string (between its quotes, escapes checked for form) with its escapes
/// decoded. A `\u` escape of a UTF-16 surrogate must be half of a pair, as serde_json demands.
fn unescape(raw: &str) -> Step<String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let escape = rest.as_bytes().get(at + 1).copied().ok_or(GiveUp)?;
        // Both bytes are ASCII, so the slice stays on a character boundary.
        rest = &rest[at + 2..];
        let c = match escape {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let high = hex4(rest)?;
                rest = &rest[4..];
                match high {
                    0xD800..=0xDBFF => {
                        let low = rest.strip_prefix("\\u").map(hex4).ok_or(GiveUp)??;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(GiveUp);
                        }
                        rest = &rest[6..];
                        char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
                            .ok_or(GiveUp)?
                    }
                    0xDC00..=0xDFFF => return Err(GiveUp),
                    c => char::from_u32(c).ok_or(GiveUp)?,
                }
            }
            _ => return Err(GiveUp),
        };
        out.push(c);
    }
    out.push_str(rest);
    Ok(out)
}

fn hex4(s: &str) -> Step<u32> {
    let digits = s.get(..4).ok_or(GiveUp)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(GiveUp);
    }
    u32::from_str_radix(digits, 16).map_err(|_| GiveUp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IgnoredAny;

    /// Whether serde_json accepts `text` as one value.
    fn serde_accepts(text: &str) -> bool {
        serde_json::from_str::<IgnoredAny>(text).is_ok()
    }

    fn skips(text: &str) -> bool {
        let mut r = JsonReader::new(text);
        r.skip_value().is_ok() && r.end().is_ok()
    }

    #[test]
    fn skipping_accepts_only_what_serde_json_accepts() {
        let cases = [
            r#"{"a":[1,-2.5e+3,0,true,false,null,"x\"y\\z\u00e9"],"b":{}}"#,
            r#"[]"#,
            r#"{ "a" : [ 1 , 2 ] , "b" : { "c" : null } }"#,
            r#"[{"a":[1,{"b":2}]},3,[[]],{}]"#,
            r#"{"a":{"b":[]},"c":{},"d":[{}]}"#,
            r#""\ud800""#,
            r#"-0"#,
            r#"0.5E-7"#,
            r#"{"a":1,}"#,
            r#"[1,]"#,
            r#"[1 2]"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            r#"01"#,
            r#"1."#,
            r#".5"#,
            r#"1e"#,
            r#"1e+"#,
            r#"-"#,
            r#"+1"#,
            r#"tru"#,
            r#"nul"#,
            r#"truex"#,
            r#""\x""#,
            r#""\u12G4""#,
            r#""\u12""#,
            r#""unterminated"#,
            r#"{"a":1"#,
            r#"[[[]]"#,
            r#"{"a":1}}"#,
            r#"NaN"#,
            r#"'a'"#,
            r#"{"a":[}"#,
            r#"[{"a"}]"#,
            r#"{"a":1 "b":2}"#,
            r#"[1,,2]"#,
            r#"{,}"#,
            r#"[}"#,
            r#"{"a":1]"#,
            "",
            " ",
        ];
        for text in cases {
            if skips(text) {
                assert!(
                    serde_accepts(text),
                    "accepted what serde_json rejects: {text}"
                );
            }
        }
        // And it does accept the well-formed ones.
        for text in &cases[..8] {
            assert!(skips(text), "{text}");
        }
    }

    #[test]
    fn every_cut_of_a_record_is_rejected_or_agrees_with_serde_json() {
        let record = r#"{"kind":"Event","user":{"username":"a\"b","groups":["x","y"]},"n":[1.5,{"k":null}],"s":"\ud83d\ude00"}"#;
        assert!(skips(record));
        for cut in 0..record.len() {
            if record.is_char_boundary(cut) && skips(&record[..cut]) {
                assert!(serde_accepts(&record[..cut]), "{}", &record[..cut]);
            }
        }
    }

    #[test]
    fn nesting_past_the_limit_gives_up() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(!skips(&deep));
        let fine = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(skips(&fine));
    }

    #[test]
    fn strings_decode_as_serde_json_decodes_them() {
        for literal in [
            r#""""#,
            r#""plain""#,
            r#""a\"b\\c\/d\be\ff\ng\rh\ti""#,
            r#""caf\u00e9 \u4e2d \ud83d\ude00""#,
            r#""raw: é 中 😀""#,
        ] {
            let expected: String = serde_json::from_str(literal).expect("valid");
            let got = JsonReader::new(literal).string().expect("read");
            assert_eq!(got, expected, "{literal}");
            assert_eq!(matches!(got, Cow::Borrowed(_)), !literal.contains('\\'));
        }
        // serde_json refuses these as text; the reader gives up on them.
        for literal in [
            r#""\ud83d""#,
            r#""\ude00""#,
            r#""\ud83d\u0041""#,
            r#""\ud83dx""#,
        ] {
            assert!(
                serde_json::from_str::<String>(literal).is_err(),
                "{literal}"
            );
            assert_eq!(JsonReader::new(literal).string(), Err(GiveUp), "{literal}");
        }
    }

    #[test]
    fn counts_are_plain_integers_only() {
        let count = |t: &str| JsonReader::new(t).opt_count();
        assert_eq!(count("200"), Ok(Some(200)));
        assert_eq!(count("0"), Ok(Some(0)));
        assert_eq!(count("null"), Ok(None));
        assert_eq!(count("2147483647"), Ok(Some(i32::MAX)));
        for odd in [
            "2147483648",
            "-1",
            "200.0",
            "2e2",
            "020",
            "\"200\"",
            "99999999999",
        ] {
            assert_eq!(count(odd), Err(GiveUp), "{odd}");
        }
    }

    #[test]
    fn only_printable_ascii_is_plain_whatever_the_length_and_where_another_byte_is() {
        let printable: String = (0x20u8..0x80).map(char::from).collect();
        assert_eq!(
            plain(printable.as_bytes()).map(Plain::text),
            Some(printable.as_str())
        );
        for len in [0, 1, 15, 16, 63, 64, 65, 130] {
            let text = "a".repeat(len);
            assert_eq!(plain(text.as_bytes()).map(Plain::text), Some(text.as_str()));
            for at in 0..len {
                for odd in [0x00, b'\t', 0x1F, 0x80, 0xC3, 0xFF] {
                    let mut bytes = text.clone().into_bytes();
                    bytes[at] = odd;
                    assert_eq!(plain(&bytes), None, "{odd:#x} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn control_bytes_are_found_anywhere() {
        assert!(!has_control_bytes(&"x".repeat(200)));
        for at in [0, 63, 64, 199] {
            let mut text = "x".repeat(200).into_bytes();
            text[at] = b'\t';
            let text = String::from_utf8(text).expect("ascii");
            assert!(has_control_bytes(&text), "at {at}");
        }
    }

    #[test]
    fn objects_give_names_as_written_and_unescaped() {
        let mut seen = Vec::new();
        let mut r = JsonReader::new(r#"{"a":1,"b\u0063":"x"}"#);
        let read = r.object(|r, raw, name| {
            seen.push((raw.to_string(), name.into_owned()));
            r.skip_value()
        });
        assert_eq!(read, Ok(true));
        assert_eq!(
            seen,
            vec![
                ("a".to_string(), "a".to_string()),
                ("b\\u0063".to_string(), "bc".to_string())
            ]
        );
        assert_eq!(JsonReader::new("null").object(|_, _, _| Ok(())), Ok(false));
    }

    #[test]
    fn starts_with_agrees_with_the_slice_method_at_every_length() {
        let text = b"\"requestReceivedTimestamp\":\"2024\"";
        for n in 0..=text.len() {
            let prefix = &text[..n];
            assert!(starts_with(text, prefix), "{n}");
            assert!(!starts_with(&text[..n.saturating_sub(1)], prefix) || n == 0);
            for flip in 0..n {
                let mut other = text.to_vec();
                other[flip] ^= 0x20;
                assert_eq!(
                    starts_with(&other, prefix),
                    other.starts_with(prefix),
                    "{n} {flip}"
                );
            }
        }
    }

    #[test]
    fn quotes_and_backslashes_are_found_at_any_offset() {
        for len in 0..40 {
            for at in 0..len {
                for target in [b'"', b'\\'] {
                    let mut text = vec![b'a'; len];
                    // Bytes that differ from the targets by one bit, or are above 0x80.
                    for (i, b) in text.iter_mut().enumerate() {
                        *b = [b'#', b']', b'!', 0xC3, b'a'][i % 5];
                    }
                    text[at] = target;
                    for from in 0..=at {
                        assert_eq!(
                            quote_or_backslash(&text, from),
                            Some(at),
                            "{len} {at} {from}"
                        );
                    }
                    assert_eq!(quote_or_backslash(&text, at + 1), None);
                }
            }
            let plain = vec![b'x'; len];
            assert_eq!(quote_or_backslash(&plain, 0), None);
        }
        // A later target after the first is not reported first.
        assert_eq!(quote_or_backslash(b"abc\\\"defghij\"", 0), Some(3));
        // The word scanner alone (the whole search where SSE2 is not there, the tail where it
        // is) finds the same.
        for len in 0..40 {
            for at in 0..len {
                let mut text = vec![b'#'; len];
                text[at] = b'"';
                assert_eq!(quote_or_backslash_words(&text, 0), Some(at));
                assert_eq!(quote_or_backslash_words(&text, at + 1), None);
            }
        }
    }

    #[test]
    fn a_member_is_read_once() {
        let mut seen = false;
        assert_eq!(first(&mut seen), Ok(()));
        assert_eq!(first(&mut seen), Err(GiveUp));
    }
}
