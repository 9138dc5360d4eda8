//! The files of a cross-validation directory (`resnext cv`) besides its folds' run directories:
//! spelled here, in [`CvFile`], for the training crate that writes them and for readers.

/// The files of a cross-validation directory (besides the fold runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CvFile {
    Settings,
    Folds,
    Oof,
    Summary,
    Figure,
}

impl CvFile {
    /// Every file a cross-validation directory holds besides its folds' run directories.
    pub const ALL: [CvFile; 5] = [
        CvFile::Settings,
        CvFile::Folds,
        CvFile::Oof,
        CvFile::Summary,
        CvFile::Figure,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CvFile::Settings => "cv.toml",
            CvFile::Folds => "folds.json",
            CvFile::Oof => "oof.csv",
            CvFile::Summary => "cv.json",
            CvFile::Figure => "cv.png",
        }
    }
}
