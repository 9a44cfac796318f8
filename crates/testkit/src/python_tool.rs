//! Python tools some tests run against the real binary (the SCIM compliance
//! checker, the API fuzzer), each in a venv `.ci/python-tool-setup TOOL` makes.
//! Finding the interpreter is the same for each: the one an environment variable
//! names, else the venv beside the target directory's `tmp/`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tool a test needs: how to find and prove its install.
pub struct PythonTool {
    /// The name `.ci/python-tool-setup` takes (`scim-tester`, `schemathesis`).
    pub name: &'static str,
    /// The environment variable that may name the interpreter.
    pub python_env: &'static str,
    /// Python code that succeeds only when the tool is importable.
    pub import_check: &'static str,
}

impl PythonTool {
    /// The interpreter that has the tool, or why there is none. `target_tmpdir` is
    /// the test's `CARGO_TARGET_TMPDIR` (`<target dir>/tmp`); the default venv is
    /// `<target dir>/<name>-venv`.
    pub fn python(&self, target_tmpdir: &str) -> Result<PathBuf, String> {
        let (python, explicit) = match std::env::var_os(self.python_env) {
            Some(p) if !p.is_empty() => (PathBuf::from(p), true),
            _ => (
                Path::new(target_tmpdir)
                    .parent()
                    .unwrap_or_else(|| Path::new("target"))
                    .join(format!("{}-venv/bin/python", self.name)),
                false,
            ),
        };
        match Command::new(&python)
            .args(["-c", self.import_check])
            .output()
        {
            Ok(out) if out.status.success() => Ok(python),
            Ok(out) => Err(format!(
                "{} cannot import {}: {}",
                python.display(),
                self.name,
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or_default()
            )),
            Err(e) if explicit => Err(format!("{}={}: {e}", self.python_env, python.display())),
            Err(_) => Err(format!(
                "{} is unset and {} does not exist",
                self.python_env,
                python.display()
            )),
        }
    }

    /// [`python`](Self::python), or `None` after saying that the test skipped —
    /// only outside CI: under CI a missing tool fails the test (panics).
    pub fn python_or_skip(&self, target_tmpdir: &str) -> Option<PathBuf> {
        match self.python(target_tmpdir) {
            Ok(p) => Some(p),
            Err(why) => {
                let install = self.install_hint();
                assert!(
                    !under_ci(),
                    "{} must run under CI: {why}; {install}",
                    self.name
                );
                eprintln!("skipped: {} is not installed ({why}); {install}", self.name);
                None
            }
        }
    }

    /// How to install it, for a skip or failure message.
    pub fn install_hint(&self) -> String {
        format!(
            "install it with `bash .ci/python-tool-setup {}` (a venv under the target directory, \
             from PyPI), or point {} at a Python that has .ci/{}-requirements.txt installed",
            self.name, self.python_env, self.name
        )
    }
}

/// Whether this run is CI's (`CI` set to anything but `false` or `0`), where a
/// missing tool fails its test instead of skipping it.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}
