//! Writing to stdout: one flush per line (`listen` output is read as it comes), and a closed
//! pipe (`kontiki listen | head -3`) ends the command quietly instead of panicking.

use serde_json::Value;
use std::io::Write as _;
use unicode_width::UnicodeWidthStr as _;

/// Stdout was closed by the reader; the command stops with success.
#[derive(Debug)]
pub(crate) struct Closed;

/// Writes `text` and a newline to stdout and flushes.
pub(crate) fn line(text: &str) -> Result<(), Closed> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|_| Closed)
}

/// A JSON value, compact or indented.
pub(crate) fn json(value: &Value, pretty: bool) -> Result<(), Closed> {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    // Serializing a `Value` cannot fail (its map keys are strings).
    line(&text.unwrap_or_default())
}

/// Left-aligned columns separated by two spaces; the last column is not padded. Widths are
/// display columns (a CJK character or an emoji takes two), so the columns line up in a terminal.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.width()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.width());
        }
    }
    let render = |cells: Vec<&str>| {
        let mut s = String::new();
        let last = cells.len().saturating_sub(1);
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            s.push_str(cell);
            if i < last {
                let pad = w - cell.width() + 2;
                s.extend(std::iter::repeat_n(' ', pad));
            }
        }
        s
    };
    let mut lines = vec![render(header.to_vec())];
    lines.extend(
        rows.iter()
            .map(|r| render(r.iter().map(String::as_str).collect())),
    );
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let t = table(
            &["NAME", "STATUS"],
            &[
                vec!["compute-api".into(), "active".into()],
                vec!["x".into(), "down".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME         STATUS\ncompute-api  active\nx            down"
        );
    }

    #[test]
    fn wide_characters_take_two_columns() {
        let t = table(
            &["NAME", "STATUS"],
            &[
                vec!["注文".into(), "active".into()],
                vec!["orders".into(), "down".into()],
            ],
        );
        // "注文" is 4 columns wide: padded to 6 like "orders", plus the 2-space gap.
        assert_eq!(t, "NAME    STATUS\n注文    active\norders  down");
    }
}
