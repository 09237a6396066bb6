//! Progress bars and messages: bars on a terminal, plain lines elsewhere (CI logs).

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

#[derive(Clone, Default)]
pub struct Ui {
    multi: MultiProgress,
}

impl Ui {
    pub fn new() -> Ui {
        Ui::default()
    }

    /// A line above the bars (or on stderr when there are no bars).
    pub fn say(&self, msg: impl AsRef<str>) {
        if self.multi.is_hidden() {
            eprintln!("{}", msg.as_ref());
        } else {
            let _ = self.multi.println(msg.as_ref());
        }
    }

    pub fn bar(&self, len: u64, prefix: impl Into<String>) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(len));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>12.bold} [{elapsed_precise}] {wide_bar:.cyan/blue} {pos}/{len} {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(prefix.into());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    pub fn bytes_bar(&self, len: u64, prefix: impl Into<String>) -> ProgressBar {
        let bar = self.bar(len, prefix);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>12.bold} [{elapsed_precise}] {wide_bar:.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar
    }
}
