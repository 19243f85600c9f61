//! Spreadsheets in and out: a table read from the .xlsx or .csv a clerk uploads (calamine for
//! .xlsx; the csv crate for .csv, in UTF-8 or, as Excel in China saves it, GB18030), and a
//! table written as .xlsx with Chinese headers (rust_xlsxwriter). Nothing here knows what the
//! table holds: `renda_node::import` reads a roster or a venue list from a [`Table`], and the
//! pages choose the columns they export.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use chrono::{Days, NaiveDate};
use renda_node::import::Table;
use renda_node::validate::ValidationError;

/// Largest file an import takes.
pub const MAX_FILE_BYTES: usize = 8 << 20;

/// Reads the first sheet of an .xlsx file, or a .csv file, into a table whose first non-empty
/// row is the header.
pub fn read_table(bytes: &[u8]) -> Result<Table, ValidationError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(ValidationError::new(
            "file",
            format!("文件超过 {} MiB", MAX_FILE_BYTES >> 20),
        ));
    }
    if bytes.is_empty() {
        return Err(ValidationError::new("file", "文件是空的"));
    }
    // An .xlsx file is a zip archive; anything else is read as CSV.
    if bytes.starts_with(b"PK\x03\x04") {
        read_xlsx(bytes)
    } else {
        read_csv(bytes)
    }
}

fn read_xlsx(bytes: &[u8]) -> Result<Table, ValidationError> {
    let unreadable = |e: &dyn std::fmt::Display| {
        ValidationError::new("file", format!("无法读取 .xlsx 文件：{e}"))
    };
    let mut book: Xlsx<_> =
        open_workbook_from_rs(Cursor::new(bytes)).map_err(|e| unreadable(&e))?;
    let range = book
        .worksheet_range_at(0)
        .ok_or_else(|| ValidationError::new("file", ".xlsx 文件里没有工作表"))?
        .map_err(|e| unreadable(&e))?;
    // Calamine's range starts at the first used cell; rows are numbered as the sheet shows them.
    let first_row = range.start().map_or(0, |(row, _)| row as usize) + 1;
    let mut rows = range
        .rows()
        .map(|row| row.iter().map(cell_text).collect::<Vec<_>>());
    let headers = rows.next().unwrap_or_default();
    Ok(Table {
        header_row: first_row,
        headers,
        rows: rows.collect(),
    })
}

/// A cell as text: numbers as Excel shows whole ones (17, not 17.0), dates as YYYY-MM-DD.
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::DateTime(d) => {
            excel_date(d.as_f64()).map_or_else(|| d.to_string(), |d| d.to_string())
        }
        other => other.to_string().trim().to_string(),
    }
}

/// Excel's serial day number as a date (day 1 is 1900-01-01, counting the 1900 leap day Excel
/// believes in, so serials from 61 on are days since 1899-12-30).
fn excel_date(serial: f64) -> Option<NaiveDate> {
    if !(61.0..2_958_466.0).contains(&serial) {
        return None;
    }
    NaiveDate::from_ymd_opt(1899, 12, 30)?.checked_add_days(Days::new(serial.trunc() as u64))
}

fn read_csv(bytes: &[u8]) -> Result<Table, ValidationError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => {
            let (text, _, bad) = encoding_rs::GB18030.decode(bytes);
            if bad {
                return Err(ValidationError::new(
                    "file",
                    "无法识别文件的编码：请另存为 UTF-8 或 GB18030 编码的 CSV，或 .xlsx 文件",
                ));
            }
            text.into_owned()
        }
    };
    // Line by line, so rows keep the numbers a clerk sees in the file (the csv reader skips
    // blank lines); a roster's cells hold no line breaks.
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(line.as_bytes());
        let cells = match reader.records().next() {
            None => Vec::new(),
            Some(Ok(record)) => record.iter().map(|c| c.trim().to_string()).collect(),
            Some(Err(e)) => {
                return Err(ValidationError::new(
                    "file",
                    format!("CSV 第 {} 行无法读取：{e}", i + 1),
                ));
            }
        };
        rows.push(cells);
    }
    // The header is the first row with anything in it.
    let blank = rows
        .iter()
        .take_while(|r| r.iter().all(|c| c.is_empty()))
        .count();
    let mut rows = rows.into_iter().skip(blank);
    let headers = rows.next().unwrap_or_default();
    Ok(Table {
        header_row: blank + 1,
        headers,
        rows: rows.collect(),
    })
}

/// One sheet as .xlsx: a bold header row of `headers`, then `rows`, columns sized to fit.
pub fn write_xlsx(
    sheet: &str,
    headers: &[&str],
    rows: &[Vec<String>],
) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let ws = book.add_worksheet();
    ws.set_name(sheet_name(sheet))?;
    let mut widths: Vec<usize> = headers.iter().map(|h| display_width(h)).collect();
    for (col, header) in headers.iter().enumerate() {
        ws.write_string_with_format(0, col as u16, *header, &bold)?;
    }
    for (r, row) in rows.iter().enumerate() {
        for (col, value) in row.iter().enumerate() {
            ws.write_string(r as u32 + 1, col as u16, value)?;
            if let Some(w) = widths.get_mut(col) {
                *w = (*w).max(display_width(value));
            }
        }
    }
    for (col, width) in widths.iter().enumerate() {
        ws.set_column_width(col as u16, (*width).clamp(6, 60) as f64 + 2.0)?;
    }
    book.save_to_buffer()
}

/// A worksheet's name as Excel allows it: at most 31 characters, none of `[]:*?/\`, not
/// starting or ending with an apostrophe.
fn sheet_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if "[]:*?/\\".contains(c) { '_' } else { c })
        .take(31)
        .collect();
    let cleaned = cleaned.trim_matches('\'').to_string();
    if cleaned.is_empty() {
        "Sheet1".to_string()
    } else {
        cleaned
    }
}

/// Columns a text takes: a Chinese character two, anything narrower one.
fn display_width(text: &str) -> usize {
    text.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_xlsx_written_here_reads_back_the_same() {
        let rows = vec![
            vec![
                "沈建华".to_string(),
                "17".to_string(),
                "1972-05".to_string(),
            ],
            vec!["陆秀英".to_string(), String::new(), "1980".to_string()],
        ];
        let bytes = write_xlsx("代表", &["姓名", "届次", "出生年月"], &rows).unwrap();
        let table = read_table(&bytes).unwrap();
        assert_eq!(table.header_row, 1);
        assert_eq!(table.headers, ["姓名", "届次", "出生年月"]);
        assert_eq!(table.rows[0], rows[0]);
        assert_eq!(table.rows[1][0], "陆秀英");
        assert_eq!(table.rows[1][2], "1980");
    }

    #[test]
    fn csv_is_read_in_utf8_with_or_without_a_bom_and_in_gb18030() {
        let utf8 = "\n姓名,性别\n沈建华,男\n".as_bytes();
        let t = read_table(utf8).unwrap();
        assert_eq!(
            (t.header_row, t.headers.clone(), t.rows.len()),
            (2, vec!["姓名".to_string(), "性别".to_string()], 1)
        );
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice("姓名\n陆秀英\n".as_bytes());
        assert_eq!(read_table(&bom).unwrap().headers, ["姓名"]);
        let (gbk, _, _) = encoding_rs::GB18030.encode("姓名,性别\n朱丽华,女\n");
        let t = read_table(&gbk).unwrap();
        assert_eq!(t.rows[0], ["朱丽华", "女"]);
        assert!(read_table(b"").is_err());
    }

    #[test]
    fn any_page_title_makes_a_sheet_name_excel_accepts() {
        let long =
            "嘉兴市秀洲区王江泾镇人民代表大会主席团建议办理情况表（2026年度）：第一批/第二批";
        let bytes = write_xlsx(long, &["标题"], &[vec!["x".into()]]).unwrap();
        assert_eq!(read_table(&bytes).unwrap().rows[0], ["x"]);
        let cleaned = sheet_name("a[b]:c*?/\\d");
        assert!(
            !cleaned.contains(['[', ']', ':', '*', '?', '/', '\\']),
            "{cleaned}"
        );
        assert!(
            cleaned.starts_with("a_b") && cleaned.ends_with('d'),
            "{cleaned}"
        );
        assert_eq!(sheet_name("''"), "Sheet1");
    }

    #[test]
    fn excel_serial_days_are_dates() {
        assert_eq!(excel_date(27_454.0), NaiveDate::from_ymd_opt(1975, 3, 1));
        assert_eq!(excel_date(1.0), None);
    }
}
