//! A faster reader of one xlsx/xlsm worksheet, for [`Layout::Unpadded`]
//! (validation). The sheet part is inflated and cut at `<row` starts
//! (outside comments, CDATA and processing instructions) into blocks of
//! whole rows; with `n >= 2` threads an inflater thread cuts, `n` threads
//! parse, and the reader thread puts their cells back in block order; with
//! one thread all of it runs inline on the reader thread. Either way the
//! cells go, in document order, to the same assembler (`Unpadded`) as
//! calamine's cells, through the same guards (cell positions, expanded
//! text, row bytes, sparse sheets).
//!
//! A block is read by a plain scanner for the shapes writers use
//! (`<c r s t><v>..</v></c>`, `<is><t>..</t></is>`, predefined entities);
//! any other cell by quick-xml configured as calamine configures it,
//! mirroring calamine 0.38's `XlsxCellReader::next_cell` and `read_value`
//! (shared strings and rich text, `xml:space`, `_xHHHH_` escapes, styles
//! judged date-like as calamine judges them); values become text through
//! [`cells::data_ref_text`] on a calamine `DataRef`, so the records are
//! calamine's. What it does not read surely as calamine does (an XML
//! error, an unusual number, a row it cannot cut out, a workbook part it
//! cannot find...) is never guessed: the cells before it were emitted
//! exactly as calamine emits them, so calamine's own reader takes over from
//! that cell ("resume at cell `k`": it skips the first `k` cells of the
//! sheet and feeds the rest to the same assembler). Errors are then
//! calamine's own, after the same records.
//!
//! Memory stays flat: at most [`in_flight`] blocks (of about
//! [`BLOCK_BYTES`] each) exist at once, from the inflater to the
//! reassembly.
//!
//! [`Layout::Unpadded`]: super::Layout::Unpadded

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, Read, Seek};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver};
use std::sync::{Arc, Mutex};

use calamine::{CellErrorType, DataRef, ExcelDateTime, ExcelDateTimeType};
use ledgerline_core::CellKind;
use quick_xml::escape::resolve_xml_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader as XmlReader;

use super::{cells, guard, Flow, Job};

/// The bytes of sheet XML read into a block before it is cut at its last
/// `<row` start (the rest carried into the next block).
pub(crate) const BLOCK_BYTES: usize = 1 << 20;

/// A block that cannot be cut (no `<row` start found) may grow to this
/// size; past it calamine takes over (a single row this large, or a sheet
/// whose rows carry a namespace prefix).
const MAX_CARRY_BYTES: usize = 64 << 20;

/// The header of a sheet part (before `<sheetData>`) may be this large.
const MAX_HEADER_BYTES: usize = 16 << 20;

/// Blocks in existence at once (queued, being parsed, parsed and waiting
/// for their turn) for `threads` workers.
pub(crate) fn in_flight(threads: usize) -> usize {
    threads * 2 + 2
}

/// What the sheet's values need: shared strings, which cell formats are
/// dates, and where the sheet lives.
pub(crate) struct Book {
    path: String,
    strings: Vec<String>,
    /// Per `cellXfs` entry: whether calamine reads a number in that format
    /// as a date (`CellFormat::DateTime` or `TimeDelta`).
    dates: Vec<bool>,
    is_1904: bool,
}

/// How a cell's value reads, before it becomes text.
enum Val<'a> {
    Empty,
    Str(Cow<'a, str>),
    Shared(usize),
    Float(f64, bool),
    /// A number (not a date) whose text [`short_decimal`] gives.
    Plain(&'a str),
    Bool(bool),
    Error(CellErrorType),
    Iso(String),
}

/// Something this reader does not handle exactly as calamine: calamine
/// takes over.
#[derive(Debug)]
struct Bad;

type R<T> = Result<T, Bad>;

/// One `<c>` of a block.
struct PCell {
    row: u32,
    col: u32,
    /// `row` counts from the block's first row, whose number is only known
    /// from the blocks before (rows without `r`).
    rel: bool,
    kind: Option<CellKind>,
    /// End of its text in [`Parsed::text`] (it starts where the previous
    /// cell's ends).
    end: u32,
    /// `cells::value_len` of its value, for the expansion bound.
    vlen: u32,
    /// The shared string that is its text ([`NOT_SHARED`] for none): a
    /// block's text stays about the size of its XML, however often it names
    /// a long shared string; the reassembly copies it cell by cell.
    shared: u32,
}

/// [`PCell::shared`] of a cell whose text is in the block.
const NOT_SHARED: u32 = u32::MAX;

/// calamine's position state while reading rows: `row_index` (relative to
/// the block's first row unless `known`), `col_index`.
struct Pos {
    row: u32,
    known: bool,
    col: u32,
}

/// Whether `rest` starts with the tag `name` (`<c`, `<row`) followed by a
/// delimiter.
fn tag_is(rest: &[u8], name: &[u8]) -> bool {
    rest.starts_with(name)
        && matches!(
            rest.get(name.len()),
            Some(b' ' | b'\t' | b'\r' | b'\n' | b'>' | b'/')
        )
}

/// The start tag at `i` whose name is `name_len` bytes (after `<`): its raw
/// attributes (as quick-xml's `attributes_raw`), the index after its `>`,
/// whether it is empty (`/>`). `None` when it does not end in `text`.
fn start_tag(text: &str, i: usize, name_len: usize) -> Option<(&str, usize, bool)> {
    let b = text.as_bytes();
    let from = i + name_len;
    let mut k = from;
    let mut quote = 0u8;
    while k < b.len() {
        let c = b[k];
        if quote != 0 {
            if c == quote {
                quote = 0;
            }
        } else if c == b'"' || c == b'\'' {
            quote = c;
        } else if c == b'>' {
            break;
        }
        k += 1;
    }
    if k >= b.len() {
        return None;
    }
    let empty = k > from && b[k - 1] == b'/';
    let attrs = &text[from..if empty { k - 1 } else { k }];
    Some((attrs, k + 1, empty))
}

/// [`cell_attrs`] on raw attributes.
fn cell_attrs_str(raw: &str) -> R<(Option<&str>, Option<&str>, Option<&str>)> {
    let (mut r, mut s, mut t) = (None, None, None);
    let mut found = 0u8;
    for item in raw_attrs(raw) {
        let (k, v) = item?;
        match k {
            "r" => {
                r = Some(v);
                found += 1;
            }
            "s" => {
                s = Some(v);
                found += 1;
            }
            "t" => {
                t = Some(v);
                found += 1;
            }
            _ => {}
        }
        if found == 3 {
            break;
        }
    }
    Ok((r, s, t))
}

/// What a worker makes of one block.
#[derive(Default)]
struct Parsed {
    cells: Vec<PCell>,
    text: String,
    /// The row index after the block (calamine's `row_index`), relative to
    /// the block's start unless `end_known`.
    end_row: u32,
    end_known: bool,
    /// calamine's `col_index` after the block (0 unless a row is left open).
    end_col: u32,
    /// `</sheetData>` was reached: nothing after counts.
    done: bool,
    /// calamine must take over at this block's first cell.
    bad: bool,
    /// The parser panicked.
    panicked: bool,
}

/// A result, in block order.
enum Res {
    Block(Parsed),
    /// calamine takes over at this block (a zip error, a block that could
    /// not be cut).
    Resume,
    /// A refusal of the inflater (the sheet part inflates past its limit).
    Refused(ledgerline_core::FileError),
}

/// Configures a reader exactly as calamine's `xml_reader` does.
fn configure<T>(r: &mut XmlReader<T>) {
    let config = r.config_mut();
    config.check_end_names = false;
    config.trim_text(false);
    config.check_comments = false;
    config.expand_empty_elements = true;
}

/// calamine's `RawAttrIter`: `(key, value)` pairs of a start tag, values raw.
fn raw_attrs(raw: &str) -> impl Iterator<Item = R<(&str, &str)>> {
    let bytes = raw.as_bytes();
    let len = bytes.len();
    let mut pos = 0;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        while pos < len && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if pos >= len {
            return None;
        }
        let key_start = pos;
        while pos < len && bytes[pos] != b'=' {
            pos += 1;
        }
        if pos >= len {
            failed = true;
            return Some(Err(Bad));
        }
        let key = raw[key_start..pos].trim_ascii_end();
        pos += 1;
        while pos < len && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        let quote = bytes.get(pos).copied();
        if quote != Some(b'"') && quote != Some(b'\'') {
            failed = true;
            return Some(Err(Bad));
        }
        let quote = quote.unwrap_or(b'"');
        pos += 1;
        let val_start = pos;
        while pos < len && bytes[pos] != quote {
            pos += 1;
        }
        let val = &raw[val_start..pos];
        if pos < len {
            pos += 1;
        }
        Some(Ok((key, val)))
    })
}

/// calamine's `raw_attr`: the first attribute named `name`.
fn raw_attr<'e>(e: &'e BytesStart<'_>, name: &str) -> R<Option<&'e str>> {
    for item in raw_attrs(e.attributes_raw()) {
        let (k, v) = item?;
        if k == name {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// calamine's `get_attrs!(e, "r", "s", "t")`: the last of each, with its
/// early exit once three matches were seen.
fn cell_attrs<'e>(e: &'e BytesStart<'_>) -> R<(Option<&'e str>, Option<&'e str>, Option<&'e str>)> {
    cell_attrs_str(e.attributes_raw())
}

/// calamine's `get_row_and_optional_column`, refusing (rather than
/// wrapping) overflow.
fn row_and_col(range: &str) -> R<(u32, Option<u32>)> {
    let b = range.as_bytes();
    let mut i = 0;
    let mut col: u32 = 0;
    let mut row: u32 = 0;
    while i < b.len() {
        let c = b[i];
        let d = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'0'..=b'9' => {
                row = u32::from(c - b'0');
                i += 1;
                break;
            }
            _ => return Err(Bad),
        };
        col = col
            .checked_mul(26)
            .and_then(|x| x.checked_add(u32::from(d) + 1))
            .ok_or(Bad)?;
        i += 1;
    }
    while i < b.len() {
        match b[i] {
            c @ b'0'..=b'9' => {
                row = row
                    .checked_mul(10)
                    .and_then(|x| x.checked_add(u32::from(c - b'0')))
                    .ok_or(Bad)?;
            }
            _ => return Err(Bad),
        }
        i += 1;
    }
    let row = row.checked_sub(1).ok_or(Bad)?;
    Ok((row, col.checked_sub(1)))
}

/// A plain decimal index (what calamine's `atoi_simd` surely parses the
/// same way); anything else is not guessed.
fn index(s: &str) -> R<usize> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Bad);
    }
    s.parse().map_err(|_| Bad)
}

/// A number in the plain form `-?D+(.D+)?([eE][+-]?D{1,3})?`, which
/// calamine's `fast_float2` and Rust's parser both round correctly, finite
/// and not underflowing; other forms are not guessed.
fn plain_number(s: &str) -> R<f64> {
    let b = s.as_bytes();
    let digits = |mut i: usize| {
        let from = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        (i, i - from)
    };
    let mut i = usize::from(b.first() == Some(&b'-'));
    let (next, int) = digits(i);
    if int == 0 {
        return Err(Bad);
    }
    i = next;
    if i < b.len() && b[i] == b'.' {
        let (next, frac) = digits(i + 1);
        if frac == 0 {
            return Err(Bad);
        }
        i = next;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let (next, exp) = digits(i);
        if exp == 0 || exp > 3 {
            return Err(Bad);
        }
        i = next;
    }
    if i != b.len() {
        return Err(Bad);
    }
    let x = s.parse::<f64>().map_err(|_| Bad)?;
    // Overflow to infinity or underflow to zero: left to calamine.
    let zero_digits = b
        .iter()
        .take_while(|c| **c != b'e' && **c != b'E')
        .all(|c| !matches!(c, b'1'..=b'9'));
    if !x.is_finite() || (x == 0.0 && !zero_digits) {
        return Err(Bad);
    }
    Ok(x)
}

/// The text [`cells::number_text`] gives a number written as a short plain
/// decimal `-?D+(.D+)?` of at most 15 significant digits, straight from
/// its digits: such a decimal survives the round trip through the nearest
/// double and back to 15 significant digits (15 is `f64`'s `DIGITS`), so
/// the text is the decimal itself, without leading zeros of its integer
/// part nor trailing zeros of its fraction, `-0` as `0`. Returns `false`
/// (writing nothing) for any other form.
fn short_decimal(v: &str, out: &mut String) -> bool {
    match short_parts(v) {
        Some(parts) => {
            write_short(parts, out);
            true
        }
        None => false,
    }
}

/// The sign, integer digits (no leading zeros) and fraction digits (no
/// trailing zeros) of a short plain decimal ([`short_decimal`]).
fn short_parts(v: &str) -> Option<(bool, &[u8], &[u8])> {
    let b = v.as_bytes();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    let (int, frac) = match memchr::memchr(b'.', digits) {
        Some(i) => (&digits[..i], &digits[i + 1..]),
        None => (digits, &[][..]),
    };
    if int.is_empty()
        || int.len() > 20
        || frac.len() > 20
        || (memchr::memchr(b'.', digits).is_some() && frac.is_empty())
        || !int.iter().all(u8::is_ascii_digit)
        || !frac.iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    let int = &int[int.iter().position(|&d| d != b'0').unwrap_or(int.len())..];
    let frac = &frac[..frac.iter().rposition(|&d| d != b'0').map_or(0, |i| i + 1)];
    // Significant digits: from the first non-zero digit to the last.
    let significant = if int.is_empty() {
        frac.len() - frac.iter().position(|&d| d != b'0').unwrap_or(frac.len())
    } else {
        int.len() + frac.len()
    };
    if significant > 15 {
        return None;
    }
    Some((neg, int, frac))
}

fn write_short((neg, int, frac): (bool, &[u8], &[u8]), out: &mut String) {
    if int.is_empty() && frac.is_empty() {
        out.push('0');
        return;
    }
    if neg {
        out.push('-');
    }
    if int.is_empty() {
        out.push('0');
    } else {
        // ASCII digits.
        out.push_str(std::str::from_utf8(int).unwrap_or("0"));
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(std::str::from_utf8(frac).unwrap_or("0"));
    }
}

/// Text with the five predefined entities (`&amp;` ...) decoded, as
/// quick-xml's entity events and calamine's `unescape_entity_to_buffer`
/// decode them; `None` for any other `&` (character references included).
fn named_entities(v: &str) -> Option<String> {
    let mut out = String::with_capacity(v.len());
    let mut rest = v;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after.find(';')?;
        let name = &after[..end];
        if name.starts_with('#') {
            return None;
        }
        out.push_str(resolve_xml_entity(name)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// calamine's `unescape_entity_to_buffer`.
fn push_entity(entity: &quick_xml::events::BytesRef<'_>, out: &mut String) -> R<()> {
    if let Some(s) = resolve_xml_entity(entity) {
        out.push_str(s);
        return Ok(());
    }
    match entity.resolve_char_ref() {
        Ok(Some(c)) => {
            out.push(c);
            Ok(())
        }
        _ => Err(Bad),
    }
}

/// The UTF-16 code unit of an Excel escape `_xHHHH_` at byte `i` of `b`.
fn escape_at(b: &[u8], i: usize) -> Option<u16> {
    let e = b.get(i..i + 7)?;
    if e[0] != b'_' || e[1] != b'x' || e[6] != b'_' || !e[2..6].iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u16::from_str_radix(std::str::from_utf8(&e[2..6]).ok()?, 16).ok()
}

/// The first Excel escape at or after byte `from`: its index and unit.
fn next_escape(b: &[u8], mut from: usize) -> Option<(usize, u16)> {
    while let Some(o) = memchr::memchr(b'_', &b[from..]) {
        let at = from + o;
        if let Some(unit) = escape_at(b, at) {
            return Some((at, unit));
        }
        from = at + 1;
    }
    None
}

/// calamine's `unescape_xml`: Excel's `_xHHHH_` escapes of UTF-16 code
/// units decoded (a surrogate pair as one character, a lone surrogate or an
/// invalid unit as U+FFFD).
fn excel_unescape(s: &str) -> Cow<'_, str> {
    let b = s.as_bytes();
    let Some((mut at, mut unit)) = next_escape(b, 0) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    loop {
        out.push_str(&s[copied..at]);
        let mut next = at + 7;
        let c = match unit {
            0xD800..=0xDBFF => match escape_at(b, next) {
                Some(low @ 0xDC00..=0xDFFF) => {
                    next += 7;
                    let cp =
                        0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                    char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER)
                }
                _ => char::REPLACEMENT_CHARACTER,
            },
            0xDC00..=0xDFFF => char::REPLACEMENT_CHARACTER,
            _ => char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER),
        };
        out.push(c);
        copied = next;
        match next_escape(b, next) {
            Some(found) => (at, unit) = found,
            None => break,
        }
    }
    out.push_str(&s[copied..]);
    Cow::Owned(out)
}

/// calamine's `read_string_with_bufs` (a shared string's `<si>` or a
/// cell's `<is>`): plain or rich text, phonetic runs skipped, `<t>` trimmed
/// of ASCII whitespace unless `xml:space="preserve"`.
fn read_string<'i, T: XmlSource<'i>>(xml: &mut T, closing: &str) -> R<String> {
    let mut rich: Option<String> = None;
    let mut phonetic = false;
    loop {
        match xml.next()? {
            Event::Start(e) if e.local_name().as_ref() == "r" && rich.is_none() => {
                rich = Some(String::new());
            }
            Event::Start(e) if e.local_name().as_ref() == "rPh" => phonetic = true,
            Event::End(e) if e.name().as_ref() == closing => {
                return Ok(rich.unwrap_or_default());
            }
            Event::End(e) if e.local_name().as_ref() == "rPh" => phonetic = false,
            Event::Start(e) if e.local_name().as_ref() == "t" && !phonetic => {
                let preserve = matches!(raw_attr(&e, "xml:space")?, Some("preserve"));
                let qname = e.name();
                let name: &str = qname.as_ref();
                let mut value = String::new();
                loop {
                    match xml.next()? {
                        Event::Text(t) => value.push_str(&t.xml10_content()),
                        Event::CData(t) => value.push_str(&t.xml10_content()),
                        Event::GeneralRef(r) => push_entity(&r, &mut value)?,
                        Event::End(end) if end.name().as_ref() == name => break,
                        Event::Eof => return Err(Bad),
                        _ => {}
                    }
                }
                let value = if preserve {
                    excel_unescape(&value).into_owned()
                } else {
                    excel_unescape(value.trim_matches([' ', '\t', '\r', '\n'])).into_owned()
                };
                match &mut rich {
                    Some(s) => s.push_str(&value),
                    None => rich = Some(value),
                }
            }
            Event::Eof => return Err(Bad),
            _ => {}
        }
    }
}

/// Events from a slice or from a zip part alike.
trait XmlSource<'i> {
    fn next(&mut self) -> R<Event<'i>>;
    fn skip_to_end(&mut self, name: &str) -> R<()>;
}

impl<'i> XmlSource<'i> for XmlReader<&'i [u8]> {
    fn next(&mut self) -> R<Event<'i>> {
        self.read_event().map_err(|_| Bad)
    }
    fn skip_to_end(&mut self, name: &str) -> R<()> {
        self.read_to_end(quick_xml::name::QName(name))
            .map(|_| ())
            .map_err(|_| Bad)
    }
}

/// A buffered reader of a zip part (events owned).
struct Buffered<B: std::io::BufRead> {
    xml: XmlReader<B>,
    buf: Vec<u8>,
}

impl<B: std::io::BufRead> XmlSource<'static> for Buffered<B> {
    fn next(&mut self) -> R<Event<'static>> {
        self.buf.clear();
        self.xml
            .read_event_into(&mut self.buf)
            .map(|e| e.into_owned())
            .map_err(|_| Bad)
    }
    fn skip_to_end(&mut self, name: &str) -> R<()> {
        self.buf.clear();
        self.xml
            .read_to_end_into(quick_xml::name::QName(name), &mut self.buf)
            .map(|_| ())
            .map_err(|_| Bad)
    }
}

/// The zip path cache of calamine (`build_zip_path_cache`, `cached_zip_path`).
fn zip_names<Z: Read + Seek>(zip: &zip::ZipArchive<Z>) -> HashMap<String, String> {
    zip.file_names()
        .filter_map(Result::ok)
        .map(|n| (n.replace('\\', "/").to_ascii_lowercase(), n.to_string()))
        .collect()
}

fn part<'z, Z: Read + Seek>(
    zip: &'z mut zip::ZipArchive<Z>,
    names: &HashMap<String, String>,
    path: &str,
) -> R<Option<Buffered<BufReader<zip::read::ZipFile<'z, Z>>>>> {
    let name = names
        .get(&path.to_ascii_lowercase())
        .map(String::as_str)
        .unwrap_or(path);
    match zip.by_name(name) {
        Ok(f) => {
            let mut xml = XmlReader::from_reader(BufReader::new(f));
            configure(&mut xml);
            Ok(Some(Buffered {
                xml,
                buf: Vec::new(),
            }))
        }
        Err(zip::result::ZipError::FileNotFound) => Ok(None),
        Err(_) => Err(Bad),
    }
}

/// calamine's `builtin_format_by_id`: whether a built-in format is a date
/// or a time.
fn builtin_is_date(id: &str) -> bool {
    matches!(
        id,
        "14" | "15"
            | "16"
            | "17"
            | "18"
            | "19"
            | "20"
            | "21"
            | "22"
            | "45"
            | "47"
            | "27"
            | "28"
            | "29"
            | "30"
            | "31"
            | "32"
            | "33"
            | "34"
            | "35"
            | "36"
            | "50"
            | "51"
            | "52"
            | "53"
            | "54"
            | "55"
            | "56"
            | "57"
            | "58"
            | "46"
    )
}

/// calamine's `detect_custom_number_format`: whether a custom format is a
/// date or a time (`DateTime` or `TimeDelta`).
fn custom_is_date(format: &str) -> bool {
    let mut escaped = false;
    let mut is_quote = false;
    let mut brackets = 0u8;
    let mut prev = ' ';
    let mut hms = false;
    let mut ap = false;
    for s in format.chars() {
        match (s, escaped, is_quote, ap, brackets) {
            (_, true, ..) => escaped = false,
            ('_' | '\\' | '*', ..) => escaped = true,
            ('"', _, true, _, _) => is_quote = false,
            (_, _, true, _, _) => (),
            ('"', _, _, _, _) => is_quote = true,
            (';', ..) => return false,
            ('[', ..) => brackets = brackets.wrapping_add(1),
            (']', .., 1) if hms => return true,
            (']', ..) => brackets = brackets.saturating_sub(1),
            ('a' | 'A', _, _, false, 0) => ap = true,
            ('p' | 'm' | '/' | 'P' | 'M', _, _, true, 0) => return true,
            ('d' | 'm' | 'h' | 'y' | 's' | 'D' | 'M' | 'H' | 'Y' | 'S', _, _, false, 0) => {
                return true
            }
            _ => {
                if hms && s.eq_ignore_ascii_case(&prev) {
                } else {
                    hms = prev == '[' && matches!(s, 'm' | 'h' | 's' | 'M' | 'H' | 'S');
                }
            }
        }
        prev = s;
    }
    false
}

/// The relationships of a rels part: id → (target, type).
fn relationships<'i, T: XmlSource<'i>>(xml: &mut T) -> R<HashMap<String, (String, String)>> {
    let mut rels = HashMap::new();
    loop {
        match xml.next()? {
            Event::Start(e) if e.local_name().as_ref() == "Relationship" => {
                let (mut id, mut typ, mut target) = (None, None, None);
                for item in raw_attrs(e.attributes_raw()) {
                    let (k, v) = item?;
                    match k {
                        "Id" => id = Some(v.to_string()),
                        "Type" => typ = Some(v.to_string()),
                        "Target" => target = Some(v.to_string()),
                        _ => {}
                    }
                }
                if let Some(id) = id {
                    rels.insert(id, (target.unwrap_or_default(), typ.unwrap_or_default()));
                }
            }
            Event::End(e) if e.local_name().as_ref() == "Relationships" => return Ok(rels),
            Event::Eof => return Err(Bad),
            _ => {}
        }
    }
}

fn decode_attr(v: &str) -> R<String> {
    quick_xml::escape::unescape(v)
        .map(Cow::into_owned)
        .map_err(|_| Bad)
}

impl Book {
    /// Loads what the sheet named `sheet` needs, as calamine's `Xlsx::new`
    /// does; `Err` when anything is not as expected (calamine then reads
    /// the sheet).
    fn load<Z: Read + Seek>(zip: &mut zip::ZipArchive<Z>, sheet: &str, is_1904: bool) -> R<Book> {
        let names = zip_names(zip);
        // The package relationships: where the workbook part is.
        let rels = {
            let mut xml = part(zip, &names, "_rels/.rels")?.ok_or(Bad)?;
            relationships(&mut xml)?
        };
        let mut targets: Vec<&(String, String)> = rels
            .values()
            .filter(|(_, t)| t.ends_with("/relationships/officeDocument"))
            .collect();
        // calamine keeps the last one in document order; a map loses that
        // order, so more than one is left to calamine.
        if targets.len() != 1 {
            return Err(Bad);
        }
        let target = decode_attr(&targets.pop().ok_or(Bad)?.0)?;
        let (dir, name) = match target.rfind('/') {
            Some(i) => target.split_at(i + 1),
            None => ("", target.as_str()),
        };
        let xl_path = dir.strip_prefix('/').unwrap_or(dir).to_string();
        let workbook_name = if name.is_empty() {
            "workbook.xml".to_string()
        } else {
            name.to_string()
        };
        // Shared strings.
        let mut strings = Vec::new();
        if let Some(mut xml) = part(zip, &names, &format!("{xl_path}sharedStrings.xml"))? {
            loop {
                match xml.next()? {
                    Event::Start(e) if e.local_name().as_ref() == "sst" => break,
                    Event::Eof => return Err(Bad),
                    _ => {}
                }
            }
            loop {
                match xml.next()? {
                    Event::Start(e) if e.local_name().as_ref() == "si" => {
                        let name = e.name().as_ref().to_string();
                        strings.push(read_string(&mut xml, &name)?);
                    }
                    Event::End(e) if e.local_name().as_ref() == "sst" => break,
                    Event::Eof => return Err(Bad),
                    _ => {}
                }
            }
        }
        // Styles: which cell formats are dates.
        let mut dates = Vec::new();
        if let Some(mut xml) = part(zip, &names, &format!("{xl_path}styles.xml"))? {
            let mut formats: HashMap<String, String> = HashMap::new();
            loop {
                match xml.next()? {
                    Event::Start(e) if e.local_name().as_ref() == "numFmts" => loop {
                        match xml.next()? {
                            Event::Start(e) if e.local_name().as_ref() == "numFmt" => {
                                let (mut id, mut code) = (None, None);
                                let mut found = 0;
                                for item in raw_attrs(e.attributes_raw()) {
                                    let (k, v) = item?;
                                    match k {
                                        "numFmtId" => {
                                            id = Some(v.to_string());
                                            found += 1;
                                        }
                                        "formatCode" => {
                                            code = Some(v.to_string());
                                            found += 1;
                                        }
                                        _ => {}
                                    }
                                    if found == 2 {
                                        break;
                                    }
                                }
                                if let (Some(id), Some(code)) = (id, code) {
                                    formats.insert(id, decode_attr(&code)?);
                                }
                            }
                            Event::End(e) if e.local_name().as_ref() == "numFmts" => break,
                            Event::Eof => return Err(Bad),
                            _ => {}
                        }
                    },
                    Event::Start(e) if e.local_name().as_ref() == "cellXfs" => loop {
                        match xml.next()? {
                            Event::Start(e) if e.local_name().as_ref() == "xf" => {
                                let date = match raw_attr(&e, "numFmtId")? {
                                    None => false,
                                    Some(v) => match formats.get(v) {
                                        Some(f) => custom_is_date(f),
                                        None => builtin_is_date(v),
                                    },
                                };
                                dates.push(date);
                                let name = e.name().as_ref().to_string();
                                xml.skip_to_end(&name)?;
                            }
                            Event::End(e) if e.local_name().as_ref() == "cellXfs" => break,
                            Event::Eof => return Err(Bad),
                            _ => {}
                        }
                    },
                    Event::End(e) if e.local_name().as_ref() == "styleSheet" => break,
                    Event::Eof => return Err(Bad),
                    _ => {}
                }
            }
        }
        // The workbook: the sheet's relationship id, then its part.
        let wb_rels = {
            let path = format!("{xl_path}_rels/{workbook_name}.rels");
            let mut xml = part(zip, &names, &path)?.ok_or(Bad)?;
            relationships(&mut xml)?
        };
        let mut found = None;
        let mut xml = part(zip, &names, &format!("{xl_path}{workbook_name}"))?.ok_or(Bad)?;
        loop {
            match xml.next()? {
                Event::Start(e) if e.local_name().as_ref() == "sheet" => {
                    let mut name = String::new();
                    let mut rel_id = String::new();
                    for item in raw_attrs(e.attributes_raw()) {
                        let (k, v) = item?;
                        if k == "name" {
                            name = decode_attr(v)?;
                        } else if k == "id" || k.ends_with(":id") {
                            rel_id = v.to_string();
                        }
                    }
                    if name == sheet {
                        // The first of that name, as calamine finds it.
                        if found.is_none() {
                            let (target, _) = wb_rels.get(&rel_id).ok_or(Bad)?;
                            found = Some(match target.strip_prefix('/') {
                                Some(abs) => abs.to_string(),
                                None => format!("{xl_path}{target}"),
                            });
                        }
                    }
                }
                Event::End(e) if e.local_name().as_ref() == "workbook" => break,
                Event::Eof => return Err(Bad),
                _ => {}
            }
        }
        Ok(Book {
            path: found.ok_or(Bad)?,
            strings,
            dates,
            is_1904,
        })
    }

    /// calamine's `read_v` for the types whose `<v>` is read raw.
    fn raw_value<'v>(&self, v: &'v str, style: Option<&str>, typ: Option<&str>) -> R<Val<'v>> {
        match typ {
            Some("s") => {
                if v.is_empty() {
                    return Ok(Val::Empty);
                }
                let i = index(v)?;
                if i >= self.strings.len() {
                    return Err(Bad);
                }
                Ok(Val::Shared(i))
            }
            Some("b") => {
                let t = v.trim();
                if t.is_empty() {
                    Ok(Val::Empty)
                } else if t == "0" || t.eq_ignore_ascii_case("false") {
                    Ok(Val::Bool(false))
                } else if t == "1" || t.eq_ignore_ascii_case("true") {
                    Ok(Val::Bool(true))
                } else {
                    Err(Bad)
                }
            }
            Some("e") => v.parse::<CellErrorType>().map(Val::Error).map_err(|_| Bad),
            Some("n") | None => {
                if v.is_empty() {
                    return Ok(Val::Empty);
                }
                let date = match style {
                    None => false,
                    // calamine reads an empty `s` as 0.
                    Some("") => self.dates.first().copied().unwrap_or(false),
                    Some(s) => self.dates.get(index(s)?).copied().unwrap_or(false),
                };
                if !date && short_parts(v).is_some() {
                    return Ok(Val::Plain(v));
                }
                Ok(Val::Float(plain_number(v)?, date))
            }
            _ => Err(Bad),
        }
    }

    /// calamine's `read_value` for a start tag inside a `<c>`.
    fn value<'i>(
        &self,
        xml: &mut XmlReader<&'i [u8]>,
        e: &BytesStart<'i>,
        style: Option<&str>,
        typ: Option<&str>,
    ) -> R<Val<'i>> {
        let qname = e.name();
        let name: &str = qname.as_ref();
        Ok(match e.local_name().as_ref() {
            "is" => Val::Str(Cow::Owned(read_string(xml, name)?)),
            "v" if matches!(typ, Some("inlineStr") | Some("is")) => {
                xml.skip_to_end(name)?;
                Val::Empty
            }
            "v" => match typ {
                Some("n") | Some("s") | Some("b") | Some("e") | None => {
                    let val = match xml.next()? {
                        Event::Text(t) => {
                            let Cow::Borrowed(raw) = t.into_inner() else {
                                return Err(Bad);
                            };
                            // calamine reads these raw: only plain ASCII is
                            // sure to read the same.
                            if !raw.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
                                return Err(Bad);
                            }
                            self.raw_value(raw, style, typ)?
                        }
                        Event::End(end) if end.name().as_ref() == name => return Ok(Val::Empty),
                        Event::Eof => return Err(Bad),
                        _ => Val::Empty,
                    };
                    xml.skip_to_end(name)?;
                    val
                }
                _ => {
                    let mut value = String::new();
                    loop {
                        match xml.next()? {
                            Event::Text(t) => value.push_str(&t.xml10_content()),
                            Event::GeneralRef(r) => push_entity(&r, &mut value)?,
                            Event::End(end) if end.name().as_ref() == name => break,
                            Event::Eof => return Err(Bad),
                            _ => {}
                        }
                    }
                    match typ {
                        Some("str") => Val::Str(Cow::Owned(excel_unescape(&value).into_owned())),
                        Some("d") => Val::Iso(value),
                        _ => return Err(Bad),
                    }
                }
            },
            "f" => {
                xml.skip_to_end(name)?;
                Val::Empty
            }
            _ => return Err(Bad),
        })
    }

    /// Parses one block (whole rows of `<sheetData>`), as calamine's
    /// `next_cell` reads them. `first`: the block starts the sheet data (row
    /// index 0 known); `last`: nothing follows it.
    fn parse(&self, data: &[u8], first: bool, last: bool) -> Parsed {
        // Tests make a parser panic with this text.
        #[cfg(test)]
        if memchr::memmem::find(data, b"__panic_in_parser__").is_some() {
            panic!("a parser panicked (test)");
        }
        let mut out = Parsed::default();
        if self.parse_into(data, first, last, &mut out).is_err() {
            out.bad = true;
        }
        out
    }

    fn parse_into(&self, data: &[u8], first: bool, last: bool, out: &mut Parsed) -> R<()> {
        let text = std::str::from_utf8(data).map_err(|_| Bad)?;
        let mut pos = Pos {
            row: 0,
            known: first,
            col: 0,
        };
        let mut scratch = String::new();
        // The plain scanner first; quick-xml from the first thing it does
        // not take (inside `<sheetData>`, and inside a `<row>` when it stops
        // in one: a `<row>` without `r` changes nothing).
        match self.scan(text, &mut pos, last, out, &mut scratch) {
            None => {}
            Some((at, in_row)) if at == BLOCK_PREFIX.len() && !in_row => {
                self.parse_xml(text, &mut pos, last, out, &mut scratch)?;
            }
            Some((at, in_row)) => {
                let mut rest = String::with_capacity(text.len() - at + 16);
                rest.push_str("<sheetData>");
                if in_row {
                    rest.push_str("<row>");
                }
                rest.push_str(&text[at..]);
                self.parse_xml(&rest, &mut pos, last, out, &mut scratch)?;
            }
        }
        out.end_row = pos.row;
        out.end_known = pos.known;
        out.end_col = pos.col;
        Ok(())
    }

    /// The plain scanner: rows and cells in the shapes writers use
    /// (`<c r=".." s=".." t=".."><v>..</v></c>`, `<is><t>..</t></is>`, no
    /// entity, no carriage return), read as quick-xml and calamine read
    /// them. `None` when the block is done; else where (and whether inside
    /// a row) it met something else, nothing of it consumed.
    fn scan(
        &self,
        text: &str,
        pos: &mut Pos,
        last: bool,
        out: &mut Parsed,
        scratch: &mut String,
    ) -> Option<(usize, bool)> {
        let b = text.as_bytes();
        let mut i = BLOCK_PREFIX.len();
        let mut in_row = false;
        loop {
            // Text between tags is ignored, as calamine ignores it.
            let Some(o) = memchr::memchr(b'<', &b[i..]) else {
                // The end of the last block without `</sheetData>`: quick-xml
                // says what calamine says.
                return if last { Some((i, in_row)) } else { None };
            };
            i += o;
            let rest = &b[i..];
            if rest.starts_with(b"</row>") && in_row {
                let Some(row) = pos.row.checked_add(1) else {
                    return Some((i, in_row));
                };
                pos.row = row;
                pos.col = 0;
                in_row = false;
                i += 6;
            } else if rest.starts_with(b"</sheetData>") {
                out.done = true;
                return None;
            } else if tag_is(rest, b"<row") && !in_row {
                let Some((attrs, end, empty)) = start_tag(text, i, 4) else {
                    return Some((i, in_row));
                };
                let mut r = None;
                for item in raw_attrs(attrs) {
                    match item {
                        Ok(("r", v)) => {
                            r = Some(v);
                            break;
                        }
                        Ok(_) => {}
                        Err(_) => return Some((i, in_row)),
                    }
                }
                let (mut row, mut known) = (pos.row, pos.known);
                if let Some(r) = r {
                    let Ok((n, _)) = row_and_col(r) else {
                        return Some((i, in_row));
                    };
                    (row, known) = (n, true);
                }
                if empty {
                    let Some(next) = row.checked_add(1) else {
                        return Some((i, in_row));
                    };
                    row = next;
                    pos.col = 0;
                }
                (pos.row, pos.known) = (row, known);
                in_row = !empty;
                i = end;
            } else if tag_is(rest, b"<c") {
                i = match self.scan_cell(text, i, pos, out, scratch) {
                    Some(next) => next,
                    // Any other cell: quick-xml reads that one cell.
                    None => match self.xml_cell(&text[i..], pos, out, scratch) {
                        Ok(n) => i + n,
                        Err(Bad) => return Some((i, in_row)),
                    },
                };
            } else {
                return Some((i, in_row));
            }
        }
    }

    /// One `<c>` at `i` in a plain shape: pushed, and the index after it;
    /// `None` (nothing changed) for any other shape.
    fn scan_cell(
        &self,
        text: &str,
        i: usize,
        pos: &mut Pos,
        out: &mut Parsed,
        scratch: &mut String,
    ) -> Option<usize> {
        let b = text.as_bytes();
        let (attrs, end, empty) = start_tag(text, i, 2)?;
        let (r, style, typ) = cell_attrs_str(attrs).ok()?;
        let (row, col, rel) = match r {
            Some(range) => match row_and_col(range) {
                Ok((row, Some(col))) => (row, col, false),
                _ => return None,
            },
            None => (pos.row, pos.col, !pos.known),
        };
        let (value, next) = if empty {
            (Val::Empty, end)
        } else {
            let (value, after) = self.plain_value(text, end, style, typ)?;
            if !b[after..].starts_with(b"</c>") {
                return None;
            }
            (value, after + 4)
        };
        pos.col = col.checked_add(1)?;
        self.push(out, row, col, rel, value, scratch);
        Some(next)
    }

    /// A cell's content at `j` in a plain shape (`<v>..</v>` or
    /// `<is><t>..</t></is>`, text without `<`, `&` or CR), as
    /// `value` reads it; and the index after it.
    fn plain_value<'i>(
        &self,
        text: &'i str,
        j: usize,
        style: Option<&str>,
        typ: Option<&str>,
    ) -> Option<(Val<'i>, usize)> {
        let b = text.as_bytes();
        let rest = &b[j..];
        if rest.starts_with(b"<v>") {
            let start = j + 3;
            let end = start + memchr::memchr(b'<', &b[start..])?;
            if !b[end..].starts_with(b"</v>") {
                return None;
            }
            let v = &text[start..end];
            if v.bytes().any(|c| c == b'&' || c == b'\r') {
                return None;
            }
            let val = match typ {
                Some("inlineStr") | Some("is") => Val::Empty,
                Some("n") | Some("s") | Some("b") | Some("e") | None => {
                    if v.is_empty() {
                        Val::Empty
                    } else if !v.bytes().all(|c| c.is_ascii_graphic() || c == b' ') {
                        return None;
                    } else {
                        self.raw_value(v, style, typ).ok()?
                    }
                }
                Some("str") => Val::Str(excel_unescape(v)),
                Some("d") => Val::Iso(v.to_string()),
                _ => return None,
            };
            return Some((val, end + 4));
        }
        let (preserve, start) = if rest.starts_with(b"<is><t>") {
            (false, j + 7)
        } else if rest.starts_with(br#"<is><t xml:space="preserve">"#) {
            (true, j + 28)
        } else {
            return None;
        };
        let end = start + memchr::memchr(b'<', &b[start..])?;
        if !b[end..].starts_with(b"</t></is>") {
            return None;
        }
        let v = &text[start..end];
        if v.bytes().any(|c| c == b'\r') {
            return None;
        }
        let v = if memchr::memchr(b'&', v.as_bytes()).is_some() {
            Cow::Owned(named_entities(v)?)
        } else {
            Cow::Borrowed(v)
        };
        let t = if preserve {
            &v[..]
        } else {
            v.trim_matches([' ', '\t', '\r', '\n'])
        };
        let value = match excel_unescape(t) {
            Cow::Owned(o) => Cow::Owned(o),
            Cow::Borrowed(b) if b.len() == v.len() => v,
            Cow::Borrowed(b) => Cow::Owned(b.to_string()),
        };
        Some((Val::Str(value), end + 9))
    }

    /// The one `<c>` element `text` starts with, read by quick-xml as
    /// calamine's `next_cell` reads it: the bytes it took. `Err` (nothing
    /// pushed) when it is not read whole.
    fn xml_cell(
        &self,
        text: &str,
        pos: &mut Pos,
        out: &mut Parsed,
        scratch: &mut String,
    ) -> R<usize> {
        let mut xml = XmlReader::from_str(text);
        configure(&mut xml);
        let Event::Start(e) = xml.next()? else {
            return Err(Bad);
        };
        if e.local_name().as_ref() != "c" {
            return Err(Bad);
        }
        let (r, style, typ) = cell_attrs(&e)?;
        let (row, col, rel) = match r {
            Some(range) => {
                let (row, col) = row_and_col(range)?;
                (row, col.ok_or(Bad)?, false)
            }
            None => (pos.row, pos.col, !pos.known),
        };
        let value = self.cell_value(&mut xml, style, typ)?;
        pos.col = col.checked_add(1).ok_or(Bad)?;
        self.push(out, row, col, rel, value, scratch);
        usize::try_from(xml.buffer_position()).map_err(|_| Bad)
    }

    /// A cell's value: what follows its `<c …>` up to its `</c>` (the last
    /// value element wins, as in calamine).
    fn cell_value<'i>(
        &self,
        xml: &mut XmlReader<&'i [u8]>,
        style: Option<&str>,
        typ: Option<&str>,
    ) -> R<Val<'i>> {
        let mut value = Val::Empty;
        loop {
            match xml.next()? {
                Event::Start(v) => value = self.value(xml, &v, style, typ)?,
                Event::End(end) if end.local_name().as_ref() == "c" => return Ok(value),
                Event::Eof => return Err(Bad),
                _ => {}
            }
        }
    }

    /// calamine's `next_cell` loop over `text` (which starts inside
    /// `<sheetData>`), from `pos`.
    fn parse_xml(
        &self,
        text: &str,
        pos: &mut Pos,
        last: bool,
        out: &mut Parsed,
        scratch: &mut String,
    ) -> R<()> {
        let mut xml = XmlReader::from_str(text);
        configure(&mut xml);
        let mut row_index = pos.row;
        let mut known = pos.known;
        let mut col_index = pos.col;
        loop {
            match xml.next()? {
                Event::Start(e) if e.local_name().as_ref() == "row" => {
                    if let Some(r) = raw_attr(&e, "r")? {
                        row_index = row_and_col(r)?.0;
                        known = true;
                    }
                }
                Event::End(e) if e.local_name().as_ref() == "row" => {
                    row_index = row_index.checked_add(1).ok_or(Bad)?;
                    col_index = 0;
                }
                Event::Start(e) if e.local_name().as_ref() == "c" => {
                    let (pos, style, typ) = cell_attrs(&e)?;
                    let (row, col, rel) = match pos {
                        Some(range) => {
                            let (row, col) = row_and_col(range)?;
                            let col = col.ok_or(Bad)?;
                            col_index = col;
                            (row, col, false)
                        }
                        None => (row_index, col_index, !known),
                    };
                    let value = self.cell_value(&mut xml, style, typ)?;
                    col_index = col_index.checked_add(1).ok_or(Bad)?;
                    self.push(out, row, col, rel, value, scratch);
                }
                Event::End(e) if e.local_name().as_ref() == "sheetData" => {
                    out.done = true;
                    break;
                }
                Event::Eof => {
                    if last {
                        // calamine: "unexpected end of sheetData": its
                        // words, from where it stands.
                        return Err(Bad);
                    }
                    break;
                }
                _ => {}
            }
        }
        *pos = Pos {
            row: row_index,
            known,
            col: col_index,
        };
        Ok(())
    }

    /// Converts a value exactly as the calamine path does (through a
    /// calamine `DataRef` and [`cells::data_ref_text`]).
    fn push(
        &self,
        out: &mut Parsed,
        row: u32,
        col: u32,
        rel: bool,
        value: Val<'_>,
        s: &mut String,
    ) {
        if let Val::Plain(v) = value {
            s.clear();
            short_decimal(v, s);
            out.text.push_str(s);
            out.cells.push(PCell {
                row,
                col,
                rel,
                kind: Some(CellKind::Number),
                end: u32::try_from(out.text.len()).unwrap_or(u32::MAX),
                // `cells::value_len` of a number.
                vlen: 8,
                shared: NOT_SHARED,
            });
            return;
        }
        if let Val::Shared(i) = value {
            if let Ok(shared) = u32::try_from(i) {
                if shared != NOT_SHARED {
                    let text = &self.strings[i];
                    // `data_ref_text` and `value_len` of a shared string.
                    out.cells.push(PCell {
                        row,
                        col,
                        rel,
                        kind: (!text.is_empty()).then_some(CellKind::Text),
                        end: u32::try_from(out.text.len()).unwrap_or(u32::MAX),
                        vlen: u32::try_from(text.len()).unwrap_or(u32::MAX),
                        shared,
                    });
                    return;
                }
            }
        }
        let iso;
        let data = match &value {
            Val::Empty => DataRef::Empty,
            // A shared string and a string read alike (text, length).
            Val::Str(t) => DataRef::SharedString(t),
            Val::Shared(i) => DataRef::SharedString(&self.strings[*i]),
            Val::Float(x, false) => DataRef::Float(*x),
            Val::Plain(_) => return,
            Val::Float(x, true) => DataRef::DateTime(ExcelDateTime::new(
                *x,
                ExcelDateTimeType::DateTime,
                self.is_1904,
            )),
            Val::Bool(b) => DataRef::Bool(*b),
            Val::Error(e) => DataRef::Error(e.clone()),
            Val::Iso(t) => {
                iso = t.clone();
                DataRef::DateTimeIso(iso)
            }
        };
        let vlen = cells::value_len(&data);
        let kind = cells::data_ref_text(&data, self.is_1904, s);
        if kind.is_some() {
            out.text.push_str(s);
        }
        out.cells.push(PCell {
            row,
            col,
            rel,
            kind,
            end: u32::try_from(out.text.len()).unwrap_or(u32::MAX),
            vlen: u32::try_from(vlen).unwrap_or(u32::MAX),
            shared: NOT_SHARED,
        });
    }
}

/// What every block starts with: calamine's reader is inside
/// `<sheetData>` when it reads the rows, and quick-xml refuses an end tag
/// nothing opened (`</sheetData>` in the last block).
const BLOCK_PREFIX: &[u8] = b"<sheetData>";

/// The last `<row` start in `buf` (after `min`) that is surely a tag
/// start: outside comments, CDATA sections and processing instructions.
/// `None` when there is none.
fn last_cut(buf: &[u8], min: usize) -> Option<usize> {
    let finder = memchr::memmem::FinderRev::new(b"<row");
    let mut pos = 0;
    let mut best = None;
    loop {
        let special = [b"<!".as_slice(), b"<?".as_slice()]
            .iter()
            .filter_map(|p| memchr::memmem::find(&buf[pos..], p).map(|i| pos + i))
            .min();
        let end = special.unwrap_or(buf.len());
        // The last `<row` followed by a delimiter within [pos, end).
        let mut hi = end;
        while hi > pos {
            let Some(i) = finder.rfind(&buf[pos..hi]).map(|i| pos + i) else {
                break;
            };
            let next = buf.get(i + 4).copied();
            if i > min
                && matches!(next, Some(b' ' | b'\t' | b'\r' | b'\n' | b'>' | b'/'))
                && i + 4 < end
            {
                best = Some(i);
                break;
            }
            hi = i;
        }
        let Some(s) = special else {
            return best;
        };
        let rest = &buf[s..];
        let close: &[u8] = if rest.starts_with(b"<!--") {
            b"-->"
        } else if rest.starts_with(b"<![CDATA[") {
            b"]]>"
        } else if rest.starts_with(b"<?") {
            b"?>"
        } else {
            // A declaration, or a construct not complete yet: no cut after.
            return best;
        };
        match memchr::memmem::find(&rest[2..], close) {
            Some(i) => pos = s + 2 + i + close.len(),
            None => return best,
        }
    }
}

/// Work for a parser thread.
struct Work {
    idx: u64,
    data: Vec<u8>,
    last: bool,
}

/// The settings of one fast read.
pub(crate) struct Fast<'a> {
    pub job: &'a Job,
    pub sheet: &'a str,
    pub threads: usize,
    pub block_bytes: usize,
}

/// Takes one cell: row, column (0-based), kind (`None`: no value), text,
/// the `value_len` of its value.
pub(crate) type Sink<'s> = dyn FnMut(u32, u32, Option<CellKind>, &str, u64) -> Flow + 's;

/// How the fast read ended.
pub(crate) enum Outcome {
    /// The sheet was read to its end.
    Done,
    /// calamine must read the sheet from this cell (0-based, in document
    /// order) on.
    Resume(u64),
}

type Stopped = Result<super::Stop, ledgerline_core::FileError>;

impl Fast<'_> {
    /// Reads the sheet of the workbook `zip` opens into `sink`.
    pub(crate) fn run<Z: Read + Seek + Send>(
        &self,
        zip: &mut zip::ZipArchive<Z>,
        is_1904: bool,
        sink: &mut Sink<'_>,
    ) -> Result<Outcome, Stopped> {
        let Ok(book) = Book::load(zip, self.sheet, is_1904) else {
            return Ok(Outcome::Resume(0));
        };
        let names = zip_names(zip);
        let name = names
            .get(&book.path.to_ascii_lowercase())
            .cloned()
            .unwrap_or_else(|| book.path.clone());
        let Ok(mut file) = zip.by_name(&name) else {
            return Ok(Outcome::Resume(0));
        };
        let limit = guard::streamed_part_limit(self.job.budget);
        let mut inflated = 0u64;
        // The header, up to `<sheetData>`.
        let mut buf = Vec::new();
        let body = loop {
            let before = buf.len();
            if read_some(&mut file, &mut buf, self.block_bytes.max(1 << 16)).is_err() {
                return Ok(Outcome::Resume(0));
            }
            inflated += (buf.len() - before) as u64;
            let eof = buf.len() == before;
            match header_end(&buf) {
                Ok(Some(Some(at))) => break at,
                Ok(Some(None)) => return Ok(Outcome::Done),
                Ok(None) if !eof && buf.len() <= MAX_HEADER_BYTES => {}
                _ => return Ok(Outcome::Resume(0)),
            }
        };
        let mut carry = BLOCK_PREFIX.to_vec();
        carry.extend_from_slice(&buf[body..]);
        drop(buf);
        let book = Arc::new(book);
        let mut state = Reassembly::default();
        if self.threads <= 1 {
            self.inline(&book, file, carry, inflated, limit, &mut state, sink)
        } else {
            self.parallel(&book, file, carry, inflated, limit, &mut state, sink)
        }
    }

    /// One thread: inflate, cut, parse and emit in turn.
    #[allow(clippy::too_many_arguments)]
    fn inline(
        &self,
        book: &Book,
        mut file: impl Read,
        mut carry: Vec<u8>,
        mut inflated: u64,
        limit: u64,
        state: &mut Reassembly,
        sink: &mut Sink<'_>,
    ) -> Result<Outcome, Stopped> {
        let mut first = true;
        loop {
            let (block, last) =
                match next_block(&mut file, &mut carry, self.block_bytes, &mut inflated) {
                    Ok(b) => b,
                    Err(()) => return Ok(Outcome::Resume(state.k)),
                };
            if inflated > limit {
                return Err(Err(guard::streamed_part_refused(
                    &self.job.name,
                    self.job.budget,
                )));
            }
            let parsed = book.parse(&block, first, last);
            first = false;
            if let Some(outcome) = state.take(self.job, book, Res::Block(parsed), sink)? {
                return Ok(outcome);
            }
            if last {
                return Ok(Outcome::Resume(state.k));
            }
        }
    }

    /// An inflater thread, `threads` parser threads, the reassembly here.
    #[allow(clippy::too_many_arguments)]
    fn parallel<Z: Read + Send>(
        &self,
        book: &Arc<Book>,
        mut file: Z,
        mut carry: Vec<u8>,
        mut inflated: u64,
        limit: u64,
        state: &mut Reassembly,
        sink: &mut Sink<'_>,
    ) -> Result<Outcome, Stopped> {
        let stop = AtomicBool::new(false);
        let slots = in_flight(self.threads);
        let (token_tx, token_rx) = sync_channel::<()>(slots);
        for _ in 0..slots {
            let _ = token_tx.send(());
        }
        let (work_tx, work_rx) = sync_channel::<Work>(slots);
        let work_rx = Mutex::new(work_rx);
        let (res_tx, res_rx) = channel::<(u64, Res)>();
        let block_bytes = self.block_bytes;
        std::thread::scope(|scope| {
            let stop = &stop;
            let work_rx = &work_rx;
            {
                let res_tx = res_tx.clone();
                scope.spawn(move || {
                    let res_tx2 = res_tx.clone();
                    let ran = catch_unwind(AssertUnwindSafe(move || {
                        let mut idx = 0u64;
                        loop {
                            if token_rx.recv().is_err() || stop.load(Ordering::Relaxed) {
                                return;
                            }
                            let (block, last) =
                                match next_block(&mut file, &mut carry, block_bytes, &mut inflated)
                                {
                                    Ok(b) => b,
                                    Err(()) => {
                                        let _ = res_tx.send((idx, Res::Resume));
                                        return;
                                    }
                                };
                            if inflated > limit {
                                let _ = res_tx.send((
                                    idx,
                                    Res::Refused(guard::streamed_part_refused(
                                        &self.job.name,
                                        self.job.budget,
                                    )),
                                ));
                                return;
                            }
                            if work_tx
                                .send(Work {
                                    idx,
                                    data: block,
                                    last,
                                })
                                .is_err()
                            {
                                return;
                            }
                            if last {
                                return;
                            }
                            idx += 1;
                        }
                    }));
                    if ran.is_err() {
                        let p = Parsed {
                            panicked: true,
                            ..Parsed::default()
                        };
                        let _ = res_tx2.send((u64::MAX, Res::Block(p)));
                    }
                });
            }
            for _ in 0..self.threads {
                let res_tx = res_tx.clone();
                let book = Arc::clone(book);
                scope.spawn(move || loop {
                    let work = {
                        let Ok(rx) = work_rx.lock() else { return };
                        rx.recv()
                    };
                    let Ok(work) = work else { return };
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let parsed = catch_unwind(AssertUnwindSafe(|| {
                        book.parse(&work.data, work.idx == 0, work.last)
                    }))
                    .unwrap_or_else(|_| Parsed {
                        panicked: true,
                        ..Parsed::default()
                    });
                    if res_tx.send((work.idx, Res::Block(parsed))).is_err() {
                        return;
                    }
                });
            }
            drop(res_tx);
            let outcome = reassemble(self.job, book, &res_rx, &token_tx, state, sink);
            // Everything else stops: the inflater at its next token, the
            // parsers at their next block or once the work channel closes.
            stop.store(true, Ordering::Relaxed);
            drop(token_tx);
            drop(res_rx);
            outcome
        })
    }
}

/// Puts the parsed blocks back in order and hands them to `state`.
fn reassemble(
    job: &Job,
    book: &Book,
    res_rx: &Receiver<(u64, Res)>,
    token_tx: &std::sync::mpsc::SyncSender<()>,
    state: &mut Reassembly,
    sink: &mut Sink<'_>,
) -> Result<Outcome, Stopped> {
    let mut waiting: BTreeMap<u64, Res> = BTreeMap::new();
    let mut next = 0u64;
    loop {
        let res = match waiting.remove(&next) {
            Some(r) => r,
            None => match res_rx.recv() {
                Ok((u64::MAX, _)) => return Err(Err(super::crashed(&job.name))),
                Ok((idx, r)) if idx == next => r,
                Ok((idx, r)) => {
                    waiting.insert(idx, r);
                    continue;
                }
                // Every sender gone before the block came: the inflater
                // stopped after the last block (whose parse, without
                // `</sheetData>`, was bad already), or a thread died.
                Err(_) => return Ok(Outcome::Resume(state.k)),
            },
        };
        let outcome = state.take(job, book, res, sink)?;
        let _ = token_tx.try_send(());
        next += 1;
        if let Some(o) = outcome {
            return Ok(o);
        }
    }
}

/// What the reassembly knows between blocks.
#[derive(Default)]
struct Reassembly {
    /// Cells handed to the sink so far.
    k: u64,
    /// calamine's `row_index` at the end of the blocks so far.
    row: u32,
    /// calamine's `col_index` there.
    col: u32,
}

impl Reassembly {
    /// Takes the next block's result: `Some` when the read ends there.
    fn take(
        &mut self,
        job: &Job,
        book: &Book,
        res: Res,
        sink: &mut Sink<'_>,
    ) -> Result<Option<Outcome>, Stopped> {
        let p = match res {
            Res::Block(p) => p,
            Res::Resume => return Ok(Some(Outcome::Resume(self.k))),
            Res::Refused(e) => return Err(Err(e)),
        };
        if p.panicked {
            return Err(Err(super::crashed(&job.name)));
        }
        // A row left open across a cut would change the column of the next
        // block's first cells without `r`.
        if p.bad || (self.col != 0 && !p.cells.is_empty()) {
            return Ok(Some(Outcome::Resume(self.k)));
        }
        let mut start = 0usize;
        for c in &p.cells {
            let end = c.end as usize;
            let text = if c.shared == NOT_SHARED {
                &p.text[start..end]
            } else {
                book.strings[c.shared as usize].as_str()
            };
            let row = if c.rel {
                match self.row.checked_add(c.row) {
                    Some(r) => r,
                    None => return Ok(Some(Outcome::Resume(self.k))),
                }
            } else {
                c.row
            };
            sink(row, c.col, c.kind, text, u64::from(c.vlen))?;
            start = end;
            self.k += 1;
        }
        self.row = if p.end_known {
            p.end_row
        } else {
            match self.row.checked_add(p.end_row) {
                Some(r) => r,
                None => return Ok(Some(Outcome::Resume(self.k))),
            }
        };
        self.col = p.end_col;
        if p.done {
            return Ok(Some(Outcome::Done));
        }
        Ok(None)
    }
}

/// Reads up to `want` more bytes into `buf` (fewer only at the end).
fn read_some(r: &mut impl Read, buf: &mut Vec<u8>, want: usize) -> std::io::Result<()> {
    let target = buf.len() + want;
    let mut chunk = [0u8; 1 << 16];
    while buf.len() < target {
        let n = r.read(&mut chunk[..(target - buf.len()).min(1 << 16)])?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

/// The next block of whole rows: `carry` (which starts with
/// [`BLOCK_PREFIX`]) grown by about `block` bytes and cut at its last
/// `<row`; `(block, last)`. `Err` when the part cannot be
/// read (calamine reports it) or no cut is found within
/// [`MAX_CARRY_BYTES`].
fn next_block(
    file: &mut impl Read,
    carry: &mut Vec<u8>,
    block: usize,
    inflated: &mut u64,
) -> Result<(Vec<u8>, bool), ()> {
    loop {
        let before = carry.len();
        read_some(file, carry, block.max(1)).map_err(|_| ())?;
        *inflated += (carry.len() - before) as u64;
        if carry.len() == before {
            return Ok((std::mem::take(carry), true));
        }
        if let Some(cut) = last_cut(carry, BLOCK_PREFIX.len()) {
            let mut rest = Vec::with_capacity(BLOCK_PREFIX.len() + carry.len() - cut + block);
            rest.extend_from_slice(BLOCK_PREFIX);
            rest.extend_from_slice(&carry[cut..]);
            carry.truncate(cut);
            return Ok((std::mem::replace(carry, rest), false));
        }
        if carry.len() > MAX_CARRY_BYTES {
            return Err(());
        }
    }
}

/// Where `<sheetData>`'s content starts in `buf`, as calamine's
/// `XlsxCellReader::new` finds it (`Some(None)`: an empty `<sheetData/>`);
/// `Ok(None)` when `buf` holds no complete start tag yet; `Err` for
/// anything calamine would refuse.
fn header_end(buf: &[u8]) -> Result<Option<Option<usize>>, ()> {
    // Only a prefix that ends at a complete tag can be parsed: cut at the
    // last `>`.
    let Some(gt) = memchr::memrchr(b'>', buf) else {
        return Ok(None);
    };
    let Ok(text) = std::str::from_utf8(&buf[..=gt]) else {
        return Err(());
    };
    let mut xml = XmlReader::from_str(text);
    configure(&mut xml);
    loop {
        match xml.read_event() {
            Ok(Event::Start(e)) => match e.local_name().as_ref() {
                "dimension" => {
                    let Ok(Some(d)) = raw_attr(&e, "ref") else {
                        return Err(());
                    };
                    let parts: Vec<&str> = d.split(':').collect();
                    if parts.len() > 2 {
                        return Err(());
                    }
                    let mut pos = Vec::new();
                    for p in parts {
                        match row_and_col(p) {
                            Ok((r, Some(c))) => pos.push((r, c)),
                            _ => return Err(()),
                        }
                    }
                    if pos.len() == 2 && (pos[1].0 < pos[0].0 || pos[1].1 < pos[0].1) {
                        return Err(());
                    }
                }
                "sheetData" => {
                    let at = xml.buffer_position() as usize;
                    // `<sheetData/>`: no cells (calamine's next event is its
                    // end).
                    if text.as_bytes()[..at].ends_with(b"/>") {
                        return Ok(Some(None));
                    }
                    return Ok(Some(Some(at)));
                }
                _ => {}
            },
            Ok(Event::Eof) => return Ok(None),
            Err(_) => return Ok(None),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded xorshift stream: `rnd(n)` is in `0..n` (0 when `n` is 0).
    pub(super) fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n.max(1)
        }
    }

    #[test]
    fn cuts_only_at_row_starts_outside_comments_and_cdata() {
        let b = b"<row r=\"1\"><c/></row><row r=\"2\"></row><!-- <row r=\"9\"> --><rowx/>";
        assert_eq!(last_cut(b, 0), Some(21));
        assert_eq!(last_cut(b, 21), None);
        let b = b"<row r=\"1\"></row><!-- <row r=\"9\"> ";
        assert_eq!(last_cut(b, 0), None);
        let b = b"<row r=\"1\"></row><![CDATA[ <row> ]]><row>";
        assert_eq!(last_cut(b, 0), Some(36));
    }

    /// A block naming a long shared string many times stays small: the
    /// text is copied cell by cell at reassembly, as calamine copies it.
    #[test]
    fn shared_strings_are_not_expanded_in_blocks() {
        let book = Book {
            path: String::new(),
            strings: vec!["s".repeat(100_000), String::new()],
            dates: Vec::new(),
            is_1904: false,
        };
        let mut block = BLOCK_PREFIX.to_vec();
        for r in 1..=1000 {
            block.extend_from_slice(
                format!(r#"<row r="{r}"><c r="A{r}" t="s"><v>0</v></c><c r="B{r}" t="s"><v>1</v></c></row>"#).as_bytes(),
            );
        }
        let p = book.parse(&block, true, false);
        assert!(!p.bad);
        assert_eq!(p.cells.len(), 2000);
        assert!(p.text.is_empty());
        assert_eq!(p.cells[0].kind, Some(CellKind::Text));
        assert_eq!(p.cells[0].vlen, 100_000);
        assert_eq!(p.cells[1].kind, None);
    }

    #[test]
    fn excel_escapes_decoded_like_calamine() {
        assert_eq!(excel_unescape("a_x000D_b"), "a\rb");
        assert_eq!(excel_unescape("_x005F_x000D_"), "_x000D_");
        assert_eq!(excel_unescape("_xD83D__xDCF7_"), "\u{1F4F7}");
        assert_eq!(excel_unescape("_xD83D_x"), "\u{FFFD}x");
        assert_eq!(excel_unescape("_xDC00_"), "\u{FFFD}");
        assert_eq!(excel_unescape("_x00zz_ _x41"), "_x00zz_ _x41");
    }

    /// The shortcut gives exactly `number_text` of the parsed value.
    #[test]
    fn short_decimals_as_number_text_writes_them() {
        let mut rnd = xorshift(0x2545_F491_4F6C_DD1D);
        let mut cases: Vec<String> = [
            "0",
            "-0",
            "00",
            "0.0",
            "-0.000",
            "007",
            "1.50",
            "0.1",
            "123456789012345",
            "1234567890123456",
            "0.000000000000000000123",
            "99999999999999.9",
            "-12.3400",
            "1.",
            ".5",
            "+1",
            "1e5",
            "",
            "-",
            "0.30000000000000004",
            "100000000000000000000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for _ in 0..20_000 {
            let int: String = (0..rnd(12))
                .map(|_| char::from(b'0' + rnd(10) as u8))
                .collect();
            let frac: String = (0..rnd(12))
                .map(|_| char::from(b'0' + rnd(10) as u8))
                .collect();
            let sign = if rnd(3) == 0 { "-" } else { "" };
            let int = if int.is_empty() { "0".to_string() } else { int };
            cases.push(if frac.is_empty() {
                format!("{sign}{int}")
            } else {
                format!("{sign}{int}.{frac}")
            });
        }
        for v in cases {
            let mut fast = String::new();
            if short_decimal(&v, &mut fast) {
                let mut slow = String::new();
                assert!(cells::number_text(v.parse().unwrap(), &mut slow));
                assert_eq!(fast, slow, "{v}");
            } else {
                assert!(fast.is_empty());
            }
        }
    }

    #[test]
    fn plain_numbers_only() {
        assert_eq!(plain_number("1.5").unwrap(), 1.5);
        assert_eq!(plain_number("-2E3").unwrap(), -2000.0);
        assert!(plain_number("inf").is_err());
        assert!(plain_number(" 1").is_err());
        assert!(plain_number(".").is_err());
        assert!(plain_number("+1").is_err());
        assert!(plain_number(".5").is_err());
        assert!(plain_number("5.").is_err());
        assert!(plain_number("1e400").is_err());
        assert!(plain_number("1e-400").is_err());
        assert_eq!(plain_number("0e5").unwrap(), 0.0);
    }

    #[test]
    fn custom_formats_judged_like_calamine() {
        assert!(custom_is_date("yyyy-mm-dd"));
        assert!(custom_is_date("[h]:mm:ss"));
        assert!(!custom_is_date("0.00"));
        assert!(!custom_is_date("\"d\"0"));
        assert!(!custom_is_date("[Red]0.00"));
    }
}

/// The own parser against calamine's cells reader, record for record, on
/// real and generated workbooks.
#[cfg(test)]
mod differential {
    use super::super::*;
    use super::BLOCK_BYTES;
    use std::io::Write;
    use std::path::Path;

    type Records = Vec<(u64, Vec<(CellKind, Vec<u8>)>)>;

    /// Everything a read gives: the sheet opened, the records, the error.
    #[derive(Debug)]
    struct Outcome {
        opened: Option<(Option<String>, bool)>,
        records: Records,
        error: Option<(FileErrorCode, String)>,
        /// Cells the own parser handed over; whether calamine took over.
        own: (u64, bool),
    }

    impl PartialEq for Outcome {
        fn eq(&self, o: &Outcome) -> bool {
            (&self.opened, &self.records, &self.error) == (&o.opened, &o.records, &o.error)
        }
    }

    /// Reads `bytes` with `threads` (0: calamine) and blocks of `block`
    /// bytes, the sheet named `sheet` (else the first), unpadded, with the
    /// sparse limits `sparse` and the budget of `memory_mb`.
    fn read(
        bytes: &[u8],
        format: Format,
        sheet: Option<&str>,
        threads: usize,
        block: usize,
        sparse: (u64, u64),
        memory_mb: u64,
    ) -> Outcome {
        let (tx, rx) = sync_channel(4);
        let job = Job {
            name: "t.xlsx".into(),
            format,
            gzip: false,
            sheet: sheet.map(str::to_string),
            layout: Layout::Unpadded,
            sparse,
            budget: guard::budget(memory_mb),
            limits: guard::Limits::new(guard::budget(memory_mb)),
            bytes_read: Arc::new(AtomicU64::new(0)),
            tx,
            sheet_threads: threads,
            block_bytes: block,
            trace: Arc::default(),
        };
        let trace = Arc::clone(&job.trace);
        let source = Source::Bytes(bytes.to_vec());
        let t = std::thread::spawn(move || job.run(source));
        let mut out = Outcome {
            opened: None,
            records: Vec::new(),
            error: None,
            own: (0, false),
        };
        for msg in rx {
            match msg {
                Msg::Opened(info) => out.opened = Some((info.sheet, info.date_1904)),
                Msg::Rows(b) => {
                    for r in b.iter() {
                        let cells = (0..r.len())
                            .map(|j| {
                                let (k, b) = r.cell(j);
                                (k, b.to_vec())
                            })
                            .collect();
                        out.records.push((r.row(), cells));
                    }
                }
                Msg::Failed(e) => out.error = Some((e.code, e.message)),
            }
        }
        t.join().unwrap();
        out.own = (
            trace.own_cells.load(Ordering::Relaxed),
            trace.resumed.load(Ordering::Relaxed),
        );
        out
    }

    /// calamine's outcome, then every thread count and block size against
    /// it; returns calamine's, with `own` from the default block size with
    /// 2 threads.
    fn same_as_calamine(
        what: &str,
        bytes: &[u8],
        format: Format,
        sheet: Option<&str>,
        sparse: (u64, u64),
        memory_mb: u64,
    ) -> Outcome {
        let mut reference = read(bytes, format, sheet, 0, BLOCK_BYTES, sparse, memory_mb);
        // Tiny blocks (cuts everywhere) cost a rescan per byte: only on
        // small workbooks.
        let blocks: &[usize] = if bytes.len() < 64 << 10 {
            &[BLOCK_BYTES, 4096, 300, 1]
        } else {
            &[BLOCK_BYTES, 4096]
        };
        for threads in [1, 2, 4] {
            for &block in blocks {
                let got = read(bytes, format, sheet, threads, block, sparse, memory_mb);
                if got != reference {
                    let first = got
                        .records
                        .iter()
                        .zip(&reference.records)
                        .position(|(a, b)| a != b);
                    panic!(
                        "{what} sheet {sheet:?}, {threads} threads, blocks of {block}: differs from calamine \
                         (records {} vs {}, first differing record {first:?}: {:?} vs {:?}; error {:?} vs {:?}; opened {:?} vs {:?})",
                        got.records.len(),
                        reference.records.len(),
                        first.map(|i| &got.records[i]),
                        first.map(|i| &reference.records[i]),
                        got.error,
                        reference.error,
                        got.opened,
                        reference.opened,
                    );
                }
                if threads == 2 && block == BLOCK_BYTES {
                    reference.own = got.own;
                }
            }
        }
        reference
    }

    /// Cells in a reference read (every cell calamine streams).
    fn calamine_cells(bytes: &[u8], sheet: &str) -> u64 {
        let mut wb: Xlsx<_> = Xlsx::new(Cursor::new(bytes.to_vec())).unwrap();
        let mut cells = wb.worksheet_cells_reader(sheet).unwrap();
        let mut n = 0;
        while cells.next_cell().unwrap().is_some() {
            n += 1;
        }
        n
    }

    fn default_limits() -> ((u64, u64), u64) {
        ((guard::SPARSE_MIN_CELLS, guard::SPARSE_FACTOR), 1024)
    }

    /// Every xlsx/xlsm of a folder, every worksheet of each: the sheets
    /// compared, those refused (by calamine and the own parser alike), and
    /// those read whole by the own parser.
    fn check_folder(dir: &Path) -> (usize, usize, usize) {
        let mut n = 0;
        let mut refused = 0;
        let mut whole = 0;
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for path in paths {
            let format = match path.extension().and_then(|e| e.to_str()) {
                Some("xlsx") => Format::Xlsx,
                Some("xlsm") => Format::Xlsm,
                _ => continue,
            };
            let bytes = std::fs::read(&path).unwrap();
            let mut sheets: Vec<Option<String>> = vec![None];
            if let Ok(wb) = Xlsx::new(Cursor::new(bytes.clone())) {
                sheets.extend(wb.sheets_metadata().iter().map(|s| Some(s.name.clone())));
            }
            sheets.push(Some("no such sheet".into()));
            let (sparse, mb) = default_limits();
            for sheet in &sheets {
                let what = path.display().to_string();
                let out = same_as_calamine(&what, &bytes, format, sheet.as_deref(), sparse, mb);
                n += 1;
                if out.error.is_some() {
                    refused += 1;
                } else if !out.own.1 {
                    whole += 1;
                } else {
                    eprintln!(
                        "calamine took over {what} sheet {sheet:?} after {} cells (error: {:?})",
                        out.own.0, out.error
                    );
                }
            }
        }
        (n, refused, whole)
    }

    #[test]
    fn the_calamine_test_workbooks_read_as_calamine_reads_them() {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/excel-samples/calamine");
        if !dir.is_dir() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{} is missing (required under CI=true)",
                dir.display()
            );
            eprintln!(
                "note: {} is missing: differential test on real workbooks skipped",
                dir.display()
            );
            return;
        }
        let (n, refused, whole) = check_folder(&dir);
        eprintln!("{n} sheets compared, {refused} refused, {whole} read whole by the own parser");
        assert!(n > 100, "only {n} sheets compared");
        assert!(
            whole * 10 >= (n - refused) * 9,
            "only {whole} of {} sheets read whole by the own parser",
            n - refused
        );
    }

    #[test]
    fn the_fixtures_read_as_calamine_reads_them() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/excel");
        let (n, _, whole) = check_folder(&dir);
        assert!(n > 5 && whole >= 5, "{n} sheets, {whole} whole");
    }

    /// A workbook built by hand: `sheet` is the whole `<sheetData>` content;
    /// shared strings `sst` (the `<si>` items), `styles` (the whole
    /// stylesheet), the 1904 flag; deflated when `deflate`.
    fn book(
        sheet: &str,
        sst: Option<&str>,
        styles: Option<&str>,
        date1904: bool,
        deflate: bool,
    ) -> Vec<u8> {
        let pr = if date1904 {
            r#"<workbookPr date1904="1"/>"#
        } else {
            ""
        };
        let mut rels = String::from(
            r#"<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet2.xml"/>"#,
        );
        let mut parts: Vec<(String, String)> = vec![
            ("[Content_Types].xml".into(), r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/></Types>"#.into()),
            ("_rels/.rels".into(), r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.into()),
            ("xl/workbook.xml".into(), format!(r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">{pr}<sheets><sheet name="S" sheetId="1" r:id="rId1"/><sheet name="Two" sheetId="2" r:id="rId2"/></sheets></workbook>"#)),
            ("xl/worksheets/sheet1.xml".into(), format!(r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><dimension ref="A1:C3"/><sheetViews><sheetView workbookViewId="0"/></sheetViews><sheetData>{sheet}</sheetData><pageMargins left="0.7"/></worksheet>"#)),
            ("xl/worksheets/sheet2.xml".into(), r#"<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="2"><c r="B2"><v>2</v></c></row></sheetData></worksheet>"#.into()),
        ];
        if let Some(sst) = sst {
            rels.push_str(r#"<Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>"#);
            parts.push(("xl/sharedStrings.xml".into(), format!(r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">{sst}</sst>"#)));
        }
        if let Some(styles) = styles {
            parts.push(("xl/styles.xml".into(), styles.to_string()));
        }
        parts.push(("xl/_rels/workbook.xml.rels".into(), format!(r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}</Relationships>"#)));
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let method = if deflate {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, text) in parts {
            zip.start_file(name, options).unwrap();
            zip.write_all(text.as_bytes()).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    /// Styles: xf 0 general, 1 built-in date (14), 2 custom date, 3 custom
    /// number, 4 duration `[h]:mm:ss` (46), 5 custom time, 6 text (49).
    const STYLES: &str = r##"<?xml version="1.0" encoding="UTF-8"?><styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><numFmts count="3"><numFmt numFmtId="164" formatCode="yyyy\-mm\-dd"/><numFmt numFmtId="165" formatCode="#,##0.00&quot;d&quot;"/><numFmt numFmtId="166" formatCode="[$-409]h:mm:ss\ AM/PM;@"/></numFmts><fonts count="1"><font><sz val="11"/></font></fonts><fills count="1"><fill><patternFill patternType="none"/></fill></fills><borders count="1"><border/></borders><cellXfs count="7"><xf numFmtId="0" fontId="0"/><xf numFmtId="14" fontId="0" applyNumberFormat="1"/><xf numFmtId="164" fontId="0"/><xf numFmtId="165"/><xf numFmtId="46"/><xf numFmtId="166"><alignment horizontal="left"/></xf><xf numFmtId="49"/></cellXfs></styleSheet>"##;

    const SST: &str = r#"<si><t>plain</t></si><si><t xml:space="preserve">  spaced  </t></si><si><t>  trimmed
</t></si><si><r><rPr><b/></rPr><t>rich</t></r><r><t xml:space="preserve"> text</t></r></si><si><t>a &amp; b &lt;c&gt; &#x41;&#66;</t></si><si><t/></si><si><t>with<rPh><t>phonetic</t></rPh></t></si><si><t>ünïcødé ✓</t></si><si><t>line
break</t></si><si><t>CR_x000D_LF</t></si>"#;

    #[test]
    fn generated_cell_types_read_as_calamine_reads_them() {
        let rows = r#"<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="C1" t="s"><v>2</v></c><c r="D1" t="s"><v>3</v></c><c r="E1" t="s"><v>4</v></c><c r="F1" t="s"><v>5</v></c><c r="G1" t="s"><v>6</v></c><c r="H1" t="s"><v>7</v></c><c r="I1" t="s"><v>8</v></c></row>
<row r="2"><c r="A2"><v>42</v></c><c r="B2"><v>-0.1</v></c><c r="C2"><v>1.5E-3</v></c><c r="D2" s="1"><v>45306</v></c><c r="E2" s="2"><v>45306.5</v></c><c r="F2" s="3"><v>45306</v></c><c r="G2" s="4"><v>1.25</v></c><c r="H2" s="5"><v>0.75</v></c><c r="I2" s="6"><v>12</v></c><c r="J2" s="99"><v>7</v></c><c r="K2" t="n"><v>3</v></c></row>
<row r="3"><c r="A3" t="b"><v>1</v></c><c r="B3" t="b"><v>0</v></c><c r="C3" t="e"><v>#DIV/0!</v></c><c r="D3" t="e"><v>#N/A</v></c><c r="E3" t="str"><f>A1&amp;"x"</f><v>cached &amp; string</v></c><c r="F3" t="d"><v>2024-01-15T10:30:00</v></c><c r="G3" t="inlineStr"><is><t>inline</t></is></c><c r="H3" t="inlineStr"><is><r><t>in</t></r><r><t xml:space="preserve">line rich </t></r></is></c><c r="I3"><f>1+1</f><v>2</v></c><c r="J3" t="s"><v></v></c><c r="K3"/><c r="L3" s="1"/></row>
<row r="6"><c r="A6" t="inlineStr"><is><t>   </t></is></c><c r="C6" t="inlineStr"><is><t xml:space="preserve">   </t></is></c></row>
<row><c><v>1</v></c><c><v>2</v></c><c r="E7"><v>5</v></c><c><v>6</v></c></row>
<row><c t="inlineStr"><is><t>no refs</t></is></c></row>
<row r="12"><c r="B12"><v>1</v></c></row><row><c><v>13</v></c></row>
<row r="14" spans="1:3"><c r="A14" t="inlineStr"><is><t> </t></is></c></row>
<row r="15"><c r="A15" t="inlineStr"><is><t xml:space="preserve"> </t></is></c></row>"#;
        let (sparse, mb) = default_limits();
        for date1904 in [false, true] {
            for deflate in [false, true] {
                let bytes = book(rows, Some(SST), Some(STYLES), date1904, deflate);
                let out = same_as_calamine("generated", &bytes, Format::Xlsx, None, sparse, mb);
                assert!(out.error.is_none(), "{:?}", out.error);
                assert_eq!(
                    out.own,
                    (calamine_cells(&bytes, "S"), false),
                    "the own parser read it all"
                );
                assert!(out.records.len() >= 13, "{}", out.records.len());
                // Dates became dates, in the right system.
                let d2 = &out.records[1].1[3];
                assert_eq!(d2.0, CellKind::Date);
                let expected: &[u8] = if date1904 {
                    b"2028-01-16"
                } else {
                    b"2024-01-15"
                };
                assert_eq!(d2.1, expected);
                same_as_calamine("generated", &bytes, Format::Xlsx, Some("Two"), sparse, mb);
            }
        }
    }

    /// A row of 3,000 cells and long text, rows without `r`, comments and
    /// CDATA between and inside rows: every block size cuts them somewhere.
    #[test]
    fn huge_rows_and_odd_markup_cross_block_cuts() {
        let mut xml = String::new();
        xml.push_str(r#"<row r="1">"#);
        for c in 0..3000 {
            xml.push_str(&format!(
                r#"<c t="inlineStr"><is><t>cell {c} {}</t></is></c>"#,
                "x".repeat(c % 50)
            ));
        }
        xml.push_str("</row><!-- <row r=\"99\"><c><v>1</v></c></row> -->");
        xml.push_str(&format!(
            r#"<row r="2"><c r="B2" t="inlineStr"><is><t>{}</t></is></c></row>"#,
            "long ".repeat(5000)
        ));
        xml.push_str(r#"<row r="3"><c r="A3" t="inlineStr"><is><t><![CDATA[<row r="4"> & ]]></t></is></c></row>"#);
        xml.push_str("<?pi <row r=\"5\"> ?>");
        for _ in 0..50 {
            xml.push_str(r#"<row><c><v>1</v></c><c t="s"><v>0</v></c></row>"#);
        }
        let (sparse, mb) = default_limits();
        let bytes = book(&xml, Some(SST), Some(STYLES), false, true);
        let out = same_as_calamine("huge", &bytes, Format::Xlsx, None, sparse, mb);
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(
            out.own,
            (calamine_cells(&bytes, "S"), false),
            "the own parser read it all"
        );
        assert_eq!(out.records[0].1.len(), 3000);
        assert_eq!(out.records.len(), 53);
    }

    /// Malformed sheets: the same records then the same error.
    #[test]
    fn broken_sheets_fail_as_calamine_fails() {
        let (sparse, mb) = default_limits();
        let cases = [
            r#"<row r="1"><c r="A1"><v>1</v></c></row><row r="2"><c r="A2" t="s"><v>77</v></c></row>"#,
            r#"<row r="1"><c r="A1"><v>1</v></c></row><row r="2"><c r="A2" t="b"><v>yes</v></c></row>"#,
            r#"<row r="1"><c r="A1"><v>1</v></c></row><row r="2"><c r="A2" t="e"><v>#BAD</v></c></row>"#,
            r#"<row r="1"><c r="A1"><v>1</v></c></row><row r="2"><c r="A2" t="zz"><v>1</v></c></row>"#,
            r#"<row r="1"><c r="A1"><v>abc</v></c><c r="B1" t="n"><v>abc</v></c></row>"#,
            r#"<row r="1"><c r="A1"><v>1</v></c></row><row r="2"><c r="2A"><v>1</v></c></row>"#,
            r#"<row r="1"><c r="A1"><v>1</v></c></row><row r="0"><c r="A1"><v>1</v></c></row>"#,
            r#"<row r="1"><c r="A1"><v>1</v></c><row r="2"><c r="A2"><v>2</v></c></row>"#,
            r#"<row r="1"><c r="A1"><v>1</v></c></row><row r="2"><c r="A2"><x>1</x></c></row>"#,
            r#"<row r="1"><c r="A1"><v>1</v></c></row><row r="3"><c r="A3"><v>1</v></c></row><row r="2"><c r="A2"><v>2</v></c></row>"#,
            r#"<row r="1"><c r="XFE1"><v>1</v></c></row>"#,
            r#"<row r="1048577"><c r="A1048577"><v>1</v></c></row>"#,
            r#"<row r="1"><c r="A1" t="inlineStr"><is><t>&bogus;</t></is></c></row>"#,
            r#"<row r="1"><c r="A1"><v> 1 </v></c><c r="B1"><v>1e400</v></c><c r="C1"><v>inf</v></c></row>"#,
            r#"<row r="1"><c r="A1" r="B1" s="1"><v>45000</v></c><c s="x"><v>2</v></c></row>"#,
        ];
        for (i, rows) in cases.iter().enumerate() {
            let bytes = book(rows, Some(SST), Some(STYLES), false, i % 2 == 0);
            same_as_calamine(
                &format!("broken case {i}"),
                &bytes,
                Format::Xlsx,
                None,
                sparse,
                mb,
            );
        }
        // A sheet part cut short, and one without sheet data.
        let full = book(
            r#"<row r="1"><c r="A1"><v>1</v></c></row>"#,
            None,
            None,
            false,
            false,
        );
        let text = String::from_utf8_lossy(&full).to_string();
        let _ = text;
        let bytes = book("", None, None, false, false);
        same_as_calamine("empty sheetData", &bytes, Format::Xlsx, None, sparse, mb);
    }

    /// What the own parser leaves to calamine mid-sheet (numbers in forms
    /// it does not take) is read by calamine from there on: the same
    /// records, no error.
    #[test]
    fn calamine_takes_over_mid_sheet() {
        let mut xml = String::new();
        for r in 1..=30_000 {
            if r == 25_000 {
                xml.push_str(&format!(
                    r#"<row r="{r}"><c r="A{r}"><v>+1</v></c><c r="B{r}"><v>.5</v></c></row>"#
                ));
            } else {
                xml.push_str(&format!(r#"<row r="{r}"><c r="A{r}"><v>{r}</v></c><c r="B{r}" t="inlineStr"><is><t>x{r}</t></is></c></row>"#));
            }
        }
        let bytes = book(&xml, None, None, false, true);
        let (sparse, mb) = default_limits();
        let out = same_as_calamine("take over", &bytes, Format::Xlsx, None, sparse, mb);
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(out.records.len(), 30_000);
        assert!(out.own.1, "calamine took over");
        assert!(
            out.own.0 > 10_000,
            "after {} cells of the own parser",
            out.own.0
        );
    }

    /// The guards refuse the same sheets at the same point.
    #[test]
    fn guards_apply_to_the_own_parser() {
        // Sparse: refused, and accepted part-way sparse (second pass).
        let refused =
            r#"<row r="1"><c r="A1"><v>1</v></c></row><row r="21"><c r="A21"><v>2</v></c></row>"#;
        let mut accepted = r#"<row r="1"><c r="A1"><v>1</v></c></row>"#.to_string();
        for r in 21..=41 {
            accepted.push_str(&format!(r#"<row r="{r}"><c r="A{r}"><v>{r}</v></c></row>"#));
        }
        let out = same_as_calamine(
            "sparse",
            &book(refused, None, None, false, false),
            Format::Xlsx,
            None,
            (10, 2),
            1024,
        );
        assert!(out.error.unwrap().1.contains("refused"));
        let out = same_as_calamine(
            "part-way sparse",
            &book(&accepted, None, None, false, false),
            Format::Xlsx,
            None,
            (10, 2),
            1024,
        );
        assert!(out.error.is_none());
        assert_eq!(out.records.len(), 41);
        // A row over the row limit (64 KiB at the smallest budget) and text
        // expanding past the budget (1 MB × 8) through shared strings.
        let big = format!(
            r#"<row r="1"><c r="A1" t="inlineStr"><is><t>{}</t></is></c><c r="B1" t="inlineStr"><is><t>{}</t></is></c></row>"#,
            "a".repeat(40_000),
            "b".repeat(40_000)
        );
        let out = same_as_calamine(
            "row limit",
            &book(&big, None, None, false, true),
            Format::Xlsx,
            None,
            (guard::SPARSE_MIN_CELLS, guard::SPARSE_FACTOR),
            1,
        );
        assert!(out.error.unwrap().1.contains("refused"));
        let sst = format!("<si><t>{}</t></si>", "s".repeat(60_000));
        let mut rows = String::new();
        for r in 1..=200 {
            rows.push_str(&format!(
                r#"<row r="{r}"><c r="A{r}" t="s"><v>0</v></c></row>"#
            ));
        }
        let out = same_as_calamine(
            "expansion",
            &book(&rows, Some(&sst), None, false, true),
            Format::Xlsx,
            None,
            (guard::SPARSE_MIN_CELLS, guard::SPARSE_FACTOR),
            1,
        );
        assert!(out.error.unwrap().1.contains("expand"));
    }

    /// A small seeded generator of sheets, each compared with calamine.
    #[test]
    fn random_sheets_read_as_calamine_reads_them() {
        let mut rnd = super::tests::xorshift(0x9E37_79B9_7F4A_7C15);
        let (sparse, mb) = default_limits();
        let mut errors = 0;
        for case in 0..60 {
            let mut xml = String::new();
            let mut row = 0u64;
            for _ in 0..rnd(40) {
                row += 1 + rnd(3) * rnd(2);
                let with_r = rnd(5) != 0;
                if with_r {
                    xml.push_str(&format!(r#"<row r="{row}">"#));
                } else {
                    xml.push_str("<row>");
                }
                let mut col = 0u64;
                for _ in 0..rnd(8) {
                    col += 1 + rnd(2) * rnd(3);
                    let mut name = String::new();
                    let mut c = col;
                    while c > 0 {
                        name.insert(0, (b'A' + ((c - 1) % 26) as u8) as char);
                        c = (c - 1) / 26;
                    }
                    let r = if with_r && rnd(4) != 0 {
                        format!(r#" r="{name}{row}""#)
                    } else {
                        String::new()
                    };
                    let cell = match rnd(15) {
                        0 => format!(r#"<c{r}><v>{}</v></c>"#, rnd(100000)),
                        1 => format!(r#"<c{r}><v>-{}.{}</v></c>"#, rnd(1000), rnd(1000)),
                        2 => format!(
                            r#"<c{r} s="{}"><v>{}.{}</v></c>"#,
                            rnd(8),
                            rnd(60000),
                            rnd(100000)
                        ),
                        3 => format!(r#"<c{r} t="s"><v>{}</v></c>"#, rnd(10)),
                        4 => format!(
                            r#"<c{r} t="inlineStr"><is><t>t{}&amp;{}</t></is></c>"#,
                            rnd(100),
                            rnd(10)
                        ),
                        5 => format!(r#"<c{r} t="b"><v>{}</v></c>"#, rnd(2)),
                        6 => format!(
                            r#"<c{r} t="e"><v>{}</v></c>"#,
                            ["#N/A", "#REF!", "#VALUE!", "#NAME?", "#NULL!", "#NUM!"]
                                [rnd(6) as usize]
                        ),
                        7 => format!(r#"<c{r} t="str"><f>X</f><v>f{}</v></c>"#, rnd(9)),
                        8 => format!(r#"<c{r} s="{}"/>"#, rnd(3)),
                        9 => format!(
                            r#"<c{r} t="inlineStr"><is><t xml:space="preserve"> {} </t></is></c>"#,
                            rnd(9)
                        ),
                        10 => format!(
                            r#"<c{r} t="d"><v>2024-0{}-1{}</v></c>"#,
                            1 + rnd(9),
                            rnd(10)
                        ),
                        11 => format!(r#"<c{r}><v>{}E{}</v></c>"#, rnd(99), rnd(20)),
                        12 => format!(r#"<c{r} t="inlineStr"><is><t>  </t></is></c>"#),
                        13 if rnd(2) == 0 => format!(
                            r#"<c{r} t="inlineStr"><is><t>{}</t></is></c>"#,
                            [
                                " &lt;a&gt; ",
                                "&quot;q&apos;",
                                "&#65;&#x42;",
                                "x &amp; y_x000D_",
                                "&amp;",
                                "a&nbsp;b",
                                "tab\t&#10;"
                            ][rnd(7) as usize]
                        ),
                        13 => format!(
                            r#"<c{r} t="str"><f>A1</f><v>{}</v></c>"#,
                            ["&lt;f&gt;", "a&amp;b", "_x0041_"][rnd(3) as usize]
                        ),
                        _ => format!(r#"<c{r}><f>SUM(A1)</f><v>{}</v></c>"#, rnd(10)),
                    };
                    xml.push_str(&cell);
                    if rnd(10) == 0 {
                        xml.push('\n');
                    }
                }
                xml.push_str("</row>");
            }
            let bytes = book(&xml, Some(SST), Some(STYLES), rnd(2) == 0, rnd(2) == 0);
            let out = same_as_calamine(
                &format!("random case {case}"),
                &bytes,
                Format::Xlsx,
                None,
                sparse,
                mb,
            );
            if out.error.is_none() {
                assert_eq!(
                    out.own,
                    (calamine_cells(&bytes, "S"), false),
                    "random case {case}: the own parser read it all"
                );
            } else {
                errors += 1;
            }
        }
        // Some cases hold `&nbsp;`, which calamine refuses: the same error
        // after the same records; most do not.
        assert!(errors < 30, "{errors} of 60 random sheets refused");
    }

    /// Workbooks written by `rust_xlsxwriter`: shared strings (rich text
    /// included) in one sheet, inline strings in a constant-memory one,
    /// dates, booleans, formulas with cached results, gaps.
    #[test]
    fn writer_made_workbooks_read_as_calamine_reads_them() {
        use rust_xlsxwriter::{ExcelDateTime as Dt, Format as Fmt, Formula, Workbook};
        let texts = [
            "plain",
            " padded ",
            "a & b <c>",
            "ünï ✓",
            "line\nbreak",
            "tab\there",
            "_x000D_ literal",
            "",
            "  ",
            "Shipping & handling",
            "quote \" and ' apos",
        ];
        let write = |sheet: &mut rust_xlsxwriter::Worksheet| {
            let date = Fmt::new().set_num_format("yyyy-mm-dd");
            let time = Fmt::new().set_num_format("hh:mm:ss");
            let money = Fmt::new().set_num_format("#,##0.00");
            let bold = Fmt::new().set_bold();
            for r in 0..3000u32 {
                if r % 97 == 13 {
                    continue;
                }
                let i = r as usize;
                sheet.write_string(r, 0, texts[i % texts.len()]).unwrap();
                sheet.write_number(r, 1, r as f64 * 1.25 - 100.0).unwrap();
                sheet
                    .write_number_with_format(r, 2, (r as f64) / 7.0, &money)
                    .unwrap();
                let d = Dt::from_ymd(
                    2000 + (r % 30) as u16,
                    1 + (r % 12) as u8,
                    1 + (r % 28) as u8,
                )
                .unwrap();
                sheet.write_datetime_with_format(r, 3, &d, &date).unwrap();
                let t = Dt::from_ymd(2024, 2, 29)
                    .unwrap()
                    .and_hms((r % 24) as u16, (r % 60) as u8, 0.5)
                    .unwrap();
                sheet.write_datetime_with_format(r, 4, &t, &time).unwrap();
                sheet.write_boolean(r, 5, r % 2 == 0).unwrap();
                if r % 3 == 0 {
                    sheet
                        .write_formula(
                            r,
                            6,
                            Formula::new("=B1&\"x\"").set_result(format!("r{r} & co")),
                        )
                        .unwrap();
                } else {
                    sheet
                        .write_formula(r, 6, Formula::new("=1+1").set_result("2"))
                        .unwrap();
                }
                if r % 5 == 0 {
                    sheet
                        .write_rich_string(
                            r,
                            9 + (r % 40) as u16,
                            &[(&bold, "rich "), (&Fmt::new(), "text")],
                        )
                        .unwrap();
                }
            }
        };
        let mut wb = Workbook::new();
        write(wb.add_worksheet().set_name("Shared").unwrap());
        write(
            wb.add_worksheet_with_constant_memory()
                .set_name("Inline")
                .unwrap(),
        );
        let bytes = wb.save_to_buffer().unwrap();
        let (sparse, mb) = default_limits();
        for sheet in ["Shared", "Inline"] {
            let out = same_as_calamine(
                "rust_xlsxwriter",
                &bytes,
                Format::Xlsx,
                Some(sheet),
                sparse,
                mb,
            );
            assert!(out.error.is_none(), "{sheet}: {:?}", out.error);
            assert_eq!(
                out.own,
                (calamine_cells(&bytes, sheet), false),
                "{sheet}: the own parser read it all"
            );
            assert_eq!(out.records.len(), 3000, "{sheet}");
        }
    }

    /// A parser that panics ends the read with `unreadable`, with 1, 2 or
    /// 4 threads, after the records before its block.
    #[test]
    fn a_panicking_parser_is_an_unreadable_workbook() {
        let mut xml = String::new();
        for r in 1..=2000 {
            xml.push_str(&format!(r#"<row r="{r}"><c r="A{r}"><v>{r}</v></c></row>"#));
        }
        xml.push_str(r#"<row r="2001"><c r="A2001" t="inlineStr"><is><t>__panic_in_parser__</t></is></c></row>"#);
        let bytes = book(&xml, None, None, false, true);
        let (sparse, mb) = default_limits();
        for threads in [1, 2, 4] {
            let out = read(&bytes, Format::Xlsx, None, threads, 4096, sparse, mb);
            let (code, message) = out.error.expect("an error");
            assert_eq!(code, FileErrorCode::Unreadable);
            assert!(message.contains("stopped unexpectedly"), "{message}");
            assert!(out.records.len() < 2001, "{threads} threads");
        }
    }

    /// A reader dropped part-way stops every thread (the test would hang
    /// otherwise).
    #[test]
    fn a_dropped_reader_stops_the_parsers() {
        let mut xml = String::new();
        for r in 1..=20_000 {
            xml.push_str(&format!(r#"<row r="{r}"><c r="A{r}"><v>{r}</v></c></row>"#));
        }
        let bytes = book(&xml, None, None, false, true);
        for threads in [1, 2, 4] {
            let mut reader = open_excel_with(
                "t.xlsx",
                Source::Bytes(bytes.clone()),
                Format::Xlsx,
                false,
                &Settings::default(),
                Layout::Unpadded,
                ReadOptions {
                    sheet_threads: threads,
                },
            )
            .unwrap();
            let mut batch = RecordBatch::new();
            assert_eq!(reader.read_batch(&mut batch, 10).unwrap(), 10);
            drop(reader);
        }
    }
}
