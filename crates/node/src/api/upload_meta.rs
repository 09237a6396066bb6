//! What an upload's headers put in its manifest: the MIME type and the file name.
//!
//! Both go into the manifest's bytes, so they decide its CID: the same bytes uploaded with
//! the same headers must give the CID Archivist gives. These are Archivist's rules (its
//! REST upload handler and Nim's `isValidFilename`), with two documented departures where
//! Archivist refuses what a user plainly meant: curl's default form type for
//! `--data-binary` means "no type", and a type with parameters keeps its bare `type/subtype`.

use axum::http::{header, HeaderMap, StatusCode};

use super::ApiError;
use crate::upload::UploadMeta;

/// curl sends this for `--data-binary` unless told otherwise; it says nothing of the file.
const CURL_DEFAULT_TYPE: &str = "application/x-www-form-urlencoded";

pub(super) fn upload_meta(headers: &HeaderMap) -> Result<UploadMeta, ApiError> {
    let invalid = |what: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, what);
    let mimetype = match headers.get(header::CONTENT_TYPE) {
        None => None,
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| invalid("The MIME type is not valid.".into()))?;
            mimetype(v).map_err(|()| invalid(format!("The MIME type '{v}' is not valid.")))?
        }
    };
    let filename = match headers.get(header::CONTENT_DISPOSITION) {
        None => None,
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| invalid("The filename is not valid.".into()))?;
            match filename_from_disposition(v) {
                Some(name) if !is_valid_filename(&name) => {
                    return Err(invalid("The filename is not valid.".into()))
                }
                other => other,
            }
        }
    };
    Ok(UploadMeta { filename, mimetype })
}

/// The manifest's MIME type for a `Content-Type` header. Archivist keeps the header exactly
/// as sent (case included) once its lowercase form is a known type; so do we.
fn mimetype(raw: &str) -> Result<Option<String>, ()> {
    let raw = raw.trim();
    let (essence, has_params) = match raw.split_once(';') {
        Some((essence, _)) => (essence.trim(), true),
        None => (raw, false),
    };
    let lower = essence.to_ascii_lowercase();
    if lower.is_empty() || lower == CURL_DEFAULT_TYPE {
        return Ok(None);
    }
    match mime_guess::get_mime_extensions_str(&lower) {
        Some(exts) if !exts.is_empty() => {
            Ok(Some(if has_params { lower } else { raw.to_string() }))
        }
        _ => Err(()),
    }
}

/// Archivist reads the name between `filename="` and the value's last character (the
/// closing quote); an unquoted `filename=` gives no name.
fn filename_from_disposition(value: &str) -> Option<String> {
    if !value.contains("filename=") {
        return None;
    }
    let (_, after) = value.split_once("filename=\"")?;
    let after = after.trim();
    let mut name = after.to_string();
    name.pop();
    Some(name)
}

/// Nim's `isValidFilename` (os module, Nim 2.2), which Archivist applies: the checks look at
/// the name part only (what is left after the last `/` and before the extension's dot).
fn is_valid_filename(filename: &str) -> bool {
    const INVALID_CHARS: &[u8] = b"/\\:*?\"<>|^\0";
    const INVALID_NAMES: &[&str] = &[
        "CON", "PRN", "AUX", "NUL", "COM0", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7",
        "COM8", "COM9", "LPT0", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8",
        "LPT9",
    ];
    const MAX_LEN: usize = 259;
    let (name, ext) = split_file(filename.as_bytes());
    let (Some(&first), Some(&last)) = (name.first(), name.last()) else {
        return false;
    };
    name.len() + ext.len() <= MAX_LEN
        && first != b' '
        && last != b' '
        && last != b'.'
        && !name.iter().any(|c| INVALID_CHARS.contains(c))
        && !INVALID_NAMES
            .iter()
            .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
}

/// Nim's `splitFile` on POSIX, less the directory: (name, extension). The extension starts
/// at the last dot that is neither first, last, right after a `/`, nor before another dot.
fn split_file(path: &[u8]) -> (&[u8], &[u8]) {
    let mut dot = None;
    for i in (0..path.len()).rev() {
        if path[i] == b'/' || i == 0 {
            let start = if path[i] == b'/' { i + 1 } else { 0 };
            return match dot {
                Some(d) if d > i => (&path[start..d], &path[d..]),
                _ => (&path[start..], &[]),
            };
        }
        if path[i] == b'.'
            && i < path.len() - 1
            && path[i - 1] != b'/'
            && path[i + 1] != b'.'
            && dot.is_none()
        {
            dot = Some(i);
        }
    }
    (&[], &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_read_as_archivist_reads_them() {
        let read = filename_from_disposition;
        assert_eq!(
            read("attachment; filename=\"file.bin\""),
            Some("file.bin".into())
        );
        assert_eq!(
            read("attachment; filename=\"file.bin\"  "),
            Some("file.bin".into())
        );
        assert_eq!(read("attachment"), None);
        assert_eq!(read("attachment; filename=file.bin"), None);
        assert_eq!(read("attachment; filename=\"\""), Some(String::new()));
    }

    #[test]
    fn file_names_follow_nims_is_valid_filename() {
        for ok in [
            "file.bin",
            "a",
            ".bashrc",
            "dir/file.txt",
            "a.b:c",
            "con_x.txt",
        ] {
            assert!(is_valid_filename(ok), "{ok:?} should be valid");
        }
        for bad in [
            "", " foo", "foo ", "foo.", "con.txt", "AUX.bat", "OwO:UwU", "foo/", "a^b", "a\"b",
            "a..b",
        ] {
            assert!(!is_valid_filename(bad), "{bad:?} should be invalid");
        }
        assert!(is_valid_filename(&"x".repeat(259)));
        assert!(!is_valid_filename(&"x".repeat(260)));
    }

    #[test]
    fn split_file_matches_nims_examples() {
        let split = |p: &str| {
            let (n, e) = split_file(p.as_bytes());
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(e).into_owned(),
            )
        };
        assert_eq!(
            split("usr/local/nimc.html"),
            ("nimc".into(), ".html".into())
        );
        assert_eq!(split("/usr/local/os"), ("os".into(), String::new()));
        assert_eq!(split("/usr/local/"), (String::new(), String::new()));
        assert_eq!(split("/tmp.txt"), ("tmp".into(), ".txt".into()));
        assert_eq!(split("a.tar.gz"), ("a.tar".into(), ".gz".into()));
    }

    #[test]
    fn mimetypes_are_kept_as_sent_once_known() {
        assert_eq!(
            mimetype("application/octet-stream"),
            Ok(Some("application/octet-stream".into()))
        );
        assert_eq!(mimetype("Text/Plain"), Ok(Some("Text/Plain".into())));
        assert_eq!(mimetype("image/png; q=1"), Ok(Some("image/png".into())));
        assert_eq!(mimetype(CURL_DEFAULT_TYPE), Ok(None));
        assert_eq!(mimetype(""), Ok(None));
        assert!(mimetype("not a type").is_err());
        assert!(mimetype("application/x-no-such-thing").is_err());
    }
}
