//! Clean rows as Parquet (arrow-rs): money never as floats.
//!
//! Columns: `row` UInt64; texts Utf8 (nullable where the field is
//! optional); `invoice_date`, `due_date` Date32; `quantity`, `unit_price`,
//! `tax_rate`, `line_total` Decimal128(38, 18); `net`, `tax`, `gross`
//! Decimal128(38, 4) — one scale for every currency (4 is the most minor
//! units ISO 4217 has), so each amount is its exact value. Rows are written
//! in batches of 8,192 (snappy-compressed row groups), so memory stays
//! bounded.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Date32Builder, Decimal128Builder, StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use ledgerline_core::rows::{CleanRow, Exact};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

/// Rows per record batch (and row group flush check).
const BATCH: usize = 8192;
/// The scale of quantities, prices, rates and line totals.
pub const DECIMAL_SCALE: i8 = 18;
/// The scale of `net`, `tax` and `gross`.
pub const MONEY_SCALE: i8 = 4;

pub(crate) struct ParquetRows {
    target: PathBuf,
    temp: PathBuf,
    writer: Option<ArrowWriter<File>>,
    schema: SchemaRef,
    rows: Vec<CleanRow>,
    error: Option<io::Error>,
}

fn schema() -> SchemaRef {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let decimal = |name: &str, nullable: bool| {
        Field::new(name, DataType::Decimal128(38, DECIMAL_SCALE), nullable)
    };
    let money = |name: &str| Field::new(name, DataType::Decimal128(38, MONEY_SCALE), false);
    Arc::new(Schema::new(vec![
        Field::new("row", DataType::UInt64, false),
        text("invoice_id", false),
        Field::new("invoice_date", DataType::Date32, false),
        Field::new("due_date", DataType::Date32, true),
        text("customer_id", false),
        text("customer_name", true),
        text("sku", true),
        text("description", true),
        decimal("quantity", false),
        decimal("unit_price", false),
        decimal("tax_rate", false),
        decimal("line_total", true),
        text("currency", false),
        money("net"),
        money("tax"),
        money("gross"),
    ]))
}

fn bad(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// `value` at `scale`, exactly, or an error.
fn rescale(value: Exact, scale: i8) -> io::Result<i128> {
    let target = u32::try_from(scale).unwrap_or(0);
    if value.scale > target {
        return Err(bad(format!(
            "{value} has more than {target} decimal places"
        )));
    }
    10i128
        .checked_pow(target - value.scale)
        .and_then(|f| value.mantissa.checked_mul(f))
        .ok_or_else(|| bad(format!("{value} does not fit Decimal128(38, {scale})")))
}

impl ParquetRows {
    pub(crate) fn create(target: &Path) -> io::Result<ParquetRows> {
        let temp = crate::temp_beside(target)?;
        let file = File::create(&temp)?;
        let schema = schema();
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props))
            .map_err(|e| io::Error::other(e.to_string()));
        let writer = match writer {
            Ok(w) => w,
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                return Err(e);
            }
        };
        Ok(ParquetRows {
            target: target.to_path_buf(),
            temp,
            writer: Some(writer),
            schema,
            rows: Vec::with_capacity(BATCH),
            error: None,
        })
    }

    pub(crate) fn clean(&mut self, row: &CleanRow) {
        if self.error.is_some() {
            return;
        }
        self.rows.push(row.clone());
        if self.rows.len() >= BATCH {
            if let Err(e) = self.flush() {
                self.error = Some(e);
            }
        }
    }

    fn batch(&self) -> io::Result<RecordBatch> {
        let n = self.rows.len();
        let mut row = UInt64Builder::with_capacity(n);
        let text = || StringBuilder::new();
        let (mut id, mut customer, mut name, mut sku, mut description, mut currency) =
            (text(), text(), text(), text(), text(), text());
        let (mut issue, mut due) = (
            Date32Builder::with_capacity(n),
            Date32Builder::with_capacity(n),
        );
        let decimal = || Decimal128Builder::with_capacity(n);
        let (mut quantity, mut price, mut rate, mut line_total) =
            (decimal(), decimal(), decimal(), decimal());
        let (mut net, mut tax, mut gross) = (decimal(), decimal(), decimal());
        for r in &self.rows {
            row.append_value(r.row);
            id.append_value(&r.invoice_id);
            issue.append_value(crate::epoch_days(&r.invoice_date)?);
            due.append_option(r.due_date.as_deref().map(crate::epoch_days).transpose()?);
            customer.append_value(&r.customer_id);
            name.append_option(r.customer_name.as_ref());
            sku.append_option(r.sku.as_ref());
            description.append_option(r.description.as_ref());
            quantity.append_value(rescale(r.quantity, DECIMAL_SCALE)?);
            price.append_value(rescale(r.unit_price, DECIMAL_SCALE)?);
            rate.append_value(rescale(r.tax_rate, DECIMAL_SCALE)?);
            line_total.append_option(
                r.line_total
                    .map(|v| rescale(v, DECIMAL_SCALE))
                    .transpose()?,
            );
            currency.append_value(r.currency);
            net.append_value(rescale(r.net, MONEY_SCALE)?);
            tax.append_value(rescale(r.tax, MONEY_SCALE)?);
            gross.append_value(rescale(r.gross, MONEY_SCALE)?);
        }
        let typed = |mut b: Decimal128Builder, scale: i8| -> io::Result<ArrayRef> {
            let a = b
                .finish()
                .with_precision_and_scale(38, scale)
                .map_err(|e| io::Error::other(e.to_string()))?;
            Ok(Arc::new(a))
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(row.finish()),
            Arc::new(id.finish()),
            Arc::new(issue.finish()),
            Arc::new(due.finish()),
            Arc::new(customer.finish()),
            Arc::new(name.finish()),
            Arc::new(sku.finish()),
            Arc::new(description.finish()),
            typed(quantity, DECIMAL_SCALE)?,
            typed(price, DECIMAL_SCALE)?,
            typed(rate, DECIMAL_SCALE)?,
            typed(line_total, DECIMAL_SCALE)?,
            Arc::new(currency.finish()),
            typed(net, MONEY_SCALE)?,
            typed(tax, MONEY_SCALE)?,
            typed(gross, MONEY_SCALE)?,
        ];
        RecordBatch::try_new(Arc::clone(&self.schema), columns)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let batch = self.batch()?;
        self.rows.clear();
        match self.writer.as_mut() {
            Some(w) => w.write(&batch).map_err(|e| io::Error::other(e.to_string())),
            None => Ok(()),
        }
    }

    pub(crate) fn finish(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.flush()?;
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        let file = writer
            .into_inner()
            .map_err(|e| io::Error::other(e.to_string()))?;
        file.sync_data()?;
        drop(file);
        std::fs::rename(&self.temp, &self.target)
    }
}

impl Drop for ParquetRows {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}
