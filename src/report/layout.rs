//! Tables that fit the terminal: columns are kept by priority until the table fits, a cell is never wrapped
//! (a number, id or date split over two lines is unreadable), and only a column marked truncatable is cut
//! (with `…`) when the essential columns alone are still too wide.
//!
//! Width: `COLUMNS` when set (also in pipes, as `ls` does), else the terminal's; unknown or 0 (a pipe, a
//! terminal that reports 0×0) means full width.

use comfy_table::{
    presets::UTF8_FULL_CONDENSED, Attribute, Cell, CellAlignment, Color, ContentArrangement, Table,
};
use unicode_width::UnicodeWidthStr;

/// One column of a [`Layout`].
#[derive(Debug, Clone)]
pub struct Column {
    pub header: &'static str,
    /// 0 is never dropped; higher numbers are dropped first when the table is too wide.
    pub priority: u8,
    pub right: bool,
    /// May be cut with `…` (names, not numbers or ids).
    pub truncatable: bool,
}

impl Column {
    pub fn new(header: &'static str, priority: u8) -> Column {
        Column {
            header,
            priority,
            right: true,
            truncatable: false,
        }
    }

    /// A left-aligned text column (labels, names).
    pub fn text(header: &'static str, priority: u8, truncatable: bool) -> Column {
        Column {
            header,
            priority,
            right: false,
            truncatable,
        }
    }
}

/// How a row is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowStyle {
    Normal,
    /// A split line under a row (`└ claude`): dimmed.
    Sub,
    /// The total line: bold.
    Total,
}

/// A table before it is fitted: columns, rows of cell texts, per-cell emphasis.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub columns: Vec<Column>,
    pub rows: Vec<(RowStyle, Vec<String>)>,
    /// Cells to colour as warnings / errors: `(row, column)`.
    pub alerts: Vec<(usize, usize)>,
}

/// The fitted result: the table text and the headers of the columns left out.
pub struct Fitted {
    pub text: String,
    pub dropped: Vec<&'static str>,
}

/// Border and padding of [`UTF8_FULL_CONDENSED`]: `│ a ┆ b │` = 1 + Σ(width + 3).
fn table_width(widths: &[usize]) -> usize {
    1 + widths.iter().map(|w| w + 3).sum::<usize>()
}

fn truncate(s: &str, width: usize) -> String {
    if s.width() <= width {
        return s.to_string();
    }
    let mut out = String::new();
    for c in s.chars() {
        let next = format!("{out}{c}");
        if next.width() + 1 > width {
            break;
        }
        out = next;
    }
    out.push('…');
    out
}

impl Layout {
    /// Fits the table to `width` columns (`None`: no limit) and draws it, in colour when `color`.
    pub fn fit(&self, width: Option<usize>, color: bool) -> Fitted {
        let n = self.columns.len();
        let mut widths: Vec<usize> = (0..n)
            .map(|i| {
                self.rows
                    .iter()
                    .map(|(_, r)| r.get(i).map_or(0, |c| c.width()))
                    .max()
                    .unwrap_or(0)
                    .max(self.columns[i].header.width())
            })
            .collect();
        let mut keep: Vec<bool> = vec![true; n];
        let total = |keep: &[bool], widths: &[usize]| {
            let kept: Vec<usize> = (0..n).filter(|i| keep[*i]).map(|i| widths[i]).collect();
            table_width(&kept)
        };
        let mut dropped = Vec::new();
        if let Some(limit) = width {
            // Secondary columns (priority ≥ 3) go first, then long names are cut to 16 cells, then the
            // remaining columns by priority, then names down to 8 cells: numbers are never cut.
            let mut drop_down_to = |floor: u8, keep: &mut Vec<bool>, widths: &[usize]| {
                while total(keep, widths) > limit {
                    let candidate = (0..n)
                        .filter(|i| keep[*i] && self.columns[*i].priority >= floor.max(1))
                        .max_by_key(|i| (self.columns[*i].priority, *i));
                    match candidate {
                        Some(i) => {
                            keep[i] = false;
                            dropped.push(self.columns[i].header);
                        }
                        None => break,
                    }
                }
            };
            let cut_to = |min: usize, keep: &[bool], widths: &mut Vec<usize>| {
                while total(keep, widths) > limit {
                    let candidate = (0..n)
                        .filter(|i| keep[*i] && self.columns[*i].truncatable && widths[*i] > min)
                        .max_by_key(|i| widths[*i]);
                    match candidate {
                        Some(i) => {
                            let excess = total(keep, widths) - limit;
                            widths[i] = widths[i].saturating_sub(excess).max(min);
                        }
                        None => break,
                    }
                }
            };
            drop_down_to(3, &mut keep, &widths);
            cut_to(16, &keep, &mut widths);
            drop_down_to(1, &mut keep, &widths);
            cut_to(8, &keep, &mut widths);
        }
        let cols: Vec<usize> = (0..n).filter(|i| keep[*i]).collect();
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Disabled);
        if color {
            table.enforce_styling();
        } else {
            table.force_no_tty();
        }
        table.set_header(cols.iter().map(|&i| {
            let c = Cell::new(self.columns[i].header);
            if color {
                c.fg(Color::Cyan).add_attribute(Attribute::Bold)
            } else {
                c
            }
        }));
        for (r, (style, cells)) in self.rows.iter().enumerate() {
            table.add_row(cols.iter().map(|&i| {
                let text = cells.get(i).map(String::as_str).unwrap_or("");
                let text = if self.columns[i].truncatable {
                    truncate(text, widths[i])
                } else {
                    text.to_string()
                };
                let mut cell = Cell::new(text);
                if self.columns[i].right {
                    cell = cell.set_alignment(CellAlignment::Right);
                }
                if color {
                    if self.alerts.contains(&(r, i)) {
                        cell = cell.fg(Color::Yellow);
                    }
                    cell = match style {
                        RowStyle::Total => cell.add_attribute(Attribute::Bold),
                        RowStyle::Sub => cell.add_attribute(Attribute::Dim),
                        RowStyle::Normal => cell,
                    };
                }
                cell
            }));
        }
        Fitted {
            text: table.to_string(),
            dropped,
        }
    }
}

/// The width to fit tables to: `COLUMNS` (when a positive number), else the terminal's width when stdout
/// is a terminal; `None` (full width) when unknown or reported as 0.
pub fn terminal_width() -> Option<usize> {
    if let Some(n) = std::env::var("COLUMNS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return (n > 0).then_some(n);
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return None;
    }
    // SAFETY: TIOCGWINSZ fills a winsize struct for a terminal file descriptor; errors leave it zeroed.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0).then_some(ws.ws_col as usize)
}

/// Whether to colour tables: `--color always|never`, else only on a terminal without `NO_COLOR`.
pub fn use_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::IsTerminal::is_terminal(&std::io::stdout())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            columns: vec![
                Column::text("Name", 0, true),
                Column::new("Cost", 0),
                Column::new("Input", 1),
                Column::new("Cache read", 5),
            ],
            rows: vec![(
                RowStyle::Normal,
                vec![
                    "a-rather-long-model-name".into(),
                    "$0.0123".into(),
                    "1,234".into(),
                    "99,999".into(),
                ],
            )],
            alerts: vec![],
        }
    }

    #[test]
    fn columns_are_dropped_by_priority_then_names_cut_never_wrapped() {
        let full = layout().fit(None, false);
        assert!(full.dropped.is_empty());
        let w = full.text.lines().next().unwrap().width();
        let narrow = layout().fit(Some(w - 1), false);
        assert_eq!(narrow.dropped, vec!["Cache read"]);
        let tiny = layout().fit(Some(30), false);
        for line in tiny.text.lines() {
            assert!(line.width() <= 30, "{line}");
        }
        assert!(tiny.text.contains("$0.0123") && tiny.text.contains('…'));
        assert_eq!(
            tiny.text.lines().count(),
            full.text.lines().count(),
            "no wrapped cells"
        );
    }
}
