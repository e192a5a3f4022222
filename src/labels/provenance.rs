//! Where a label came from and when: stored with every manual and pseudo label.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Who or what set a label. Written to the CSV as `kind:detail`
/// (`user:alice`, `import:/data/labels.csv`, `classifier:run-17`, `spreading:latent@…`,
/// `sample:mnist`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// Read from a labels file (CSV, IDX) that came with the dataset.
    Import { path: PathBuf },
    /// Set by hand in the app, e.g. a brushed relabel.
    User { name: String },
    /// Proposed by a classifier run.
    Classifier { run_id: String },
    /// Proposed by label spreading over a kNN graph; the run id names the features
    /// (`latent@…`, `pixels@…`).
    Spreading { run_id: String },
    /// The mean of a classifier's and label spreading's class distributions
    /// (`effnetv2+latent@…`).
    Combined { run_id: String },
    /// Ground truth of a built-in sample ensemble.
    Sample { name: String },
    /// Any other text found in a hand-written CSV, kept verbatim (empty when the CSV has no
    /// source column).
    Other(String),
}

impl Source {
    /// Inverse of `Display` (for all but `Other` text that happens to look like a known kind).
    pub fn parse(text: &str) -> Source {
        match text.split_once(':') {
            Some(("import", path)) => Source::Import { path: path.into() },
            Some(("user", name)) => Source::User { name: name.into() },
            Some(("classifier", run_id)) => Source::Classifier {
                run_id: run_id.into(),
            },
            Some(("spreading", run_id)) => Source::Spreading {
                run_id: run_id.into(),
            },
            Some(("combined", run_id)) => Source::Combined {
                run_id: run_id.into(),
            },
            Some(("sample", name)) => Source::Sample { name: name.into() },
            _ => Source::Other(text.into()),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Import { path } => write!(f, "import:{}", path.display()),
            Source::User { name } => write!(f, "user:{name}"),
            Source::Classifier { run_id } => write!(f, "classifier:{run_id}"),
            Source::Spreading { run_id } => write!(f, "spreading:{run_id}"),
            Source::Combined { run_id } => write!(f, "combined:{run_id}"),
            Source::Sample { name } => write!(f, "sample:{name}"),
            Source::Other(text) => f.write_str(text),
        }
    }
}

/// The provenance of one change: its source and when it happened.
///
/// Times are kept to whole milliseconds (what the CSV stores), so a label reads back exactly
/// as it was set. `time` is `None` only for rows of a hand-written CSV without a time column.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Provenance {
    pub source: Source,
    pub time: Option<SystemTime>,
}

impl Provenance {
    /// `source`, now.
    pub fn now(source: Source) -> Self {
        Self::at(source, SystemTime::now())
    }

    /// `source` at `time` (rounded down to the millisecond, clamped to years 1970..=9999).
    pub fn at(source: Source, time: SystemTime) -> Self {
        Self {
            source,
            time: Some(normalise_time(time)),
        }
    }

    /// A relabel by hand, now, by the account running this process.
    pub fn current_user() -> Self {
        Self::user(current_user_name())
    }

    /// A relabel by hand, now.
    pub fn user(name: impl Into<String>) -> Self {
        Self::now(Source::User { name: name.into() })
    }

    /// A classifier's proposal, now.
    pub fn classifier(run_id: impl Into<String>) -> Self {
        Self::now(Source::Classifier {
            run_id: run_id.into(),
        })
    }

    /// Label spreading's proposal, now.
    pub fn spreading(run_id: impl Into<String>) -> Self {
        Self::now(Source::Spreading {
            run_id: run_id.into(),
        })
    }

    /// The combined labellers' proposal, now.
    pub fn combined(run_id: impl Into<String>) -> Self {
        Self::now(Source::Combined {
            run_id: run_id.into(),
        })
    }

    /// An import from a labels file, now.
    pub fn import(path: impl Into<PathBuf>) -> Self {
        Self::now(Source::Import { path: path.into() })
    }

    /// A built-in sample's ground truth, now.
    pub fn sample(name: impl Into<String>) -> Self {
        Self::now(Source::Sample { name: name.into() })
    }

    /// The same provenance with its time in the stored precision and range.
    pub(crate) fn normalised(mut self) -> Self {
        self.time = self.time.map(normalise_time);
        self
    }
}

/// Last millisecond that RFC 3339 (four-digit years) can write.
const MAX_MILLIS: u128 = 253_402_300_799_999;

fn normalise_time(time: SystemTime) -> SystemTime {
    let millis = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
        .min(MAX_MILLIS);
    // `MAX_MILLIS` fits in u64, so the cast is exact.
    UNIX_EPOCH + Duration::from_millis(millis as u64)
}

/// RFC 3339 UTC with milliseconds, e.g. `2025-03-01T12:00:00.250Z` (pandas parses it).
pub(crate) fn format_time(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(normalise_time(time)).to_string()
}

/// Parses RFC 3339 in UTC (`T` or space, optional `Z`/`+00:00`, any fraction digits).
pub(crate) fn parse_time(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text).ok().map(normalise_time)
}

/// The login name: `$USER`, else the account of our uid (services and containers often run
/// without `$USER`), else "user".
pub fn current_user_name() -> String {
    std::env::var("USER")
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(account_name)
        .unwrap_or_else(|| "user".into())
}

/// The name of the account of the real uid, from the password database.
fn account_name() -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero passwd is a valid out-parameter; getpwuid_r only writes to it, the
    // buffer and `result`, and `pw_name` points into `buf`, which outlives its use here.
    unsafe {
        let mut passwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let status = libc::getpwuid_r(
            libc::getuid(),
            &mut passwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if status != 0 || result.is_null() || passwd.pw_name.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr(passwd.pw_name);
        Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_name_comes_from_the_password_database() {
        // Where $USER is unset (services, containers) this is the name used.
        let name = account_name().expect("the test's uid has an account");
        assert!(!name.is_empty() && name != "user", "{name}");
    }

    #[test]
    fn sources_round_trip_through_text() {
        let sources = [
            Source::Import {
                path: "/data/run 1/labels.csv".into(),
            },
            Source::User {
                name: "alice".into(),
            },
            Source::Classifier {
                run_id: "run:17".into(),
            },
            Source::Spreading {
                run_id: "latent@2026-12-06T07:30:00Z".into(),
            },
            Source::Combined {
                run_id: "effnetv2+pixels@2026-12-06T07:30:00Z".into(),
            },
            Source::Sample {
                name: "mnist".into(),
            },
            Source::Other("spreadsheet".into()),
            Source::Other(String::new()),
        ];
        for source in sources {
            assert_eq!(Source::parse(&source.to_string()), source);
        }
    }

    #[test]
    fn times_round_trip_at_millisecond_precision() {
        let time = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let stored = Provenance::at(Source::Other(String::new()), time)
            .time
            .unwrap();
        assert_eq!(
            stored,
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
        );
        assert_eq!(format_time(stored), "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_time(&format_time(stored)), Some(stored));
        assert_eq!(
            parse_time("2023-11-14 22:13:20"),
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2023-13-14T22:13:20Z"), None);
    }

    #[test]
    fn extreme_times_are_clamped_not_panicking() {
        let before_epoch = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(format_time(before_epoch), "1970-01-01T00:00:00.000Z");
        let far_future = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(format_time(far_future), "9999-12-31T23:59:59.999Z");
    }
}
