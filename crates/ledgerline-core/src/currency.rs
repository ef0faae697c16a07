//! ISO 4217 currencies and their minor units (SPEC §4, §7, §9).
//!
//! The table is `data/iso4217.json`, a copy of the normative `iso4217.json`
//! beside the SPEC, embedded with `include_str!` and parsed at compile time,
//! so the data file is the only source of truth. Lookups index a 26³ array by
//! the three letters: O(1) and allocation-free.

use std::fmt;

/// The embedded table, verbatim.
const SOURCE: &str = include_str!("../data/iso4217.json");

/// One currency of the table.
#[derive(Clone, Copy)]
struct Entry {
    code: &'static str,
    minor: u8,
}

/// How many currencies the table has.
const ENTRY_COUNT: usize = count_entries(SOURCE.as_bytes());

/// Every currency, sorted by code.
const TABLE: [Entry; ENTRY_COUNT] = parse_entries(SOURCE.as_bytes());

/// `index + 1` of the currency whose letters `abc` give the slot
/// `(a × 26 + b) × 26 + c`; 0 where there is none.
static SLOTS: [u8; 26 * 26 * 26] = build_slots(&TABLE);

// Indices are stored in a u8, with 0 meaning "no currency".
const _: () = assert!(ENTRY_COUNT > 0 && ENTRY_COUNT < u8::MAX as usize);

/// An ISO 4217 currency of the embedded table.
///
/// Ordered by code. One byte: its position in the table.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    index: u8,
}

impl Currency {
    /// How many currencies the table has: [`Currency::index`] is below this.
    pub const COUNT: usize = ENTRY_COUNT;

    fn entry(self) -> Entry {
        // Every Currency is built from an index below COUNT.
        TABLE[usize::from(self.index) % ENTRY_COUNT]
    }

    /// The three-letter code, e.g. `"USD"`.
    pub fn code(self) -> &'static str {
        self.entry().code
    }

    /// The number of minor-unit digits: JPY 0, USD 2, KWD 3, CLF 4.
    pub fn minor_units(self) -> u32 {
        u32::from(self.entry().minor)
    }

    /// Dense index 0..Currency::COUNT for arrays of per-currency sums, in
    /// code order.
    #[inline]
    pub fn index(self) -> usize {
        usize::from(self.index)
    }

    /// The currency at `index`, if any.
    pub fn from_index(i: usize) -> Option<Currency> {
        if i < ENTRY_COUNT {
            u8::try_from(i).ok().map(|index| Currency { index })
        } else {
            None
        }
    }

    /// Every currency, in code order.
    pub fn all() -> impl Iterator<Item = Currency> {
        (0..ENTRY_COUNT).filter_map(Currency::from_index)
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.code())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Looks up trimmed text, upper-cased with Unicode rules (fast path: ASCII letters).
///
/// Surrounding white space is trimmed here too. Unicode upper-casing can turn
/// non-ASCII text into a code (`ıSK` → `ISK`, since dotless ı upper-cases to
/// I), so non-ASCII input is upper-cased character by character into a
/// three-letter buffer: no allocation either way.
pub fn lookup(text: &str) -> Option<Currency> {
    // Three ASCII letters (the common case) have nothing to trim: look them
    // up before paying for a Unicode trim.
    if let &[a, b, c] = text.as_bytes() {
        if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() && c.is_ascii_alphabetic() {
            return by_letters([a, b, c]);
        }
    }
    let text = text.trim();
    if let &[a, b, c] = text.as_bytes() {
        if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() && c.is_ascii_alphabetic() {
            return by_letters([a, b, c]);
        }
    }
    let mut letters = [0u8; 3];
    let mut n = 0;
    for ch in text.chars().flat_map(char::to_uppercase) {
        if !ch.is_ascii_uppercase() || n == letters.len() {
            return None;
        }
        letters[n] = ch as u8;
        n += 1;
    }
    if n == letters.len() {
        by_letters(letters)
    } else {
        None
    }
}

/// [`lookup`] on bytes: bytes that are not UTF-8 are no code.
#[inline]
pub fn lookup_bytes(text: &[u8]) -> Option<Currency> {
    if let &[a, b, c] = text {
        if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() && c.is_ascii_alphabetic() {
            return by_letters([a, b, c]);
        }
    }
    std::str::from_utf8(text).ok().and_then(lookup)
}

/// The currency of three ASCII letters, either case.
#[inline]
fn by_letters(letters: [u8; 3]) -> Option<Currency> {
    let slot = slot(letters.map(|b| b.to_ascii_uppercase()))?;
    let index = SLOTS[slot].checked_sub(1)?;
    Some(Currency { index })
}

/// The slot of three upper-case ASCII letters.
const fn slot(code: [u8; 3]) -> Option<usize> {
    let mut s = 0usize;
    let mut i = 0;
    while i < 3 {
        if !code[i].is_ascii_uppercase() {
            return None;
        }
        s = s * 26 + (code[i] - b'A') as usize;
        i += 1;
    }
    Some(s)
}

// ---------------------------------------------------------------------------
// Compile-time parsing of the JSON table. The file is a flat object
// `{"source": "…", "currencies": {"AED": 2, …}}`; only the `currencies`
// object is read, as `"XYZ": digits` pairs. Anything unexpected ends the
// scan, and the tests compare the result with the file parsed another way.

/// The position just after the key `"currencies"`, or the end.
const fn currencies_start(bytes: &[u8]) -> usize {
    let key = b"\"currencies\"";
    let mut i = 0;
    while i + key.len() <= bytes.len() {
        let mut j = 0;
        while j < key.len() && bytes[i + j] == key[j] {
            j += 1;
        }
        if j == key.len() {
            return i + key.len();
        }
        i += 1;
    }
    bytes.len()
}

const fn skip_blanks(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    i
}

/// The next `"XYZ": n` pair at or after `i`: (code start, minor units, end).
const fn next_entry(bytes: &[u8], i: usize) -> Option<(usize, u8, usize)> {
    let mut i = skip_blanks(bytes, i);
    // Between pairs: the `:` and `{` opening the object, or a `,`.
    while i < bytes.len() && matches!(bytes[i], b':' | b'{' | b',') {
        i = skip_blanks(bytes, i + 1);
    }
    if i + 5 > bytes.len() || bytes[i] != b'"' || bytes[i + 4] != b'"' {
        return None;
    }
    let code = i + 1;
    if slot([bytes[code], bytes[code + 1], bytes[code + 2]]).is_none() {
        return None;
    }
    i = skip_blanks(bytes, i + 5);
    if i >= bytes.len() || bytes[i] != b':' {
        return None;
    }
    i = skip_blanks(bytes, i + 1);
    let mut minor: u32 = 0;
    let mut digits = 0;
    while i < bytes.len() && bytes[i].is_ascii_digit() && digits < 2 {
        minor = minor * 10 + (bytes[i] - b'0') as u32;
        digits += 1;
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    Some((code, minor as u8, i))
}

const fn count_entries(bytes: &[u8]) -> usize {
    let mut n = 0;
    let mut i = currencies_start(bytes);
    while let Some((_, _, end)) = next_entry(bytes, i) {
        n += 1;
        i = end;
    }
    n
}

/// The three bytes at `start` as a `&'static str`.
const fn code_at(bytes: &'static [u8], start: usize) -> &'static str {
    let (_, rest) = bytes.split_at(start);
    let (code, _) = rest.split_at(3);
    match std::str::from_utf8(code) {
        Ok(s) => s,
        Err(_) => "",
    }
}

const fn code_less(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    a.len() < b.len()
}

const fn parse_entries<const N: usize>(bytes: &'static [u8]) -> [Entry; N] {
    let mut out = [Entry { code: "", minor: 0 }; N];
    let mut i = currencies_start(bytes);
    let mut n = 0;
    while n < N {
        match next_entry(bytes, i) {
            Some((code, minor, end)) => {
                out[n] = Entry {
                    code: code_at(bytes, code),
                    minor,
                };
                i = end;
                n += 1;
            }
            None => break,
        }
    }
    // Insertion sort by code: the file is sorted, but the dense index order
    // must not depend on that.
    let mut k = 1;
    while k < N {
        let mut j = k;
        while j > 0 && code_less(out[j].code, out[j - 1].code) {
            let t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
            j -= 1;
        }
        k += 1;
    }
    out
}

const fn build_slots(table: &[Entry]) -> [u8; 26 * 26 * 26] {
    let mut slots = [0u8; 26 * 26 * 26];
    let mut i = 0;
    while i < table.len() {
        let c = table[i].code.as_bytes();
        if let Some(s) = slot([c[0], c[1], c[2]]) {
            slots[s] = (i + 1) as u8;
        }
        i += 1;
    }
    slots
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minor(code: &str) -> Option<u32> {
        lookup(code).map(Currency::minor_units)
    }

    #[test]
    fn minor_units_of_known_codes() {
        assert_eq!(minor("JPY"), Some(0));
        assert_eq!(minor("USD"), Some(2));
        assert_eq!(minor("EUR"), Some(2));
        assert_eq!(minor("KWD"), Some(3));
        assert_eq!(minor("CLF"), Some(4));
        assert_eq!(lookup("USD").map(Currency::code), Some("USD"));
    }

    #[test]
    fn lookup_upper_cases_and_trims() {
        assert_eq!(lookup("usd"), lookup("USD"));
        assert_eq!(lookup("uSd").map(Currency::code), Some("USD"));
        assert_eq!(lookup(" eur\u{a0}").map(Currency::code), Some("EUR"));
        // Unicode upper-casing: dotless ı → I, long ſ → S.
        assert_eq!(lookup("ıSK").map(Currency::code), Some("ISK"));
        assert_eq!(lookup("ſek").map(Currency::code), Some("SEK"));
        // Full-width letters upper-case to full-width, not ASCII.
        assert_eq!(lookup("ＵＳＤ"), None);
    }

    #[test]
    fn unknown_codes() {
        for bad in [
            "XYZ", "XAU", "XDR", "XTS", "XXX", "US", "USDD", "", "U$D", "12A", "US D", "ÜSD",
        ] {
            assert_eq!(lookup(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dense_index_round_trips_in_code_order() {
        let all: Vec<Currency> = Currency::all().collect();
        assert_eq!(all.len(), Currency::COUNT);
        for (i, c) in all.iter().enumerate() {
            assert_eq!(c.index(), i);
            assert_eq!(Currency::from_index(i), Some(*c));
            assert_eq!(lookup(c.code()), Some(*c));
        }
        assert!(all
            .windows(2)
            .all(|w| w[0].code() < w[1].code() && w[0] < w[1]));
        assert_eq!(Currency::from_index(Currency::COUNT), None);
        let usd = lookup("USD").unwrap();
        assert_eq!(format!("{usd} {usd:?}"), "USD Currency(USD)");
    }

    /// The `currencies` object of an ISO 4217 JSON file, parsed with plain
    /// string operations (independent of the compile-time parser).
    fn parse_json(text: &str) -> Vec<(String, u32)> {
        let start = text.find("\"currencies\"").unwrap();
        let body = &text[start..];
        let body = &body[body.find('{').unwrap() + 1..body.find('}').unwrap()];
        let mut out: Vec<(String, u32)> = body
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once(':').unwrap();
                (
                    k.trim().trim_matches('"').to_string(),
                    v.trim().parse().unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn embedded() -> Vec<(String, u32)> {
        Currency::all()
            .map(|c| (c.code().to_string(), c.minor_units()))
            .collect()
    }

    #[test]
    fn embedded_table_is_the_data_file() {
        let expected = parse_json(SOURCE);
        assert_eq!(embedded(), expected);
        assert_eq!(expected.len(), 165);
    }

    #[test]
    fn embedded_table_is_the_shared_table() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/iso4217.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => assert_eq!(embedded(), parse_json(&text), "{} differs", path.display()),
            Err(e) => skip(&format!("{} not readable ({e})", path.display())),
        }
    }

    /// A check that cannot run here: a visible notice, and a failure under
    /// `CI=true`, where everything it needs must be present.
    fn skip(why: &str) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{why}; CI=true: a check that cannot run fails"
        );
        eprintln!("NOTICE: check skipped: {why}");
    }
}
