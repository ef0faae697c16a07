//! Invoices with valid lines in more than one file of a run (SPEC §11).
//!
//! Each file hands over its valid invoice ids once, when its report is made.
//! The registry keeps one compact entry per distinct id (the id's text in
//! shared pages, the first file that had it, whether another file had it
//! too) — about 16 bytes of entry, 5 of table and the text — and the file
//! lists of only the [`LIMIT`] smallest duplicated ids, which is all the
//! report lists. That is exact: an id left out of the smallest ones is
//! larger than every id kept, and the largest kept only decreases, so an id
//! once left out never belongs again.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// How many duplicated invoices a report lists.
pub const LIMIT: usize = 1000;

/// Entries per page.
const ENTRY_PAGE: usize = 1 << 14;
/// Bytes per text page.
const TEXT_PAGE: usize = 1 << 20;

#[derive(Clone, Copy, Debug)]
struct Entry {
    page: u32,
    start: u32,
    len: u32,
    /// The first file (in hand-over order) that had the id.
    first: u32,
    /// Whether a second file had it.
    duplicated: bool,
}

/// Every distinct valid invoice id of a run and where it appeared.
#[derive(Debug, Default)]
pub struct Registry {
    table: HashTable<u32>,
    entries: Vec<Vec<Entry>>,
    text: Vec<String>,
    len: usize,
    duplicated: u64,
    /// The smallest duplicated ids with their files.
    smallest: BTreeMap<Box<str>, Vec<u32>>,
}

/// One duplicated invoice: its id and the files (by index) that hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duplicate {
    /// The invoice id.
    pub invoice_id: String,
    /// Indexes of the files with valid lines of it, ascending.
    pub files: Vec<u32>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Distinct ids seen.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no id was seen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Ids seen in two or more files.
    pub fn duplicated(&self) -> u64 {
        self.duplicated
    }

    fn entry(&self, i: u32) -> &Entry {
        let i = i as usize;
        &self.entries[i / ENTRY_PAGE][i % ENTRY_PAGE]
    }

    fn entry_mut(&mut self, i: u32) -> &mut Entry {
        let i = i as usize;
        &mut self.entries[i / ENTRY_PAGE][i % ENTRY_PAGE]
    }

    fn id_of<'a>(text: &'a [String], e: &Entry) -> &'a str {
        text[e.page as usize]
            .get(e.start as usize..(e.start + e.len) as usize)
            .unwrap_or("")
    }

    /// Adds the valid invoice ids of file `file` (each id once per file;
    /// each file handed over once).
    pub fn add_file(&mut self, file: u32, ids: &mut dyn Iterator<Item = &str>) {
        for id in ids {
            self.add(file, id);
        }
    }

    fn add(&mut self, file: u32, id: &str) {
        let hash = FxBuildHasher.hash_one(id);
        let found = {
            let (entries, text) = (&self.entries, &self.text);
            self.table
                .find(hash, |&i| {
                    let i = i as usize;
                    Registry::id_of(text, &entries[i / ENTRY_PAGE][i % ENTRY_PAGE]) == id
                })
                .copied()
        };
        match found {
            Some(i) => {
                let e = *self.entry(i);
                if e.duplicated {
                    if let Some(files) = self.smallest.get_mut(id) {
                        files.push(file);
                    }
                } else {
                    self.entry_mut(i).duplicated = true;
                    self.duplicated += 1;
                    self.offer(id, vec![e.first, file]);
                }
            }
            None => self.insert(file, id, hash),
        }
    }

    /// Keeps `id` among the smallest duplicated ids if it belongs there.
    fn offer(&mut self, id: &str, files: Vec<u32>) {
        if self.smallest.len() < LIMIT {
            self.smallest.insert(id.into(), files);
        } else if self
            .smallest
            .last_key_value()
            .is_some_and(|(largest, _)| id < &**largest)
        {
            self.smallest.insert(id.into(), files);
            self.smallest.pop_last();
        }
    }

    fn insert(&mut self, file: u32, id: &str, hash: u64) {
        if self
            .text
            .last()
            .is_none_or(|p| p.capacity() - p.len() < id.len())
        {
            self.text
                .push(String::with_capacity(id.len().max(TEXT_PAGE)));
        }
        let page_index = self.text.len() - 1;
        let page = &mut self.text[page_index];
        let start = page.len();
        page.push_str(id);
        if self.entries.last().is_none_or(|p| p.len() == ENTRY_PAGE) {
            self.entries.push(Vec::with_capacity(ENTRY_PAGE));
        }
        if let Some(entries) = self.entries.last_mut() {
            entries.push(Entry {
                page: page_index as u32,
                start: start as u32,
                len: id.len() as u32,
                first: file,
                duplicated: false,
            });
        }
        let index = self.len as u32;
        self.len += 1;
        let (entries, text) = (&self.entries, &self.text);
        self.table.insert_unique(hash, index, |&i| {
            let i = i as usize;
            FxBuildHasher.hash_one(Registry::id_of(
                text,
                &entries[i / ENTRY_PAGE][i % ENTRY_PAGE],
            ))
        });
    }

    /// The first [`LIMIT`] duplicated invoices sorted by id, each with its
    /// files ascending, and whether any were left out.
    pub fn report(&self) -> (Vec<Duplicate>, bool) {
        let list = self
            .smallest
            .iter()
            .map(|(id, files)| {
                let mut files = files.clone();
                files.sort_unstable();
                Duplicate {
                    invoice_id: id.to_string(),
                    files,
                }
            })
            .collect();
        (list, self.duplicated > LIMIT as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, HashMap};

    fn add(r: &mut Registry, file: u32, ids: &[&str]) {
        r.add_file(file, &mut ids.iter().copied());
    }

    #[test]
    fn lists_ids_in_two_or_more_files() {
        let mut r = Registry::new();
        add(&mut r, 2, &["INV-2", "INV-1", "A"]);
        add(&mut r, 0, &["INV-1", "B"]);
        add(&mut r, 1, &["INV-1", "A", "C"]);
        let (list, truncated) = r.report();
        assert!(!truncated);
        assert_eq!(
            list,
            vec![
                Duplicate {
                    invoice_id: "A".into(),
                    files: vec![1, 2]
                },
                Duplicate {
                    invoice_id: "INV-1".into(),
                    files: vec![0, 1, 2]
                },
            ]
        );
        assert_eq!(r.len(), 5);
        assert_eq!(r.duplicated(), 2);
    }

    #[test]
    fn case_and_empty_ids_are_exact() {
        let mut r = Registry::new();
        add(&mut r, 0, &["inv-1", ""]);
        add(&mut r, 1, &["INV-1", ""]);
        let (list, _) = r.report();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].invoice_id, "");
    }

    #[test]
    fn truncates_to_the_smallest_thousand() {
        let mut r = Registry::new();
        // 3,000 ids in both files, handed over largest first.
        let ids: Vec<String> = (0..3000).rev().map(|i| format!("I{i:05}")).collect();
        for f in 0..2 {
            r.add_file(f, &mut ids.iter().map(String::as_str));
        }
        let (list, truncated) = r.report();
        assert!(truncated);
        assert_eq!(list.len(), LIMIT);
        assert_eq!(list[0].invoice_id, "I00000");
        assert_eq!(list[LIMIT - 1].invoice_id, "I00999");
        assert!(list.iter().all(|d| d.files == vec![0, 1]));
    }

    proptest! {
        /// Against a plain map of every id to its files, with a small id
        /// space so ids repeat across files, and enough ids to truncate.
        #[test]
        fn matches_a_plain_map(files in proptest::collection::vec(
            proptest::collection::btree_set(0u32..2500, 0..1200), 1..6),
            order in proptest::collection::vec(any::<u32>(), 6))
        {
            let mut indexes: Vec<u32> = (0..files.len() as u32).collect();
            indexes.sort_by_key(|&i| order[i as usize]);
            let mut r = Registry::new();
            let mut plain: HashMap<String, BTreeSet<u32>> = HashMap::new();
            for &f in &indexes {
                let ids: Vec<String> = files[f as usize].iter().map(|n| format!("INV-{n}")).collect();
                for id in &ids {
                    plain.entry(id.clone()).or_default().insert(f);
                }
                r.add_file(f, &mut ids.iter().map(String::as_str));
            }
            let mut want: Vec<(String, Vec<u32>)> = plain
                .into_iter()
                .filter(|(_, fs)| fs.len() > 1)
                .map(|(id, fs)| (id, fs.into_iter().collect()))
                .collect();
            want.sort();
            let truncated = want.len() > LIMIT;
            want.truncate(LIMIT);
            let (list, got_truncated) = r.report();
            let got: Vec<(String, Vec<u32>)> =
                list.into_iter().map(|d| (d.invoice_id, d.files)).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(got_truncated, truncated);
        }
    }
}
