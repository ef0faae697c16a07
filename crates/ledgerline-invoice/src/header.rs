//! Header names (SPEC §2, §10): normalization and the alias table.

use ledgerline_core::Field;
use unicode_general_category::{get_general_category, GeneralCategory};

/// Trim, lowercase, keep only chars of Unicode general categories L* and N*.
/// "Invoice No." → "invoiceno".
///
/// `char::is_alphanumeric` is not used: it is Alphabetic ∪ Numeric, and
/// Alphabetic also holds the Other_Alphabetic marks and symbols (combining
/// vowel signs like U+093E, U+0345, circled letters like Ⓐ), which SPEC §10
/// says to drop.
pub fn normalize(name: &str) -> String {
    let name = name.trim();
    let mut out = String::with_capacity(name.len());
    if name.is_ascii() {
        out.extend(
            name.bytes()
                .filter(u8::is_ascii_alphanumeric)
                .map(|b| char::from(b.to_ascii_lowercase())),
        );
        return out;
    }
    // Lower-case the whole string first: `str::to_lowercase` applies the
    // context rule for a final sigma, which per-char lower-casing does not.
    out.extend(
        name.to_lowercase()
            .chars()
            .filter(|&c| is_letter_or_number(c)),
    );
    out
}

/// Whether `c` is in a general category L* or N*.
fn is_letter_or_number(c: char) -> bool {
    use GeneralCategory::*;
    matches!(
        get_general_category(c),
        UppercaseLetter
            | LowercaseLetter
            | TitlecaseLetter
            | ModifierLetter
            | OtherLetter
            | DecimalNumber
            | LetterNumber
            | OtherNumber
    )
}

/// The field a normalized name is an alias of (SPEC §2 table).
pub fn field_for_alias(normalized: &str) -> Option<Field> {
    let field = match normalized {
        "invoiceid" | "invoicenumber" | "invoiceno" | "invoicenum" | "invoice" | "invno"
        | "billno" | "documentnumber" | "docno" => Field::InvoiceId,
        "invoicedate" | "date" | "issuedate" | "billdate" | "documentdate" => Field::InvoiceDate,
        "duedate" | "paymentdue" | "paymentduedate" => Field::DueDate,
        "customerid" | "customerno" | "customernumber" | "clientid" | "accountid" | "account" => {
            Field::CustomerId
        }
        "customername" | "customer" | "client" | "clientname" | "billto" => Field::CustomerName,
        "sku" | "stockcode" | "itemcode" | "productcode" | "productid" | "itemid" => Field::Sku,
        "description" | "item" | "product" | "itemdescription" | "productdescription" => {
            Field::Description
        }
        "quantity" | "qty" | "units" => Field::Quantity,
        "unitprice" | "price" | "rate" | "priceperunit" => Field::UnitPrice,
        "taxrate" | "vatrate" | "tax" | "vat" | "taxpercent" | "vatpercent" => Field::TaxRate,
        "linetotal" | "amount" | "total" | "lineamount" | "grossamount" | "totalamount" => {
            Field::LineTotal
        }
        "currency" | "currencycode" | "ccy" | "cur" => Field::Currency,
        _ => return None,
    };
    Some(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SPEC §2 table, copied from the SPEC text.
    const TABLE: &[(Field, &str)] = &[
        (Field::InvoiceId, "invoiceid invoicenumber invoiceno invoicenum invoice invno billno documentnumber docno"),
        (Field::InvoiceDate, "invoicedate date issuedate billdate documentdate"),
        (Field::DueDate, "duedate paymentdue paymentduedate"),
        (Field::CustomerId, "customerid customerno customernumber clientid accountid account"),
        (Field::CustomerName, "customername customer client clientname billto"),
        (Field::Sku, "sku stockcode itemcode productcode productid itemid"),
        (Field::Description, "description item product itemdescription productdescription"),
        (Field::Quantity, "quantity qty units"),
        (Field::UnitPrice, "unitprice price rate priceperunit"),
        (Field::TaxRate, "taxrate vatrate tax vat taxpercent vatpercent"),
        (Field::LineTotal, "linetotal amount total lineamount grossamount totalamount"),
        (Field::Currency, "currency currencycode ccy cur"),
    ];

    #[test]
    fn every_alias_of_the_table() {
        let mut n = 0;
        for (field, aliases) in TABLE {
            for alias in aliases.split(' ') {
                assert_eq!(field_for_alias(alias), Some(*field), "{alias}");
                n += 1;
            }
        }
        assert_eq!(n, 62);
        // Every field has aliases.
        assert_eq!(TABLE.len(), Field::ALL.len());
    }

    #[test]
    fn non_aliases() {
        for name in [
            "",
            "notes",
            "invoice_id",
            "Invoice",
            "dates",
            "taxes",
            "currencies",
            "qty2",
        ] {
            assert_eq!(field_for_alias(name), None, "{name:?}");
        }
    }

    #[test]
    fn normalizes_names() {
        assert_eq!(normalize("Invoice No."), "invoiceno");
        assert_eq!(normalize(" QTY "), "qty");
        assert_eq!(normalize("Unit-Price"), "unitprice");
        assert_eq!(normalize("unit_price"), "unitprice");
        assert_eq!(normalize("Line Total (EUR)"), "linetotaleur");
        assert_eq!(normalize("\u{feff}\u{a0}Date\u{3000}"), "date");
        assert_eq!(normalize("Währung"), "währung");
        // Final sigma: the whole-string lower-casing gives ς at the end.
        assert_eq!(normalize("ΠΟΣΟΣ"), "ποσο\u{3c2}");
        assert_eq!(normalize("Steuer %"), "steuer");
        assert_eq!(normalize("..."), "");
        assert_eq!(
            field_for_alias(&normalize("Invoice No.")),
            Some(Field::InvoiceId)
        );
        assert_eq!(
            field_for_alias(&normalize("Unit-Price")),
            Some(Field::UnitPrice)
        );
    }

    #[test]
    fn keeps_every_number_category() {
        // Full-width digits (Nd), Roman numeral Ⅻ (Nl, lower-cased to ⅻ), ½ (No).
        assert_eq!(normalize("Ｑｔｙ１２"), "ｑｔｙ１２");
        assert_eq!(normalize("Tax Ⅻ ½"), "taxⅻ½");
        assert_eq!(normalize("ਕੁੱਲ੧"), "ਕਲ੧");
    }

    #[test]
    fn drops_marks_that_are_alphabetic() {
        // U+093E DEVANAGARI VOWEL SIGN AA is Mc but Other_Alphabetic;
        // Ⓐ (U+24B6) is So but Other_Alphabetic: is_alphanumeric keeps both.
        assert!('\u{93e}'.is_alphanumeric() && 'Ⓐ'.is_alphanumeric());
        assert_eq!(normalize("क\u{93e}"), "क");
        assert_eq!(normalize("Ⓐmount"), "mount");
        // A combining acute accent (Mn) is dropped: NFD "é" keeps only "e".
        assert_eq!(normalize("Cafe\u{301}"), "cafe");
    }
}
