//! A segment on disk: a Parquet file of its columns, its keys and its
//! timestamps, and a small delete file of the ends set since.
//!
//! ```text
//! seg-NNNNNNNNNN.parquet   the table's columns, then __omen_key (binary),
//!                          __omen_begin and __omen_end (uint64; end as of writing)
//! del-NNNNNNNNNN.omd       | "OMENDEL\0" | n: u64 | n x (row: u32, end: u64) | crc32c(all before): u32 |
//! ```
//!
//! Integers little-endian. A segment file is written once; the ends set
//! after it (updates and deletes of its rows) go to a delete file holding
//! every end the segment has then, replaced by a newer one as more come.
//! Parquet keeps column statistics (min, max, null count) per row group.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, RecordBatch, UInt64Array};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt64Type};
use parking_lot::Mutex;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::error::{Error, Result};
use crate::key_column::key_field;
use crate::zone::Zone;
use omen_files::codec::{Decoded, Reader, Writer};

const DELETE_MAGIC: &[u8; 8] = b"OMENDEL\0";
const BEGIN: &str = "__omen_begin";
const END: &str = "__omen_end";

/// How segment files are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Zstandard at this level (1 to 22).
    Zstd(i32),
    /// LZ4 (raw blocks).
    Lz4,
    /// None.
    Uncompressed,
}

impl Default for Codec {
    /// Zstandard level 1: see the crate's README for the measurement.
    fn default() -> Self {
        Codec::Zstd(1)
    }
}

fn corrupt(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Corruption { file: path.to_path_buf(), reason: reason.to_string() }
}

/// Writes a segment of a table with `schema` to `path`: its `rows`, `keys`,
/// `begin` and `ends` (read once), synced; returns the file's size.
pub(crate) fn write_segment(
    path: &Path,
    schema: &SchemaRef,
    rows: &RecordBatch,
    keys: &BinaryArray,
    begin: &[u64],
    ends: &[u64],
    codec: Codec,
) -> Result<u64> {
    let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(key_field()));
    fields.push(Arc::new(Field::new(BEGIN, DataType::UInt64, false)));
    fields.push(Arc::new(Field::new(END, DataType::UInt64, false)));
    let file_schema = Arc::new(Schema::new(fields));
    let mut columns = rows.columns().to_vec();
    columns.push(Arc::new(keys.clone()));
    columns.push(Arc::new(UInt64Array::from(begin.to_vec())));
    columns.push(Arc::new(UInt64Array::from(ends.to_vec())));
    let batch = RecordBatch::try_new(Arc::clone(&file_schema), columns)?;
    let compression = match codec {
        Codec::Zstd(level) => Compression::ZSTD(ZstdLevel::try_new(level).map_err(|e| Error::Schema(e.to_string()))?),
        Codec::Lz4 => Compression::LZ4_RAW,
        Codec::Uncompressed => Compression::UNCOMPRESSED,
    };
    let props = WriterProperties::builder().set_compression(compression).set_statistics_enabled(EnabledStatistics::Chunk).build();
    let file = File::create(path)?;
    let mut writer = ArrowWriter::try_new(file, file_schema, Some(props))?;
    writer.write(&batch)?;
    let file = writer.into_inner()?;
    file.sync_all()?;
    Ok(file.metadata()?.len())
}

/// A segment file whose columns a segment reads when a scan first needs
/// them. The store deletes no file while a segment that may still read it
/// lives (a snapshot can outlive its table's drop or compaction).
#[derive(Debug)]
pub(crate) struct SegmentFile {
    pub(crate) path: PathBuf,
    pub(crate) schema: SchemaRef,
    tracker: Arc<FileTracker>,
}

impl SegmentFile {
    /// The table's columns `columns` (ascending), `rows` rows each; damage
    /// is reported to the store.
    pub(crate) fn read_columns(&self, rows: usize, columns: &[usize]) -> Result<Vec<ArrayRef>> {
        let read = read_columns(&self.path, &self.schema, rows, columns);
        if let Err(Error::Corruption { file, reason }) = &read {
            self.tracker.damage.lock().get_or_insert_with(|| format!("{}: {reason}", file.display()));
        }
        read
    }
}

/// The segment files in use, and the first damage found reading one.
#[derive(Debug, Default)]
pub(crate) struct FileTracker {
    open: Mutex<HashMap<PathBuf, Weak<SegmentFile>>>,
    damage: Mutex<Option<String>>,
}

impl FileTracker {
    /// The file at `path`, shared with the segments already reading it
    /// (two first loads of one table track the same files).
    pub(crate) fn track(self: &Arc<Self>, path: PathBuf, schema: SchemaRef) -> Arc<SegmentFile> {
        let mut open = self.open.lock();
        if let Some(live) = open.get(&path).and_then(Weak::upgrade) {
            return live;
        }
        open.retain(|_, f| f.strong_count() > 0);
        let file = Arc::new(SegmentFile { path: path.clone(), schema, tracker: Arc::clone(self) });
        open.insert(path, Arc::downgrade(&file));
        file
    }

    /// Whether a segment may still read the file at `path`.
    pub(crate) fn in_use(&self, path: &Path) -> bool {
        self.open.lock().get(path).is_some_and(|f| f.strong_count() > 0)
    }

    pub(crate) fn damage(&self) -> Option<String> {
        self.damage.lock().clone()
    }

    /// Forgets damage found: the files it was in are gone.
    pub(crate) fn clear_damage(&self) {
        *self.damage.lock() = None;
    }
}

/// What opening a table needs of a segment file, without its columns:
/// keys, begin and end timestamps, and each column's zone map from the
/// file's statistics (`None` where they cannot serve: see
/// [`Zone::from_statistics`]; the caller then reads the columns).
pub(crate) struct SegmentIndex {
    pub(crate) keys: BinaryArray,
    pub(crate) begin: Vec<u64>,
    pub(crate) end: Vec<u64>,
    pub(crate) zones: Option<Vec<Zone>>,
    /// Each column's uncompressed size in the file: an estimate of its
    /// decoded size until it is read.
    pub(crate) column_bytes: Vec<usize>,
}

/// Opens a segment file written for a table with `schema`, checking its
/// columns are the table's plus the key and timestamps.
fn open(path: &Path, schema: &SchemaRef) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?).map_err(|e| corrupt(path, e))?;
    let file_schema = builder.schema();
    let n = schema.fields().len();
    let fits = file_schema.fields().len() == n + 3
        && schema.fields().iter().zip(file_schema.fields()).all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type())
        && file_schema.field(n).data_type() == &DataType::Binary
        && file_schema.field(n + 1).data_type() == &DataType::UInt64
        && file_schema.field(n + 2).data_type() == &DataType::UInt64;
    if !fits {
        return Err(corrupt(path, "columns differ from the table's"));
    }
    Ok(builder)
}

/// The columns `columns` (ascending) of an opened segment file, as one
/// batch of `rows` rows.
fn read(
    path: &Path,
    builder: ParquetRecordBatchReaderBuilder<File>,
    columns: impl IntoIterator<Item = usize>,
    rows: Option<usize>,
) -> Result<RecordBatch> {
    let mask = ProjectionMask::roots(builder.parquet_schema(), columns);
    // One batch for the whole segment (at most 64Ki rows): the reader's
    // default of 1,024 rows would cut it into pieces to be copied together.
    let file_rows = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0).max(1);
    let reader = builder.with_projection(mask).with_batch_size(file_rows).build().map_err(|e| corrupt(path, e))?;
    let schema = arrow::array::RecordBatchReader::schema(&reader);
    let batches: Vec<RecordBatch> = reader.collect::<std::result::Result<_, _>>().map_err(|e| corrupt(path, e))?;
    let all = concat_batches(&schema, &batches)?;
    if rows.is_some_and(|n| n != all.num_rows()) {
        return Err(corrupt(path, format!("{} rows where the segment has {}", all.num_rows(), rows.unwrap_or_default())));
    }
    Ok(all)
}

/// Reads a segment file's keys, timestamps and zone maps (see [`SegmentIndex`]).
pub(crate) fn read_index(path: &Path, schema: &SchemaRef) -> Result<SegmentIndex> {
    let builder = open(path, schema)?;
    let n = schema.fields().len();
    let zones = {
        let groups = builder.metadata().row_groups();
        let rows = groups.iter().map(|g| g.num_rows()).sum::<i64>() as usize;
        let zone = |field: &Field| -> Option<Zone> {
            let stats = StatisticsConverter::try_new(field.name(), builder.schema(), builder.parquet_schema()).ok()?;
            let (mins, maxes) = (stats.row_group_mins(groups).ok()?, stats.row_group_maxes(groups).ok()?);
            Zone::from_statistics(field.data_type(), mins.as_ref(), maxes.as_ref(), &stats.row_group_null_counts(groups).ok()?, rows)
        };
        schema.fields().iter().map(|f| zone(f)).collect::<Option<Vec<Zone>>>()
    };
    let groups = builder.metadata().row_groups();
    let column_bytes = (0..n).map(|c| groups.iter().map(|g| g.column(c).uncompressed_size().max(0) as usize).sum()).collect();
    let all = read(path, builder, n..n + 3, None)?;
    if all.columns().iter().any(|c| c.null_count() > 0) {
        return Err(corrupt(path, "null keys or timestamps"));
    }
    Ok(SegmentIndex {
        keys: all.column(0).as_binary::<i32>().clone(),
        begin: all.column(1).as_primitive::<UInt64Type>().values().to_vec(),
        end: all.column(2).as_primitive::<UInt64Type>().values().to_vec(),
        zones,
        column_bytes,
    })
}

/// Reads the table's columns `columns` (ascending) of the segment file at
/// `path`, which holds `rows` rows.
pub(crate) fn read_columns(path: &Path, schema: &SchemaRef, rows: usize, columns: &[usize]) -> Result<Vec<ArrayRef>> {
    let read = read(path, open(path, schema)?, columns.iter().copied(), Some(rows))?;
    Ok(read.columns().to_vec())
}

/// Reads all the table's columns of the segment file at `path`.
pub(crate) fn read_all_columns(path: &Path, schema: &SchemaRef, rows: usize) -> Result<RecordBatch> {
    let all: Vec<usize> = (0..schema.fields().len()).collect();
    Ok(RecordBatch::try_new(Arc::clone(schema), read_columns(path, schema, rows, &all)?)?)
}

/// Writes the delete file of `ends` (row, end), synced.
pub(crate) fn write_deletes(path: &Path, ends: &[(u32, u64)]) -> Result<()> {
    let mut w = Writer::framed(DELETE_MAGIC);
    w.u64(ends.len() as u64);
    for &(row, end) in ends {
        w.u32(row);
        w.u64(end);
    }
    let mut file = File::create(path)?;
    file.write_all(&w.seal())?;
    file.sync_all()?;
    Ok(())
}

/// Reads a delete file for a segment of `rows` rows.
pub(crate) fn read_deletes(path: &Path, rows: usize) -> Result<Vec<(u32, u64)>> {
    let bytes = std::fs::read(path)?;
    let parse = || -> Decoded<Vec<(u32, u64)>> {
        let mut r = Reader::unseal(&bytes, DELETE_MAGIC)?;
        let n = r.u64()?;
        if n.checked_mul(12) != Some(r.remaining() as u64) {
            return Err("length differs from the entry count".into());
        }
        let ends = (0..n).map(|_| Ok((r.u32()?, r.u64()?))).collect::<Decoded<Vec<_>>>()?;
        if let Some((row, _)) = ends.iter().find(|(row, _)| *row as usize >= rows) {
            return Err(format!("row {row} past the segment's {rows}").into());
        }
        Ok(ends)
    };
    parse().map_err(|reason| corrupt(path, reason))
}
