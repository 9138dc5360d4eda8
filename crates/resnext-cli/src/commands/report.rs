//! `resnext report DIR`: `report.html` of a run (its last `eval.json`) or of a cross-validation
//! directory (its `cv.json`), regenerated from what is on disk (`resnext_train::report`);
//! `resnext eval` and `resnext cv` write it too, through [`write_run`] and [`write_cv`].

use crate::args::ReportArgs;
use anyhow::Result;
use resnext_train::cv::CvFile;
use resnext_train::report::ReportOptions;
use resnext_train::Run;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn run(a: ReportArgs) -> Result<ExitCode> {
    let opts = ReportOptions {
        gallery: usize::from(a.gallery),
        ..ReportOptions::default()
    };
    if let Some(out) = &a.out {
        // not over a run's or a cross-validation's own files, but DIR's own report.html
        if let Some((owner, name)) = resnext_train::owned::owner(out) {
            let same = |p: &Path| resnext_io::resolve(p).unwrap_or_else(|| p.to_path_buf());
            if name != CvFile::Report.name() || same(&owner) != same(&a.dir) {
                resnext_train::owned::refuse_owned(out, "--out")?;
            }
        }
    }
    let path = if a.dir.join(CvFile::Folds.name()).is_file() {
        write_cv(&a.dir, a.out.as_deref(), &opts)?
    } else {
        let run = Run::open(&a.dir)?;
        let _lock = run.lock()?;
        write_run(&run, a.out.as_deref(), &opts)?
    };
    println!("-> {}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes a run's `report.html` (or `out`); the caller holds the run's lock.
pub fn write_run(run: &Run, out: Option<&Path>, opts: &ReportOptions) -> Result<PathBuf> {
    Ok(run.write_report(out, opts)?)
}

/// Writes a cross-validation directory's `report.html` (or `out`) from its `cv.json` and
/// `folds.json` (`resnext_train::cv_report::write_cv`).
pub fn write_cv(dir: &Path, out: Option<&Path>, opts: &ReportOptions) -> Result<PathBuf> {
    Ok(resnext_train::cv_report::write_cv(dir, out, opts)?)
}
