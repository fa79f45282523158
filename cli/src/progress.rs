//! Step progress for lifecycle commands: a spinner per running step, a check mark per finished one.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Steps {
    current: Mutex<Option<ProgressBar>>,
}

impl Steps {
    pub fn new() -> Steps {
        Steps {
            current: Mutex::new(None),
        }
    }
}

impl kadm_bootstrap::init::Progress for Steps {
    fn step(&self, name: &str) {
        let pb = ProgressBar::new_spinner();
        pb.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb.set_message(name.to_string());
        pb.enable_steady_tick(Duration::from_millis(100));
        if let Ok(mut c) = self.current.lock() {
            *c = Some(pb);
        }
    }

    fn done(&self, name: &str, detail: &str) {
        if let Ok(mut c) = self.current.lock()
            && let Some(pb) = c.take()
        {
            pb.finish_and_clear();
        }
        println!("✓ {name}: {detail}");
    }
}

impl Drop for Steps {
    fn drop(&mut self) {
        if let Ok(mut c) = self.current.lock()
            && let Some(pb) = c.take()
        {
            pb.abandon();
        }
    }
}
