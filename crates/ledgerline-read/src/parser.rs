//! The CSV record parser: `csv-core` for quoting, plus the line numbering
//! and blank lines of SPEC §1 and §3 that `csv-core` does not provide.

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};
use ledgerline_core::{
    FileError, FileErrorCode, RecordBatch, RecordStatus, DEFAULT_MAX_RECORD_BYTES, FIELD_SEPARATOR,
};

/// A UTF-8 byte order mark.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Output room handed to `csv-core` at first; doubled whenever one field
/// outgrows it (up to the record limit), and back to this after the record.
/// Small: it is zeroed whenever `csv-core` takes a record (one per input
/// block, the record cut at its end, in the usual file).
const INITIAL_SLACK: usize = 8 * 1024;

/// Field ends taken from `csv-core` per call at most: a record of millions
/// of fields is read in several calls rather than with a huge buffer.
const MAX_CALL_ENDS: usize = 64 * 1024;

/// Bytes a batch's field ends cost, counted toward the batch byte cap.
const END_BYTES: usize = std::mem::size_of::<u32>();

/// Below this much room left in the batch's data, it is grown before
/// `csv-core` is called, so that a call almost always finishes a record.
const MIN_ROOM: usize = 4 * 1024;

/// What one [`CsvRangeParser::parse`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Records appended to the batch.
    pub records: usize,
    /// Bytes of the input consumed. Unless the record limit was reached,
    /// the batch is [full](Parsed::full) or parsing is
    /// [done](CsvRangeParser::is_done), this is all of it: a record cut by
    /// the end of the input is kept by the parser and the batch, and the
    /// next call continues it.
    pub consumed: usize,
    /// The batch reached the parser's byte cap
    /// ([`CsvRangeParser::max_batch_bytes`]) after a whole record: hand the
    /// rest of the input over with the next batch.
    pub full: bool,
}

/// Parses UTF-8 CSV bytes into [`RecordBatch`] records, with SPEC row
/// numbers and blank lines.
///
/// Quoting is `csv-core`'s (RFC 4180 read leniently, SPEC §1). On top of it
/// this parser:
/// - numbers each record with the 1-based line on which it starts, counting
///   `\r\n`, a lone `\r` and `\n` each as one line break (also when a `\r\n`
///   is split between two inputs);
/// - appends a record with one empty field for every empty line, which
///   `csv-core` would skip, so that blank rows are counted;
/// - marks a record [`RecordStatus::InvalidEncoding`] when a field is not
///   valid UTF-8, and a record whose quoted field is still open at the end
///   of the input [`RecordStatus::UnterminatedQuote`]; that record is the
///   last;
/// - marks a record whose raw bytes (from its first byte to the line break
///   that ends it, quotes and delimiters included) exceed
///   [`CsvRangeParser::max_record_bytes`] [`RecordStatus::TooLong`] (SPEC
///   §10), whatever else is wrong with it: its fields are dropped as soon as
///   it is known to be too long, the rest of it is run through `csv-core`
///   only to find where it ends (quotes respected), and it is appended
///   without any field;
/// - stops a batch after the record that takes its bytes (field data plus
///   field ends) to [`CsvRangeParser::max_batch_bytes`].
///
/// Memory is therefore bounded by the limits, whatever the input: the
/// batch, plus about `max_record_bytes` for the record in progress.
///
/// The same parser serves the streaming reader (input block by block) and
/// parsing one byte range of a memory-mapped file in parallel: start it at
/// the range's first line with [`CsvRangeParser::new`], and hand it the range
/// with `eof` set. A range must start at the start of a record (never on the
/// `\n` of a `\r\n`, nor after a UTF-8 byte order mark still to be skipped)
/// and end at the end of one.
#[derive(Debug)]
pub struct CsvRangeParser {
    core: Reader,
    /// The field delimiter, for the fast path that bypasses `csv-core`.
    delimiter: u8,
    /// `csv-core` has consumed bytes of the record in progress (which may
    /// have opened a quote without writing anything): no fast path then.
    core_in_record: bool,
    /// The line at the current input position.
    line: u64,
    /// The last byte consumed was `\r`: a `\n` next ends the same line.
    prev_cr: bool,
    /// Bytes of an unfinished record have been consumed.
    in_record: bool,
    /// The row number of the record in progress.
    record_row: u64,
    /// Where the record in progress starts in the batch's data.
    record_base: usize,
    /// Bytes of the record in progress written to the batch so far.
    record_len: usize,
    /// Where the record in progress starts in the batch's field ends.
    record_first_field: usize,
    /// Anything has been handed to `csv-core` yet.
    fed: bool,
    /// The end of input was reached, or an unterminated record ended it.
    done: bool,
    /// Room requested in the batch's data before a `csv-core` call.
    slack: usize,
    /// Field ends of the current call, relative to the record's start.
    ends: Vec<usize>,
    /// Raw bytes above which a record is [`RecordStatus::TooLong`].
    max_record_bytes: usize,
    /// Batch bytes after which no further record is started.
    max_batch_bytes: usize,
    /// Raw input bytes of the record in progress consumed so far.
    record_raw: usize,
    /// The record in progress is too long: its output is thrown away.
    skipping: bool,
    /// The fast path's byte finder for `delimiter`.
    block: Block,
}

impl CsvRangeParser {
    /// A parser for `delimiter`-separated fields whose first record starts on
    /// line `first_line` (1 for a whole file).
    pub fn new(delimiter: u8, first_line: u64) -> CsvRangeParser {
        CsvRangeParser {
            core: ReaderBuilder::new().delimiter(delimiter).build(),
            delimiter,
            core_in_record: false,
            line: first_line,
            prev_cr: false,
            in_record: false,
            record_row: first_line,
            record_base: 0,
            record_len: 0,
            record_first_field: 0,
            fed: false,
            done: false,
            slack: INITIAL_SLACK,
            ends: vec![0; 64],
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_batch_bytes: usize::MAX,
            record_raw: 0,
            skipping: false,
            block: Block::new(delimiter),
        }
    }

    /// Sets the raw bytes above which a record is [`RecordStatus::TooLong`]
    /// (the `max_record_bytes` setting; default 16 MiB; at least 1).
    pub fn with_max_record_bytes(mut self, bytes: usize) -> CsvRangeParser {
        self.max_record_bytes = bytes.max(1);
        self
    }

    /// Sets the byte cap of a batch: once a record takes the batch's field
    /// data plus field ends (4 bytes each) to `bytes` or more, the call
    /// returns with [`Parsed::full`] (default: no cap beyond the 4 GiB a
    /// batch can address; at least 1).
    pub fn with_max_batch_bytes(mut self, bytes: usize) -> CsvRangeParser {
        self.max_batch_bytes = bytes.max(1);
        self
    }

    /// The raw bytes above which a record is [`RecordStatus::TooLong`].
    pub fn max_record_bytes(&self) -> usize {
        self.max_record_bytes
    }

    /// The byte cap of a batch.
    pub fn max_batch_bytes(&self) -> usize {
        self.max_batch_bytes
    }

    /// The most output room requested for one record: a record is dropped
    /// once its raw bytes (never fewer than its field bytes) pass the limit.
    fn max_slack(&self) -> usize {
        self.max_record_bytes
            .saturating_add(MIN_ROOM)
            .max(INITIAL_SLACK)
    }

    /// The line number at the current input position: after the last
    /// record, the line the next one would start on.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Whether parsing has finished: the end of input was reached, or a
    /// record with an unterminated quote ended it. Later calls append nothing.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Parses `input`, appending at most `max_records` records to `batch`.
    ///
    /// `eof` says that `input` is the last of the data: then, unless the
    /// record limit stops it first, the call consumes everything, finishes
    /// the last record and the parser is [done](CsvRangeParser::is_done).
    /// Without `eof`, a record cut by the end of `input` stays in `batch`
    /// unfinished: pass the same batch, not cleared, with the next input.
    ///
    /// Errors: `internal` when `batch` holds non-text cells or is not the
    /// batch holding the unfinished record, `unreadable` when one batch
    /// would exceed 4 GiB of field data.
    pub fn parse(
        &mut self,
        input: &[u8],
        eof: bool,
        batch: &mut RecordBatch,
        max_records: usize,
    ) -> Result<Parsed, FileError> {
        let committed = match batch.text_buffers_mut() {
            Some((data, _)) => data.len(),
            None => return Err(internal("a CSV batch cannot hold non-text cells")),
        };
        if self.in_record && committed != self.record_base + self.record_len {
            return Err(internal(
                "an unfinished CSV record must be continued in the batch that holds it",
            ));
        }
        let mut state = Progress {
            pos: 0,
            records: 0,
            committed,
            full: false,
        };
        let result = self.run(input, eof, batch, max_records, &mut state);
        // `run` may leave zeroed room after the written bytes.
        if let Some((data, _)) = batch.text_buffers_mut() {
            data.truncate(state.committed);
        }
        result.map(|()| Parsed {
            records: state.records,
            consumed: state.pos,
            full: state.full,
        })
    }

    fn run(
        &mut self,
        input: &[u8],
        eof: bool,
        batch: &mut RecordBatch,
        max_records: usize,
        st: &mut Progress,
    ) -> Result<(), FileError> {
        while st.records < max_records && !self.done {
            if !self.in_record {
                let fields = batch.text_buffers_mut().map_or(0, |(_, e)| e.len());
                if st
                    .committed
                    .saturating_add(fields.saturating_mul(END_BYTES))
                    >= self.max_batch_bytes
                {
                    st.full = true;
                    break;
                }
                self.skip_empty_lines(input, batch, max_records, st)?;
                if st.records == max_records {
                    break;
                }
                if st.pos == input.len() {
                    self.done = eof;
                    break;
                }
                self.in_record = true;
                self.record_row = self.line;
                self.record_base = st.committed;
                self.record_len = 0;
                self.record_first_field = batch.text_buffers_mut().map_or(0, |(_, e)| e.len());
                self.record_raw = 0;
                self.skipping = false;
            }
            if st.pos == input.len() && !eof {
                break;
            }
            if !self.core_in_record && self.fast_record(input, batch, st)? {
                continue;
            }
            let Some((data, ends)) = batch.text_buffers_mut() else {
                return Err(internal("a CSV batch cannot hold non-text cells"));
            };
            if data.len() < st.committed + MIN_ROOM {
                // A record being skipped reuses the same room over and over.
                let room = if self.skipping {
                    INITIAL_SLACK
                } else {
                    self.slack
                };
                data.resize(st.committed + room, 0);
            }
            let mut unterminated = false;
            let (res, nin, nout, nend) = if st.pos == input.len() {
                // End of input inside a record. `csv-core` closes it either
                // way and does not say whether a quoted field was still
                // open, so it is asked: one more line break is field text
                // inside quotes and ends the record anywhere else. (A clone
                // of the parser cannot ask instead: `csv-core`'s clone of its
                // DFA copies only part of the tables.)
                let (probed, _, probe_out, probe_ends) =
                    self.core
                        .read_record(b"\n", &mut data[st.committed..], &mut self.ends);
                if probed == ReadRecordResult::Record {
                    (probed, 0, 0, probe_ends)
                } else {
                    unterminated = true;
                    let (res, _, _, nend) =
                        self.core
                            .read_record(&[], &mut data[st.committed..], &mut self.ends);
                    // The last field's end counts the probe's line break,
                    // written past the committed bytes and dropped with them.
                    if let Some(end) = self.ends[..nend].last_mut() {
                        *end -= probe_out;
                    }
                    (res, 0, 0, nend)
                }
            } else {
                let mut chunk = &input[st.pos..];
                if !self.fed && chunk.starts_with(UTF8_BOM) {
                    // `csv-core` drops a byte order mark at the very start of
                    // its input. Callers strip the one the encoding stands
                    // for; a second one is data, so feed one byte first.
                    chunk = &chunk[..1];
                }
                self.fed = true;
                self.core
                    .read_record(chunk, &mut data[st.committed..], &mut self.ends)
            };
            self.count_breaks(&input[st.pos..st.pos + nin]);
            self.core_in_record |= nin > 0;
            st.pos += nin;
            self.record_raw = self.record_raw.saturating_add(nin);
            // A finished record's last consumed byte is the line break that
            // ended it (none at the end of the input); it is not the record's.
            let terminator = usize::from(res == ReadRecordResult::Record && nin > 0);
            if !self.skipping && self.record_raw - terminator > self.max_record_bytes {
                // Too long: drop what it wrote, keep only finding its end.
                self.skipping = true;
                ends.truncate(self.record_first_field);
                st.committed = self.record_base;
                self.record_len = 0;
                self.slack = INITIAL_SLACK;
            }
            if !self.skipping {
                st.committed += nout;
                self.record_len += nout;
                for &end in &self.ends[..nend] {
                    let end = u32::try_from(self.record_base + end).map_err(|_| too_large())?;
                    ends.push(end);
                }
            }
            match res {
                ReadRecordResult::Record => {
                    if !self.skipping {
                        separate(data, ends, self.record_base, self.record_first_field)?;
                        let added = ends.len() - self.record_first_field;
                        st.committed += added;
                        self.record_len += added;
                    }
                    let status = if self.skipping {
                        RecordStatus::TooLong
                    } else if unterminated {
                        RecordStatus::UnterminatedQuote
                    } else {
                        record_encoding(&data[self.record_base..st.committed])
                    };
                    // Every stored byte of an `Ok` record was checked.
                    batch.finish_utf8_record(self.record_row, status);
                    st.records += 1;
                    self.in_record = false;
                    self.core_in_record = false;
                    self.skipping = false;
                    // Shrink back after a huge field.
                    self.slack = INITIAL_SLACK;
                    if unterminated {
                        self.done = true;
                    }
                }
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => {
                    if !self.skipping {
                        self.slack = self.slack.saturating_mul(2).min(self.max_slack());
                    }
                }
                ReadRecordResult::OutputEndsFull => {
                    // The ends of each call are copied to the batch, so the
                    // buffer only saves calls; it need not hold a record's.
                    if !self.skipping && self.ends.len() < MAX_CALL_ENDS {
                        let grown = self.ends.len() * 2;
                        self.ends.resize(grown, 0);
                    }
                }
                ReadRecordResult::End => {
                    self.in_record = false;
                    self.core_in_record = false;
                    self.done = true;
                }
            }
        }
        Ok(())
    }

    /// The fast path for the common record: a whole line, in `input`,
    /// whose fields are unquoted or quoted with no line break inside and
    /// the closing quote followed by the delimiter or the line break
    /// (`"a, ""b"""` is `a, "b"`; a quote inside an unquoted field is
    /// text). Such a record is split exactly as `csv-core` would split it,
    /// without running its state machine byte by byte: the delimiters,
    /// quotes and line breaks are found sixteen bytes at a time ([`Specials`]),
    /// and each run of unquoted fields is stored with one copy (their
    /// delimiters, and the line break, become the separators). Returns
    /// false, having consumed and kept nothing, when the record needs
    /// `csv-core`: anything else, no line break in `input` yet, a byte
    /// order mark at the very start, or a line longer than
    /// `max_record_bytes` (`csv-core` skips it without holding it).
    fn fast_record(
        &mut self,
        input: &[u8],
        batch: &mut RecordBatch,
        st: &mut Progress,
    ) -> Result<bool, FileError> {
        let rest = &input[st.pos..];
        if !self.fed && rest.starts_with(UTF8_BOM) {
            return Ok(false);
        }
        let delimiter = self.delimiter;
        if matches!(delimiter, b'"' | b'\n' | b'\r') {
            // Not a delimiter the settings allow; `csv-core` reads it as
            // it will.
            return Ok(false);
        }
        // Only a line break at most `max_record_bytes` in is looked for:
        // a longer line is `csv-core`'s to skip.
        let scan = &rest[..rest.len().min(self.max_record_bytes.saturating_add(1))];
        let base = st.committed;
        // The record stored is never longer than the line and its break;
        // near the `u32` limit `csv-core` stores it, or says it is too
        // large.
        if u32::try_from(base.saturating_add(scan.len()).saturating_add(1)).is_err() {
            return Ok(false);
        }
        let Some((data, ends)) = batch.text_buffers_mut() else {
            return Err(internal("a CSV batch cannot hold non-text cells"));
        };
        // Appended to, never written ahead: no room to zero first.
        data.truncate(base);
        let first_field = ends.len();
        // Up to its first quote a line's fields end at its delimiters;
        // a line with no quote is stored with one copy.
        let (field, mut specials) = match plain_line(&self.block, scan, base, ends) {
            Plain::Line { nl, ascii } => {
                data.extend_from_slice(&scan[..=nl]);
                let out = data.len();
                let status = line_encoding(ascii, &data[base..out]);
                self.finish_fast(input, nl, out, status, batch, st);
                return Ok(true);
            }
            Plain::Quote { field, specials } => (field, specials),
            Plain::Open => {
                ends.truncate(first_field);
                return Ok(false);
            }
        };
        let is_break = |b: u8| b == b'\n' || b == b'\r';
        // The delimiters, quotes and line breaks, in order: the first line
        // break outside quotes ends the record; one inside quotes sends it
        // to `csv-core`.
        // Unquoted fields from `run` (in the line) are stored from `run_out`
        // (in `data`) once the run ends.
        let mut run = 0;
        let mut run_out = base;
        let mut field = field;
        // Where the line break is, once the record is complete.
        let line_break = loop {
            if scan.get(field) != Some(&b'"') {
                // Unquoted: up to the next delimiter or line break, quotes
                // being text.
                let end = loop {
                    match specials.next() {
                        Some(at) if scan[at] == delimiter || is_break(scan[at]) => break Some(at),
                        Some(_) => {}
                        None => break None,
                    }
                };
                let Some(end) = end else { break None };
                ends.push((run_out + end - run) as u32);
                if scan[end] != delimiter {
                    break Some(end);
                }
                field = end + 1;
                continue;
            }
            // A quoted field: store the run before it, then its text.
            data.extend_from_slice(&scan[run..field]);
            let mut piece = field + 1;
            let after = loop {
                let q = loop {
                    match specials.next() {
                        Some(at) if at < piece => {}
                        Some(at) if scan[at] == b'"' => break Some(at),
                        Some(at) if is_break(scan[at]) => break None,
                        Some(_) => {}
                        None => break None,
                    }
                };
                let Some(q) = q else { break None };
                let escaped = scan.get(q + 1) == Some(&b'"');
                let to = if escaped { q + 1 } else { q };
                data.extend_from_slice(&scan[piece..to]);
                if !escaped {
                    break Some(q + 1);
                }
                piece = q + 2;
            };
            // Closed, and followed by the delimiter or the line break.
            let Some((after, &next)) = after.and_then(|a| Some((a, scan.get(a)?))) else {
                break None;
            };
            if next != delimiter && !is_break(next) {
                break None;
            }
            ends.push(data.len() as u32);
            if is_break(next) {
                data.push(next);
                run = after + 1;
                break Some(after);
            }
            // The delimiter starts the next run: it is this field's separator.
            run = after;
            run_out = data.len();
            field = after + 1;
            // Step past the delimiter just used.
            while specials.next().is_some_and(|at| at < after) {}
        };
        let Some(nl) = line_break else {
            // Leave no trace: `csv-core` parses this record from its start.
            ends.truncate(first_field);
            data.truncate(base);
            return Ok(false);
        };
        // The last run, with the line break as its last separator.
        if run <= nl {
            data.extend_from_slice(&scan[run..=nl]);
        }
        let out = data.len();
        // Every block up to the line break was scanned (and maybe bytes of
        // the next line: a non-ASCII one only costs this record a check).
        let status = line_encoding(specials.ascii_so_far(), &data[base..out]);
        self.finish_fast(input, nl, out, status, batch, st);
        Ok(true)
    }

    /// Ends a record taken by the fast path: its line break at `nl` (from
    /// the current position), its bytes stored up to `committed`.
    fn finish_fast(
        &mut self,
        input: &[u8],
        nl: usize,
        committed: usize,
        status: RecordStatus,
        batch: &mut RecordBatch,
        st: &mut Progress,
    ) {
        let rest = &input[st.pos..];
        // The line break: `\r\n` is one; a `\r` at the end of the input may
        // be followed by the `\n` of the next input.
        let mut consumed = nl + 1;
        self.prev_cr = false;
        if rest[nl] == b'\r' {
            match rest.get(nl + 1) {
                Some(b'\n') => consumed += 1,
                Some(_) => {}
                None => self.prev_cr = true,
            }
        }
        st.pos += consumed;
        st.committed = committed;
        // `fed` tells whether csv-core has seen input (it drops a byte order
        // mark at the very start of its own input); the fast path leaves it
        // alone, so a later record starting with one is still handed to
        // csv-core a byte at a time.
        self.in_record = false;
        batch.finish_utf8_record(self.record_row, status);
        self.line += 1;
        st.records += 1;
    }

    /// Consumes the line breaks at the start of a record, appending a record
    /// of one empty field for each empty line.
    fn skip_empty_lines(
        &mut self,
        input: &[u8],
        batch: &mut RecordBatch,
        max_records: usize,
        st: &mut Progress,
    ) -> Result<(), FileError> {
        while st.records < max_records {
            let Some(&b) = input.get(st.pos) else { break };
            if b != b'\n' && b != b'\r' {
                break;
            }
            st.pos += 1;
            if b == b'\n' && self.prev_cr {
                // The second half of a `\r\n` that ended the previous line.
                self.prev_cr = false;
                continue;
            }
            self.prev_cr = b == b'\r';
            let Some((data, ends)) = batch.text_buffers_mut() else {
                return Err(internal("a CSV batch cannot hold non-text cells"));
            };
            ends.push(u32::try_from(st.committed).map_err(|_| too_large())?);
            put_separator(data, &mut st.committed, b);
            batch.finish_utf8_record(self.line, RecordStatus::Ok);
            self.line += 1;
            st.records += 1;
        }
        Ok(())
    }

    /// Advances the line number over consumed bytes.
    fn count_breaks(&mut self, bytes: &[u8]) {
        let Some(&last) = bytes.last() else { return };
        for i in memchr::memchr2_iter(b'\r', b'\n', bytes) {
            let after_cr = match i.checked_sub(1) {
                Some(j) => bytes[j] == b'\r',
                None => self.prev_cr,
            };
            if bytes[i] == b'\r' || !after_cr {
                self.line += 1;
            }
        }
        self.prev_cr = last == b'\r';
    }
}

/// Position within one [`CsvRangeParser::parse`] call.
struct Progress {
    /// Input bytes consumed.
    pos: usize,
    /// Records appended.
    records: usize,
    /// Bytes of the batch's data written (the rest is room).
    committed: usize,
    /// The batch reached the byte cap.
    full: bool,
}

/// [`RecordStatus::InvalidEncoding`] when a field of the record is not
/// valid UTF-8. `bytes` are the record's stored bytes, fields and their
/// separators: an ASCII separator between two invalid halves of a
/// character keeps them invalid, so one check of the whole is a check of
/// each field.
fn record_encoding(bytes: &[u8]) -> RecordStatus {
    line_encoding(false, bytes)
}

/// [`record_encoding`] of a fast-path line, with nothing to check when the
/// scan saw only ASCII.
fn line_encoding(ascii: bool, bytes: &[u8]) -> RecordStatus {
    if ascii || std::str::from_utf8(bytes).is_ok() {
        RecordStatus::Ok
    } else {
        RecordStatus::InvalidEncoding
    }
}

/// The delimiters, quotes and line breaks of a line and what follows it,
/// in order, found sixteen bytes at a time ([`Block`]); and whether the
/// bytes scanned are ASCII.
struct Specials<'a> {
    line: &'a [u8],
    /// Where the next block starts.
    next: usize,
    /// Where the current block starts.
    at: usize,
    /// Bit `k` set when byte `k` of the current block is special and not
    /// yet handed out.
    found: u32,
    block: Block,
    /// Whether a byte seen so far is not ASCII.
    high: bool,
}

impl<'a> Specials<'a> {
    /// Specials from block `at` of `line` (whose masks are `m`) on, the
    /// first handed out at `from` (in that block) or later; `high` says
    /// whether the bytes before were ASCII.
    fn resume(
        line: &'a [u8],
        block: Block,
        at: usize,
        m: Masks,
        from: usize,
        high: bool,
    ) -> Specials<'a> {
        Specials {
            line,
            next: at + BLOCK,
            at,
            // `from` lies in this block or an earlier one: a shift below 16.
            found: m.any() & u32::MAX << from.saturating_sub(at).min(BLOCK - 1),
            block,
            high: high || m.high,
        }
    }

    /// The position of the next delimiter, quote or line break.
    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.found == 0 {
            if self.next >= self.line.len() {
                return None;
            }
            let m = block_at(&self.block, self.line, self.next);
            self.high |= m.high;
            self.found = m.any();
            self.at = self.next;
            self.next += BLOCK;
        }
        let byte = self.found.trailing_zeros() as usize;
        self.found &= self.found - 1;
        Some(self.at + byte)
    }

    /// Whether every byte of the blocks scanned so far is ASCII.
    fn ascii_so_far(&self) -> bool {
        !self.high
    }
}

/// Bytes [`Block::scan`] looks at at once.
const BLOCK: usize = 16;

/// What [`Block::scan`] finds in sixteen bytes: bit `k` of a mask is byte
/// `k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Masks {
    delimiters: u32,
    quotes: u32,
    /// `\n` and `\r`.
    breaks: u32,
    /// A byte is not ASCII.
    high: bool,
}

impl Masks {
    /// Every special byte: delimiters, quotes and line breaks.
    #[inline]
    fn any(&self) -> u32 {
        self.delimiters | self.quotes | self.breaks
    }
}

/// The masks of the sixteen bytes of `bytes` from `at` (`at` below its
/// length); past its end, nothing is special.
#[inline]
fn block_at(block: &Block, bytes: &[u8], at: usize) -> Masks {
    match bytes
        .get(at..at + BLOCK)
        .and_then(|b| <&[u8; BLOCK]>::try_from(b).ok())
    {
        Some(b) => block.scan(b),
        None => {
            let rest = bytes.get(at..).unwrap_or(&[]);
            let mut padded = [0; BLOCK];
            padded[..rest.len()].copy_from_slice(rest);
            let mut m = block.scan(&padded);
            // Nothing past the end is special, whatever the delimiter.
            let inside = (1u32 << rest.len()) - 1;
            m.delimiters &= inside;
            m.quotes &= inside;
            m.breaks &= inside;
            m
        }
    }
}

/// How far [`plain_line`] read a line.
enum Plain<'a> {
    /// No quote before the line break at `nl`; the bytes scanned were
    /// ASCII or not.
    Line { nl: usize, ascii: bool },
    /// A quote before any line break: the field holding it starts at
    /// `field`; `specials` go on from there.
    Quote {
        field: usize,
        specials: Specials<'a>,
    },
    /// No line break in `scan`, and no quote.
    Open,
}

/// A line's fields up to its first quote or line break within `scan`:
/// pushes their ends (`base` plus each delimiter's position, then the line
/// break's when no quote came first).
#[inline]
fn plain_line<'a>(block: &Block, scan: &'a [u8], base: usize, ends: &mut Vec<u32>) -> Plain<'a> {
    let mut high = false;
    let mut at = 0;
    let mut field = 0;
    while at < scan.len() {
        let m = block_at(block, scan, at);
        // The bits before the first line break (all of them without one).
        let before_break = m.breaks.wrapping_sub(1) & !m.breaks;
        let quotes = m.quotes & before_break;
        // The bits before the first quote or line break.
        let before = if quotes != 0 {
            quotes.wrapping_sub(1) & !quotes & before_break
        } else {
            before_break
        };
        let mut d = m.delimiters & before;
        while d != 0 {
            let k = d.trailing_zeros() as usize;
            // `base` plus a position in `scan` fits: the caller checked.
            ends.push((base + at + k) as u32);
            field = at + k + 1;
            d &= d - 1;
        }
        if quotes != 0 {
            return Plain::Quote {
                field,
                specials: Specials::resume(scan, *block, at, m, field, high),
            };
        }
        high |= m.high;
        if m.breaks != 0 {
            let nl = at + m.breaks.trailing_zeros() as usize;
            ends.push((base + nl) as u32);
            return Plain::Line { nl, ascii: !high };
        }
        at += BLOCK;
    }
    Plain::Open
}

/// Finds the delimiters and quotes of sixteen bytes: SSE2 on x86-64 (every
/// x86-64 processor has it; `safe_arch` wraps the intrinsics), words
/// elsewhere ([`SwarBlock`]).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[derive(Clone, Copy, Debug)]
struct Block {
    delimiter: safe_arch::m128i,
    quote: safe_arch::m128i,
    lf: safe_arch::m128i,
    cr: safe_arch::m128i,
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
impl Block {
    fn new(delimiter: u8) -> Block {
        Block {
            delimiter: safe_arch::set_splat_i8_m128i(delimiter as i8),
            quote: safe_arch::set_splat_i8_m128i(b'"' as i8),
            lf: safe_arch::set_splat_i8_m128i(b'\n' as i8),
            cr: safe_arch::set_splat_i8_m128i(b'\r' as i8),
        }
    }

    /// The delimiters, quotes and line breaks of `bytes`, and whether a
    /// byte is not ASCII.
    #[inline]
    fn scan(&self, bytes: &[u8; BLOCK]) -> Masks {
        use safe_arch::{
            bitor_m128i, cmp_eq_mask_i8_m128i, load_unaligned_m128i, move_mask_i8_m128i,
        };
        let v = load_unaligned_m128i(bytes);
        let mask = |pattern| move_mask_i8_m128i(cmp_eq_mask_i8_m128i(v, pattern)) as u32;
        let breaks = bitor_m128i(
            cmp_eq_mask_i8_m128i(v, self.lf),
            cmp_eq_mask_i8_m128i(v, self.cr),
        );
        Masks {
            delimiters: mask(self.delimiter),
            quotes: mask(self.quote),
            breaks: move_mask_i8_m128i(breaks) as u32,
            high: move_mask_i8_m128i(v) != 0,
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
type Block = SwarBlock;

/// [`Block`] in plain 64-bit words: two words of eight bytes, each byte
/// compared exactly (no carries cross bytes).
#[derive(Clone, Copy, Debug)]
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
struct SwarBlock {
    delimiter: u64,
}

#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
impl SwarBlock {
    const LOW: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
    const LFS: u64 = u64::from_ne_bytes([b'\n'; 8]);
    const CRS: u64 = u64::from_ne_bytes([b'\r'; 8]);

    fn new(delimiter: u8) -> SwarBlock {
        SwarBlock {
            delimiter: u64::from_ne_bytes([delimiter; 8]),
        }
    }

    /// The high bit of each byte of `w` equal to the matching byte of
    /// `pattern`.
    #[inline]
    fn equal(w: u64, pattern: u64) -> u64 {
        let t = w ^ pattern;
        !(((t & Self::LOW) + Self::LOW) | t | Self::LOW)
    }

    /// The byte-wise high bits of `w` gathered into the low eight bits.
    #[inline]
    fn gather(high_bits: u64) -> u32 {
        (((high_bits >> 7) & 0x0101_0101_0101_0101).wrapping_mul(0x0102_0408_1020_4080) >> 56)
            as u32
    }

    #[inline]
    fn scan(&self, bytes: &[u8; BLOCK]) -> Masks {
        let (lo, hi) = bytes.split_at(8);
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        let (lo, hi) = (word(lo), word(hi));
        let mask = |f: &dyn Fn(u64) -> u64| Self::gather(f(lo)) | Self::gather(f(hi)) << 8;
        Masks {
            delimiters: mask(&|w| Self::equal(w, self.delimiter)),
            quotes: mask(&|w| Self::equal(w, Self::QUOTES)),
            breaks: mask(&|w| Self::equal(w, Self::LFS) | Self::equal(w, Self::CRS)),
            high: (lo | hi) & !Self::LOW != 0,
        }
    }
}

/// Writes the separator after an empty line's one empty field.
fn put_separator(data: &mut Vec<u8>, committed: &mut usize, byte: u8) {
    if data.len() > *committed {
        data[*committed] = byte;
    } else {
        data.push(byte);
    }
    *committed += 1;
}

/// Gives each field of the record that `csv-core` wrote back to back from
/// `base` (its ends from `first` on) its separator byte after it: field
/// `k` moves `k` bytes right. `data` must hold the record plus one byte
/// per field.
fn separate(
    data: &mut Vec<u8>,
    ends: &mut [u32],
    base: usize,
    first: usize,
) -> Result<(), FileError> {
    let fields = &mut ends[first..];
    let n = fields.len();
    let Some(&last) = fields.last() else {
        return Ok(());
    };
    let new_end = last as usize + n;
    u32::try_from(new_end).map_err(|_| too_large())?;
    if data.len() < new_end {
        data.resize(new_end, 0);
    }
    for k in (0..n).rev() {
        let start = if k == 0 { base } else { fields[k - 1] as usize };
        let end = fields[k] as usize;
        data.copy_within(start..end, start + k);
        data[end + k] = FIELD_SEPARATOR;
        fields[k] = (end + k) as u32;
    }
    Ok(())
}

fn internal(message: &str) -> FileError {
    FileError::new(FileErrorCode::Internal, message)
}

fn too_large() -> FileError {
    FileError::new(
        FileErrorCode::Unreadable,
        "a record is too large: one chunk of records cannot exceed 4 GiB",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record as (row, status, fields), parsed from `input` cut into
    /// pieces of `piece` bytes, reading at most `max` records per call. The
    /// batch is never cleared, so an unfinished record stays where it is.
    fn parse_pieces(
        input: &[u8],
        piece: usize,
        max: usize,
    ) -> Vec<(u64, RecordStatus, Vec<String>)> {
        parse_limited(input, piece, max, DEFAULT_MAX_RECORD_BYTES)
    }

    /// [`parse_pieces`] with records over `limit` bytes too long.
    fn parse_limited(
        input: &[u8],
        piece: usize,
        max: usize,
        limit: usize,
    ) -> Vec<(u64, RecordStatus, Vec<String>)> {
        let mut parser = CsvRangeParser::new(b',', 1).with_max_record_bytes(limit);
        let mut batch = RecordBatch::new();
        let mut at = 0;
        let mut calls = 0;
        while !parser.is_done() {
            calls += 1;
            assert!(calls < 100_000, "no progress");
            let end = (at + piece).min(input.len());
            let eof = end == input.len();
            let got = parser.parse(&input[at..end], eof, &mut batch, max).unwrap();
            at += got.consumed;
            assert!(got.records <= max);
            if got.records < max && !parser.is_done() {
                assert_eq!(at, end, "input left unconsumed below the limit");
            }
        }
        assert_eq!(at, input.len());
        batch
            .iter()
            .map(|r| {
                let fields = r
                    .fields()
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect();
                (r.row(), r.status(), fields)
            })
            .collect()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn rows(input: &[u8]) -> Vec<(u64, Vec<String>)> {
        let mut parser = CsvRangeParser::new(b',', 1);
        let mut batch = RecordBatch::new();
        let got = parser.parse(input, true, &mut batch, usize::MAX).unwrap();
        assert_eq!(got.consumed, input.len());
        assert!(parser.is_done());
        batch
            .iter()
            .map(|r| {
                (
                    r.row(),
                    r.fields()
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn line_breaks_of_every_kind() {
        assert_eq!(
            rows(b"a,b\r\nc,d\re,f\ng,h"),
            vec![
                (1, s(&["a", "b"])),
                (2, s(&["c", "d"])),
                (3, s(&["e", "f"])),
                (4, s(&["g", "h"])),
            ]
        );
    }

    #[test]
    fn blank_lines_are_records() {
        assert_eq!(
            rows(b"\n\r\nh\r\n\r\n\r\nx\n\n"),
            vec![
                (1, s(&[""])),
                (2, s(&[""])),
                (3, s(&["h"])),
                (4, s(&[""])),
                (5, s(&[""])),
                (6, s(&["x"])),
                (7, s(&[""])),
            ]
        );
        // `\n\r` is two breaks: the `\r` makes an empty line.
        assert_eq!(
            rows(b"a\n\rb"),
            vec![(1, s(&["a"])), (2, s(&[""])), (3, s(&["b"]))]
        );
    }

    #[test]
    fn quoted_fields_span_lines() {
        assert_eq!(
            rows(b"\"a\r\nb\",\"c\rd\ne\"\nx,\"\"\"q\"\"\"\r\n\"ab\"cd,e\"f"),
            vec![
                (1, s(&["a\r\nb", "c\rd\ne"])),
                (5, s(&["x", "\"q\""])),
                (6, s(&["abcd", "e\"f"])),
            ]
        );
    }

    #[test]
    fn unterminated_quote_ends_input() {
        let mut parser = CsvRangeParser::new(b',', 1);
        let mut batch = RecordBatch::new();
        let input = b"a,b\n1,\"open\nstill,open\n\nmore";
        parser.parse(input, true, &mut batch, 100).unwrap();
        assert!(parser.is_done());
        assert_eq!(batch.len(), 2);
        let r = batch.record(1);
        assert_eq!(r.row(), 2);
        assert_eq!(r.status(), RecordStatus::UnterminatedQuote);
        assert_eq!(
            r.fields().collect::<Vec<_>>(),
            vec![&b"1"[..], b"open\nstill,open\n\nmore"]
        );
        // A closed quote at the very end is not unterminated; `""` is not.
        for closed in [&b"a,\"b\""[..], b"a,\"b\"\"\"", b"a,\"\"", b"a,\"b\"c"] {
            let mut parser = CsvRangeParser::new(b',', 1);
            let mut batch = RecordBatch::new();
            parser.parse(closed, true, &mut batch, 100).unwrap();
            assert_eq!(batch.record(0).status(), RecordStatus::Ok, "{closed:?}");
        }
        let mut parser = CsvRangeParser::new(b',', 1);
        let mut batch = RecordBatch::new();
        parser.parse(b"a,\"b\"\"", true, &mut batch, 100).unwrap();
        assert_eq!(batch.record(0).status(), RecordStatus::UnterminatedQuote);
        assert_eq!(batch.record(0).field(1), b"b\"");
    }

    #[test]
    fn invalid_utf8_marks_only_its_record() {
        let mut parser = CsvRangeParser::new(b',', 1);
        let mut batch = RecordBatch::new();
        parser
            .parse(b"\xC3\xA9,x\n\xC3,\xA9\nok\n\xFF\n", true, &mut batch, 100)
            .unwrap();
        let statuses: Vec<_> = batch.iter().map(|r| r.status()).collect();
        assert_eq!(
            statuses,
            vec![
                RecordStatus::Ok,
                RecordStatus::InvalidEncoding,
                RecordStatus::Ok,
                RecordStatus::InvalidEncoding,
            ]
        );
    }

    #[test]
    fn second_byte_order_mark_is_data() {
        assert_eq!(rows(b"\xEF\xBB\xBFa,b"), vec![(1, s(&["\u{feff}a", "b"]))]);
    }

    /// Found by the `csv_fast_path` fuzz target: after records taken by the
    /// fast path, the first record csv-core parses began with a byte order
    /// mark, which csv-core dropped as if it started the input.
    #[test]
    fn byte_order_mark_after_fast_records_is_data() {
        // The last line has no line break, so csv-core parses it: the first
        // input csv-core sees.
        assert_eq!(
            rows(b"a,b\n\xEF\xBB\xBFc,d"),
            vec![(1, s(&["a", "b"])), (2, s(&["\u{feff}c", "d"]))]
        );
        assert_eq!(
            rows(b"a\n\n\xEF\xBB\xBF\"x\"\"y"),
            vec![(1, s(&["a"])), (2, s(&[""])), (3, s(&["\u{feff}\"x\"\"y"]))]
        );
    }

    #[test]
    fn starts_at_given_line_and_other_delimiter() {
        let mut parser = CsvRangeParser::new(b';', 41);
        let mut batch = RecordBatch::new();
        parser.parse(b"a;b,c\n\nd", true, &mut batch, 100).unwrap();
        let got: Vec<_> = batch.iter().map(|r| (r.row(), r.len())).collect();
        assert_eq!(got, vec![(41, 2), (42, 1), (43, 1)]);
        assert_eq!(parser.line(), 43);
    }

    #[test]
    fn limits_and_split_inputs_give_the_same_records() {
        let input = b"h1,h2\r\n\r\n\"x\r\ny\",2\r\r\n\n\"q\"\"\",\"\"\n\xC3,4\r\nlast,\"open\r\n";
        let whole = parse_pieces(input, input.len(), usize::MAX);
        // Lines: 1 header, 2 empty, 3-4 quoted field, 5 empty (`\r\n`
        // after the record's `\r`), 6 empty, 7 `"q"""`, 8 bad UTF-8, 9 open.
        let rows: Vec<u64> = whole.iter().map(|r| r.0).collect();
        assert_eq!(rows, vec![1, 2, 3, 5, 6, 7, 8, 9]);
        assert_eq!(whole[2], (3, RecordStatus::Ok, s(&["x\r\ny", "2"])));
        assert_eq!(whole[3], (5, RecordStatus::Ok, s(&[""])));
        assert_eq!(whole[5], (7, RecordStatus::Ok, s(&["q\"", ""])));
        assert_eq!(whole[6].1, RecordStatus::InvalidEncoding);
        assert_eq!(
            whole[7],
            (9, RecordStatus::UnterminatedQuote, s(&["last", "open\r\n"]))
        );
        for piece in [1, 2, 3, 5, 7, 64] {
            for max in [1, 2, 7, usize::MAX] {
                assert_eq!(
                    parse_pieces(input, piece, max),
                    whole,
                    "piece {piece} max {max}"
                );
            }
        }
    }

    #[test]
    fn block_scans_agree() {
        // The SSE2 block (on x86-64) against the word-wide one, and both
        // against the bytes, on blocks rich in specials and high bytes.
        let alphabet = [
            b',', b';', b'\t', b'"', b'a', b'0', 0x7f, 0x80, 0xc3, 0xff, b'\n', 0,
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            let mut bytes = [0u8; BLOCK];
            for b in &mut bytes {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = alphabet[(state % alphabet.len() as u64) as usize];
            }
            for delimiter in [b',', b';', b'\t'] {
                let mask = |f: &dyn Fn(u8) -> bool| {
                    bytes
                        .iter()
                        .enumerate()
                        .filter(|(_, &b)| f(b))
                        .fold(0u32, |m, (k, _)| m | 1 << k)
                };
                let expected = Masks {
                    delimiters: mask(&|b| b == delimiter),
                    quotes: mask(&|b| b == b'"'),
                    breaks: mask(&|b| b == b'\n' || b == b'\r'),
                    high: bytes.iter().any(|b| !b.is_ascii()),
                };
                assert_eq!(Block::new(delimiter).scan(&bytes), expected, "{bytes:?}");
                assert_eq!(
                    SwarBlock::new(delimiter).scan(&bytes),
                    expected,
                    "{bytes:?}"
                );
            }
        }
    }

    #[test]
    fn any_delimiter_byte_is_safe_at_the_end_of_input() {
        // The last partial block is padded: no padding byte may read as a
        // delimiter (`a` is not a setting, but the parser takes any byte).
        for delimiter in [b'a', 0, b',', b'\t'] {
            for input in [&b"x\"yz"[..], b"xa\"ya", b"a\"", b"\"a\"a", b"aa\na"] {
                let whole = {
                    let mut parser = CsvRangeParser::new(delimiter, 1);
                    let mut batch = RecordBatch::new();
                    parser.parse(input, true, &mut batch, 100).unwrap();
                    batch
                        .iter()
                        .map(|r| {
                            (
                                r.row(),
                                r.status(),
                                r.fields().map(<[u8]>::to_vec).collect::<Vec<_>>(),
                            )
                        })
                        .collect::<Vec<_>>()
                };
                let mut parser = CsvRangeParser::new(delimiter, 1);
                let mut batch = RecordBatch::new();
                for (i, b) in input.iter().enumerate() {
                    parser
                        .parse(
                            std::slice::from_ref(b),
                            i + 1 == input.len(),
                            &mut batch,
                            100,
                        )
                        .unwrap();
                }
                let bytewise: Vec<_> = batch
                    .iter()
                    .map(|r| {
                        (
                            r.row(),
                            r.status(),
                            r.fields().map(<[u8]>::to_vec).collect::<Vec<_>>(),
                        )
                    })
                    .collect();
                assert_eq!(whole, bytewise, "{input:?} {delimiter}");
            }
        }
    }

    #[test]
    fn ok_records_are_stated_utf8() {
        // Fast path, csv-core (a quoted line break), an empty line, bad
        // UTF-8 on both paths, a non-ASCII line, an open quote.
        let input: &[u8] =
            b"a,b\n\"x\ny\",2\n\nc\xC3,4\n\"\xC3\n\",5\n\xC3\xA9,\xC3\xBC\nlast,\"open";
        let mut parser = CsvRangeParser::new(b',', 1);
        let mut batch = RecordBatch::new();
        parser.parse(input, true, &mut batch, 100).unwrap();
        let got: Vec<(RecordStatus, bool)> =
            batch.iter().map(|r| (r.status(), r.is_utf8())).collect();
        use RecordStatus::*;
        assert_eq!(
            got,
            [
                (Ok, true),
                (Ok, true),
                (Ok, true),
                (InvalidEncoding, false),
                (InvalidEncoding, false),
                (Ok, true),
                (UnterminatedQuote, false),
            ]
        );
    }

    #[test]
    fn long_record_is_skipped_and_rows_stay_exact() {
        let mut input = b"a,b\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 50));
        input.extend_from_slice(b",y\r\nc,d\n\nlast,");
        input.extend(std::iter::repeat_n(b',', 30));
        input.extend_from_slice(b"\nend,1");
        let want = vec![
            (1, RecordStatus::Ok, s(&["a", "b"])),
            (2, RecordStatus::TooLong, vec![]),
            (3, RecordStatus::Ok, s(&["c", "d"])),
            (4, RecordStatus::Ok, s(&[""])),
            (5, RecordStatus::TooLong, vec![]),
            (6, RecordStatus::Ok, s(&["end", "1"])),
        ];
        for piece in [1, 2, 3, 7, 16, 64, input.len()] {
            for max in [1, 2, usize::MAX] {
                assert_eq!(
                    parse_limited(&input, piece, max, 20),
                    want,
                    "piece {piece} max {max}"
                );
            }
        }
    }

    #[test]
    fn the_limit_counts_raw_bytes_without_the_line_break() {
        // `"ab""c",d` is 9 raw bytes (5 of field data): the limit is on
        // the raw bytes, quotes and delimiters included, not the break.
        let input = b"\"ab\"\"c\",d\r\n\"ab\"\"c\",de\r\n\"ab\"\"c\",d";
        for piece in [1, 3, input.len()] {
            let got = parse_limited(input, piece, usize::MAX, 9);
            let statuses: Vec<_> = got.iter().map(|r| (r.0, r.1)).collect();
            assert_eq!(
                statuses,
                vec![
                    (1, RecordStatus::Ok),
                    (2, RecordStatus::TooLong),
                    (3, RecordStatus::Ok)
                ],
                "piece {piece}"
            );
            assert_eq!(got[0].2, s(&["ab\"c", "d"]));
        }
    }

    #[test]
    fn long_quoted_record_spanning_lines() {
        let mut input = b"h,i\n1,\"".to_vec();
        for _ in 0..10 {
            input.extend_from_slice(b"aaaa,\"\"\n");
        }
        input.extend_from_slice(b"\",z\r\nnext,2\n");
        // The quoted record starts on line 2 and holds 10 line breaks.
        for piece in [1, 5, input.len()] {
            let got = parse_limited(&input, piece, usize::MAX, 20);
            assert_eq!(
                got,
                vec![
                    (1, RecordStatus::Ok, s(&["h", "i"])),
                    (2, RecordStatus::TooLong, vec![]),
                    (13, RecordStatus::Ok, s(&["next", "2"])),
                ],
                "piece {piece}"
            );
        }
    }

    #[test]
    fn too_long_comes_before_unterminated_quote() {
        let got = parse_limited(b"a\n\"0123456789\n0123456789", 4, usize::MAX, 8);
        assert_eq!(
            got,
            vec![
                (1, RecordStatus::Ok, s(&["a"])),
                (2, RecordStatus::TooLong, vec![])
            ]
        );
        let got = parse_limited(b"a\n\"0123\n", 4, usize::MAX, 8);
        assert_eq!(got[1].1, RecordStatus::UnterminatedQuote);
    }

    #[test]
    fn a_long_record_is_never_held() {
        // A 4 MiB field (and 1M delimiters) with a 1 KiB limit: the batch
        // never grows past the room of one call.
        let mut input = b"a,b\n\"".to_vec();
        input.extend(std::iter::repeat_n(b'q', 4 << 20));
        input.extend_from_slice(b"\"\n");
        input.extend(std::iter::repeat_n(b',', 1 << 20));
        input.extend_from_slice(b"\nc,d\n");
        let mut parser = CsvRangeParser::new(b',', 1).with_max_record_bytes(1024);
        let mut batch = RecordBatch::new();
        let mut at = 0;
        while !parser.is_done() {
            let end = (at + 256 * 1024).min(input.len());
            let got = parser
                .parse(&input[at..end], end == input.len(), &mut batch, usize::MAX)
                .unwrap();
            at += got.consumed;
            let (data, ends) = batch.text_buffers_mut().unwrap();
            assert!(data.capacity() <= 256 * 1024, "{}", data.capacity());
            assert!(ends.capacity() <= 4096, "{}", ends.capacity());
            assert!(parser.ends.len() <= MAX_CALL_ENDS);
        }
        let rows: Vec<_> = batch
            .iter()
            .map(|r| (r.row(), r.status(), r.len()))
            .collect();
        assert_eq!(
            rows,
            vec![
                (1, RecordStatus::Ok, 2),
                (2, RecordStatus::TooLong, 0),
                (3, RecordStatus::TooLong, 0),
                (4, RecordStatus::Ok, 2)
            ]
        );
    }

    #[test]
    fn slack_shrinks_back_after_a_huge_field() {
        let mut input = b"a,\"".to_vec();
        input.extend(std::iter::repeat_n(b'z', 3 << 20));
        input.extend_from_slice(b"\"\nb,c\n");
        let mut parser = CsvRangeParser::new(b',', 1);
        let mut batch = RecordBatch::new();
        // Fed in pieces, so the field goes through `csv-core` and its room
        // doubles.
        let mut at = 0;
        let mut grew = false;
        while !parser.is_done() {
            let end = (at + 100_000).min(input.len());
            let got = parser
                .parse(&input[at..end], end == input.len(), &mut batch, usize::MAX)
                .unwrap();
            at += got.consumed;
            grew |= parser.slack > INITIAL_SLACK;
            assert!(parser.slack <= parser.max_slack());
        }
        assert!(grew);
        assert_eq!(parser.slack, INITIAL_SLACK);
        assert_eq!(batch.record(0).field(1).len(), 3 << 20);
        assert_eq!(batch.record(1).field(0), b"b");
        // A small limit bounds the room too.
        let parser = CsvRangeParser::new(b',', 1).with_max_record_bytes(10);
        assert_eq!(parser.max_slack(), INITIAL_SLACK);
    }

    #[test]
    fn batches_are_capped_by_bytes() {
        // Records of 8 field bytes and 2 ends (8 bytes): 16 bytes each.
        let input = b"aaaa,bbbb\n".repeat(20);
        let mut parser = CsvRangeParser::new(b',', 1).with_max_batch_bytes(40);
        let mut batch = RecordBatch::new();
        let got = parser.parse(&input, true, &mut batch, usize::MAX).unwrap();
        // 16, 32, 48: the third record passes the cap and ends the batch.
        assert_eq!((got.records, got.full, got.consumed), (3, true, 30));
        assert!(!parser.is_done());
        // The rest continues in the next batch, rows in sequence.
        let mut next = RecordBatch::new();
        let got = parser
            .parse(&input[30..], true, &mut next, usize::MAX)
            .unwrap();
        assert_eq!((got.records, got.full), (3, true));
        assert_eq!(next.record(0).row(), 4);
        let mut total = 6;
        let mut at = 60;
        while !parser.is_done() {
            let mut b = RecordBatch::new();
            let got = parser
                .parse(&input[at..], true, &mut b, usize::MAX)
                .unwrap();
            at += got.consumed;
            total += got.records;
            assert!(got.records <= 3);
        }
        assert_eq!(total, 20);
    }
}
