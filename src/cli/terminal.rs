//! The person at the terminal: questions, answers and progress bars. Commands
//! ask through [`Terminal`] and never read standard input themselves, so the
//! same command runs under a script, where nobody can answer.

use std::io::{BufRead, IsTerminal, Write};

/// Standard input, and whether someone types on it.
pub struct Terminal {
    interactive: bool,
    /// `--no-input` was given (rather than there being no terminal).
    refused: bool,
}

impl Terminal {
    /// Interactive when standard input is a terminal.
    pub fn detect() -> Self {
        Self {
            interactive: std::io::stdin().is_terminal(),
            refused: false,
        }
    }

    /// Nobody to ask: questions become errors that name the missing parameter.
    pub fn none() -> Self {
        Self {
            interactive: false,
            refused: false,
        }
    }

    /// `--no-input`: never ask, even on a terminal.
    pub fn no_input() -> Self {
        Self {
            interactive: false,
            refused: true,
        }
    }

    pub fn is_interactive(&self) -> bool {
        self.interactive
    }

    /// Why nobody is asked, for error messages: "--no-input was given" or
    /// "there is no terminal to ask on".
    pub fn why_not_asked(&self) -> &'static str {
        if self.refused {
            "--no-input was given"
        } else {
            "there is no terminal to ask on"
        }
    }

    /// Tells the person something while the command runs.
    pub fn say(&self, message: &str) {
        println!("{message}");
    }

    /// Asks a question; `None` at end of input.
    pub fn ask(&self, question: &str) -> anyhow::Result<Option<String>> {
        print!("{question}");
        std::io::stdout().flush()?;
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line)? == 0 {
            return Ok(None);
        }
        Ok(Some(line.trim().to_owned()))
    }

    /// Asks a yes/no question; anything but y/yes is no.
    pub fn confirm(&self, question: &str) -> anyhow::Result<bool> {
        loop {
            let Some(answer) = self.ask(question)? else {
                return Ok(false);
            };
            match answer.to_ascii_lowercase().as_str() {
                "y" | "yes" => return Ok(true),
                "" | "n" | "no" => return Ok(false),
                _ => self.say("Answer y or n."),
            }
        }
    }

    /// The first line of standard input as it is (a password piped in),
    /// without its line ending.
    pub fn read_line(&self) -> std::io::Result<String> {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

/// A progress bar on stderr when it is a terminal; lines printed meanwhile
/// appear above it.
pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    pub fn start(length: u64, label: &'static str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self(None);
        }
        let bar = indicatif::ProgressBar::new(length);
        let style = indicatif::ProgressStyle::with_template(
            "{prefix:>9} [{bar:40}] {pos}/{len} ({eta} left)",
        )
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(label);
        Self(Some(bar))
    }

    /// A line on standard output.
    pub fn println(&self, line: &str) {
        self.suspended(|| println!("{line}"));
    }

    /// A line on standard error.
    pub fn eprintln(&self, line: &str) {
        self.suspended(|| eprintln!("{line}"));
    }

    // `suspend` rather than indicatif's `println`, which drops the line when
    // it decides not to draw (TERM=dumb).
    fn suspended(&self, print: impl FnOnce()) {
        match &self.0 {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    pub fn advance(&self, by: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(by);
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.0 {
            bar.finish_and_clear();
        }
    }
}
