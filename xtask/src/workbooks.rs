//! Small hostile workbooks, built byte by byte: each asks an Excel reader
//! for far more memory than its size (a far cell, a moved or bombed part, a
//! shared string repeated, ods repeats, an xls DIMENSIONS record). Used by
//! `cargo xtask hostile-excel` (peak memory of the release binary) and by
//! the workspace tests (the file error each must give).

use std::io::{self, Cursor, Write};

use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

/// What a hostile workbook must give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The file error `unreadable`, its message containing this text.
    Unreadable(&'static str),
    /// A report (rows read, memory bounded).
    Report,
}

/// One hostile workbook.
pub struct Case {
    /// File name, with the extension detection does not need.
    pub file: &'static str,
    /// The workbook's bytes.
    pub bytes: Vec<u8>,
    /// Extra `ledgerline process` arguments.
    pub args: Vec<&'static str>,
    /// The expected outcome.
    pub expect: Expect,
}

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>"#;
const ROOT_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;
const WORKBOOK: &str = r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>"#;

/// The header of the invoice sheets below.
const HEADER: [&str; 7] = [
    "invoice_id",
    "invoice_date",
    "customer_id",
    "quantity",
    "unit_price",
    "currency",
    "description",
];

fn workbook_rels(sheet_target: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="{sheet_target}"/></Relationships>"#
    )
}

fn sheet_xml(rows: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{rows}</sheetData></worksheet>"#
    )
}

/// An inline-string cell.
fn inline(cell: &str, text: &str) -> String {
    format!(r#"<c r="{cell}" t="inlineStr"><is><t>{text}</t></is></c>"#)
}

/// A zip of `parts` (name, bytes), deflated.
pub fn zip_parts(parts: &[(&str, Vec<u8>)]) -> io::Result<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let deflated = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .large_file(false);
    for (name, bytes) in parts {
        let options = if *name == "mimetype" {
            SimpleFileOptions::default().compression_method(CompressionMethod::Stored)
        } else {
            deflated
        };
        zip.start_file(*name, options)?;
        zip.write_all(bytes)?;
    }
    Ok(zip.finish()?.into_inner())
}

/// An xlsx whose sheet is `sheet` at `xl/{target}`, with extra parts.
pub fn xlsx_with(target: &str, sheet: Vec<u8>, extra: Vec<(&str, Vec<u8>)>) -> io::Result<Vec<u8>> {
    let path = format!("xl/{target}");
    let mut parts: Vec<(&str, Vec<u8>)> = vec![
        ("[Content_Types].xml", CONTENT_TYPES.into()),
        ("_rels/.rels", ROOT_RELS.into()),
        ("xl/workbook.xml", WORKBOOK.into()),
        (
            "xl/_rels/workbook.xml.rels",
            workbook_rels(target).into_bytes(),
        ),
        (path.as_str(), sheet),
    ];
    parts.extend(extra);
    zip_parts(&parts)
}

/// A one-sheet xlsx holding `rows` as its `<sheetData>`.
pub fn xlsx(rows: &str) -> io::Result<Vec<u8>> {
    xlsx_with(
        "worksheets/sheet1.xml",
        sheet_xml(rows).into_bytes(),
        Vec::new(),
    )
}

/// One cell at `cell` (e.g. `ZZZZZ1`) after a header cell in A1.
pub fn far_cell(cell: &str) -> io::Result<Vec<u8>> {
    let row: String = cell.chars().skip_while(char::is_ascii_alphabetic).collect();
    let rows = if row == "1" {
        format!(
            r#"<row r="1">{}{}</row>"#,
            inline("A1", "id"),
            inline(cell, "x")
        )
    } else {
        format!(
            r#"<row r="1">{}</row><row r="{row}">{}</row>"#,
            inline("A1", "id"),
            inline(cell, "x")
        )
    };
    xlsx(&rows)
}

/// `n` bytes of sheet XML that inflate from almost nothing (white space
/// between elements, about 1000× under DEFLATE).
fn bomb_sheet(n: usize) -> Vec<u8> {
    let mut xml = sheet_xml("").into_bytes();
    let tail = xml.split_off(xml.len() - "</sheetData></worksheet>".len());
    xml.resize(n, b' ');
    xml.extend_from_slice(&tail);
    xml
}

/// `len` letters that do not compress much (a fixed xorshift stream).
fn noise(len: usize) -> String {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

/// The sheet at a name no guard would guess (`xl/data/q.bin.xml`, found
/// only through `_rels`), a zip bomb of `n` bytes.
pub fn moved_sheet_bomb(n: usize) -> io::Result<Vec<u8>> {
    xlsx_with("data/q.bin.xml", bomb_sheet(n), Vec::new())
}

/// A valid small sheet with `xl/styles.xml` a zip bomb of `n` bytes.
pub fn styles_bomb(n: usize) -> io::Result<Vec<u8>> {
    let mut styles = b"<?xml version=\"1.0\"?><styleSheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">".to_vec();
    styles.resize(n, b' ');
    styles.extend_from_slice(b"</styleSheet>");
    xlsx_with(
        "worksheets/sheet1.xml",
        sheet_xml(&format!(r#"<row r="1">{}</row>"#, inline("A1", "id"))).into_bytes(),
        vec![("xl/styles.xml", styles)],
    )
}

/// A shared-strings part claiming `claim` unique strings (calamine
/// reserves them) while holding one.
pub fn shared_strings_claim(claim: u64) -> io::Result<Vec<u8>> {
    let sst = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="{claim}"><si><t>id</t></si></sst>"#
    );
    xlsx_with(
        "worksheets/sheet1.xml",
        sheet_xml(r#"<row r="1"><c r="A1" t="s"><v>0</v></c></row>"#).into_bytes(),
        vec![("xl/sharedStrings.xml", sst.into_bytes())],
    )
}

/// An invoice sheet of `rows` valid rows whose description is one shared
/// string of `len` bytes, referenced by every row. Row 2 is the first
/// data row; rows before a refusal are still read.
pub fn huge_shared_string(len: usize, rows: u64) -> io::Result<Vec<u8>> {
    let mut sst = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1"><si><t>"#,
    );
    sst.push_str(&noise(len));
    sst.push_str("</t></si></sst>");
    let cols = ["A", "B", "C", "D", "E", "F", "G"];
    let mut xml = String::from(r#"<row r="1">"#);
    for (c, h) in cols.iter().zip(HEADER) {
        xml.push_str(&inline(&format!("{c}1"), h));
    }
    xml.push_str("</row>");
    for r in 2..rows + 2 {
        xml.push_str(&format!(
            r#"<row r="{r}">{}{}{}<c r="D{r}"><v>2</v></c><c r="E{r}"><v>1.5</v></c>{}<c r="G{r}" t="s"><v>0</v></c></row>"#,
            inline(&format!("A{r}"), &format!("INV-{r}")),
            inline(&format!("B{r}"), "2024-01-15"),
            inline(&format!("C{r}"), "C1"),
            inline(&format!("F{r}"), "EUR"),
        ));
    }
    xlsx_with(
        "worksheets/sheet1.xml",
        sheet_xml(&xml).into_bytes(),
        vec![("xl/sharedStrings.xml", sst.into_bytes())],
    )
}

/// An ods whose one table holds `rows_repeated` rows of one value cell
/// repeated `cols_repeated` times.
pub fn ods_repeats(rows_repeated: u64, cols_repeated: u64) -> io::Result<Vec<u8>> {
    let content = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet><table:table table:name="S"><table:table-row><table:table-cell office:value-type="string"><text:p>id</text:p></table:table-cell></table:table-row><table:table-row table:number-rows-repeated="{rows_repeated}"><table:table-cell office:value-type="float" office:value="1" table:number-columns-repeated="{cols_repeated}"><text:p>1</text:p></table:table-cell></table:table-row></table:table></office:spreadsheet></office:body></office:document-content>"#
    );
    let manifest = r#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#;
    zip_parts(&[
        (
            "mimetype",
            b"application/vnd.oasis.opendocument.spreadsheet".to_vec(),
        ),
        ("META-INF/manifest.xml", manifest.into()),
        ("content.xml", content.into_bytes()),
    ])
}

fn record(out: &mut Vec<u8>, typ: u16, data: &[u8]) {
    out.extend_from_slice(&typ.to_le_bytes());
    out.extend_from_slice(&(data.len() as u16).to_le_bytes());
    out.extend_from_slice(data);
}

/// A BIFF8 xls (an OLE2 `Workbook` stream built by hand) with one sheet
/// whose DIMENSIONS record claims rows `rows.0..rows.1` and columns
/// `cols.0..cols.1`, and NUMBER cells at `cells`.
pub fn xls(rows: (u32, u32), cols: (u16, u16), cells: &[(u16, u16)]) -> io::Result<Vec<u8>> {
    let bof = |dt: u16| {
        let mut d = Vec::new();
        d.extend_from_slice(&0x0600u16.to_le_bytes());
        d.extend_from_slice(&dt.to_le_bytes());
        d.extend_from_slice(&[0u8; 12]);
        d
    };
    // Globals: BOF, CODEPAGE, BOUNDSHEET (its offset patched), EOF.
    let mut stream = Vec::new();
    record(&mut stream, 0x0809, &bof(0x0005));
    record(&mut stream, 0x0042, &1200u16.to_le_bytes());
    let boundsheet_at = stream.len() + 4;
    let mut bs = vec![0u8; 4];
    bs.extend_from_slice(&[0, 0]); // visible worksheet
    bs.extend_from_slice(&[1, 0, b'S']); // name "S", 8-bit
    record(&mut stream, 0x0085, &bs);
    record(&mut stream, 0x000A, &[]);
    let sheet_at = stream.len() as u32;
    stream[boundsheet_at..boundsheet_at + 4].copy_from_slice(&sheet_at.to_le_bytes());
    record(&mut stream, 0x0809, &bof(0x0010));
    let mut dim = Vec::new();
    dim.extend_from_slice(&rows.0.to_le_bytes());
    dim.extend_from_slice(&rows.1.to_le_bytes());
    dim.extend_from_slice(&cols.0.to_le_bytes());
    dim.extend_from_slice(&cols.1.to_le_bytes());
    dim.extend_from_slice(&[0, 0]);
    record(&mut stream, 0x0200, &dim);
    for (r, c) in cells {
        let mut d = Vec::new();
        d.extend_from_slice(&r.to_le_bytes());
        d.extend_from_slice(&c.to_le_bytes());
        d.extend_from_slice(&0u16.to_le_bytes());
        d.extend_from_slice(&1.0f64.to_le_bytes());
        record(&mut stream, 0x0203, &d);
    }
    record(&mut stream, 0x000A, &[]);
    let mut compound = cfb::CompoundFile::create(Cursor::new(Vec::new()))?;
    {
        let mut s = compound.create_stream("/Workbook")?;
        s.write_all(&stream)?;
    }
    compound.flush()?;
    Ok(compound.into_inner().into_inner())
}

/// Every hostile workbook of `cargo xtask hostile-excel`, with what it
/// must give under the default settings (and `args`).
pub fn cases() -> io::Result<Vec<Case>> {
    let bytes = [
        far_cell("ZZZZZ1")?,
        far_cell("ZZZZZZZ1")?,
        far_cell("A1048577")?,
        moved_sheet_bomb(64 << 20)?,
        styles_bomb(64 << 20)?,
        shared_strings_claim(4_000_000_000)?,
        huge_shared_string(50 << 10, 20_000)?,
        huge_shared_string(50 << 10, 200_000)?,
        huge_shared_string(2 << 20, 10)?,
        ods_repeats(1_048_576, 16_384)?,
        ods_repeats(4_000_000_000, 4_000_000_000)?,
        xls((0, u32::MAX), (0, 255), &[(0, 0)])?,
        xls((0, 1), (0, 1), &[(0, 0), (65535, 65535)])?,
    ];
    Ok(EXPECTATIONS
        .iter()
        .zip(bytes)
        .map(|((file, expect), bytes)| Case {
            file,
            bytes,
            args: Vec::new(),
            expect: *expect,
        })
        .collect())
}

/// The file name, extra arguments and expected outcome of every case of
/// [`cases`], without building the workbooks.
pub fn expectations() -> Vec<(&'static str, Vec<&'static str>, Expect)> {
    EXPECTATIONS
        .iter()
        .map(|(file, expect)| (*file, Vec::new(), *expect))
        .collect()
}

const EXPECTATIONS: [(&str, Expect); 13] = [
    ("col_zzzzz.xlsx", Expect::Unreadable(LIMITS)),
    ("col_zzzzzzz.xlsx", Expect::Unreadable(LIMITS)),
    ("row_beyond.xlsx", Expect::Unreadable(LIMITS)),
    ("moved_sheet_bomb.xlsx", Expect::Unreadable("zip bomb")),
    ("styles_bomb.xlsx", Expect::Unreadable("zip bomb")),
    ("sst_claim.xlsx", Expect::Unreadable("shared strings")),
    ("shared_string_50k_x20k.xlsx", Expect::Report),
    (
        "shared_string_50k_x200k.xlsx",
        Expect::Unreadable("expand to more than"),
    ),
    (
        "shared_string_2m.xlsx",
        Expect::Unreadable("holds more than"),
    ),
    ("ods_repeats.ods", Expect::Unreadable("repeats")),
    ("ods_repeats_4g.ods", Expect::Unreadable("repeats")),
    ("xls_dimensions.xls", Expect::Unreadable("DIMENSIONS")),
    ("xls_corners.xls", Expect::Unreadable("DIMENSIONS")),
];

const LIMITS: &str = "beyond the sheet's limits";
