//! The only IO of the harness: reading every script of a directory. Writing rewritten
//! scripts is left to the caller (the test), so nothing here changes files.

use std::io;
use std::path::{Path, PathBuf};

use super::{ScriptRun, check_script};
use crate::config::Config;

/// One script file and its outcome.
#[derive(Clone, Debug)]
pub struct ScriptResult {
    /// The file name, e.g. `01_election.txt`.
    pub name: String,
    pub path: PathBuf,
    /// The text as read, to tell whether a rewrite changes anything.
    pub original: String,
    pub run: ScriptRun,
}

/// This crate's `testdata/` directory, where the scenario scripts live.
pub fn testdata_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata"))
}

/// Runs every `*.txt` script in `dir`, in file-name order. The mutation gate passes a
/// hook that sets `Config::mutation` and counts the results that did not pass.
pub fn check_dir(dir: &Path, cfg_hook: &dyn Fn(&mut Config)) -> io::Result<Vec<ScriptResult>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    paths.retain(|p| p.extension().is_some_and(|x| x == "txt"));
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let original = std::fs::read_to_string(&path)?;
        let run = check_script(&original, cfg_hook);
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        out.push(ScriptResult {
            name,
            path,
            original,
            run,
        });
    }
    Ok(out)
}
