//! Column mapping: which column of the header holds which field (SPEC §2).

use ledgerline_core::{Field, FileError, FileErrorCode};

use crate::header::{field_for_alias, normalize};
use crate::rules::Rules;

/// The column index of every field, resolved from a header row.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Columns {
    index: [Option<usize>; 12],
    header_len: usize,
    /// The header record as read (for outputs that repeat it).
    header: Vec<String>,
}

impl Columns {
    /// Maps header names to fields: explicit mappings first (a mapped column
    /// is not also matched by another field's alias; a mapping naming an
    /// absent header leaves its field unmapped), then aliases. Two columns
    /// for one field is `ambiguous_column` (checked first), then missing
    /// required fields are `missing_columns`, naming all of them.
    pub fn resolve(header: &[String], rules: &Rules, file: &str) -> Result<Columns, FileError> {
        let normalized: Vec<String> = header.iter().map(|h| normalize(h)).collect();
        let mut candidates: [Vec<usize>; 12] = Default::default();
        let mut taken = vec![false; header.len()];
        for (field, name) in &rules.column_map {
            // A name with no letter or digit matches no header: an empty
            // header cell is not a column anyone can mean (and an Excel
            // header's trailing empty cells depend on how it is read).
            if name.is_empty() {
                continue;
            }
            for (i, n) in normalized.iter().enumerate() {
                if n == name {
                    candidates[field.index()].push(i);
                    taken[i] = true;
                }
            }
        }
        for (i, n) in normalized.iter().enumerate() {
            if taken[i] {
                continue;
            }
            if let Some(field) = field_for_alias(n) {
                if rules.column_map.iter().all(|(f, _)| *f != field) {
                    candidates[field.index()].push(i);
                }
            }
        }
        for field in Field::ALL {
            let found = &candidates[field.index()];
            if found.len() > 1 {
                let names: Vec<String> =
                    found.iter().map(|i| format!("{:?}", header[*i])).collect();
                return Err(FileError::new(
                    FileErrorCode::AmbiguousColumn,
                    format!(
                        "{file}: columns {} all map to the field {}",
                        names.join(", "),
                        field.name()
                    ),
                ));
            }
        }
        let mut index = [None; 12];
        for field in Field::ALL {
            index[field.index()] = candidates[field.index()].first().copied();
        }
        let missing: Vec<&str> = Field::ALL
            .into_iter()
            .filter(|f| is_required(*f, rules) && index[f.index()].is_none())
            .map(Field::name)
            .collect();
        if !missing.is_empty() {
            return Err(FileError::new(
                FileErrorCode::MissingColumns,
                format!(
                    "{file}: no column for the required field(s) {}",
                    missing.join(", ")
                ),
            ));
        }
        Ok(Columns {
            index,
            header_len: header.len(),
            header: header.to_vec(),
        })
    }

    /// The column of `field`, if mapped.
    #[inline]
    pub fn get(&self, field: Field) -> Option<usize> {
        self.index[field.index()]
    }

    /// The number of columns of the header.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The header record as read.
    pub fn header(&self) -> &[String] {
        &self.header
    }
}

/// Required fields of SPEC §2; `currency` is optional with a default currency.
pub fn is_required(field: Field, rules: &Rules) -> bool {
    match field {
        Field::InvoiceId
        | Field::InvoiceDate
        | Field::CustomerId
        | Field::Quantity
        | Field::UnitPrice => true,
        Field::Currency => rules.default_currency.is_none(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledgerline_core::Settings;

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn rules(pairs: &[(&str, &str)]) -> Rules {
        let mut s = Settings::default();
        for (k, v) in pairs {
            s.apply(k, v).unwrap();
        }
        Rules::new(&s).unwrap()
    }

    const BASIC: [&str; 7] = [
        "Invoice No.",
        "Date",
        "Customer ID",
        "Qty",
        "Unit Price",
        "CCY",
        "Notes",
    ];

    #[test]
    fn aliases() {
        let c = Columns::resolve(&header(&BASIC), &rules(&[]), "f").unwrap();
        assert_eq!(c.get(Field::InvoiceId), Some(0));
        assert_eq!(c.get(Field::InvoiceDate), Some(1));
        assert_eq!(c.get(Field::CustomerId), Some(2));
        assert_eq!(c.get(Field::Quantity), Some(3));
        assert_eq!(c.get(Field::UnitPrice), Some(4));
        assert_eq!(c.get(Field::Currency), Some(5));
        assert_eq!(c.get(Field::DueDate), None);
        assert_eq!(c.header_len(), 7);
    }

    #[test]
    fn a_mapping_to_an_empty_name_matches_nothing() {
        let h = header(&[
            "invoice",
            "date",
            "customer_id",
            "qty",
            "price",
            "currency",
            "",
            "---",
        ]);
        let c = Columns::resolve(&h, &rules(&[("map", "description=---")]), "f").unwrap();
        assert_eq!(c.get(Field::Description), None);
    }

    #[test]
    fn ambiguous_before_missing() {
        let e = Columns::resolve(&header(&["invoice", "invoice_no", "qty"]), &rules(&[]), "f")
            .unwrap_err();
        assert_eq!(e.code, FileErrorCode::AmbiguousColumn);
    }

    #[test]
    fn missing_names_all() {
        let e = Columns::resolve(&header(&["invoice", "qty"]), &rules(&[]), "f").unwrap_err();
        assert_eq!(e.code, FileErrorCode::MissingColumns);
        for f in ["invoice_date", "customer_id", "unit_price", "currency"] {
            assert!(e.message.contains(f), "{}", e.message);
        }
        let r = rules(&[("default_currency", "EUR")]);
        let e = Columns::resolve(&header(&["invoice", "qty"]), &r, "f").unwrap_err();
        assert!(!e.message.contains("currency,") && !e.message.ends_with("currency"));
    }

    #[test]
    fn mapping_takes_the_column_and_has_no_fallback() {
        // "Amount" would be line_total by alias; mapped to unit_price it is taken.
        let h = header(&[
            "Nr", "Date", "Customer", "Account", "Qty", "Amount", "Total", "Currency",
        ]);
        let c = Columns::resolve(
            &h,
            &rules(&[("map", "invoice_id=Nr"), ("map", "unit_price=amount")]),
            "f",
        )
        .unwrap();
        assert_eq!(c.get(Field::InvoiceId), Some(0));
        assert_eq!(c.get(Field::UnitPrice), Some(5));
        assert_eq!(c.get(Field::LineTotal), Some(6));
        // A mapping to an absent header leaves the field unmapped, even though
        // an alias column exists.
        let h = header(&[
            "invoice_id",
            "date",
            "customer_id",
            "qty",
            "price",
            "currency",
        ]);
        let e = Columns::resolve(&h, &rules(&[("map", "invoice_id=Nr")]), "f").unwrap_err();
        assert_eq!(e.code, FileErrorCode::MissingColumns);
        assert!(e.message.contains("invoice_id"));
    }
}
