//! The invoice anchors of a file, stored compactly.
//!
//! One entry per distinct invoice: the anchor's customer, currency and
//! date, with the id and customer text in shared pages. A file of ten
//! million rows holds about two million invoices, so the per-invoice cost
//! decides the memory of a run: here it is 24 bytes of entry, about 5 of
//! table and the text itself, instead of two boxed strings and a hash map
//! slot (about 80 bytes). Entries and text live in fixed-size pages rather
//! than one growing vector, so growth never holds two copies at once.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use crate::currency::Currency;
use crate::date::Date;

/// Entries per page.
const ENTRY_PAGE: usize = 1 << 14;
/// Bytes per text page (a longer id and customer get a page of their own).
const TEXT_PAGE: usize = 1 << 20;

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The text page, and where the id starts in it; the customer follows.
    page: u32,
    start: u32,
    /// An anchor's id is at most 64 characters (longer ids are errors), so
    /// at most 256 bytes.
    id_len: u16,
    currency: Currency,
    customer_len: u32,
    date: Date,
    /// The id's hash ([`hash32`]): growing the table rehashes every entry
    /// from it, without reading the id's text.
    hash: u32,
}

/// The 32-bit hash of an id that entries keep.
fn hash32(id: &str) -> u32 {
    (FxBuildHasher.hash_one(id) >> 32) as u32
}

/// The table's 64-bit hash of a 32-bit one: the multiplication spreads it
/// over the high bits the table's control bytes use.
fn table_hash(h: u32) -> u64 {
    u64::from(h).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// An anchor as stored: what later lines of its invoice must agree with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Anchor<'a> {
    pub(crate) customer: &'a str,
    pub(crate) currency: Currency,
    pub(crate) date: Date,
}

/// Invoice id → anchor.
#[derive(Debug, Default)]
pub(crate) struct Anchors {
    table: HashTable<u32>,
    entries: Vec<Vec<Entry>>,
    text: Vec<String>,
    len: usize,
}

impl Anchors {
    /// The number of invoices.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn entry(&self, i: u32) -> &Entry {
        let i = i as usize;
        &self.entries[i / ENTRY_PAGE][i % ENTRY_PAGE]
    }

    fn text(&self, e: &Entry) -> (&str, &str) {
        text_of(&self.text, e)
    }

    /// Every invoice id with an anchor, in insertion order.
    pub(crate) fn ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.iter().flatten().map(|e| self.text(e).0)
    }

    /// The anchor of `id`, if it has one.
    pub(crate) fn get(&self, id: &str) -> Option<Anchor<'_>> {
        let h = hash32(id);
        let i = *self.table.find(table_hash(h), |&i| {
            let e = self.entry(i);
            e.hash == h && self.text(e).0 == id
        })?;
        let e = self.entry(i);
        Some(Anchor {
            customer: self.text(e).1,
            currency: e.currency,
            date: e.date,
        })
    }

    /// Room for `additional` more invoices without growing the table.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let entries = &self.entries;
        self.table.reserve(additional, |&i| {
            let i = i as usize;
            table_hash(entries[i / ENTRY_PAGE][i % ENTRY_PAGE].hash)
        });
    }

    /// The invoices the table holds without growing.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// Makes `anchor` the anchor of `id`, which has none yet.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, id: &str, anchor: Anchor<'_>) {
        let found = self.get_or_insert(id, anchor).is_some();
        debug_assert!(!found, "{id} already has an anchor");
    }

    /// The anchor of `id`; when it has none, `anchor` becomes it and the
    /// answer is `None` (one probe of the table either way).
    pub(crate) fn get_or_insert(&mut self, id: &str, anchor: Anchor<'_>) -> Option<Anchor<'_>> {
        let h = hash32(id);
        let (entries, text) = (&self.entries, &self.text);
        let at = |i: u32| {
            let i = i as usize;
            &entries[i / ENTRY_PAGE][i % ENTRY_PAGE]
        };
        let slot = self.table.entry(
            table_hash(h),
            |&i| {
                let e = at(i);
                e.hash == h && text_of(text, e).0 == id
            },
            |&i| table_hash(at(i).hash),
        );
        let vacant = match slot {
            hashbrown::hash_table::Entry::Occupied(o) => {
                let i = *o.get();
                let e = self.entry(i);
                let customer = self.text(e).1;
                return Some(Anchor {
                    customer,
                    currency: e.currency,
                    date: e.date,
                });
            }
            hashbrown::hash_table::Entry::Vacant(v) => v,
        };
        let need = id.len() + anchor.customer.len();
        if self
            .text
            .last()
            .is_none_or(|p| p.capacity() - p.len() < need)
        {
            self.text.push(String::with_capacity(need.max(TEXT_PAGE)));
        }
        let page_index = self.text.len() - 1;
        let page = &mut self.text[page_index];
        let start = page.len();
        page.push_str(id);
        page.push_str(anchor.customer);
        if self.entries.last().is_none_or(|p| p.len() == ENTRY_PAGE) {
            self.entries.push(Vec::with_capacity(ENTRY_PAGE));
        }
        if let Some(entries) = self.entries.last_mut() {
            entries.push(Entry {
                page: page_index as u32,
                start: start as u32,
                id_len: id.len().min(u16::MAX as usize) as u16,
                currency: anchor.currency,
                customer_len: anchor.customer.len() as u32,
                date: anchor.date,
                hash: h,
            });
        }
        vacant.insert(self.len as u32);
        self.len += 1;
        None
    }
}

/// The id and customer of an entry, in `text`'s pages.
fn text_of<'t>(text: &'t [String], e: &Entry) -> (&'t str, &'t str) {
    let page = &text[e.page as usize];
    let start = e.start as usize;
    let mid = start + e.id_len as usize;
    let end = mid + e.customer_len as usize;
    (
        page.get(start..mid).unwrap_or(""),
        page.get(mid..end).unwrap_or(""),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_stay_small() {
        // Two million invoices of a ten-million-row file: every byte here
        // is two megabytes of peak memory.
        assert_eq!(std::mem::size_of::<Entry>(), 24);
    }

    #[test]
    fn insert_and_get() {
        let usd = crate::currency::lookup("USD").unwrap();
        let eur = crate::currency::lookup("EUR").unwrap();
        let d = Date::from_ymd(2024, 5, 1).unwrap();
        let mut a = Anchors::default();
        for i in 0..10_000 {
            let cur = if i % 2 == 0 { usd } else { eur };
            a.insert(
                &format!("INV-{i}"),
                Anchor {
                    customer: &format!("C{}", i % 7),
                    currency: cur,
                    date: d,
                },
            );
        }
        assert_eq!(a.len(), 10_000);
        let ids: Vec<&str> = a.ids().collect();
        assert_eq!(ids.len(), 10_000);
        assert_eq!(ids[0], "INV-0");
        assert_eq!(ids[9_999], "INV-9999");
        let got = a.get("INV-4243").unwrap();
        assert_eq!(
            got,
            Anchor {
                customer: "C1",
                currency: eur,
                date: d
            }
        );
        assert_eq!(a.get("INV-10000"), None);
        // An id with an anchor keeps it; a new one takes the one offered.
        let other = Anchor {
            customer: "X",
            currency: usd,
            date: d,
        };
        let eur_c1 = Anchor {
            customer: "C1",
            currency: eur,
            date: d,
        };
        assert_eq!(a.get_or_insert("INV-4243", other), Some(eur_c1));
        assert_eq!(a.len(), 10_000);
        assert_eq!(a.get_or_insert("INV-10000", other), None);
        assert_eq!(a.len(), 10_001);
        assert_eq!(a.get("INV-10000"), Some(other));
        assert_eq!(a.get(""), None);
        a.insert(
            "",
            Anchor {
                customer: "",
                currency: usd,
                date: d,
            },
        );
        assert_eq!(a.get("").unwrap().customer, "");
    }
}
