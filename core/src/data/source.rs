//! One CSV source: its header and a streaming reader shared by every user.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use csv::{ByteRecord, Position, StringRecord};
use parking_lot::Mutex;

use super::{DataError, DataSourceSpec, ErrorSink};

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// What [`Source::next_row`] gives.
#[derive(Debug)]
pub(crate) enum Fetch {
    /// The next row.
    Row(Arc<StringRecord>),
    /// No more rows (the source does not cycle, or has no good row left).
    Exhausted,
}

/// The reading position, behind the source's lock.
struct Cursor {
    reader: csv::Reader<File>,
    /// Bytes before the CSV data (a byte-order mark); the reader's positions start after them.
    skipped_prefix: u64,
    /// Where the first data row starts.
    data_start: Position,
    /// How many times reading started again at the top.
    pass: u64,
    /// Good rows read in the current pass.
    good_in_pass: u64,
    exhausted: bool,
    /// Size of the last row, to size the next row's buffer.
    last_len: usize,
}

pub(crate) struct Source {
    spec: DataSourceSpec,
    path_text: String,
    columns: Vec<String>,
    index: HashMap<String, usize>,
    cursor: Mutex<Cursor>,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("spec", &self.spec)
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// Opens the file, reads and checks the header, and checks that a data row follows.
    pub(crate) fn open(spec: DataSourceSpec) -> Result<Self, DataError> {
        let path_text = spec.file_path().display().to_string();
        let open_error = |message: String| DataError::Open {
            name: spec.name().to_owned(),
            path: path_text.clone(),
            message,
        };
        let line_error = |line: u64, message: String| DataError::Line {
            path: path_text.clone(),
            line,
            message,
        };
        let mut file = File::open(spec.file_path()).map_err(|e| open_error(e.to_string()))?;
        let mut head = Vec::with_capacity(UTF8_BOM.len());
        (&mut file)
            .take(UTF8_BOM.len() as u64)
            .read_to_end(&mut head)
            .map_err(|e| line_error(1, format!("cannot read: {e}")))?;
        let skipped_prefix = if head == UTF8_BOM {
            UTF8_BOM.len() as u64
        } else {
            0
        };
        file.seek(SeekFrom::Start(skipped_prefix))
            .map_err(|e| line_error(1, format!("cannot read: {e}")))?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(file);

        let mut header = ByteRecord::new();
        let has_header = reader
            .read_byte_record(&mut header)
            .map_err(|e| line_error(1, format!("cannot read the header: {e}")))?;
        let header_line = header.position().map_or(1, Position::line);
        if !has_header || header.iter().all(<[u8]>::is_empty) {
            return Err(line_error(header_line, "empty header".to_owned()));
        }
        let mut columns = Vec::with_capacity(header.len());
        let mut index = HashMap::with_capacity(header.len());
        for (i, field) in header.iter().enumerate() {
            let name = std::str::from_utf8(field)
                .map_err(|_| {
                    line_error(
                        header_line,
                        format!("header column {} is not valid UTF-8", i + 1),
                    )
                })?
                .trim();
            if name.is_empty() {
                return Err(line_error(
                    header_line,
                    format!("header column {} has an empty name", i + 1),
                ));
            }
            if index.insert(name.to_owned(), i).is_some() {
                return Err(line_error(
                    header_line,
                    format!("duplicate header column {name:?}"),
                ));
            }
            columns.push(name.to_owned());
        }

        let data_start = reader.position().clone();
        let mut first = ByteRecord::new();
        let has_row = reader
            .read_byte_record(&mut first)
            .map_err(|e| line_error(data_start.line(), format!("cannot read: {e}")))?;
        if !has_row {
            return Err(line_error(
                header_line,
                "no data rows after the header".to_owned(),
            ));
        }
        reader
            .seek_raw(
                SeekFrom::Start(skipped_prefix + data_start.byte()),
                data_start.clone(),
            )
            .map_err(|e| line_error(data_start.line(), format!("cannot seek: {e}")))?;

        Ok(Self {
            spec,
            path_text,
            columns,
            index,
            cursor: Mutex::new(Cursor {
                reader,
                skipped_prefix,
                data_start,
                pass: 0,
                good_in_pass: 0,
                exhausted: false,
                last_len: 64,
            }),
        })
    }

    pub(crate) fn spec(&self) -> &DataSourceSpec {
        &self.spec
    }

    pub(crate) fn path_text(&self) -> &str {
        &self.path_text
    }

    pub(crate) fn columns(&self) -> &[String] {
        &self.columns
    }

    pub(crate) fn column_index(&self, column: &str) -> Option<usize> {
        self.index.get(column).copied()
    }

    /// Reads the next good row, skipping (and reporting, in the first pass) bad ones, starting
    /// again at the top when the source cycles.
    pub(super) fn next_row(&self, sink: &ErrorSink) -> Fetch {
        let mut cursor = self.cursor.lock();
        if cursor.exhausted {
            return Fetch::Exhausted;
        }
        loop {
            let mut record = ByteRecord::with_capacity(cursor.last_len, self.columns.len());
            match cursor.reader.read_byte_record(&mut record) {
                Ok(true) => {
                    let line = record.position().map_or(0, Position::line);
                    // A bad row is reported the first time only; later passes just count it.
                    let first_pass = cursor.pass == 0;
                    if record.len() != self.columns.len() {
                        let error = first_pass.then(|| DataError::Line {
                            path: self.path_text.clone(),
                            line,
                            message: format!(
                                "{} field{}, expected {} ({})",
                                record.len(),
                                if record.len() == 1 { "" } else { "s" },
                                self.columns.len(),
                                self.columns.join(", ")
                            ),
                        });
                        sink.skipped(error);
                        continue;
                    }
                    cursor.last_len = record.as_slice().len();
                    match StringRecord::from_byte_record(record) {
                        Ok(row) => {
                            cursor.good_in_pass += 1;
                            return Fetch::Row(Arc::new(row));
                        }
                        Err(e) => {
                            let error = first_pass.then(|| {
                                let column = self
                                    .columns
                                    .get(e.utf8_error().field())
                                    .map_or("?", String::as_str);
                                DataError::Line {
                                    path: self.path_text.clone(),
                                    line,
                                    message: format!("invalid UTF-8 in column {column:?}"),
                                }
                            });
                            sink.skipped(error);
                        }
                    }
                }
                Ok(false) => {
                    if !self.spec.cycle() || cursor.good_in_pass == 0 {
                        cursor.exhausted = true;
                        return Fetch::Exhausted;
                    }
                    let start = cursor.data_start.clone();
                    let offset = cursor.skipped_prefix + start.byte();
                    if let Err(e) = cursor
                        .reader
                        .seek_raw(SeekFrom::Start(offset), start.clone())
                    {
                        sink.skipped(Some(DataError::Line {
                            path: self.path_text.clone(),
                            line: start.line(),
                            message: format!("cannot seek back to the first row: {e}"),
                        }));
                        cursor.exhausted = true;
                        return Fetch::Exhausted;
                    }
                    cursor.pass += 1;
                    cursor.good_in_pass = 0;
                }
                Err(e) => {
                    // An I/O error: the reader cannot be trusted to make progress.
                    let line = cursor.reader.position().line();
                    sink.skipped(Some(DataError::Line {
                        path: self.path_text.clone(),
                        line,
                        message: format!("read error, no more rows from this source: {e}"),
                    }));
                    cursor.exhausted = true;
                    return Fetch::Exhausted;
                }
            }
        }
    }
}
