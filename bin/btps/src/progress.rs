//! A one-line progress bar on standard error for commands that work through many items
//! (`btps send` with many files): `[#####.....] 12/40 files`.
//!
//! Drawn only when standard error is a terminal and `--json` is off, so scripts, logs and
//! JSON consumers never see it. The line is redrawn in place (`\r`) and erased when done.

use std::io::{self, IsTerminal, Stderr, Write};

use crate::output::Output;

/// Width of the bar between the brackets.
pub(crate) const WIDTH: usize = 10;

/// The bar for `done` of `total` items: `[#####.....] 12/40 files`. `done` is clamped to
/// `total`; an empty job shows a full bar.
pub(crate) fn render(done: usize, total: usize, width: usize, unit: &str) -> String {
    let done = done.min(total);
    let filled = (done * width).checked_div(total).unwrap_or(width);
    format!(
        "[{}{}] {done}/{total} {unit}",
        "#".repeat(filled),
        ".".repeat(width - filled)
    )
}

/// A progress bar drawing on `W` (standard error by default).
#[derive(Debug)]
pub(crate) struct Progress<W: Write = Stderr> {
    sink: Option<W>,
    done: usize,
    total: usize,
    unit: &'static str,
    drawn: usize,
}

impl Progress<Stderr> {
    /// A bar over `total` items, shown only if standard error is a terminal and the output
    /// is not JSON.
    pub(crate) fn stderr(total: usize, unit: &'static str, out: Output) -> Self {
        let stderr = io::stderr();
        let show = !out.is_json() && stderr.is_terminal();
        Self::new(show.then_some(stderr), total, unit)
    }
}

impl<W: Write> Progress<W> {
    /// A bar drawing on `sink` (`None`: hidden; every call is a no-op).
    pub(crate) fn new(sink: Option<W>, total: usize, unit: &'static str) -> Self {
        let mut bar = Self {
            sink,
            done: 0,
            total,
            unit,
            drawn: 0,
        };
        bar.draw();
        bar
    }

    /// One more item done.
    pub(crate) fn inc(&mut self) {
        self.set(self.done + 1);
    }

    /// `done` items done.
    pub(crate) fn set(&mut self, done: usize) {
        self.done = done.min(self.total);
        self.draw();
    }

    /// Runs `print` (which writes a line to standard output or error) with the bar erased,
    /// then redraws the bar below what it printed.
    pub(crate) fn above<T>(&mut self, print: impl FnOnce() -> T) -> T {
        self.erase();
        let result = print();
        self.draw();
        result
    }

    /// Erases the bar for good.
    pub(crate) fn finish(mut self) {
        self.erase();
        self.sink = None;
    }

    fn draw(&mut self) {
        let line = render(self.done, self.total, WIDTH, self.unit);
        if let Some(sink) = &mut self.sink {
            let pad = self.drawn.saturating_sub(line.len());
            let _ = write!(sink, "\r{line}{}", " ".repeat(pad));
            let _ = sink.flush();
            self.drawn = line.len();
        }
    }

    fn erase(&mut self) {
        if let Some(sink) = &mut self.sink
            && self.drawn > 0
        {
            let _ = write!(sink, "\r{}\r", " ".repeat(self.drawn));
            let _ = sink.flush();
            self.drawn = 0;
        }
    }
}

impl<W: Write> Drop for Progress<W> {
    fn drop(&mut self) {
        self.erase();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering() {
        assert_eq!(render(12, 40, 10, "files"), "[###.......] 12/40 files");
        assert_eq!(render(20, 40, 10, "files"), "[#####.....] 20/40 files");
        assert_eq!(render(0, 3, 10, "files"), "[..........] 0/3 files");
        assert_eq!(render(3, 3, 10, "files"), "[##########] 3/3 files");
        assert_eq!(render(9, 3, 4, "files"), "[####] 3/3 files", "clamped");
        assert_eq!(render(0, 0, 4, "files"), "[####] 0/0 files");
        assert_eq!(render(1, 3, 6, "artifacts"), "[##....] 1/3 artifacts");
    }

    #[test]
    fn draws_in_place_and_erases() {
        let mut sink = Vec::new();
        {
            let mut bar = Progress::new(Some(&mut sink), 2, "files");
            bar.inc();
            assert_eq!(bar.above(|| 7), 7);
            bar.inc();
            bar.inc();
            bar.finish();
        }
        let text = String::from_utf8(sink).unwrap();
        let blank = " ".repeat("[..........] 0/2 files".len());
        assert_eq!(
            text,
            format!(
                "\r[..........] 0/2 files\r[#####.....] 1/2 files\r{blank}\r\
                 \r[#####.....] 1/2 files\r[##########] 2/2 files\r[##########] 2/2 files\r{blank}\r"
            )
        );
    }

    #[test]
    fn hidden_bar_writes_nothing() {
        let mut bar: Progress<Vec<u8>> = Progress::new(None, 5, "files");
        bar.inc();
        bar.above(|| ());
        bar.finish();
    }
}
