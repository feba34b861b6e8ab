//! Breezy's URL helpers as the runner uses them (runner-internals.md §15.4):
//! segment parameters (`<url>,branch=<name>`) and percent escaping.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("invalid URL {0:?}: missing = in subsegment")]
    MissingEquals(String),
    #[error("invalid segment parameter value {0:?}: contains ','")]
    CommaInValue(String),
}

/// Byte offset just past the `scheme:` / `scheme://` prefix and the offset of
/// the slash that starts the path, as breezy's `_find_scheme_and_separator`.
fn scheme_and_separator(url: &str) -> (Option<usize>, Option<usize>) {
    // `^(?P<scheme>[^:/]{2,}):(//)?(?P<path>.*)$`
    let Some(colon) = url.find(':') else {
        return (None, None);
    };
    let scheme = &url[..colon];
    if scheme.chars().count() < 2 || scheme.contains('/') {
        return (None, None);
    }
    let mut path_start = colon + 1;
    if url[path_start..].starts_with("//") {
        path_start += 2;
    }
    match url[path_start..].find('/') {
        None => (Some(colon), None),
        Some(i) => (Some(colon), Some(path_start + i)),
    }
}

/// Breezy's `strip_trailing_slash`: drop one trailing `/` unless it is the
/// slash that separates the host from the path.
fn strip_trailing_slash(url: &str) -> &str {
    if !url.ends_with('/') {
        return url;
    }
    match scheme_and_separator(url) {
        (None, _) => &url[..url.len() - 1],
        (Some(_), None) => url,
        (Some(_), Some(first)) if first == url.len() - 1 => url,
        _ => &url[..url.len() - 1],
    }
}

/// `split_segment_parameters_raw`: the base URL and the raw `k=v` pieces.
fn split_raw(url: &str) -> (&str, Vec<&str>) {
    let lurl = strip_trailing_slash(url);
    let after_slash = lurl.rfind('/').map(|i| i + 1).unwrap_or(0);
    match lurl[after_slash..].find(',') {
        None => (url, Vec::new()),
        Some(i) => {
            let start = after_slash + i;
            (&lurl[..start], lurl[start + 1..].split(',').collect())
        }
    }
}

/// `split_segment_parameters`: the URL without parameters and the parameters
/// (a later duplicate key wins, as in the Python dict).
pub fn split_segment_parameters(url: &str) -> Result<(String, BTreeMap<String, String>), UrlError> {
    let (base, pieces) = split_raw(url);
    let mut params = BTreeMap::new();
    for piece in pieces {
        let (k, v) = piece
            .split_once('=')
            .ok_or_else(|| UrlError::MissingEquals(url.to_owned()))?;
        params.insert(k.to_owned(), v.to_owned());
    }
    Ok((base.to_owned(), params))
}

/// `join_segment_parameters`: merge `params` into those already on `url`
/// and append them sorted by key.
pub fn join_segment_parameters(
    url: &str,
    params: &BTreeMap<String, String>,
) -> Result<String, UrlError> {
    let (base, mut existing) = split_segment_parameters(url)?;
    for (k, v) in params {
        if v.contains(',') {
            return Err(UrlError::CommaInValue(v.clone()));
        }
        existing.insert(k.clone(), v.clone());
    }
    let mut out = base;
    for (k, v) in &existing {
        out.push(',');
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    Ok(out)
}

/// `urlutils.escape`: percent-encode the UTF-8 bytes of `s` except ASCII
/// alphanumerics and `-_.~/`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `urlutils.unescape`: percent-decoding; invalid UTF-8 is replaced.
pub fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_takes_parameters_after_the_last_slash() {
        let (base, p) =
            split_segment_parameters("https://git.example.org/c1,branch=debian%2Fmain").unwrap();
        assert_eq!(base, "https://git.example.org/c1");
        assert_eq!(p.get("branch").map(String::as_str), Some("debian%2Fmain"));
        let (base, p) = split_segment_parameters("https://h/a,b/c").unwrap();
        assert_eq!(base, "https://h/a,b/c");
        assert!(p.is_empty());
        assert!(split_segment_parameters("https://h/c,nokey").is_err());
    }

    #[test]
    fn trailing_slash_is_stripped_only_off_paths() {
        assert_eq!(strip_trailing_slash("https://h/"), "https://h/");
        assert_eq!(strip_trailing_slash("https://h/a/"), "https://h/a");
        assert_eq!(strip_trailing_slash("rel/"), "rel");
        let (base, p) = split_segment_parameters("https://h/a,branch=x/").unwrap();
        assert_eq!(base, "https://h/a");
        assert_eq!(p["branch"], "x");
    }

    #[test]
    fn join_sorts_and_merges() {
        let mut p = BTreeMap::new();
        p.insert("branch".to_owned(), escape("debian/latest"));
        assert_eq!(
            join_segment_parameters("https://git.example.org/c2", &p).unwrap(),
            "https://git.example.org/c2,branch=debian/latest"
        );
        let mut q = BTreeMap::new();
        q.insert("a".to_owned(), "1".to_owned());
        assert_eq!(
            join_segment_parameters("https://h/x,z=2", &q).unwrap(),
            "https://h/x,a=1,z=2"
        );
        q.insert("b".to_owned(), "x,y".to_owned());
        assert!(join_segment_parameters("https://h/x", &q).is_err());
    }

    #[test]
    fn escape_and_unescape_round_trip() {
        assert_eq!(escape("a b/ü~"), "a%20b/%C3%BC~");
        assert_eq!(unescape("a%20b/%C3%BC~"), "a b/ü~");
        assert_eq!(unescape("debian%2Fmain"), "debian/main");
        assert_eq!(unescape("100%"), "100%");
        assert_eq!(unescape("%zz"), "%zz");
    }
}
