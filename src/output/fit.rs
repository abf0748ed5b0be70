//! Text views fit the terminal: a long value (a path, an audit argument
//! list) is shortened in the middle with `…`, keeping its start and its end
//! (for a path, the file name). JSON output keeps everything, and so does
//! text written to a file or a pipe, which has no width.

/// The width text views must fit: the terminal's columns when stdout is a
/// terminal, `None` (no limit) otherwise.
pub fn terminal_width() -> Option<usize> {
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return None;
    }
    crossterm::terminal::size()
        .ok()
        .map(|(cols, _)| usize::from(cols))
        .filter(|&c| c > 0)
}

/// `text` in at most `width` characters: unchanged when it fits, else its
/// start and end around a `…` (the end gets the larger half, since the end
/// of a path is its file name).
pub fn middle(text: &str, width: usize) -> String {
    let len = text.chars().count();
    if len <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let keep = width - 1;
    let head = keep / 2;
    let tail = keep - head;
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(len - tail).collect();
    format!("{start}…{end}")
}

/// The characters of `text`, for width arithmetic.
pub fn width_of(text: &str) -> usize {
    text.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortens_in_the_middle_keeping_the_file_name() {
        assert_eq!(
            middle("/usr/lib/python3.11/json/decoder.py", 100),
            "/usr/lib/python3.11/json/decoder.py"
        );
        let short = middle("/usr/lib/python3.11/json/decoder.py", 20);
        assert_eq!(short, "/usr/lib/…decoder.py");
        assert_eq!(width_of(&short), 20);
        assert_eq!(middle("abcdef", 1), "…");
        assert_eq!(middle("abcdef", 0), "");
        assert_eq!(middle("ééééé", 3), "é…é");
    }
}
