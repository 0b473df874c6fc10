//! Reading an installer's output: a coarse, honest progress signal and a short failure reason.
//!
//! npm (`--loglevel http`) first fetches one metadata document per package while it resolves,
//! then one tarball per package: the tarball count over the metadata count is a real fraction
//! of the download. pip says `Collecting`, `Downloading`, `Installing collected packages` and
//! `Successfully installed`, but never how many are to come, so its percent only marks the
//! phase. Nothing here is trusted beyond choosing a phase and quoting error lines, each cut to a
//! bounded length.

use std::collections::VecDeque;

use store::ImagePhase;

/// Error lines kept for the failure reason.
const KEPT_ERRORS: usize = 4;
/// Other lines kept, for a failure that printed no error line.
const KEPT_TAIL: usize = 3;
/// Longest line quoted in a failure reason, in characters.
const QUOTED_LINE_CHARS: usize = 300;

/// Which package manager writes the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Installer {
    /// `npm install --loglevel http`.
    Npm,
    /// `pip install`.
    Pip,
}

/// Progress read so far from one install's output.
#[derive(Debug)]
pub(crate) struct Tracker {
    installer: Installer,
    metadata: u32,
    tarballs: u32,
    phase: ImagePhase,
    percent: u8,
    errors: VecDeque<String>,
    tail: VecDeque<String>,
}

impl Tracker {
    /// A tracker at the start of resolution.
    pub(crate) fn new(installer: Installer) -> Self {
        Tracker {
            installer,
            metadata: 0,
            tarballs: 0,
            phase: ImagePhase::Resolving,
            percent: 5,
            errors: VecDeque::new(),
            tail: VecDeque::new(),
        }
    }

    /// The phase and percent now.
    pub(crate) fn state(&self) -> (ImagePhase, u8) {
        (self.phase, self.percent)
    }

    /// Reads one line of output.
    pub(crate) fn line(&mut self, line: &str) {
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        match self.installer {
            Installer::Npm => self.npm_line(line),
            Installer::Pip => self.pip_line(line),
        }
    }

    fn npm_line(&mut self, line: &str) {
        if let Some(fetch) = line.strip_prefix("npm http fetch GET ") {
            let url = fetch.split_whitespace().nth(1).unwrap_or_default();
            if url.contains("/-/") && url.ends_with(".tgz") {
                self.tarballs += 1;
                self.phase = ImagePhase::Downloading;
                let expected = self.metadata.max(self.tarballs).max(1);
                self.percent = (10 + 80 * self.tarballs / expected).min(90) as u8;
            } else if self.phase == ImagePhase::Resolving {
                self.metadata += 1;
            }
            return;
        }
        if line.starts_with("npm http ") {
            return;
        }
        if let Some(error) = line
            .strip_prefix("npm error ")
            .or_else(|| line.strip_prefix("npm ERR! "))
        {
            if !error.starts_with("A complete log of this run") {
                self.keep_error(error);
            }
            return;
        }
        if line.starts_with("added ") || line.starts_with("up to date") {
            self.phase = ImagePhase::Linking;
            self.percent = 95;
            return;
        }
        if !line.starts_with("npm warn") {
            self.keep_tail(line);
        }
    }

    fn pip_line(&mut self, line: &str) {
        if let Some(error) = line.strip_prefix("ERROR: ") {
            self.keep_error(error);
        } else if line.starts_with("Collecting ") {
            if self.phase == ImagePhase::Resolving {
                self.percent = 10;
            }
        } else if line.starts_with("Downloading ") {
            self.phase = ImagePhase::Downloading;
            self.percent = 30;
        } else if line.starts_with("Installing collected packages") {
            self.phase = ImagePhase::Linking;
            self.percent = 80;
        } else if line.starts_with("Successfully installed") {
            self.phase = ImagePhase::Linking;
            self.percent = 95;
        } else {
            self.keep_tail(line);
        }
    }

    fn keep_error(&mut self, line: &str) {
        if self.errors.len() == KEPT_ERRORS {
            self.errors.pop_front();
        }
        self.errors.push_back(quote(line));
    }

    fn keep_tail(&mut self, line: &str) {
        if self.tail.len() == KEPT_TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(quote(line));
    }

    /// Why the install failed: `exit` (how the installer ended), then what it said.
    pub(crate) fn failure(&self, exit: &str) -> String {
        let name = match self.installer {
            Installer::Npm => "npm",
            Installer::Pip => "pip",
        };
        let said: Vec<&str> = if self.errors.is_empty() {
            self.tail.iter().map(String::as_str).collect()
        } else {
            self.errors.iter().map(String::as_str).collect()
        };
        if said.is_empty() {
            format!("{name} {exit}")
        } else {
            format!("{name} {exit}: {}", said.join("; "))
        }
    }
}

/// A line cut to [`QUOTED_LINE_CHARS`], control characters replaced.
fn quote(line: &str) -> String {
    line.chars()
        .take(QUOTED_LINE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(installer: Installer, lines: &[&str]) -> Tracker {
        let mut tracker = Tracker::new(installer);
        for line in lines {
            tracker.line(line);
        }
        tracker
    }

    #[test]
    fn npm_downloads_count_against_the_resolved_packages() {
        let mut tracker = feed(
            Installer::Npm,
            &[
                "npm warn Unknown user config \"nodedir\".",
                "npm http fetch GET 200 https://registry.npmjs.org/@scope%2fserver 121ms (cache miss)",
                "npm http fetch GET 200 https://registry.npmjs.org/cors 28ms (cache miss)",
                "npm http fetch GET 200 https://registry.npmjs.org/vary 28ms (cache miss)",
                "npm http fetch GET 200 https://registry.npmjs.org/express 38ms (cache miss)",
            ],
        );
        assert_eq!(tracker.state(), (ImagePhase::Resolving, 5));
        tracker.line("npm http fetch GET 200 https://registry.npmjs.org/vary/-/vary-1.1.2.tgz 16ms (cache miss)");
        tracker.line(
            "npm http cache cors@https://registry.npmjs.org/cors/-/cors-2.8.6.tgz 0ms (cache hit)",
        );
        tracker.line("npm http fetch GET 200 https://registry.npmjs.org/cors/-/cors-2.8.6.tgz 16ms (cache miss)");
        assert_eq!(tracker.state(), (ImagePhase::Downloading, 50));
        for _ in 0..3 {
            tracker.line("npm http fetch GET 200 https://registry.npmjs.org/x/-/x-1.0.0.tgz 1ms");
        }
        assert_eq!(
            tracker.state(),
            (ImagePhase::Downloading, 90),
            "never past 90 before the end"
        );
        tracker.line("added 4 packages in 2s");
        assert_eq!(tracker.state(), (ImagePhase::Linking, 95));
    }

    #[test]
    fn npm_failures_quote_the_error_lines() {
        let tracker = feed(
            Installer::Npm,
            &[
                "npm http fetch GET 404 https://registry.npmjs.org/left-pad 20ms",
                "npm error code ETARGET",
                "npm error notarget No matching version found for left-pad@9.9.9.",
                "npm error A complete log of this run can be found in: /opt/mcp-server/.install-cache/_logs/x.log",
            ],
        );
        assert_eq!(
            tracker.failure("exited with status 1"),
            "npm exited with status 1: code ETARGET; notarget No matching version found for left-pad@9.9.9."
        );
    }

    #[test]
    fn pip_phases_and_failures() {
        let mut tracker = feed(
            Installer::Pip,
            &[
                "Collecting mcp-server-time==2026.10.19",
                "  Downloading mcp_server_time-2026.10.19-py3-none-any.whl (5.7 kB)",
            ],
        );
        assert_eq!(tracker.state(), (ImagePhase::Downloading, 30));
        tracker.line("Installing collected packages: tzdata, mcp-server-time");
        assert_eq!(tracker.state(), (ImagePhase::Linking, 80));
        tracker.line("Successfully installed mcp-server-time-2026.10.19 tzdata-2026.6");
        assert_eq!(tracker.state(), (ImagePhase::Linking, 95));

        let tracker = feed(
            Installer::Pip,
            &[
                "ERROR: Could not find a version that satisfies the requirement x==9.9.9 (from versions: 1.0)",
                "ERROR: No matching distribution found for x==9.9.9\u{1b}[0m",
            ],
        );
        assert_eq!(
            tracker.failure("exited with status 1"),
            "pip exited with status 1: Could not find a version that satisfies the requirement \
             x==9.9.9 (from versions: 1.0); No matching distribution found for x==9.9.9 [0m"
        );
        let silent = feed(Installer::Pip, &["something odd", &"y".repeat(1000)]);
        let failure = silent.failure("was killed by signal 9");
        assert!(failure.starts_with("pip was killed by signal 9: something odd; yyy"));
        assert!(failure.len() < 400, "{failure}");
        assert_eq!(
            Tracker::new(Installer::Npm).failure("exited with status 2"),
            "npm exited with status 2"
        );
    }
}
