//! Label tables: CSV (any of `,` `;` tab, by the header line) and XLSX (first sheet, via calamine),
//! read into strings with 1-based line numbers so every error names the file and line.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

pub(crate) struct Table {
    pub path: PathBuf,
    pub headers: Vec<String>,
    /// (1-based line or sheet row, cells)
    pub rows: Vec<(usize, Vec<String>)>,
}

impl Table {
    /// Reads a `.csv` / `.tsv` / `.txt` or `.xlsx` / `.xls` / `.ods` table.
    pub fn read(path: &Path) -> Result<Table> {
        if !path.is_file() {
            return Err(DataError::bad_file(
                path,
                "label table not found; check the path",
            ));
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        match ext.as_str() {
            "xlsx" | "xlsm" | "xls" | "xlsb" | "ods" => read_sheet(path),
            _ => read_csv(path),
        }
    }

    /// Index of the first column whose header matches one of `names` (case-insensitive, trimmed).
    pub fn col(&self, names: &[&str]) -> Option<usize> {
        self.headers
            .iter()
            .position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
    }

    /// Like `col`, but a missing column is an error naming the file and what was expected.
    pub fn require(&self, names: &[&str], what: &str) -> Result<usize> {
        self.col(names).ok_or_else(|| {
            DataError::bad_line(
                &self.path,
                1,
                format!(
                    "no {what} column (expected a header named {}); found {:?}",
                    names.join(" or "),
                    self.headers
                ),
            )
        })
    }
}

fn read_csv(path: &Path) -> Result<Table> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim_start_matches('\u{feff}');
    let first = text.lines().next().unwrap_or_default();
    let delim = [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|d| first.bytes().filter(|b| b == d).count())
        .unwrap_or(b',');
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delim)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| DataError::bad_line(path, 1, format!("cannot read the header: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            DataError::bad_line(
                path,
                line,
                format!(
                    "malformed row ({e}); every row needs the header's {} columns",
                    headers.len()
                ),
            )
        })?;
        let line = rec.position().map_or(0, |p| p.line() as usize);
        if rec.iter().all(|c| c.is_empty()) {
            continue;
        }
        rows.push((line, rec.iter().map(str::to_string).collect()));
    }
    Ok(Table {
        path: path.to_path_buf(),
        headers,
        rows,
    })
}

fn read_sheet(path: &Path) -> Result<Table> {
    use calamine::{open_workbook_auto, Data, Reader};
    let mut wb = open_workbook_auto(path).map_err(|e| {
        DataError::bad_file(
            path,
            format!("cannot read the spreadsheet ({e}); save it as .xlsx or .csv"),
        )
    })?;
    let range = wb
        .worksheet_range_at(0)
        .ok_or_else(|| DataError::bad_file(path, "the spreadsheet has no sheets"))?
        .map_err(|e| DataError::bad_file(path, format!("cannot read the first sheet ({e})")))?;
    let first_row = range.start().map_or(0, |(r, _)| r as usize);
    let cell = |d: &Data| -> String {
        match d {
            Data::Int(i) => i.to_string(),
            Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
            Data::Float(f) => f.to_string(),
            Data::String(s) => s.trim().to_string(),
            Data::Bool(b) => b.to_string(),
            Data::Empty => String::new(),
            other => other.to_string(),
        }
    };
    let mut rows_iter = range
        .rows()
        .enumerate()
        .map(|(i, r)| (first_row + i + 1, r.iter().map(cell).collect::<Vec<_>>()))
        .filter(|(_, r)| r.iter().any(|c| !c.is_empty()));
    let (_, headers) = rows_iter
        .next()
        .ok_or_else(|| DataError::bad_file(path, "the first sheet is empty"))?;
    Ok(Table {
        path: path.to_path_buf(),
        headers,
        rows: rows_iter.collect(),
    })
}
