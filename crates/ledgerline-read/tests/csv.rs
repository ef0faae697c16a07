//! The CSV reader through its public API: row numbers, blank lines,
//! quoting, encodings, gzip and chunking (SPEC §1 and §3).

// clippy's test allowances cover `#[test]` functions only, not the helpers
// of an integration test crate.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{Cursor, Write};

use ledgerline_core::{FileErrorCode, RecordBatch, RecordStatus, Settings};
use ledgerline_detect::TextLayout;
use ledgerline_read::{open_csv, open_path, open_reader, RecordReader};

type Row = (u64, RecordStatus, Vec<String>);

fn layout(encoding: &'static encoding_rs::Encoding, bom_len: usize) -> TextLayout {
    TextLayout {
        encoding,
        bom_len,
        encoding_fallback: false,
        delimiter: b',',
    }
}

fn utf8() -> TextLayout {
    layout(encoding_rs::UTF_8, 0)
}

/// Every record, read `max` at a time.
fn drain(reader: &mut dyn RecordReader, max: usize) -> Vec<Row> {
    let mut out = Vec::new();
    let mut batch = RecordBatch::new();
    loop {
        let n = reader.read_batch(&mut batch, max).unwrap();
        assert_eq!(n, batch.len());
        assert!(n <= max.max(1));
        if n == 0 {
            break;
        }
        for r in batch.iter() {
            let fields = r
                .fields()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            out.push((r.row(), r.status(), fields));
        }
    }
    // The end stays the end.
    assert_eq!(reader.read_batch(&mut batch, max).unwrap(), 0);
    out
}

fn read_with(bytes: &[u8], gzip_layers: u8, layout: &TextLayout, max: usize) -> Vec<Row> {
    let mut reader = open_csv(
        "test.csv",
        Box::new(Cursor::new(bytes.to_vec())),
        gzip_layers,
        layout,
    )
    .unwrap();
    drain(reader.as_mut(), max)
}

fn read(bytes: &[u8]) -> Vec<Row> {
    read_with(bytes, 0, &utf8(), 1000)
}

fn ok(row: u64, fields: &[&str]) -> Row {
    (
        row,
        RecordStatus::Ok,
        fields.iter().map(|f| f.to_string()).collect(),
    )
}

fn rows_of(rows: &[Row]) -> Vec<u64> {
    rows.iter().map(|r| r.0).collect()
}

fn gzip_members(members: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(m).unwrap();
        out.extend(enc.finish().unwrap());
    }
    out
}

#[test]
fn row_numbers_with_each_line_break() {
    assert_eq!(rows_of(&read(b"a\r\nb\r\nc\r\n")), [1, 2, 3]);
    assert_eq!(rows_of(&read(b"a\rb\rc\r")), [1, 2, 3]);
    assert_eq!(rows_of(&read(b"a\nb\nc\n")), [1, 2, 3]);
    assert_eq!(
        read(b"a,1\r\nb,2\rc,3\nd,4"),
        [
            ok(1, &["a", "1"]),
            ok(2, &["b", "2"]),
            ok(3, &["c", "3"]),
            ok(4, &["d", "4"]),
        ]
    );
}

#[test]
fn quoted_newline_row_numbers() {
    // The quoted field holds a CRLF and a lone CR: two line breaks, so its
    // record spans lines 2 to 4 and the next starts on line 5.
    assert_eq!(
        read(b"h1,h2\n\"x\r\ny\rz\",2\nnext,3\n"),
        [
            ok(1, &["h1", "h2"]),
            ok(2, &["x\r\ny\rz", "2"]),
            ok(5, &["next", "3"]),
        ]
    );
}

#[test]
fn blank_lines_are_records_with_one_empty_field() {
    assert_eq!(
        read(b"\n\nh\r\n\r\n\r\nv\n\n\n"),
        [
            ok(1, &[""]),
            ok(2, &[""]),
            ok(3, &["h"]),
            ok(4, &[""]),
            ok(5, &[""]),
            ok(6, &["v"]),
            ok(7, &[""]),
            ok(8, &[""]),
        ]
    );
    // A final line break ends the last line; it does not add one.
    assert_eq!(read(b"a\n"), [ok(1, &["a"])]);
    assert_eq!(read(b"a"), [ok(1, &["a"])]);
    assert_eq!(read(b"a,\"b\""), [ok(1, &["a", "b"])]);
    assert_eq!(read(b""), []);
}

#[test]
fn lenient_quoting() {
    assert_eq!(
        read(b"\"ab\"cd,e\"f\"g,\"\"\"q\"\"\",\"\"\n"),
        [ok(1, &["abcd", "e\"f\"g", "\"q\"", ""])]
    );
}

#[test]
fn unterminated_quote_ends_the_file() {
    let got = read(b"a,b\n1,\"open\r\n2,3\n\n4,5\n");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], ok(1, &["a", "b"]));
    assert_eq!(
        got[1],
        (
            2,
            RecordStatus::UnterminatedQuote,
            vec!["1".to_string(), "open\r\n2,3\n\n4,5\n".to_string()]
        )
    );
}

#[test]
fn utf8_byte_order_mark_is_skipped() {
    assert_eq!(
        read_with(b"\xEF\xBB\xBFa,b\n", 0, &layout(encoding_rs::UTF_8, 3), 10),
        [ok(1, &["a", "b"])]
    );
}

#[test]
fn invalid_utf8_marks_only_its_record() {
    let got = read(b"h\n\xE9t\xE9\nfine\ncaf\xC3\xA9\n");
    let statuses: Vec<_> = got.iter().map(|r| r.1).collect();
    assert_eq!(
        statuses,
        [
            RecordStatus::Ok,
            RecordStatus::InvalidEncoding,
            RecordStatus::Ok,
            RecordStatus::Ok
        ]
    );
    assert_eq!(got[3], ok(4, &["café"]));
}

fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
    let mut out = if big_endian {
        vec![0xFE, 0xFF]
    } else {
        vec![0xFF, 0xFE]
    };
    for unit in text.encode_utf16() {
        out.extend(if big_endian {
            unit.to_be_bytes()
        } else {
            unit.to_le_bytes()
        });
    }
    out
}

#[test]
fn utf16_with_byte_order_mark() {
    let text = "id,name\r\n1,Zoë €\r\n\r\n2,\"a\nb\"\r\n";
    let want = [
        ok(1, &["id", "name"]),
        ok(2, &["1", "Zoë €"]),
        ok(3, &[""]),
        ok(4, &["2", "a\nb"]),
    ];
    assert_eq!(
        read_with(
            &utf16(text, false),
            0,
            &layout(encoding_rs::UTF_16LE, 2),
            100
        ),
        want
    );
    assert_eq!(
        read_with(
            &utf16(text, true),
            0,
            &layout(encoding_rs::UTF_16BE, 2),
            100
        ),
        want
    );
}

#[test]
fn unpaired_surrogate_marks_exactly_its_record() {
    let mut bytes = utf16("h\n1\n", false);
    bytes.extend([0x00, 0xD8]); // a high surrogate with no low one
    bytes.extend(utf16("x\n3\n", false).split_off(2));
    let got = read_with(&bytes, 0, &layout(encoding_rs::UTF_16LE, 2), 100);
    let statuses: Vec<_> = got.iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(
        statuses,
        [
            (1, RecordStatus::Ok),
            (2, RecordStatus::Ok),
            (3, RecordStatus::InvalidEncoding),
            (4, RecordStatus::Ok),
        ]
    );
}

#[test]
fn windows_1252_is_transcoded() {
    let got = read_with(
        b"amount,cur\n\x80 5,caf\xE9\n",
        0,
        &layout(encoding_rs::WINDOWS_1252, 0),
        100,
    );
    assert_eq!(got, [ok(1, &["amount", "cur"]), ok(2, &["€ 5", "café"])]);
}

#[test]
fn gzip_reads_every_member() {
    let bytes = gzip_members(&[b"a,b\n1,", b"2\n\n3,4\n"]);
    let mut reader = open_csv("t.csv.gz", Box::new(Cursor::new(bytes)), 1, &utf8()).unwrap();
    assert!(reader.info().gzip);
    assert_eq!(
        drain(reader.as_mut(), 100),
        [
            ok(1, &["a", "b"]),
            ok(2, &["1", "2"]),
            ok(3, &[""]),
            ok(4, &["3", "4"])
        ]
    );
    assert_eq!(reader.bytes_read(), 13);
}

#[test]
fn corrupt_gzip_is_unreadable() {
    let mut bytes = gzip_members(&[&b"a,b\n1,2\n".repeat(200_000)]);
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 8] {
        *b ^= 0x5A;
    }
    let mut reader = open_csv("broken.csv.gz", Box::new(Cursor::new(bytes)), 1, &utf8()).unwrap();
    let mut batch = RecordBatch::new();
    let err = loop {
        match reader.read_batch(&mut batch, 5000) {
            Ok(0) => panic!("corruption went unnoticed"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(err.code, FileErrorCode::Unreadable);
    assert!(err.message.contains("broken.csv.gz"), "{}", err.message);
    assert_eq!(reader.read_batch(&mut batch, 5000).unwrap_err(), err);
}

const SAMPLE: &[u8] = b"\nid,text\r\n1,\"multi\r\nline\"\r\n\r\n\r\n2,\"ab\"cd\r3,x\n\xFF,bad\n\"\"\"\",q\n4,\"open\nrest";

#[test]
fn batch_limits_do_not_change_records() {
    let whole = read_with(SAMPLE, 0, &utf8(), 10_000);
    assert_eq!(rows_of(&whole), [1, 2, 3, 5, 6, 7, 8, 9, 10, 11]);
    assert_eq!(whole[9].1, RecordStatus::UnterminatedQuote);
    for max in [0, 1, 2, 7] {
        assert_eq!(read_with(SAMPLE, 0, &utf8(), max), whole, "max {max}");
    }
}

/// About 1 MiB of CSV with a quoted, multi-line field across the first
/// 256 KiB read block, and the expected records worked out while writing it.
fn big_file() -> (Vec<u8>, Vec<Row>) {
    const BLOCK: usize = 256 * 1024;
    let mut bytes = b"id,text\n".to_vec();
    let mut want = vec![ok(1, &["id", "text"])];
    let mut line = 2;
    let mut i = 0;
    let mut straddled = false;
    while bytes.len() < 1024 * 1024 {
        i += 1;
        let start = bytes.len();
        if !straddled && start + 200 > BLOCK {
            let text = format!("{}\r\n{}", "q".repeat(150), "\"\"".repeat(20));
            bytes.extend(format!("{i},\"{text}\"\r\n").as_bytes());
            assert!(start < BLOCK && bytes.len() > BLOCK);
            want.push((
                line,
                RecordStatus::Ok,
                vec![
                    i.to_string(),
                    format!("{}\r\n{}", "q".repeat(150), "\"".repeat(20)),
                ],
            ));
            line += 2;
            straddled = true;
        } else {
            bytes.extend(format!("{i},plain {i}\n").as_bytes());
            want.push(ok(line, &[&i.to_string(), &format!("plain {i}")]));
            line += 1;
        }
    }
    (bytes, want)
}

#[test]
fn quoted_field_across_read_blocks() {
    let (bytes, want) = big_file();
    let mut reader = open_csv("big.csv", Box::new(Cursor::new(bytes.clone())), 0, &utf8()).unwrap();
    assert_eq!(drain(reader.as_mut(), 5000), want);
    assert_eq!(reader.bytes_read(), bytes.len() as u64);
    assert_eq!(read_with(&bytes, 0, &utf8(), 7), want);
    let gz = gzip_members(&[&bytes[..100_000], &bytes[100_000..]]);
    assert_eq!(read_with(&gz, 1, &utf8(), 4096), want);
}

#[test]
fn open_reader_and_open_path_detect() {
    let bytes = b"\xEF\xBB\xBFid;amount\r\n1;2,50\r\n".to_vec();
    let mut reader = open_reader(
        "mem.csv",
        Box::new(Cursor::new(bytes.clone())),
        &Settings::default(),
    )
    .unwrap();
    let info = reader.info().clone();
    assert_eq!(
        (info.delimiter, info.encoding, info.gzip),
        (Some(b';'), Some(encoding_rs::UTF_8), false)
    );
    assert_eq!(
        drain(reader.as_mut(), 10),
        [ok(1, &["id", "amount"]), ok(2, &["1", "2,50"])]
    );

    let path = std::env::temp_dir().join(format!("ledgerline-read-{}.csv.gz", std::process::id()));
    std::fs::write(&path, gzip_members(&[&bytes])).unwrap();
    let got =
        open_path(&path, &Settings::default()).map(|mut r| (r.info().gzip, drain(r.as_mut(), 10)));
    std::fs::remove_file(&path).unwrap();
    let (gzip, rows) = got.unwrap();
    assert!(gzip);
    assert_eq!(rows.len(), 2);

    let missing = open_path(
        std::path::Path::new("/nonexistent/ledgerline.csv"),
        &Settings::default(),
    );
    assert!(missing.is_err());
}

/// `content` inside `layers` nested gzip streams, each of one member.
fn gzip_layers(content: &[u8], layers: usize) -> Vec<u8> {
    (0..layers).fold(content.to_vec(), |inner, _| gzip_members(&[&inner]))
}

#[test]
fn nested_gzip_is_opened_as_deep_as_detected() {
    let text = b"a;b\r\n1;2\r\n\r\n3;4\r\n";
    let want = [
        ok(1, &["a", "b"]),
        ok(2, &["1", "2"]),
        ok(3, &[""]),
        ok(4, &["3", "4"]),
    ];
    for layers in 1..=4 {
        let bytes = gzip_layers(text, layers);
        let mut reader = open_reader(
            "nested.csv.gz",
            Box::new(Cursor::new(bytes.clone())),
            &Settings::default(),
        )
        .unwrap();
        assert!(reader.info().gzip);
        assert_eq!(reader.info().delimiter, Some(b';'));
        assert_eq!(drain(reader.as_mut(), 3), want, "{layers} layers");
        assert_eq!(reader.bytes_read(), text.len() as u64);

        let path = std::env::temp_dir().join(format!(
            "ledgerline-read-nested{layers}-{}.csv.gz",
            std::process::id()
        ));
        std::fs::write(&path, &bytes).unwrap();
        let got = open_path(&path, &Settings::default()).map(|mut r| drain(r.as_mut(), 2));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(got.unwrap(), want, "{layers} layers from a path");
    }
    let too_deep = open_reader(
        "deep.csv.gz",
        Box::new(Cursor::new(gzip_layers(text, 5))),
        &Settings::default(),
    );
    assert_eq!(
        too_deep.err().map(|e| e.code),
        Some(FileErrorCode::UnsupportedFormat)
    );
}

#[test]
fn corrupt_inner_gzip_past_the_sample_is_unreadable() {
    // The inner layer is broken far past the 64 KiB detection reads, so
    // only the reader finds it.
    let mut inner = gzip_members(&[&b"a,b\n1,2\n".repeat(200_000)]);
    let mid = inner.len() / 2;
    for b in &mut inner[mid..mid + 8] {
        *b ^= 0x5A;
    }
    let mut reader = open_reader(
        "broken.csv.gz",
        Box::new(Cursor::new(gzip_layers(&inner, 2))),
        &Settings::default(),
    )
    .unwrap();
    let mut batch = RecordBatch::new();
    let err = loop {
        match reader.read_batch(&mut batch, 5000) {
            Ok(0) => panic!("corruption went unnoticed"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(err.code, FileErrorCode::Unreadable);
    assert!(err.message.contains("broken.csv.gz"), "{}", err.message);
}
