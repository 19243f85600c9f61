//! Checking the database file for damage, and saying how to recover.
//!
//! Three checks of increasing cost:
//!
//! - [`check_file`], before the file is opened: its size and SQLite header. It finds an empty,
//!   zeroed, foreign or truncated file in microseconds whatever the size, so every command runs
//!   it, and such a file is never taken for a data directory with no node in it.
//! - [`quick_check`], `PRAGMA quick_check` on a read-only connection of its own: every page of
//!   every table and index read once, without comparing indexes to tables. `renda run` runs it
//!   in the background before it serves or starts sync.
//! - [`full_check`], `PRAGMA integrity_check`: `renda check`.
//!
//! A check that finds damage leaves a marker file beside the database (`renda.sqlite.damaged`,
//! holding what was found), and every later open refuses the directory until `renda restore`
//! or `renda rebuild` replaces the file, or `renda check` finds it sound again. So a node that
//! stopped on damage is not quietly started again by a command that happens not to touch the
//! damaged pages.

use std::path::{Path, PathBuf};

use super::{DB_FILE, StoreError};

/// The marker a failed check leaves beside the database.
pub const DAMAGED_MARKER: &str = "renda.sqlite.damaged";

/// What is wrong with a database file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "数据库文件 {} 已损坏（{detail}），本节点不会用它提供服务或同步。\n恢复办法：\n  1. 用备份恢复（先停止节点）：renda restore --from 备份文件；恢复后下次同步会从上级和下级取回备份之后的变更。\n  2. 没有备份时，从上级重建：renda rebuild --parent 上级地址:端口；上级保存着本节点的全部记录和个人信息，下级会在同步时补回各自的数据。\n损坏的文件会保留为 {}.corrupt-时间，供排查。",
    path.display(),
    path.display()
)]
pub struct Damage {
    pub path: PathBuf,
    pub detail: String,
}

fn damage(path: &Path, detail: impl Into<String>) -> StoreError {
    StoreError::Damaged(Damage {
        path: path.to_path_buf(),
        detail: detail.into(),
    })
}

/// Whether a SQLite error says the file is damaged rather than busy, full or misused.
pub fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// The database's size and header, checked before SQLite opens it. Cheap at any size: it reads
/// 100 bytes and the file's length.
pub fn check_file(path: &Path) -> Result<(), StoreError> {
    check_file_with(path, Marker::Refuse)
}

/// Whether a check refuses a file an earlier check marked as damaged.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Marker {
    Refuse,
    /// `renda check`, which may find the file sound again: the marker stays in place while it
    /// runs, so a check that is interrupted leaves the file refused.
    Recheck,
}

fn check_file_with(path: &Path, marker: Marker) -> Result<(), StoreError> {
    use std::io::Read;
    let dir = path.parent().unwrap_or(Path::new("."));
    if marker == Marker::Refuse
        && let Ok(found) = std::fs::read_to_string(dir.join(DAMAGED_MARKER))
    {
        return Err(damage(
            path,
            format!("上次检查发现：{}", crate::validate::clip(found.trim(), 300)),
        ));
    }
    let len = std::fs::metadata(path)
        .map_err(|e| StoreError::Io(format!("{}: {e}", path.display())))?
        .len();
    if len == 0 {
        return Err(damage(path, "文件是空的（0 字节）"));
    }
    let mut header = [0u8; 100];
    let mut file = std::fs::File::open(path)
        .map_err(|e| StoreError::Io(format!("{}: {e}", path.display())))?;
    if len < 100 || file.read_exact(&mut header).is_err() {
        return Err(damage(path, format!("文件只有 {len} 字节，不足一个文件头")));
    }
    if &header[..16] != b"SQLite format 3\0" {
        let what = if header.iter().all(|b| *b == 0) {
            "文件头全是零字节"
        } else {
            "文件头不是 SQLite 数据库"
        };
        return Err(damage(path, what));
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        n => u64::from(n),
    };
    if !(512..=65_536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(damage(path, format!("文件头中的页大小 {page_size} 无效")));
    }
    // The page count in the header is valid when the change counter matches the
    // version-valid-for number (SQLite writes both on every commit to the file). With frames
    // still in the write-ahead log, a checkpoint may have copied page 1 before the pages after
    // the file's end, so the count says more than the file holds without anything being lost:
    // only a file with no log must hold every page it counts.
    let wal = std::fs::metadata(dir.join(format!(
        "{}-wal",
        path.file_name().and_then(|n| n.to_str()).unwrap_or(DB_FILE)
    )))
    .map_or(0, |m| m.len());
    let counter = u32::from_be_bytes([header[24], header[25], header[26], header[27]]);
    let valid_for = u32::from_be_bytes([header[92], header[93], header[94], header[95]]);
    let pages = u64::from(u32::from_be_bytes([
        header[28], header[29], header[30], header[31],
    ]));
    if wal == 0 && counter == valid_for && pages > 0 && len < pages * page_size {
        return Err(damage(
            path,
            format!(
                "文件被截断：文件头记载 {pages} 页（{} 字节），实际只有 {len} 字节",
                pages * page_size
            ),
        ));
    }
    Ok(())
}

/// Runs `pragma` (`quick_check` or `integrity_check`) on a read-only connection of its own and
/// returns the problems it lists (empty when sound). On damage it leaves the marker.
fn run_check(path: &Path, pragma: &str, marker: Marker) -> Result<(), StoreError> {
    if let Err(e) = check_file_with(path, marker) {
        if let (Marker::Recheck, StoreError::Damaged(d)) = (marker, &e) {
            mark_damaged(path, &d.detail);
        }
        return Err(e);
    }
    let found = (|| -> Result<Vec<String>, rusqlite::Error> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        let mut stmt = conn.prepare(&format!("PRAGMA {pragma}(20)"))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    })();
    let problems = match found {
        Ok(rows) if rows == ["ok"] => return Ok(()),
        Ok(rows) => rows,
        Err(e) if is_corruption(&e) => vec![e.to_string()],
        Err(e) => return Err(e.into()),
    };
    let detail = problems.join("；");
    mark_damaged(path, &detail);
    Err(damage(path, crate::validate::clip(&detail, 300)))
}

/// Leaves the marker beside `path`, so later opens refuse the file too.
pub fn mark_damaged(path: &Path, detail: &str) {
    let dir = path.parent().unwrap_or(Path::new("."));
    let text = format!("{} {detail}\n", chrono::Utc::now().to_rfc3339());
    if let Err(e) = std::fs::write(dir.join(DAMAGED_MARKER), text) {
        tracing::error!(error = %e, "cannot leave the damage marker beside the database");
    }
}

/// Removes the marker: the file was replaced or found sound.
pub fn clear_damaged(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(DAMAGED_MARKER));
}

/// `PRAGMA quick_check` on the data directory's database: every page read once. What
/// `renda run` runs in the background before it serves sync.
pub fn quick_check(dir: &Path) -> Result<(), StoreError> {
    run_check(&dir.join(DB_FILE), "quick_check", Marker::Refuse)
}

/// `PRAGMA integrity_check`: also compares every index with its table. `renda check`. A sound
/// file clears a marker an earlier check left.
pub fn full_check(dir: &Path) -> Result<(), StoreError> {
    run_check(&dir.join(DB_FILE), "integrity_check", Marker::Recheck)?;
    clear_damaged(dir);
    Ok(())
}

/// The region and name a (possibly damaged) database file still says it belongs to, if they
/// can be read at all.
pub fn read_identity(path: &Path) -> Option<(crate::region::RegionCode, String)> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    let (region, name): (String, String) = conn
        .query_row(
            "SELECT region, name FROM node WHERE singleton = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ok()?;
    Some((
        crate::region::RegionCode::parse("region", &region).ok()?,
        name,
    ))
}

/// Moves a damaged database (and its log) aside, named by the time, so a rebuild or restore can
/// write a new one and the old one stays for inspection. Returns where it went.
pub fn set_aside(dir: &Path) -> Result<Option<PathBuf>, StoreError> {
    let db = dir.join(DB_FILE);
    if !db.exists() {
        return Ok(None);
    }
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let aside = dir.join(format!("{DB_FILE}.corrupt-{stamp}"));
    std::fs::rename(&db, &aside).map_err(|e| StoreError::Io(format!("{}: {e}", db.display())))?;
    for suffix in ["-wal", "-shm"] {
        let from = dir.join(format!("{DB_FILE}{suffix}"));
        if from.exists() {
            let _ = std::fs::rename(&from, format!("{}{suffix}", aside.display()));
        }
    }
    Ok(Some(aside))
}
