//! Step-by-step progress lines on stderr, as the reference job printed them.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Prints `[Step i/n] …` lines with elapsed times; silent when `quiet`.
pub struct Steps {
    total: usize,
    current: usize,
    started: Instant,
    quiet: bool,
}

impl Steps {
    /// A sequence of `total` steps.
    pub fn new(total: usize, quiet: bool) -> Steps {
        Steps { total, current: 0, started: Instant::now(), quiet }
    }

    /// Announces the next step.
    pub fn step(&mut self, what: &str) {
        self.current += 1;
        self.say(&format!("[Step {}/{}] {what}", self.current, self.total));
    }

    /// A detail line under the current step.
    pub fn note(&self, what: &str) {
        self.say(&format!("           {what}"));
    }

    fn say(&self, line: &str) {
        if !self.quiet {
            tracing::info!("{:>7.2}s {line}", self.started.elapsed().as_secs_f64());
        }
    }

    /// Seconds since the first step.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// A byte progress bar on stderr, drawn only when stderr is a terminal.
    pub fn progress(&self, total: Option<u64>) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("           {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .expect("valid template"),
        );
        bar
    }
}
