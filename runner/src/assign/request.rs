//! The assign request's backchannel, checked as it arrives.

use super::*;

/// Parse the `backchannel` request field: null, `{}` or an unknown kind →
/// none; `http` → polling; `jenkins` → Jenkins. A non-empty object without
/// `kind`, or a known kind without a usable `url`, is the caller's error.
pub fn parse_backchannel(v: Option<&Value>) -> Result<Backchannel, String> {
    let obj = match v {
        None | Some(Value::Null) => return Ok(Backchannel::None),
        Some(Value::Object(m)) if m.is_empty() => return Ok(Backchannel::None),
        Some(Value::Object(m)) => m,
        Some(_) => return Err("backchannel must be an object".into()),
    };
    let kind = obj
        .get("kind")
        .ok_or_else(|| "backchannel without kind".to_string())?;
    let make: fn(String) -> Backchannel = match kind.as_str() {
        Some("http") => |my_url| Backchannel::Polling { my_url },
        Some("jenkins") => |my_url| Backchannel::Jenkins { my_url },
        _ => return Ok(Backchannel::None),
    };
    let url = obj
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| "backchannel without url".to_string())?;
    Ok(make(normalise_url(url)?))
}

/// yarl's rendering of a URL: scheme and host lower-cased, the rest kept.
pub(super) fn normalise_url(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("invalid backchannel url: {e}"))?;
    crate::backchannel::check_scheme(&parsed)?;
    let Some(idx) = url.find("://") else {
        return Ok(url.to_string());
    };
    let rest = &url[idx + 3..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..auth_end];
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    Ok(format!(
        "{}://{userinfo}{}{}",
        parsed.scheme(),
        hostport.to_lowercase(),
        &rest[auth_end..]
    ))
}
