//! Record batches: a chunk of records as read, the unit of work handed from
//! readers to validation.
//!
//! A batch stores every field's bytes in one buffer, each field followed by
//! one separator byte, so a chunk of thousands of records costs a handful of
//! allocations, a batch can be cleared and refilled without allocating at
//! all, and a CSV line without quotes is stored as one copy of its bytes
//! (its delimiters and line break are the separators).
//!
//! Offsets are `u32`, so one batch holds at most 4 GiB of field data and
//! 4 Gi fields. Nothing ever wraps: the `try_` methods refuse what would
//! not fit with [`BatchFull`], and the infallible ones mark the batch
//! [overflowed](RecordBatch::overflowed) instead (an overflowed batch must
//! be refused as a whole; readers cap their batches far below the limit).

/// What kind of value a field holds. CSV fields are always [`CellKind::Text`];
/// Excel cells carry their kind, with the text written as SPEC §6 and §9 say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CellKind {
    /// Text (every CSV field), or an empty cell.
    #[default]
    Text,
    /// An Excel number; the text is its 15-significant-digit form (SPEC §6).
    Number,
    /// An Excel boolean; the text is `true` or `false`.
    Bool,
    /// An Excel date cell; the text is `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS`.
    Date,
    /// An Excel error cell; the text is the error as Excel shows it (`#N/A`).
    Error,
}

/// How a record was read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RecordStatus {
    /// Read normally.
    #[default]
    Ok,
    /// The record holds an invalid byte sequence for its encoding.
    InvalidEncoding,
    /// A quoted field was still open at end of file; nothing follows.
    UnterminatedQuote,
    /// The record's raw bytes exceed `max_record_bytes` (SPEC §10): it was
    /// skipped to its end and holds no field.
    TooLong,
}

/// The separator byte written after a field pushed with
/// [`RecordBatch::push_cell`] (CSV parsers writing through
/// [`RecordBatch::text_buffers_mut`] may leave any byte there).
pub const FIELD_SEPARATOR: u8 = 0x1F;

/// A batch cannot take a field or record: its offsets would pass `u32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchFull;

impl std::fmt::Display for BatchFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("one chunk of records cannot exceed 4 GiB or 4 Gi fields")
    }
}

impl std::error::Error for BatchFull {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RecordMeta {
    row: u64,
    fields_end: u32,
    status: RecordStatus,
    /// The producer stated the record's fields are valid UTF-8.
    utf8: bool,
}

/// A chunk of records: fields as bytes, with the row number and read status
/// of every record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordBatch {
    /// Every field's bytes, each followed by one separator byte.
    data: Vec<u8>,
    /// End offset in `data` of each field (where its separator is); the
    /// next field starts one byte further.
    ends: Vec<u32>,
    /// Kind of each field; empty when every field is text.
    kinds: Vec<CellKind>,
    records: Vec<RecordMeta>,
    /// A field or record was refused by an infallible push (offsets would
    /// have passed `u32`); the batch no longer holds everything pushed.
    overflowed: bool,
}

impl RecordBatch {
    /// An empty batch.
    pub fn new() -> RecordBatch {
        RecordBatch::default()
    }

    /// An empty batch with room for `records` records of `fields` fields
    /// holding `bytes` bytes in all.
    pub fn with_capacity(records: usize, fields: usize, bytes: usize) -> RecordBatch {
        RecordBatch {
            data: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(records * fields),
            kinds: Vec::new(),
            records: Vec::with_capacity(records),
            overflowed: false,
        }
    }

    /// Removes every record, keeping the allocations.
    pub fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
        self.kinds.clear();
        self.records.clear();
        self.overflowed = false;
    }

    /// Gives memory back: after a batch held an exceptionally large record,
    /// shrinks its buffers to about `bytes` (field data, and field ends and
    /// records in proportion), keeping at least what it holds.
    pub fn shrink_to(&mut self, bytes: usize) {
        if self.data.capacity() > bytes {
            self.data.shrink_to(bytes);
        }
        let entries = bytes / std::mem::size_of::<u32>();
        if self.ends.capacity() > entries {
            self.ends.shrink_to(entries);
        }
        if self.kinds.capacity() > entries {
            self.kinds.shrink_to(entries);
        }
        let records = bytes / std::mem::size_of::<RecordMeta>();
        if self.records.capacity() > records {
            self.records.shrink_to(records);
        }
    }

    /// Whether an infallible push was refused because the batch's offsets
    /// would have passed `u32`: the batch is
    /// incomplete and must not be used.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Whether a field of the batch has a kind other than text (an Excel
    /// cell); false for a CSV chunk.
    #[inline]
    pub fn has_kinds(&self) -> bool {
        !self.kinds.is_empty()
    }

    /// Bytes of field data held.
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    /// Appends a text field to the record being built; on overflow the
    /// batch is marked [overflowed](RecordBatch::overflowed) and the field
    /// dropped (see [`RecordBatch::try_push_field`]).
    #[inline]
    pub fn push_field(&mut self, bytes: &[u8]) {
        if self.try_push_field(bytes).is_err() {
            self.overflowed = true;
        }
    }

    /// Appends a text field to the record being built, or refuses it when
    /// the batch's offsets would pass `u32`.
    #[inline]
    pub fn try_push_field(&mut self, bytes: &[u8]) -> Result<(), BatchFull> {
        self.try_push_cell(CellKind::Text, bytes)
    }

    /// Appends a field of the given kind to the record being built; on
    /// overflow the batch is marked [overflowed](RecordBatch::overflowed)
    /// and the field dropped (see [`RecordBatch::try_push_cell`]).
    pub fn push_cell(&mut self, kind: CellKind, bytes: &[u8]) {
        if self.try_push_cell(kind, bytes).is_err() {
            self.overflowed = true;
        }
    }

    /// Appends a field of the given kind to the record being built, or
    /// refuses it, changing nothing, when the batch's offsets would pass
    /// `u32`.
    pub fn try_push_cell(&mut self, kind: CellKind, bytes: &[u8]) -> Result<(), BatchFull> {
        // Room for the separator too.
        let end = checked_end(self.data.len(), bytes.len() + 1)? - 1;
        checked_fields(self.ends.len())?;
        if kind != CellKind::Text && self.kinds.len() < self.ends.len() {
            // The first non-text cell: give every earlier field its kind.
            self.kinds.resize(self.ends.len(), CellKind::Text);
        }
        self.data.extend_from_slice(bytes);
        self.data.push(FIELD_SEPARATOR);
        self.ends.push(end);
        if !self.kinds.is_empty() || kind != CellKind::Text {
            self.kinds.push(kind);
        }
        Ok(())
    }

    /// Ends the record being built: the fields pushed since the last call
    /// belong to it. (Field counts cannot pass `u32`: the pushes refuse
    /// that first.)
    #[inline]
    pub fn finish_record(&mut self, row: u64, status: RecordStatus) {
        self.finish(row, status, false);
    }

    /// [`RecordBatch::finish_record`] for a record whose producer checked
    /// that, when its status is [`RecordStatus::Ok`], every field is valid
    /// UTF-8 (or built it from `str`s): readers of the batch may then skip
    /// their own check ([`Record::is_utf8`], true for `Ok` records only). A
    /// producer that says so of invalid bytes gets them read as lossy text,
    /// never a panic.
    #[inline]
    pub fn finish_utf8_record(&mut self, row: u64, status: RecordStatus) {
        self.finish(row, status, status == RecordStatus::Ok);
    }

    #[inline]
    fn finish(&mut self, row: u64, status: RecordStatus, utf8: bool) {
        let fields_end = match u32::try_from(self.ends.len()) {
            Ok(n) => n,
            Err(_) => {
                // Only reachable through `text_buffers_mut` misuse; refuse
                // rather than wrap.
                self.overflowed = true;
                return;
            }
        };
        self.records.push(RecordMeta {
            row,
            fields_end,
            status,
            utf8,
        });
    }

    /// The field bytes and the end offset (in those bytes) of every field,
    /// for parsers that write text fields straight into the batch (the CSV
    /// reader copies whole lines, and hands `data`'s tail to `csv-core` as
    /// its output buffer). Each field is followed by one separator byte of
    /// any value: field `k` is `data[ends[k - 1] + 1..ends[k]]` (the first
    /// field of the batch starts at 0), `data[ends[k]]` its separator.
    ///
    /// `None` when the batch holds non-text cells: their kinds would fall
    /// out of step with fields pushed this way.
    ///
    /// The caller keeps the batch consistent: ends ascending, each at most
    /// `data.len()`, and, once done writing, `data` no longer than the
    /// fields pushed and their separators (plus the bytes of an unfinished
    /// field of the record being built, which
    /// [`RecordBatch::discard_partial`] drops).
    pub fn text_buffers_mut(&mut self) -> Option<(&mut Vec<u8>, &mut Vec<u32>)> {
        if self.kinds.is_empty() {
            Some((&mut self.data, &mut self.ends))
        } else {
            None
        }
    }

    /// Discards fields pushed since the last [`RecordBatch::finish_record`].
    pub fn discard_partial(&mut self) {
        let fields_end = self.records.last().map_or(0, |r| r.fields_end as usize);
        let data_end = fields_end
            .checked_sub(1)
            .map_or(0, |i| self.ends[i] as usize + 1);
        self.ends.truncate(fields_end);
        self.kinds.truncate(fields_end.min(self.kinds.len()));
        self.data.truncate(data_end);
    }

    /// The `i`-th record. Panics when `i >= len()`, like slice indexing.
    #[inline]
    pub fn record(&self, i: usize) -> Record<'_> {
        let meta = self.records[i];
        let start = if i == 0 {
            0
        } else {
            self.records[i - 1].fields_end as usize
        };
        Record {
            batch: self,
            start,
            end: meta.fields_end as usize,
            row: meta.row,
            status: meta.status,
            utf8: meta.utf8,
        }
    }

    /// Iterates over the records in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Record<'_>> + '_ {
        (0..self.len()).map(move |i| self.record(i))
    }

    /// Moves the records `at..` into a new batch, leaving `..at` here (and
    /// dropping the fields of a record not finished).
    pub fn split_off(&mut self, at: usize) -> RecordBatch {
        let at = at.min(self.len());
        let field_start = |records: &[RecordMeta], i: usize| {
            i.checked_sub(1)
                .map_or(0, |j| records[j].fields_end as usize)
        };
        let first = field_start(&self.records, at);
        let last = field_start(&self.records, self.len());
        let data_start = first
            .checked_sub(1)
            .map_or(0, |k| self.ends[k] as usize + 1);
        let data_end = last.checked_sub(1).map_or(0, |k| self.ends[k] as usize + 1);
        // The tail is smaller than this batch, so it cannot overflow; its
        // offsets move down by where it starts.
        let (shift, fields) = (data_start as u32, first as u32);
        let tail = RecordBatch {
            data: self.data[data_start..data_end].to_vec(),
            ends: self.ends[first..last].iter().map(|&e| e - shift).collect(),
            kinds: self
                .kinds
                .get(first..last)
                .map_or_else(Vec::new, <[_]>::to_vec),
            records: self.records[at..]
                .iter()
                .map(|m| RecordMeta {
                    fields_end: m.fields_end - fields,
                    ..*m
                })
                .collect(),
            overflowed: self.overflowed,
        };
        self.records.truncate(at);
        self.discard_partial();
        tail
    }
}

/// The `u32` end of a field of `add` bytes after `len` bytes of data.
fn checked_end(len: usize, add: usize) -> Result<u32, BatchFull> {
    len.checked_add(add)
        .and_then(|end| u32::try_from(end).ok())
        .ok_or(BatchFull)
}

/// Whether one more field fits after `fields` (counts stay `u32`).
fn checked_fields(fields: usize) -> Result<(), BatchFull> {
    match u32::try_from(fields) {
        Ok(n) if n < u32::MAX => Ok(()),
        _ => Err(BatchFull),
    }
}

/// One record of a [`RecordBatch`].
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    batch: &'a RecordBatch,
    start: usize,
    end: usize,
    row: u64,
    status: RecordStatus,
    utf8: bool,
}

impl<'a> Record<'a> {
    /// The row number (SPEC §3).
    #[inline]
    pub fn row(&self) -> u64 {
        self.row
    }

    /// How the record was read.
    #[inline]
    pub fn status(&self) -> RecordStatus {
        self.status
    }

    /// Whether the producer stated every field is valid UTF-8
    /// ([`RecordBatch::finish_utf8_record`]); false means unknown, not
    /// invalid.
    #[inline]
    pub fn is_utf8(&self) -> bool {
        self.utf8
    }

    /// The number of fields.
    #[inline]
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the record has no field.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// The bytes of field `j` (empty when `j` is out of range).
    #[inline]
    pub fn field(&self, j: usize) -> &'a [u8] {
        self.cells().get(j).1
    }

    /// The kind of field `j`.
    #[inline]
    pub fn kind(&self, j: usize) -> CellKind {
        self.cells().get(j).0
    }

    /// The kind and bytes of field `j`.
    #[inline]
    pub fn cell(&self, j: usize) -> (CellKind, &'a [u8]) {
        self.cells().get(j)
    }

    /// The bytes of every field of the record, each but the last followed by
    /// its separator byte (a CSV record's delimiter, as read, when it had
    /// no quotes): the fields are slices of it, see
    /// [`Record::field_bounds`].
    #[inline]
    pub fn data(&self) -> &'a [u8] {
        let (from, _) = self.offsets(0);
        let to = if self.end == 0 {
            0
        } else {
            self.batch.ends[self.end - 1] as usize
        };
        self.batch.data.get(from..to).unwrap_or(&[])
    }

    /// Where field `j` lies in [`Record::data`] (empty at the end when `j` is
    /// out of range).
    #[inline]
    pub fn field_bounds(&self, j: usize) -> (usize, usize) {
        let (base, _) = self.offsets(0);
        if self.start + j >= self.end {
            let len = self.data().len();
            return (len, len);
        }
        let (from, to) = self.offsets(j);
        (from - base, to - base)
    }

    /// Absolute offsets of field `j` in the batch's data (`j` in range, or
    /// `j == 0` on an empty record).
    #[inline]
    fn offsets(&self, j: usize) -> (usize, usize) {
        let k = self.start + j;
        let from = if k == 0 {
            0
        } else {
            self.batch.ends[k - 1] as usize + 1
        };
        let to = if k < self.end {
            self.batch.ends[k] as usize
        } else {
            from
        };
        (from, to)
    }

    /// Iterates over the fields' bytes.
    pub fn fields(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        let r = *self;
        (0..r.len()).map(move |j| r.field(j))
    }

    /// The record's cells, its bounds in the batch resolved once: for a
    /// reader that looks up many fields of each record.
    #[inline]
    pub fn cells(&self) -> Cells<'a> {
        let batch = self.batch;
        Cells {
            data: &batch.data,
            ends: &batch.ends[self.start..self.end],
            kinds: batch.kinds.get(self.start..self.end).unwrap_or(&[]),
            first: self.offsets(0).0,
        }
    }
}

/// The cells of one [`Record`] ([`Record::cells`]): field `j`'s kind and
/// bytes in a few instructions, however many fields are looked up.
#[derive(Clone, Copy, Debug)]
pub struct Cells<'a> {
    /// The batch's data.
    data: &'a [u8],
    /// The record's field ends in `data`.
    ends: &'a [u32],
    /// The record's kinds; empty when the batch holds text only.
    kinds: &'a [CellKind],
    /// Where the record's first field starts in `data`.
    first: usize,
}

impl<'a> Cells<'a> {
    /// The number of fields.
    #[inline]
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the record has no field.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The kind and bytes of field `j` (an empty text when `j` is out of
    /// range), like [`Record::cell`].
    #[inline]
    pub fn get(&self, j: usize) -> (CellKind, &'a [u8]) {
        let Some(&to) = self.ends.get(j) else {
            return (CellKind::Text, &[]);
        };
        let from = match j.checked_sub(1) {
            Some(i) => self.ends[i] as usize + 1,
            None => self.first,
        };
        let kind = self.kinds.get(j).copied().unwrap_or_default();
        (kind, self.data.get(from..to as usize).unwrap_or(&[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_and_read_back() {
        let mut b = RecordBatch::new();
        b.push_field(b"a");
        b.push_field(b"");
        b.finish_record(1, RecordStatus::Ok);
        b.push_field(b"xyz");
        b.push_cell(CellKind::Number, b"1.5");
        b.finish_record(3, RecordStatus::InvalidEncoding);
        b.push_field(b"partial");
        b.discard_partial();
        assert_eq!(b.len(), 2);
        let r0 = b.record(0);
        assert_eq!((r0.row(), r0.len()), (1, 2));
        assert_eq!(r0.fields().collect::<Vec<_>>(), vec![&b"a"[..], b""]);
        assert_eq!(r0.kind(0), CellKind::Text);
        let r1 = b.record(1);
        assert_eq!(r1.status(), RecordStatus::InvalidEncoding);
        assert_eq!(r1.cell(1), (CellKind::Number, &b"1.5"[..]));
        assert_eq!(r1.field(7), b"");
        assert_eq!(r1.data(), b"xyz\x1f1.5");
        assert_eq!(r1.field_bounds(1), (4, 7));
        assert_eq!(r1.field_bounds(9), (7, 7));
        assert_eq!(r0.data(), b"a\x1f");
        assert_eq!(r0.field_bounds(1), (2, 2));
        let tail = b.split_off(1);
        assert_eq!(b.len(), 1);
        assert_eq!(tail.len(), 1);
        assert_eq!(tail.record(0).cell(1), (CellKind::Number, &b"1.5"[..]));
        assert_eq!(tail.record(0).row(), 3);
        // "a" and "", each with its separator.
        assert_eq!(b.data_len(), 3);
    }

    #[test]
    fn cells_agree_with_record_lookups() {
        // A text-only batch (no kinds stored), then one whose kinds appear
        // mid-batch (earlier fields backfilled as text), empty records and
        // fields among them.
        let mut text = RecordBatch::new();
        let mut mixed = RecordBatch::new();
        let rows: [&[(CellKind, &str)]; 5] = [
            &[
                (CellKind::Text, "a"),
                (CellKind::Text, ""),
                (CellKind::Text, "ccc"),
            ],
            &[],
            &[(CellKind::Text, "")],
            &[
                (CellKind::Number, "1.5"),
                (CellKind::Text, "é"),
                (CellKind::Error, "#N/A"),
            ],
            &[(CellKind::Date, "2024-01-02"), (CellKind::Text, "")],
        ];
        for (row, cells) in rows.iter().enumerate() {
            for &(kind, value) in *cells {
                text.push_field(value.as_bytes());
                mixed.push_cell(kind, value.as_bytes());
            }
            text.finish_record(row as u64 + 1, RecordStatus::Ok);
            mixed.finish_record(row as u64 + 1, RecordStatus::Ok);
        }
        assert!(!text.has_kinds());
        assert!(mixed.has_kinds());
        for (batch, with_kinds) in [(&text, false), (&mixed, true)] {
            for (record, cells) in batch.iter().zip(rows) {
                let view = record.cells();
                assert_eq!(view.len(), cells.len());
                assert_eq!(view.is_empty(), cells.is_empty());
                for j in 0..cells.len() + 2 {
                    assert_eq!(
                        view.get(j),
                        record.cell(j),
                        "row {} field {j}",
                        record.row()
                    );
                }
                for (j, &(kind, value)) in cells.iter().enumerate() {
                    let kind = if with_kinds { kind } else { CellKind::Text };
                    assert_eq!(view.get(j), (kind, value.as_bytes()));
                }
            }
        }
    }

    #[test]
    fn split_off_moves_whole_records_and_drops_a_partial_one() {
        let mut b = RecordBatch::new();
        for (row, fields) in [
            (1, &["h1", "h2"][..]),
            (2, &["a", ""]),
            (4, &[][..]),
            (5, &["é", "z"]),
        ] {
            for f in fields {
                b.push_field(f.as_bytes());
            }
            b.finish_record(row, RecordStatus::Ok);
        }
        b.push_cell(CellKind::Date, b"2024-01-02");
        b.finish_record(6, RecordStatus::Ok);
        b.push_field(b"unfinished");
        type Read = Vec<(u64, Vec<(CellKind, Vec<u8>)>)>;
        let read = |b: &RecordBatch| -> Read {
            b.iter()
                .map(|r| {
                    (
                        r.row(),
                        (0..r.len())
                            .map(|j| (r.kind(j), r.field(j).to_vec()))
                            .collect(),
                    )
                })
                .collect()
        };
        let all = read(&b);
        let tail = b.split_off(1);
        assert_eq!(read(&b), all[..1]);
        assert_eq!(read(&tail), all[1..]);
        assert_eq!(tail.record(3).cell(0), (CellKind::Date, &b"2024-01-02"[..]));
        assert_eq!(tail.record(2).data(), "é\x1fz".as_bytes());
        // The head keeps "h1", "h2" and their separators, nothing else.
        assert_eq!(b.data_len(), 6);
        let mut whole = tail.clone();
        let none = whole.split_off(whole.len());
        assert!(none.is_empty());
        assert_eq!(read(&whole), all[1..]);
        let mut again = tail.clone();
        let everything = again.split_off(0);
        assert!(again.is_empty());
        assert_eq!(read(&everything), all[1..]);
    }

    #[test]
    fn utf8_is_stated_by_the_producer_for_ok_records_only() {
        let mut b = RecordBatch::new();
        b.push_field(b"a");
        b.finish_record(1, RecordStatus::Ok);
        b.push_field(b"b");
        b.finish_utf8_record(2, RecordStatus::Ok);
        b.push_field(b"\xff");
        b.finish_utf8_record(3, RecordStatus::InvalidEncoding);
        b.push_field(b"c");
        b.finish_utf8_record(4, RecordStatus::Ok);
        let flags = |b: &RecordBatch| b.iter().map(|r| r.is_utf8()).collect::<Vec<_>>();
        assert_eq!(flags(&b), [false, true, false, true]);
        // Moved records keep what was said of them.
        let tail = b.split_off(1);
        assert_eq!(flags(&b), [false]);
        assert_eq!(flags(&tail), [true, false, true]);
    }

    #[test]
    fn offsets_never_wrap() {
        // 4 GiB cannot be allocated in a test; the check is the one the
        // pushes use.
        let max = u32::MAX as usize;
        assert_eq!(checked_end(max - 2, 2), Ok(u32::MAX));
        assert_eq!(checked_end(max - 1, 2), Err(BatchFull));
        assert_eq!(checked_end(usize::MAX, 1), Err(BatchFull));
        assert_eq!(checked_fields(max - 1), Ok(()));
        assert_eq!(checked_fields(max), Err(BatchFull));
        let mut b = RecordBatch::new();
        b.push_field(b"x");
        b.finish_record(1, RecordStatus::Ok);
        assert!(!b.overflowed());
        b.overflowed = true;
        assert!(b.split_off(0).overflowed());
        b.clear();
        assert!(!b.overflowed());
    }

    #[test]
    fn text_buffers_write_in_place() {
        let mut b = RecordBatch::new();
        let (data, ends) = b.text_buffers_mut().unwrap();
        data.extend_from_slice(b"a;bcd\n");
        ends.extend([1, 5]);
        b.finish_record(7, RecordStatus::Ok);
        let (data, ends) = b.text_buffers_mut().unwrap();
        data.extend_from_slice(b";\n");
        ends.extend([6, 7]);
        b.finish_record(8, RecordStatus::Ok);
        assert_eq!(
            b.record(0).fields().collect::<Vec<_>>(),
            vec![&b"a"[..], b"bcd"]
        );
        assert_eq!(b.record(0).data(), b"a;bcd");
        assert_eq!(
            b.record(1).fields().collect::<Vec<_>>(),
            vec![&b""[..], b""]
        );
        b.discard_partial();
        assert_eq!(b.data_len(), 8);
        assert_eq!(b.record(0).row(), 7);
        b.push_cell(CellKind::Bool, b"true");
        assert!(b.text_buffers_mut().is_none());
    }
}
