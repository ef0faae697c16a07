//! Text files: encoding, byte order mark and delimiter (SPEC §1).

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252};
use ledgerline_core::{FileError, FileErrorCode, Settings};

/// How many bytes of a text file detection looks at: the sample for the NUL
/// check, UTF-8 validity and delimiter sniffing.
pub const SAMPLE_LEN: usize = 65_536;

/// The delimiter candidates in tie-breaking order (SPEC §1).
pub const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// How a text (CSV) file is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextLayout {
    /// `UTF_8`, `UTF_16LE`, `UTF_16BE`, `WINDOWS_1252`, or the encoding the
    /// `encoding` setting names.
    pub encoding: &'static Encoding,
    /// Bytes of byte order mark to skip at the start: 0, 2 or 3.
    pub bom_len: usize,
    /// Whether the encoding fell back to Windows-1252 because the sample is
    /// not UTF-8: the warning `encoding_fallback`. Never set when the
    /// `encoding` setting is.
    pub encoding_fallback: bool,
    /// The delimiter: sniffed, or the `delimiter` setting.
    pub delimiter: u8,
}

impl TextLayout {
    /// The encoding as written in reports (`source.encoding`): `"utf-8"`,
    /// `"utf-16le"`, `"utf-16be"`, `"windows-1252"`, or the lower-cased
    /// WHATWG name of an explicitly set encoding.
    pub fn encoding_name(&self) -> String {
        self.encoding.name().to_ascii_lowercase()
    }

    /// The delimiter as written in reports (`source.delimiter`), e.g. `","`
    /// or `"\t"`.
    pub fn delimiter_str(&self) -> String {
        char::from(self.delimiter).to_string()
    }
}

/// Decide a text file's encoding, BOM and delimiter (SPEC §1).
///
/// `sample` is the first [`SAMPLE_LEN`] bytes of the (decompressed) text
/// file, or the whole file when shorter; `complete` says the sample is the
/// whole file.
///
/// In order:
/// 1. NUL bytes in the sample are `unsupported_format`, unless the sample
///    starts with a UTF-16 BOM or the `encoding` setting is UTF-16.
/// 2. An `encoding` setting decides the encoding (its own BOM is still
///    skipped). Otherwise a BOM decides; otherwise the sample is UTF-8 when
///    valid — a multi-byte character cut at the end of an incomplete sample
///    does not count — and Windows-1252 with `encoding_fallback` when not.
/// 3. The `delimiter` setting, or [`sniff_delimiter`] on the decoded sample.
pub fn text_layout(
    sample: &[u8],
    complete: bool,
    settings: &Settings,
) -> Result<TextLayout, FileError> {
    let bom = Encoding::for_bom(sample);
    let utf16 = |e: &'static Encoding| e == UTF_16LE || e == UTF_16BE;
    let nul_allowed = bom.is_some_and(|(e, _)| utf16(e)) || settings.encoding.is_some_and(utf16);
    if !nul_allowed && sample.contains(&0) {
        return Err(FileError::new(
            FileErrorCode::UnsupportedFormat,
            "binary content (NUL bytes) is not a text file",
        ));
    }

    let (encoding, bom_len, encoding_fallback) = match (settings.encoding, bom) {
        (Some(set), Some((found, len))) if set == found => (set, len, false),
        (Some(set), _) => (set, 0, false),
        (None, Some((found, len))) => (found, len, false),
        (None, None) if is_utf8(sample, complete) => (UTF_8, 0, false),
        (None, None) => (WINDOWS_1252, 0, true),
    };

    let delimiter = match settings.delimiter {
        Some(delimiter) => delimiter,
        None => {
            // The cut at the sample's end may leave a partial character,
            // decoded as U+FFFD; it lies in the last record, which sniffing
            // drops for an incomplete sample.
            let (text, _) = encoding.decode_without_bom_handling(&sample[bom_len..]);
            sniff_delimiter(&text, complete)
        }
    };

    Ok(TextLayout {
        encoding,
        bom_len,
        encoding_fallback,
        delimiter,
    })
}

/// Whether the sample is UTF-8, forgiving a multi-byte character cut by the
/// end of an incomplete sample.
fn is_utf8(sample: &[u8], complete: bool) -> bool {
    match std::str::from_utf8(sample) {
        Ok(_) => true,
        // `error_len() == None` means the input ended inside a sequence that
        // was valid so far: a character cut by the sample's end.
        Err(e) => !complete && e.error_len().is_none(),
    }
}

/// Pick the delimiter of a decoded sample (SPEC §1).
///
/// For each candidate of [`DELIMITERS`], the text is split into records with
/// that delimiter, quotes respected as the reader does (a quote opens a
/// quoted field only as the field's first character, `""` inside is a
/// quote, `\r\n`, `\r` and `\n` end a record outside quotes). When
/// `complete` is false the last record is dropped, as the sample may have cut
/// it. The candidate's score is the number of records whose field count
/// equals the most common field count among records with more than one
/// field. The highest score wins; ties go to the earlier candidate; all
/// scores 0 → `,`.
pub fn sniff_delimiter(text: &str, complete: bool) -> u8 {
    let mut best = (b',', 0);
    for delimiter in DELIMITERS {
        let score = score(text.as_bytes(), delimiter, complete);
        if score > best.1 {
            best = (delimiter, score);
        }
    }
    best.0
}

/// The number of records whose field count is the most common one among
/// records with more than one field.
fn score(text: &[u8], delimiter: u8, complete: bool) -> usize {
    let mut counts = field_counts(text, delimiter);
    if !complete {
        counts.pop();
    }
    counts.retain(|&n| n > 1);
    counts.sort_unstable();
    // Every most common count has the same frequency, so which one is "the"
    // mode does not change the score.
    counts
        .chunk_by(|a, b| a == b)
        .map(<[usize]>::len)
        .max()
        .unwrap_or(0)
}

/// Where the splitter is within a record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a field.
    FieldStart,
    /// Inside an unquoted field (or the text after a closing quote).
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// Just after a quote inside a quoted field: `""` or the closing quote.
    QuoteInQuoted,
}

/// The field count of each record of `text`, in order.
///
/// This follows the reader's RFC 4180 leniency (SPEC §1, as `csv-core`
/// does): lines holding no byte at all between two terminators make no
/// record, and a final terminator does not start a new one.
fn field_counts(text: &[u8], delimiter: u8) -> Vec<usize> {
    let mut counts = Vec::new();
    let mut fields = 0;
    let mut in_record = false;
    let mut state = State::FieldStart;
    for &b in text {
        let terminator = b == b'\n' || b == b'\r';
        match state {
            State::Quoted => {
                if b == b'"' {
                    state = State::QuoteInQuoted;
                }
                continue;
            }
            State::QuoteInQuoted if b == b'"' => {
                state = State::Quoted;
                continue;
            }
            _ => {}
        }
        if terminator {
            if in_record {
                counts.push(fields + 1);
            }
            fields = 0;
            in_record = false;
            state = State::FieldStart;
        } else if b == delimiter {
            fields += 1;
            in_record = true;
            state = State::FieldStart;
        } else {
            in_record = true;
            state = match state {
                State::FieldStart if b == b'"' => State::Quoted,
                // Text after a closing quote is kept as unquoted text, in
                // which a quote is literal.
                _ => State::Unquoted,
            };
        }
    }
    if in_record {
        counts.push(fields + 1);
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(sample: &[u8]) -> Result<TextLayout, FileError> {
        text_layout(sample, true, &Settings::default())
    }

    fn with_encoding(label: &str) -> Settings {
        let mut settings = Settings::default();
        settings.apply("encoding", label).unwrap();
        settings
    }

    fn utf16le_with_bom(text: &str) -> Vec<u8> {
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        bytes
    }

    fn utf16be_with_bom(text: &str) -> Vec<u8> {
        let mut bytes = vec![0xFE, 0xFF];
        bytes.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
        bytes
    }

    #[test]
    fn plain_ascii_is_utf8_comma() {
        let layout = layout(b"id,amount\n1,2\n").unwrap();
        assert_eq!(
            layout,
            TextLayout {
                encoding: UTF_8,
                bom_len: 0,
                encoding_fallback: false,
                delimiter: b','
            }
        );
        assert_eq!(layout.encoding_name(), "utf-8");
        assert_eq!(layout.delimiter_str(), ",");
    }

    #[test]
    fn nul_bytes_are_unsupported() {
        let err = layout(b"id,amount\n1,\x002\n").unwrap_err();
        assert_eq!(err.code, FileErrorCode::UnsupportedFormat);
        // A UTF-8 BOM does not excuse NULs; only UTF-16 does.
        let err = layout(b"\xEF\xBB\xBFa,b\x00\n").unwrap_err();
        assert_eq!(err.code, FileErrorCode::UnsupportedFormat);
        let err = text_layout(b"a,b\x00\n", true, &with_encoding("windows-1252")).unwrap_err();
        assert_eq!(err.code, FileErrorCode::UnsupportedFormat);
    }

    #[test]
    fn utf8_bom_is_stripped() {
        let layout = layout("\u{FEFF}id;name\n1;Zoë\n".as_bytes()).unwrap();
        assert_eq!(layout.encoding, UTF_8);
        assert_eq!(layout.bom_len, 3);
        assert_eq!(layout.delimiter, b';');
        assert!(!layout.encoding_fallback);
    }

    #[test]
    fn utf16_boms_with_nuls() {
        let le = layout(&utf16le_with_bom("id;amount\n1;2\n")).unwrap();
        assert_eq!((le.encoding, le.bom_len, le.delimiter), (UTF_16LE, 2, b';'));
        assert_eq!(le.encoding_name(), "utf-16le");
        let be = layout(&utf16be_with_bom("id|amount\n1|2\n")).unwrap();
        assert_eq!((be.encoding, be.bom_len, be.delimiter), (UTF_16BE, 2, b'|'));
        assert_eq!(be.encoding_name(), "utf-16be");
    }

    #[test]
    fn utf16_boms_without_nuls() {
        // Every code unit here has two non-zero bytes (U+4E8C is 4E 8C,
        // U+3B3B is 3B 3B), so no NUL appears, and the BOM still decides.
        let text = "\u{4E8C}\u{3B3B}";
        assert!(!utf16le_with_bom(text).contains(&0));
        assert!(!utf16be_with_bom(text).contains(&0));
        let le = layout(&utf16le_with_bom(text)).unwrap();
        assert_eq!((le.encoding, le.bom_len), (UTF_16LE, 2));
        let be = layout(&utf16be_with_bom(text)).unwrap();
        assert_eq!((be.encoding, be.bom_len), (UTF_16BE, 2));
    }

    #[test]
    fn utf16_setting_allows_nuls_without_bom() {
        let bytes: Vec<u8> = "id\tamount\n1\t2\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let layout = text_layout(&bytes, true, &with_encoding("utf-16le")).unwrap();
        assert_eq!((layout.encoding, layout.bom_len), (UTF_16LE, 0));
        assert_eq!(layout.delimiter, b'\t');
        assert!(!layout.encoding_fallback);
        let be: Vec<u8> = "a;b\n".encode_utf16().flat_map(u16::to_be_bytes).collect();
        let layout = text_layout(&be, true, &with_encoding("utf-16be")).unwrap();
        assert_eq!((layout.encoding, layout.delimiter), (UTF_16BE, b';'));
    }

    #[test]
    fn invalid_utf8_falls_back_to_windows_1252() {
        // `Caf\xE9` is Latin-1/Windows-1252 `Café`, and `\x80` is `€`.
        let layout = layout(b"name;price\nCaf\xE9;\x805\n").unwrap();
        assert_eq!(layout.encoding, WINDOWS_1252);
        assert!(layout.encoding_fallback);
        assert_eq!(layout.bom_len, 0);
        assert_eq!(layout.delimiter, b';');
        assert_eq!(layout.encoding_name(), "windows-1252");
    }

    #[test]
    fn character_cut_at_sample_end_is_still_utf8() {
        // `€` is E2 82 AC; put its first two bytes at 65,534 and 65,535.
        let mut sample = b"a,b\n".repeat((SAMPLE_LEN - 2) / 4);
        sample.resize(SAMPLE_LEN - 2, b'x');
        sample.extend_from_slice(&[0xE2, 0x82]);
        assert_eq!(sample.len(), SAMPLE_LEN);
        let layout = text_layout(&sample, false, &Settings::default()).unwrap();
        assert_eq!(layout.encoding, UTF_8);
        assert!(!layout.encoding_fallback);
        // When that is the whole file, the cut character is really invalid.
        let layout = text_layout(&sample, true, &Settings::default()).unwrap();
        assert_eq!(layout.encoding, WINDOWS_1252);
        assert!(layout.encoding_fallback);
        // A bad byte (not a cut) right at the end is invalid either way.
        let mut bad = sample.clone();
        bad[SAMPLE_LEN - 1] = b'x';
        let layout = text_layout(&bad, false, &Settings::default()).unwrap();
        assert_eq!(layout.encoding, WINDOWS_1252);
    }

    #[test]
    fn explicit_encoding_overrides_detection() {
        // Valid UTF-8, read as Windows-1252 because the setting says so.
        let layout =
            text_layout("a,b\nZoë,1\n".as_bytes(), true, &with_encoding("latin1")).unwrap();
        assert_eq!(layout.encoding, WINDOWS_1252);
        assert!(!layout.encoding_fallback);
        // Invalid UTF-8 read as UTF-8: no fallback, no warning.
        let layout = text_layout(b"a,b\nCaf\xE9,1\n", true, &with_encoding("utf-8")).unwrap();
        assert_eq!((layout.encoding, layout.encoding_fallback), (UTF_8, false));
    }

    #[test]
    fn explicit_encoding_strips_only_its_own_bom() {
        let bytes = b"\xEF\xBB\xBFa;b\n1;2\n";
        let layout = text_layout(bytes, true, &with_encoding("utf-8")).unwrap();
        assert_eq!(
            (layout.encoding, layout.bom_len, layout.delimiter),
            (UTF_8, 3, b';')
        );
        let layout = text_layout(bytes, true, &with_encoding("windows-1252")).unwrap();
        assert_eq!((layout.encoding, layout.bom_len), (WINDOWS_1252, 0));
        let le = utf16le_with_bom("a|b\n");
        let layout = text_layout(&le, true, &with_encoding("utf-16le")).unwrap();
        assert_eq!(
            (layout.encoding, layout.bom_len, layout.delimiter),
            (UTF_16LE, 2, b'|')
        );
        // The other byte order's BOM is not this encoding's: kept.
        let layout = text_layout(&le, true, &with_encoding("utf-16be")).unwrap();
        assert_eq!((layout.encoding, layout.bom_len), (UTF_16BE, 0));
    }

    #[test]
    fn explicit_delimiter_overrides_sniffing() {
        let mut settings = Settings::default();
        settings.apply("delimiter", "|").unwrap();
        let layout = text_layout(b"a,b,c\n1,2,3\n", true, &settings).unwrap();
        assert_eq!(layout.delimiter, b'|');
    }

    #[test]
    fn sniffs_each_delimiter() {
        assert_eq!(
            sniff_delimiter("id,name,amount\n1,Ann,2\n2,Bob,3\n", true),
            b','
        );
        assert_eq!(
            sniff_delimiter("id;name;amount\n1;Ann;2,50\n2;Bob;3,75\n", true),
            b';'
        );
        assert_eq!(
            sniff_delimiter("id\tname\n1\tAnn, Jr.\n2\tBob\n", true),
            b'\t'
        );
        assert_eq!(
            sniff_delimiter("id|name|note\n1|Ann|a,b\n2|Bob|c;d\n", true),
            b'|'
        );
    }

    #[test]
    fn commas_only_inside_quotes_with_semicolons() {
        // Split on `;` with quotes respected: 3, 3, 3 fields. Split on `,`:
        // the header has no comma, and in each row the quote after `;` is
        // not at a field's start, so it is literal and the comma splits:
        // 1, 2, 2 fields.
        let text = "id;note;amount\n1;\"x; y, z\";2\n2;\"p; q, r\";3\n";
        assert_eq!(field_counts(text.as_bytes(), b';'), [3, 3, 3]);
        assert_eq!(field_counts(text.as_bytes(), b','), [1, 2, 2]);
        assert_eq!(score(text.as_bytes(), b';', true), 3);
        assert_eq!(score(text.as_bytes(), b',', true), 2);
        // Were quotes ignored, `;` would see 3, 4, 4 (score 2) and lose the
        // tie to `,`.
        assert_eq!(sniff_delimiter(text, true), b';');
        // Quoted fields everywhere: each record starts with a quoted field,
        // which protects its commas from the `,` split.
        let text = "\"id\";\"name\"\n\"Smith, Ann\";\"2,50\"\n\"Lee, Bob\";\"3,75\"\n";
        assert_eq!(field_counts(text.as_bytes(), b','), [1, 2, 2]);
        assert_eq!(field_counts(text.as_bytes(), b';'), [2, 2, 2]);
        assert_eq!(sniff_delimiter(text, true), b';');
    }

    #[test]
    fn quoted_newlines_do_not_split_records() {
        // Three records of 3 fields with `;`. With `,` the quoted field at
        // each record's start also hides its line break and comma, so each
        // record is one field.
        let text = "a;b;c\n\"x,\ny\";2;3\n\"p,\r\nq\";4;5\n";
        assert_eq!(field_counts(text.as_bytes(), b';'), [3, 3, 3]);
        assert_eq!(field_counts(text.as_bytes(), b','), [1, 1, 1]);
        assert_eq!(sniff_delimiter(text, true), b';');
        // Not respecting quotes would have made 5 lines of it.
        assert_eq!(field_counts(b"a\n\"b\nc\"\nd\n", b','), [1, 1, 1]);
    }

    #[test]
    fn field_counting_follows_lenient_quoting() {
        // `"ab"cd` is one field; a quote in an unquoted field is literal.
        assert_eq!(field_counts(b"\"ab\"cd,e\n", b','), [2]);
        assert_eq!(field_counts(b"a\"b,c\"d,e\n", b','), [3]);
        // `""` inside quotes is a quote, not the closing one.
        assert_eq!(field_counts(b"\"a\"\",b\",c\n", b','), [2]);
        // `\r\n`, `\r` and `\n` each end one record; blank lines make none.
        assert_eq!(field_counts(b"a,b\r\nc,d\re,f\n\ng", b','), [2, 2, 2, 1]);
        // A quote after the field's first character does not open quoting.
        assert_eq!(field_counts(b" \"a,b\",c\n", b','), [3]);
        // An unterminated quote runs to the end.
        assert_eq!(field_counts(b"a,\"b\nc,d\n", b','), [2]);
        assert_eq!(field_counts(b"", b','), Vec::<usize>::new());
    }

    #[test]
    fn last_record_dropped_when_incomplete() {
        // Two 2-field `;` records, then three 4-field `,` records: `,`
        // scores 3 against 2, and 2 against 2 once the last is dropped.
        let text = "a;b\nc;d\ne,f,g,h\ni,j,k,l\nm,n,o,p";
        assert_eq!(sniff_delimiter(text, true), b',');
        assert_eq!(score(text.as_bytes(), b',', true), 3);
        assert_eq!(score(text.as_bytes(), b',', false), 2);
        assert_eq!(score(text.as_bytes(), b';', false), 2);
        // With one `,` record fewer, dropping the last decides for `;`.
        let text = "a;b\nc;d\ne,f,g,h\ni,j,k,l";
        assert_eq!(sniff_delimiter(text, true), b',');
        assert_eq!(sniff_delimiter(text, false), b';');
    }

    #[test]
    fn score_uses_the_most_common_field_count() {
        // `,` counts: 3, 3, 2, 2, 2 → mode 2 with 3 records.
        let text = "a,b,c\nd,e,f\ng,h\ni,j\nk,l\n";
        assert_eq!(score(text.as_bytes(), b',', true), 3);
        // One-field records never count.
        assert_eq!(score(b"a\nb\nc\n", b',', true), 0);
    }

    #[test]
    fn ties_go_in_listed_order() {
        // `,` and `;` each split the one record in two.
        assert_eq!(sniff_delimiter("a,b;c\n", true), b',');
        // `;` and tab tie: `;` is listed first.
        assert_eq!(sniff_delimiter("a;b\tc\n", true), b';');
        // Tab and `|` tie: tab is listed first.
        assert_eq!(sniff_delimiter("a\tb|c\n", true), b'\t');
        assert_eq!(sniff_delimiter("a|b\tc\n", true), b'\t');
    }

    #[test]
    fn all_zero_scores_mean_comma() {
        assert_eq!(sniff_delimiter("hello\nworld\n", true), b',');
        assert_eq!(sniff_delimiter("", true), b',');
        // Only the dropped last record has delimiters.
        assert_eq!(sniff_delimiter("one\ntwo\nx|y|z", false), b',');
        let layout = layout(b"justoneword").unwrap();
        assert_eq!(layout.delimiter, b',');
    }

    #[test]
    fn sniffing_sees_decoded_text() {
        // In UTF-16 every delimiter byte sits next to a NUL; sniffing the
        // raw bytes would find nothing.
        let le = utf16le_with_bom("a|b|c\n1|2|3\n");
        assert_eq!(layout(&le).unwrap().delimiter, b'|');
    }
}
