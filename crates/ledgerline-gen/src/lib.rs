//! Deterministic test data for ledgerline: realistic invoice CSV files
//! ([`generate`]), the same invoices as an xlsx workbook
//! ([`xlsx::write_xlsx`]), in the sizes of the original design
//! ([`Preset`]). Used by `ledgerline gen`, `cargo xtask gen`, the tests and
//! the benches: one implementation.
//!
//! # Example
//!
//! ```
//! let mut csv = Vec::new();
//! let summary = ledgerline_gen::generate_counted(100, 1, 0.02, &mut csv)?;
//! assert!(csv.starts_with(ledgerline_gen::HEADER.as_bytes()));
//! assert_eq!(summary.rows, 100);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The same `(rows, seed, error_rate)` gives byte-identical output on every
//! machine: the pseudo-random stream is our own [`SplitMix64`] (a crate's
//! stream could change between versions), money is computed with `i128`
//! integers, and floating point is used only to compare a uniform draw with a
//! probability, which IEEE 754 makes exact and portable.
//!
//! The content follows `shared/bench-peers/gen_bench.py`: invoices of 1–8
//! lines sharing id, date, customer and currency; seven currencies with
//! 0, 2 and 3 minor units; `line_total` = round-half-away(q × p × (1 + t));
//! names and descriptions holding commas and quotes; and legitimate but
//! unusual values that must stay valid. About `error_rate` of the rows carry
//! exactly one injected error, spread evenly over every row error of SPEC §4
//! that a CSV can hold (see [`ErrorKind`]).
//!
//! Values the SPEC and the peers' oracle (`peer_reference.py`) read
//! differently are never written: null tokens such as `n/a` (SPEC: empty),
//! `%` tax rates, grouped or accounting decimals, more than 15 significant
//! digits, and non-ISO date shapes (which would also sway `date_order`).

#![deny(missing_docs)]

pub mod xlsx;

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The named sizes of the original design's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// 100 rows.
    Small,
    /// 1,000 rows.
    Medium,
    /// 10,000 rows.
    Large,
    /// 50,000 rows.
    XLarge,
}

impl Preset {
    /// Every preset, smallest first.
    pub const ALL: [Preset; 4] = [Preset::Small, Preset::Medium, Preset::Large, Preset::XLarge];

    /// Its data rows.
    pub fn rows(self) -> u64 {
        match self {
            Preset::Small => 100,
            Preset::Medium => 1_000,
            Preset::Large => 10_000,
            Preset::XLarge => 50_000,
        }
    }

    /// Its name: `small`, `medium`, `large` or `xlarge`.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Small => "small",
            Preset::Medium => "medium",
            Preset::Large => "large",
            Preset::XLarge => "xlarge",
        }
    }

    /// The preset called `name`.
    pub fn parse(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The header every generated file starts with.
pub const HEADER: &str = "invoice_id,invoice_date,due_date,customer_id,customer_name,sku,\
                          description,quantity,unit_price,tax_rate,line_total,currency";

/// Number of columns of [`HEADER`].
const NFIELDS: usize = 12;

// Column positions in HEADER.
const INVOICE_ID: usize = 0;
const INVOICE_DATE: usize = 1;
const DUE_DATE: usize = 2;
const CUSTOMER_ID: usize = 3;
const CUSTOMER_NAME: usize = 4;
const SKU: usize = 5;
const DESCRIPTION: usize = 6;
const QUANTITY: usize = 7;
const UNIT_PRICE: usize = 8;
const TAX_RATE: usize = 9;
const LINE_TOTAL: usize = 10;
const CURRENCY: usize = 11;

/// A currency with everything the generator draws from for it.
struct Currency {
    code: &'static str,
    /// Minor units (decimal places) per `iso4217.json`.
    minor: u32,
    /// Relative weight of the currency among invoices.
    weight: u64,
    /// Tax rates as written; trailing zeros (`0.20`) are deliberate.
    taxes: &'static [&'static str],
    /// Unit price range, inclusive, in minor units.
    price: (i64, i64),
}

const CURRENCIES: [Currency; 7] = [
    Currency {
        code: "USD",
        minor: 2,
        weight: 30,
        taxes: &["0", "0.0825", "0.07", "0.06", "0.0625"],
        price: (50, 500_000),
    },
    Currency {
        code: "EUR",
        minor: 2,
        weight: 25,
        taxes: &["0.19", "0.2", "0.21", "0.07", "0.055", "0.20"],
        price: (50, 500_000),
    },
    Currency {
        code: "GBP",
        minor: 2,
        weight: 12,
        taxes: &["0.2", "0.05", "0"],
        price: (50, 400_000),
    },
    Currency {
        code: "JPY",
        minor: 0,
        weight: 10,
        taxes: &["0.1", "0.08"],
        price: (10, 500_000),
    },
    Currency {
        code: "KWD",
        minor: 3,
        weight: 5,
        taxes: &["0", "0.05"],
        price: (100, 200_000),
    },
    Currency {
        code: "CHF",
        minor: 2,
        weight: 8,
        taxes: &["0.081", "0.026", "0.038"],
        price: (50, 500_000),
    },
    Currency {
        code: "SEK",
        minor: 2,
        weight: 10,
        taxes: &["0.25", "0.12", "0.06"],
        price: (100, 5_000_000),
    },
];

/// Sum of the currency weights.
const TOTAL_WEIGHT: u64 = 100;

/// Minor units the SPEC uses for a line whose currency is in error.
const INVALID_CURRENCY_MINOR: u32 = 2;

const NAMES: [&str; 16] = [
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella, Inc.",
    "Stark Industries",
    "Wayne Enterprises",
    "The \"Best\" Widgets Ltd",
    "Müller & Söhne GmbH",
    "Smith, Jones and Partners",
    "Tyrell Corp",
    "Cyberdyne Systems",
    "Soylent",
    "Hooli",
    "Pied Piper",
    "Vandelay Industries",
    "Oceanic Airlines",
];

const DESCRIPTIONS: [&str; 16] = [
    "Widget",
    "Gadget, large",
    "Pipe 3\" steel",
    "Consulting hours",
    "Bolt M8, hex, \"zinc plated\"",
    "Shipping & handling",
    "Licence fee",
    "Paper A4, 500 sheets",
    "Cable 2m",
    "Support plan (annual)",
    "Monitor 27\", 4K",
    "Coffee beans, 1kg",
    "Desk chair",
    "Toner, black",
    "Cleaning service",
    "Travel expenses, reimbursed",
];

/// Invoice dates are drawn from this many days starting 2020-01-01.
const DATE_SPAN: usize = 6 * 365;
/// Days of the date table before 2020-01-01 (room for earlier dates).
const DATE_BEFORE: usize = 60;
/// Days of the date table after the last invoice date (room for due dates).
const DATE_AFTER: usize = 120;
/// Due dates are this many days after the invoice date.
const DUE_OFFSETS: [usize; 7] = [0, 14, 30, 30, 30, 45, 60];
/// 2020-01-01 as days since 1970-01-01.
const EPOCH_2020: i64 = 18_262;

/// One kind of injected row error, named after its SPEC §4 error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// An empty (or white-space only) required field.
    MissingValue,
    /// An `invoice_id` longer than 64 characters.
    ValueTooLong,
    /// An `invoice_date` or `due_date` that is not a date.
    InvalidDate,
    /// A `quantity`, `unit_price`, `tax_rate` or `line_total` that is not a decimal.
    InvalidDecimal,
    /// A zero `quantity`.
    ZeroQuantity,
    /// A `unit_price` below zero.
    NegativePrice,
    /// A `tax_rate` outside [0, 1].
    TaxRateOutOfRange,
    /// A `currency` not in `iso4217.json`.
    UnknownCurrency,
    /// A `line_total` more than one minor unit away from the expected one.
    LineTotalMismatch,
    /// A `due_date` earlier than the `invoice_date`.
    DueBeforeIssue,
    /// A later line of an invoice with another customer, currency or date.
    InvoiceInconsistent,
    /// A record with a field count other than the header's.
    RaggedRow,
}

impl ErrorKind {
    /// Every kind, in SPEC §4 order with `ragged_row` last.
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::MissingValue,
        ErrorKind::ValueTooLong,
        ErrorKind::InvalidDate,
        ErrorKind::InvalidDecimal,
        ErrorKind::ZeroQuantity,
        ErrorKind::NegativePrice,
        ErrorKind::TaxRateOutOfRange,
        ErrorKind::UnknownCurrency,
        ErrorKind::LineTotalMismatch,
        ErrorKind::DueBeforeIssue,
        ErrorKind::InvoiceInconsistent,
        ErrorKind::RaggedRow,
    ];

    /// The SPEC error code a validator reports for this kind.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::MissingValue => "missing_value",
            ErrorKind::ValueTooLong => "value_too_long",
            ErrorKind::InvalidDate => "invalid_date",
            ErrorKind::InvalidDecimal => "invalid_decimal",
            ErrorKind::ZeroQuantity => "zero_quantity",
            ErrorKind::NegativePrice => "negative_price",
            ErrorKind::TaxRateOutOfRange => "tax_rate_out_of_range",
            ErrorKind::UnknownCurrency => "unknown_currency",
            ErrorKind::LineTotalMismatch => "line_total_mismatch",
            ErrorKind::DueBeforeIssue => "due_before_issue",
            ErrorKind::InvoiceInconsistent => "invoice_inconsistent",
            ErrorKind::RaggedRow => "ragged_row",
        }
    }

    /// Position of this kind in [`ErrorKind::ALL`].
    fn index(self) -> usize {
        self as usize
    }
}

/// What a generator run wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Data rows written (header not counted).
    pub rows: u64,
    /// Distinct invoice numbers drawn (including ids later replaced by errors).
    pub invoices: u64,
    /// Rows per injected error kind, indexed like [`ErrorKind::ALL`].
    pub by_kind: [u64; 12],
}

impl Summary {
    /// Rows carrying an injected error of `kind`.
    pub fn count(&self, kind: ErrorKind) -> u64 {
        self.by_kind[kind.index()]
    }

    /// Rows carrying any injected error; every other row is valid.
    pub fn error_rows(&self) -> u64 {
        self.by_kind.iter().sum()
    }
}

/// Writes `rows` data rows (plus the header) of invoice CSV to `out`.
///
/// About `error_rate` of the rows (a probability in [0, 1]) carry exactly one
/// injected error; all others are valid under SPEC v1.3 with default settings.
pub fn generate(rows: u64, seed: u64, error_rate: f64, out: &mut dyn Write) -> io::Result<()> {
    generate_counted(rows, seed, error_rate, out).map(|_| ())
}

/// Like [`generate`], and returns how many rows of each error kind it wrote.
pub fn generate_counted(
    rows: u64,
    seed: u64,
    error_rate: f64,
    out: &mut dyn Write,
) -> io::Result<Summary> {
    let mut g = Generator::new(seed, error_rate);
    g.buf.extend_from_slice(HEADER.as_bytes());
    g.buf.push(b'\n');
    let mut left = rows;
    while left > 0 {
        left -= g.invoice(left);
        if g.buf.len() >= FLUSH_AT {
            out.write_all(&g.buf)?;
            g.buf.clear();
        }
    }
    out.write_all(&g.buf)?;
    g.summary.rows = rows;
    Ok(g.summary)
}

/// Output is handed to the writer in chunks of about this size, so the
/// per-row cost is a `Vec` push rather than a dynamic `write` call.
const FLUSH_AT: usize = 1 << 20;

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and fully specified, so
/// its stream can never change under us.
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose stream is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift; the bias is below
    /// 2⁻⁴⁰ for our ranges, which does not matter for test data.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// Uniform index into a slice of length `n`.
    fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// True with probability `p`: 53 random bits are exact in an `f64`.
    fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64) * (1.0 / (1u64 << 53) as f64) < p
    }
}

/// How a record deviates from the header's field count.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Full,
    /// The last field is left out.
    Short,
    /// One field too many.
    Long,
}

/// Everything needed to write and check a line, in exact integers.
struct Line {
    qm: i128,
    qs: u32,
    pm: i128,
    ps: u32,
    tm: i128,
    ts: u32,
}

/// The generator's state across rows.
struct Generator {
    rng: SplitMix64,
    error_rate: f64,
    /// `DATE_BEFORE + DATE_SPAN + DATE_AFTER` ISO dates from 2019-11-02.
    dates: Vec<[u8; 10]>,
    /// Error kinds are dealt from shuffled decks of all kinds, so every kind
    /// gets the same share however few errors a file has.
    deck: [ErrorKind; 12],
    dealt: usize,
    /// `invoice_inconsistent` draws that fell on a line with no valid line
    /// before it in its invoice; they go to the next error row that can hold one.
    owed_inconsistent: u64,
    inv_no: u64,
    fields: [Vec<u8>; NFIELDS],
    buf: Vec<u8>,
    summary: Summary,
}

impl Generator {
    fn new(seed: u64, error_rate: f64) -> Self {
        let n = DATE_BEFORE + DATE_SPAN + DATE_AFTER;
        let dates = (0..n)
            .map(|k| iso_date(EPOCH_2020 - DATE_BEFORE as i64 + k as i64))
            .collect();
        Self {
            rng: SplitMix64::new(seed),
            error_rate,
            dates,
            deck: ErrorKind::ALL,
            dealt: ErrorKind::ALL.len(),
            owed_inconsistent: 0,
            inv_no: 0,
            fields: Default::default(),
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            summary: Summary::default(),
        }
    }

    /// Writes one invoice of at most `left` lines; returns its line count.
    fn invoice(&mut self, left: u64) -> u64 {
        self.inv_no += 1;
        self.summary.invoices += 1;
        let n_lines = (self.rng.range(1, 8) as u64).min(left);
        let d_idx = DATE_BEFORE + self.rng.index(DATE_SPAN);
        let due_idx = if self.rng.chance(0.01) {
            None
        } else {
            Some(d_idx + DUE_OFFSETS[self.rng.index(DUE_OFFSETS.len())])
        };
        let cust_no = self.rng.range(1, 50_000) as u64;
        let cur = self.pick_currency();
        // True once a line of this invoice went out error-free: that line is
        // the anchor a later `invoice_inconsistent` line is compared with.
        let mut anchored = false;
        for _ in 0..n_lines {
            let injected = self.line(d_idx, due_idx, cust_no, cur, anchored);
            anchored |= !injected;
        }
        n_lines
    }

    fn pick_currency(&mut self) -> &'static Currency {
        let mut x = self.rng.below(TOTAL_WEIGHT);
        for c in &CURRENCIES {
            if x < c.weight {
                return c;
            }
            x -= c.weight;
        }
        &CURRENCIES[0]
    }

    /// Writes one line; returns whether it carries an injected error.
    fn line(
        &mut self,
        d_idx: usize,
        due_idx: Option<usize>,
        cust_no: u64,
        cur: &'static Currency,
        anchored: bool,
    ) -> bool {
        for f in &mut self.fields {
            f.clear();
        }
        let minor = cur.minor;

        // Identity, shared by every line of the invoice.
        let f = &mut self.fields;
        f[INVOICE_ID].extend_from_slice(b"INV-");
        push_padded(&mut f[INVOICE_ID], self.inv_no, 8);
        f[INVOICE_DATE].extend_from_slice(&self.dates[d_idx]);
        if let Some(i) = due_idx {
            f[DUE_DATE].extend_from_slice(&self.dates[i]);
        }
        f[CUSTOMER_ID].push(b'C');
        push_padded(&mut f[CUSTOMER_ID], cust_no, 6);
        f[CUSTOMER_NAME]
            .extend_from_slice(NAMES[(cust_no % NAMES.len() as u64) as usize].as_bytes());
        f[SKU].extend_from_slice(b"SKU-");
        let sku = self.rng.range(1, 99_999) as u64;
        push_padded(&mut self.fields[SKU], sku, 5);
        let desc = DESCRIPTIONS[self.rng.index(DESCRIPTIONS.len())];
        self.fields[DESCRIPTION].extend_from_slice(desc.as_bytes());

        // Quantity: mostly small whole numbers, some fractions, some bulk,
        // and a few negative credit lines (valid per SPEC §4).
        let x = self.rng.chance(0.80);
        let (qm, qs) = if x {
            (i128::from(self.rng.range(1, 20)), 0)
        } else {
            let y = self.rng.below(100);
            if y < 50 {
                let qs = self.rng.range(1, 3) as u32;
                (i128::from(self.rng.range(1, 100 * 10i64.pow(qs))), qs)
            } else if y < 85 {
                (i128::from(self.rng.range(21, 1000)), 0)
            } else {
                (-i128::from(self.rng.range(1, 10)), 0)
            }
        };
        // Unit price: sometimes with two more digits than the currency has.
        let (plo, phi) = cur.price;
        let (pm, ps) = if self.rng.chance(0.05) {
            (
                i128::from(self.rng.range(plo, phi) * 100 + self.rng.range(0, 99)),
                minor + 2,
            )
        } else {
            (i128::from(self.rng.range(plo, phi)), minor)
        };
        let mut t_text = cur.taxes[self.rng.index(cur.taxes.len())];
        if self.rng.chance(0.005) {
            t_text = ""; // empty means 0
        }
        let (tm, ts) = parse_plain_decimal(t_text);
        let line = Line {
            qm,
            qs,
            pm,
            ps,
            tm,
            ts,
        };
        let lt = line_total(&line, minor);

        push_decimal(&mut self.fields[QUANTITY], qm, qs);
        push_decimal(&mut self.fields[UNIT_PRICE], pm, ps);
        self.fields[TAX_RATE].extend_from_slice(t_text.as_bytes());
        // line_total: sometimes absent, sometimes one minor unit off (within
        // the default tolerance), otherwise exact.
        let y = self.rng.below(1000);
        if y >= 10 {
            push_decimal(&mut self.fields[LINE_TOTAL], lt, minor);
        } else if y >= 5 {
            let off = if y < 8 { 1 } else { -1 };
            push_decimal(&mut self.fields[LINE_TOTAL], lt + off, minor);
        }
        self.fields[CURRENCY].extend_from_slice(cur.code.as_bytes());

        // Cosmetic variants that must not change validity.
        let z = self.rng.below(1000);
        if z < 3 {
            pad(&mut self.fields[CUSTOMER_ID], b" ", b" ");
            pad(&mut self.fields[CURRENCY], b"", b" ");
        } else if z < 5 {
            self.fields[CURRENCY].make_ascii_lowercase();
        } else if z < 7 {
            pad(&mut self.fields[QUANTITY], b"  ", b"");
            pad(&mut self.fields[UNIT_PRICE], b" ", b"\t");
        }
        let quote_all = self.rng.chance(0.005);

        let mut shape = Shape::Full;
        let mut injected = false;
        if self.rng.chance(self.error_rate) {
            let kind = self.deal(anchored);
            self.summary.by_kind[kind.index()] += 1;
            injected = true;
            shape = self.inject(kind, &line, d_idx, cust_no, cur);
        }
        self.write_record(shape, quote_all);
        injected
    }

    /// The next error kind from the deck; `invoice_inconsistent` is owed
    /// until a line with an anchor before it comes up.
    fn deal(&mut self, anchored: bool) -> ErrorKind {
        if anchored && self.owed_inconsistent > 0 {
            self.owed_inconsistent -= 1;
            return ErrorKind::InvoiceInconsistent;
        }
        loop {
            if self.dealt == self.deck.len() {
                // Fisher-Yates over a fresh deck.
                self.deck = ErrorKind::ALL;
                for i in (1..self.deck.len()).rev() {
                    let j = self.rng.index(i + 1);
                    self.deck.swap(i, j);
                }
                self.dealt = 0;
            }
            let kind = self.deck[self.dealt];
            self.dealt += 1;
            if kind == ErrorKind::InvoiceInconsistent && !anchored {
                self.owed_inconsistent += 1;
                continue;
            }
            return kind;
        }
    }

    /// Changes the current fields so that the row carries exactly `kind`.
    fn inject(
        &mut self,
        kind: ErrorKind,
        line: &Line,
        d_idx: usize,
        cust_no: u64,
        cur: &'static Currency,
    ) -> Shape {
        let rng = &mut self.rng;
        let f = &mut self.fields;
        match kind {
            ErrorKind::MissingValue => {
                const REQUIRED: [usize; 6] = [
                    INVOICE_ID,
                    INVOICE_DATE,
                    CUSTOMER_ID,
                    QUANTITY,
                    UNIT_PRICE,
                    CURRENCY,
                ];
                let col = REQUIRED[rng.index(REQUIRED.len())];
                set(&mut f[col], if rng.chance(0.8) { "" } else { "   " });
                if col == CURRENCY {
                    // With the currency in error the expected total has two
                    // decimals, so a JPY or KWD total is rewritten to match.
                    retotal(&mut f[LINE_TOTAL], line, INVALID_CURRENCY_MINOR);
                }
            }
            ErrorKind::ValueTooLong => {
                // 65 to 90 characters, keeping the real invoice number visible.
                let len = rng.range(65, 90) as usize;
                let id = &mut f[INVOICE_ID];
                id.push(b'-');
                while id.len() < len {
                    id.push(b'X');
                }
            }
            ErrorKind::InvalidDate => {
                const BAD: [&str; 8] = [
                    "2024-02-30",
                    "2023-13-01",
                    "2023-00-10",
                    "2023-04-31",
                    "2024-1-05",
                    "20240105",
                    "1899-12-31",
                    "2023-06-15T25:00",
                ];
                let col = if rng.chance(0.7) {
                    INVOICE_DATE
                } else {
                    DUE_DATE
                };
                set(&mut f[col], BAD[rng.index(BAD.len())]);
            }
            ErrorKind::InvalidDecimal => {
                const BAD: [&str; 9] = [
                    "abc", "1.2.3", "12x", "--3", ".5", "5.", "1e3", "1 000", "$12.00",
                ];
                const COLS: [usize; 4] = [QUANTITY, UNIT_PRICE, TAX_RATE, LINE_TOTAL];
                let col = COLS[rng.index(COLS.len())];
                set(&mut f[col], BAD[rng.index(BAD.len())]);
            }
            ErrorKind::ZeroQuantity => {
                const ZERO: [&str; 4] = ["0", "0.00", "-0", "0.000"];
                set(&mut f[QUANTITY], ZERO[rng.index(ZERO.len())]);
                f[LINE_TOTAL].clear();
                push_decimal(&mut f[LINE_TOTAL], 0, cur.minor);
            }
            ErrorKind::NegativePrice => {
                f[UNIT_PRICE].clear();
                push_decimal(&mut f[UNIT_PRICE], -line.pm, line.ps);
                let neg = Line {
                    pm: -line.pm,
                    ..*line
                };
                f[LINE_TOTAL].clear();
                push_decimal(&mut f[LINE_TOTAL], line_total(&neg, cur.minor), cur.minor);
            }
            ErrorKind::TaxRateOutOfRange => {
                const BAD: [&str; 5] = ["1.5", "-0.05", "1.0001", "2", "25"];
                set(&mut f[TAX_RATE], BAD[rng.index(BAD.len())]);
            }
            ErrorKind::UnknownCurrency => {
                // XAU is ISO 4217 but has no minor unit, so it is not in the table.
                const BAD: [&str; 5] = ["XYZ", "xyz", "XAU", "EURO", "US"];
                set(&mut f[CURRENCY], BAD[rng.index(BAD.len())]);
                retotal(&mut f[LINE_TOTAL], line, INVALID_CURRENCY_MINOR);
            }
            ErrorKind::LineTotalMismatch => {
                let off = i128::from(rng.range(2, 100));
                let off = if rng.chance(0.5) { off } else { -off };
                f[LINE_TOTAL].clear();
                push_decimal(
                    &mut f[LINE_TOTAL],
                    line_total(line, cur.minor) + off,
                    cur.minor,
                );
            }
            ErrorKind::DueBeforeIssue => {
                let back = rng.range(1, 30) as usize;
                set_bytes(&mut f[DUE_DATE], &self.dates[d_idx - back]);
            }
            ErrorKind::InvoiceInconsistent => match rng.below(3) {
                0 => {
                    f[CUSTOMER_ID].clear();
                    f[CUSTOMER_ID].push(b'C');
                    push_padded(&mut f[CUSTOMER_ID], cust_no % 50_000 + 1, 6);
                }
                1 => {
                    let at = CURRENCIES
                        .iter()
                        .position(|c| c.code == cur.code)
                        .unwrap_or(0);
                    let other =
                        &CURRENCIES[(at + 1 + rng.index(CURRENCIES.len() - 1)) % CURRENCIES.len()];
                    set(&mut f[CURRENCY], other.code);
                    retotal(&mut f[LINE_TOTAL], line, other.minor);
                }
                _ => {
                    // An earlier date keeps the due date on or after it, so
                    // `due_before_issue` cannot fire as well.
                    let back = rng.range(1, 30) as usize;
                    set_bytes(&mut f[INVOICE_DATE], &self.dates[d_idx - back]);
                }
            },
            ErrorKind::RaggedRow => {
                return if rng.chance(0.5) {
                    Shape::Short
                } else {
                    Shape::Long
                };
            }
        }
        Shape::Full
    }

    /// Appends the current fields as one CSV record (RFC 4180 quoting).
    fn write_record(&mut self, shape: Shape, quote_all: bool) {
        let n = if shape == Shape::Short {
            NFIELDS - 1
        } else {
            NFIELDS
        };
        for (i, field) in self.fields[..n].iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            let text_col = matches!(i, CUSTOMER_NAME | SKU | DESCRIPTION);
            push_field(&mut self.buf, field, quote_all && text_col);
        }
        if shape == Shape::Long {
            self.buf.extend_from_slice(b",extra");
        }
        self.buf.push(b'\n');
    }
}

/// Appends `field`, quoted when it holds a delimiter, quote or line break
/// (or when `force`, which readers must accept just the same).
fn push_field(buf: &mut Vec<u8>, field: &[u8], force: bool) {
    let needs = force
        || field
            .iter()
            .any(|&b| matches!(b, b',' | b'"' | b'\r' | b'\n'));
    if !needs {
        buf.extend_from_slice(field);
        return;
    }
    buf.push(b'"');
    for &b in field {
        if b == b'"' {
            buf.push(b'"');
        }
        buf.push(b);
    }
    buf.push(b'"');
}

fn set(field: &mut Vec<u8>, text: &str) {
    set_bytes(field, text.as_bytes());
}

fn set_bytes(field: &mut Vec<u8>, bytes: &[u8]) {
    field.clear();
    field.extend_from_slice(bytes);
}

fn pad(field: &mut Vec<u8>, before: &[u8], after: &[u8]) {
    field.splice(0..0, before.iter().copied());
    field.extend_from_slice(after);
}

/// Rewrites a present line total as the exact total to `minor` digits; an
/// absent one stays absent (it is valid either way).
fn retotal(field: &mut Vec<u8>, line: &Line, minor: u32) {
    if !field.is_empty() {
        field.clear();
        push_decimal(field, line_total(line, minor), minor);
    }
}

/// `value` in decimal, left-padded with zeros to `width` digits.
fn push_padded(buf: &mut Vec<u8>, value: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut n = 0;
    let mut v = value;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for _ in n..width {
        buf.push(b'0');
    }
    buf.extend(digits[..n].iter().rev());
}

/// Appends mantissa `m` at scale `s` with exactly `s` fraction digits
/// (`(-5, 2)` → `-0.05`).
fn push_decimal(buf: &mut Vec<u8>, m: i128, s: u32) {
    if m < 0 {
        buf.push(b'-');
    }
    let mut digits = [0u8; 40];
    let mut n = 0;
    let mut v = m.unsigned_abs();
    // At least s + 1 digits, so there is always an integer part.
    while v > 0 || n <= s as usize {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
    }
    for (k, &d) in digits[..n].iter().enumerate().rev() {
        buf.push(d);
        if k == s as usize && s > 0 {
            buf.push(b'.');
        }
    }
}

/// Parses the generator's own plain decimals (`0.0825` → `(825, 4)`; empty → 0).
fn parse_plain_decimal(text: &str) -> (i128, u32) {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let mut m: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        m = m * 10 + i128::from(b - b'0');
    }
    (m, frac.len() as u32)
}

/// `num / den` rounded half away from zero (`den > 0`).
fn round_half_away(num: i128, den: i128) -> i128 {
    let q = (2 * num.abs() + den) / (2 * den);
    if num < 0 {
        -q
    } else {
        q
    }
}

/// round-half-away(q × p × (1 + t)) in units of 10^-`minor`, exactly.
fn line_total(l: &Line, minor: u32) -> i128 {
    let num = l.qm * l.pm * (10i128.pow(l.ts) + l.tm);
    let scale = l.qs + l.ps + l.ts;
    if scale >= minor {
        round_half_away(num, 10i128.pow(scale - minor))
    } else {
        num * 10i128.pow(minor - scale)
    }
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01 (proleptic Gregorian).
fn iso_date(days: i64) -> [u8; 10] {
    let (y, m, d) = ledgerline_core::calendar::civil_from_days(days);
    let mut out = [0u8; 10];
    let mut buf = Vec::with_capacity(10);
    push_padded(&mut buf, y as u64, 4);
    buf.push(b'-');
    push_padded(&mut buf, m as u64, 2);
    buf.push(b'-');
    push_padded(&mut buf, d as u64, 2);
    out.copy_from_slice(&buf);
    out
}

/// `io::Write` that only counts bytes.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A generated file on disk with what was injected into it.
#[derive(Clone, Debug)]
pub struct Cached {
    /// `dir/invoices-{rows}-s{seed}.csv`.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// What the generator put in it.
    pub summary: Summary,
}

/// The CSV of `rows` rows and `seed` in `dir`, generated unless a file of
/// exactly the expected size is already there. A dry run into a counter
/// gives the size and the injected counts (about 1 s per million rows)
/// without a sidecar file that could go stale; the file is written beside
/// and renamed, so an interrupted run never leaves a truncated file that a
/// later run would take for finished.
pub fn cached(dir: &Path, rows: u64, seed: u64, error_rate: f64) -> io::Result<Cached> {
    let mut counter = Counter(0);
    let summary = generate_counted(rows, seed, error_rate, &mut counter)?;
    let path = dir.join(format!("invoices-{rows}-s{seed}.csv"));
    if fs::metadata(&path).map(|m| m.len()).ok() != Some(counter.0) {
        fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".invoices-{rows}-s{seed}.csv.tmp"));
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        generate(rows, seed, error_rate, &mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&tmp, &path)?;
    }
    Ok(Cached {
        path,
        bytes: counter.0,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen_bytes(rows: u64, seed: u64, rate: f64) -> (Vec<u8>, Summary) {
        let mut out = Vec::new();
        let s = generate_counted(rows, seed, rate, &mut out).unwrap();
        (out, s)
    }

    /// A strict RFC 4180 reader for the generator's own output (no lone
    /// `\r`, no embedded line breaks), independent of the code under test.
    fn parse_csv(data: &[u8]) -> Vec<Vec<String>> {
        let text = std::str::from_utf8(data).unwrap();
        let mut records = Vec::new();
        for line in text.split_terminator('\n') {
            let mut rec = Vec::new();
            let mut field = String::new();
            let mut chars = line.chars().peekable();
            let mut quoted = false;
            let mut at_start = true;
            while let Some(c) = chars.next() {
                if quoted {
                    if c == '"' {
                        if chars.peek() == Some(&'"') {
                            chars.next();
                            field.push('"');
                        } else {
                            quoted = false;
                            assert!(
                                matches!(chars.peek(), None | Some(&',')),
                                "text after quote: {line}"
                            );
                        }
                    } else {
                        field.push(c);
                    }
                } else if c == '"' && at_start {
                    quoted = true;
                    at_start = false;
                } else if c == ',' {
                    rec.push(std::mem::take(&mut field));
                    at_start = true;
                } else {
                    assert_ne!(c, '"', "bare quote in unquoted field: {line}");
                    field.push(c);
                    at_start = false;
                }
            }
            assert!(!quoted, "unterminated quote: {line}");
            rec.push(field);
            records.push(rec);
        }
        records
    }

    /// `(mantissa, scale)` of a plain decimal, or None.
    fn dec(s: &str) -> Option<(i128, u32)> {
        let (neg, body) = match s.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, s),
        };
        let (i, f) = body.split_once('.').unwrap_or((body, ""));
        if i.is_empty() || (body.contains('.') && f.is_empty()) {
            return None;
        }
        if !i.bytes().chain(f.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let m: i128 = format!("{i}{f}").parse().ok()?;
        Some((if neg { -m } else { m }, f.len() as u32))
    }

    #[test]
    fn splitmix64_matches_reference_stream() {
        // Published first outputs of SplitMix64 seeded with 0.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(round_half_away(25, 10), 3);
        assert_eq!(round_half_away(-25, 10), -3);
        assert_eq!(round_half_away(24, 10), 2);
        assert_eq!(round_half_away(-24, 10), -2);
        assert_eq!(round_half_away(0, 10), 0);
    }

    #[test]
    fn line_totals_are_exact() {
        // 3 × 19.99 × 1.0825 = 64.917525 → 64.92
        let l = Line {
            qm: 3,
            qs: 0,
            pm: 1999,
            ps: 2,
            tm: 825,
            ts: 4,
        };
        assert_eq!(line_total(&l, 2), 6492);
        // JPY: 1 × 105 × 1.1 = 115.5 → 116
        let l = Line {
            qm: 1,
            qs: 0,
            pm: 105,
            ps: 0,
            tm: 1,
            ts: 1,
        };
        assert_eq!(line_total(&l, 0), 116);
        // Credit line: -1 × 0.05 × 1.1 = -0.055 → -0.06 (half away from zero)
        let l = Line {
            qm: -1,
            qs: 0,
            pm: 5,
            ps: 2,
            tm: 1,
            ts: 1,
        };
        assert_eq!(line_total(&l, 2), -6);
        // KWD from a 2-digit price: 2 × 1.25 = 2.5 → 2.500
        let l = Line {
            qm: 2,
            qs: 0,
            pm: 125,
            ps: 2,
            tm: 0,
            ts: 0,
        };
        assert_eq!(line_total(&l, 3), 2500);
        // 0.125 × 1.00 at 2 digits: 0.125 → 0.13
        let l = Line {
            qm: 125,
            qs: 3,
            pm: 100,
            ps: 2,
            tm: 0,
            ts: 0,
        };
        assert_eq!(line_total(&l, 2), 13);
    }

    #[test]
    fn decimals_format_with_exact_digits() {
        let f = |m, s| {
            let mut b = Vec::new();
            push_decimal(&mut b, m, s);
            String::from_utf8(b).unwrap()
        };
        assert_eq!(f(12345, 2), "123.45");
        assert_eq!(f(-5, 2), "-0.05");
        assert_eq!(f(7, 0), "7");
        assert_eq!(f(0, 3), "0.000");
        assert_eq!(f(-1200, 3), "-1.200");
        assert_eq!(f(0, 0), "0");
    }

    #[test]
    fn plain_decimals_parse() {
        assert_eq!(parse_plain_decimal("0.0825"), (825, 4));
        assert_eq!(parse_plain_decimal("0.20"), (20, 2));
        assert_eq!(parse_plain_decimal("0"), (0, 0));
        assert_eq!(parse_plain_decimal(""), (0, 0));
    }

    #[test]
    fn iso_dates_follow_the_calendar() {
        assert_eq!(&iso_date(0), b"1970-01-01");
        assert_eq!(&iso_date(EPOCH_2020), b"2020-01-01");
        assert_eq!(&iso_date(EPOCH_2020 - 60), b"2019-11-02");
        assert_eq!(&iso_date(EPOCH_2020 + 59), b"2020-02-29");
        assert_eq!(&iso_date(EPOCH_2020 + 366), b"2021-01-01");
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let (a, _) = gen_bytes(3000, 7, 0.05);
        let (b, _) = gen_bytes(3000, 7, 0.05);
        let (c, _) = gen_bytes(3000, 8, 0.05);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn zero_rows_is_header_only() {
        let (a, s) = gen_bytes(0, 1, 0.02);
        assert_eq!(a, format!("{HEADER}\n").into_bytes());
        assert_eq!(s.rows, 0);
        assert_eq!(s.invoices, 0);
    }

    #[test]
    fn writes_exactly_the_rows_asked_for() {
        for rows in [1, 2, 9, 1000] {
            let (a, s) = gen_bytes(rows, 3, 0.02);
            let recs = parse_csv(&a);
            assert_eq!(recs.len() as u64, rows + 1);
            assert_eq!(s.rows, rows);
        }
    }

    /// Every row of an error-free file is valid under SPEC §4, checked with
    /// independent parsing and rounding.
    #[test]
    fn clean_rows_are_valid() {
        let (a, s) = gen_bytes(20_000, 11, 0.0);
        assert_eq!(s.error_rows(), 0);
        let recs = parse_csv(&a);
        assert_eq!(recs[0].join(","), HEADER);
        let mut anchors = std::collections::HashMap::new();
        let (mut credit, mut no_due, mut no_tax, mut no_total, mut lower, mut padded, mut quoted) =
            (0, 0, 0, 0, 0, 0, 0);
        for r in &recs[1..] {
            assert_eq!(r.len(), 12, "{r:?}");
            let v: Vec<&str> = r.iter().map(|x| x.trim()).collect();
            for x in &v {
                assert!(x.chars().all(|c| !c.is_control()), "{r:?}");
            }
            assert!(v[0].starts_with("INV-") && v[0].len() == 12);
            assert_eq!(v[1].len(), 10);
            assert!(v[2].is_empty() || v[2] >= v[1], "due before issue: {r:?}");
            assert!(!v[3].is_empty());
            let cur = v[11].to_ascii_uppercase();
            let minor = match cur.as_str() {
                "JPY" => 0,
                "KWD" => 3,
                "USD" | "EUR" | "GBP" | "CHF" | "SEK" => 2,
                other => panic!("currency {other}"),
            };
            let (qm, qs) = dec(v[7]).unwrap();
            let (pm, ps) = dec(v[8]).unwrap();
            let (tm, ts) = if v[9].is_empty() {
                (0, 0)
            } else {
                dec(v[9]).unwrap()
            };
            assert_ne!(qm, 0);
            assert!(pm > 0);
            assert!(tm >= 0 && tm <= 10i128.pow(ts));
            // Everything at scale 20 and rounded by truncating q ± 1/2.
            let exact = qm * pm * (10i128.pow(ts) + tm) * 10i128.pow(20 - qs - ps - ts);
            let unit = 10i128.pow(20 - minor);
            let half = unit / 2;
            let expected = if exact >= 0 {
                (exact + half) / unit
            } else {
                -((-exact + half) / unit)
            };
            if v[10].is_empty() {
                no_total += 1;
            } else {
                let (lm, ls) = dec(v[10]).unwrap();
                assert_eq!(ls, minor, "{r:?}");
                assert!((lm - expected).abs() <= 1, "{r:?} expected {expected}");
            }
            let key = (v[3].to_string(), cur.clone(), v[1].to_string());
            assert_eq!(anchors.entry(v[0].to_string()).or_insert(key.clone()), &key);
            credit += usize::from(qm < 0);
            no_due += usize::from(v[2].is_empty());
            no_tax += usize::from(v[9].is_empty());
            lower += usize::from(v[11] != cur);
            padded += usize::from(r[3] != v[3] || r[7] != v[7]);
            quoted += usize::from(r[6].contains(','));
        }
        // The unusual-but-valid variants all occur (rates from the generator).
        for (name, n) in [
            ("credit", credit),
            ("no_due", no_due),
            ("no_tax", no_tax),
            ("no_total", no_total),
            ("lower", lower),
            ("padded", padded),
            ("quoted", quoted),
        ] {
            assert!(n > 10, "{name}: {n}");
        }
        let text = std::str::from_utf8(&a).unwrap();
        assert!(text.contains("\"The \"\"Best\"\" Widgets Ltd\""));
    }

    #[test]
    fn errors_are_spread_over_every_kind() {
        let (a, s) = gen_bytes(30_000, 5, 0.1);
        let n = s.error_rows() as f64;
        assert!((n / 30_000.0 - 0.1).abs() < 0.01, "{n}");
        let max = s.by_kind.iter().max().copied().unwrap_or(0);
        for kind in ErrorKind::ALL {
            // Decks keep every kind within one of the others; only owed
            // `invoice_inconsistent` draws may lag behind.
            let c = s.count(kind);
            assert!(
                c + 1 >= max || (kind == ErrorKind::InvoiceInconsistent && c + 20 >= max),
                "{kind:?} {c} vs {max}"
            );
        }
        let recs = parse_csv(&a);
        let ragged = recs[1..].iter().filter(|r| r.len() != 12).count() as u64;
        assert_eq!(ragged, s.count(ErrorKind::RaggedRow));
        let long = recs[1..]
            .iter()
            .filter(|r| r[0].trim().chars().count() > 64)
            .count() as u64;
        assert_eq!(long, s.count(ErrorKind::ValueTooLong));
        let zero = recs[1..]
            .iter()
            .filter(|r| r.len() == 12 && dec(r[7].trim()).is_some_and(|(m, _)| m == 0))
            .count() as u64;
        assert_eq!(zero, s.count(ErrorKind::ZeroQuantity));
    }

    #[test]
    fn no_null_tokens_are_written() {
        // SPEC null tokens read as empty, which the peers do not do.
        let (a, _) = gen_bytes(20_000, 9, 0.2);
        for r in parse_csv(&a) {
            for f in r {
                let t = f.trim().to_ascii_uppercase();
                assert!(
                    !["NA", "N/A", "#N/A", "NULL", "NONE", "NAN"].contains(&t.as_str()),
                    "{f}"
                );
            }
        }
    }
}
