//! Worker authentication for the public app (runner-http-api.md §1): HTTP
//! Basic credentials checked against `worker.password` with pgcrypto's
//! `crypt()`.

use base64::Engine;
use sqlx::PgPool;

/// Why a request is not authenticated. Every case answers 401 (QH-1: a
/// malformed header is a 401 here, not upstream's 500).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("worker login required")]
    Missing,
    #[error("malformed Authorization header")]
    Malformed,
    #[error("invalid worker credentials")]
    Invalid,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// `(login, password)` of a Basic `Authorization` header value.
pub fn parse_basic(header: &str) -> Result<(String, String), AuthError> {
    if header.is_empty() {
        return Err(AuthError::Missing);
    }
    let (scheme, rest) = header.split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(AuthError::Malformed);
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| AuthError::Malformed)?;
    // latin-1: every byte is the code point of the same value.
    let text: String = raw.iter().map(|&b| b as char).collect();
    let (login, password) = text.split_once(':').ok_or(AuthError::Malformed)?;
    // PostgreSQL text cannot hold NUL: no stored login or password has one
    // (a 500 upstream, a 401 here: divergence-policy §2).
    if text.contains('\0') {
        return Err(AuthError::Malformed);
    }
    Ok((login.to_string(), password.to_string()))
}

/// The worker name if `header` carries valid credentials.
///
/// Every attempt costs the same whatever the name, so names cannot be
/// probed by timing: crypt() runs once per kind of stored hash (algorithm
/// and cost: bcrypt `$2a$10$`, md5 `$1$`, xdes `_J9..`, des), against the
/// name's own hash for its kind and against another worker's hash of each
/// other kind (a fixed md5 hash when there are no workers). A name whose
/// own hash matches is accepted; a row whose password is not a crypt() hash
/// never authenticates (crypt() would fail on it).
pub async fn check_worker(db: &PgPool, header: Option<&str>) -> Result<String, AuthError> {
    let (login, password) = parse_basic(header.unwrap_or_default())?;
    // `checks` is MATERIALIZED so every crypt() runs: none is skipped by
    // AND's short-circuit, so the cost does not depend on the name.
    let matches: Option<bool> = sqlx::query_scalar(
        "WITH hashes AS ( \
           SELECT * FROM (SELECT name, password, CASE \
             WHEN password ~ '^\\$2[abxy]\\$[0-9]{2}\\$.{53}$' THEN left(password, 7) \
             WHEN password ~ '^\\$1\\$' THEN '$1$' \
             WHEN password ~ '^_.{19}$' THEN left(password, 5) \
             WHEN password ~ '^[./0-9A-Za-z]{13}$' THEN 'des' \
             END AS kind FROM worker) AS w WHERE kind IS NOT NULL), \
         own AS (SELECT password, kind FROM hashes WHERE name = $1), \
         kinds AS ( \
           SELECT DISTINCT ON (kind) kind, password FROM hashes ORDER BY kind, name), \
         checks AS MATERIALIZED ( \
           SELECT (o.kind IS NOT NULL) AS own, \
                  crypt($2, COALESCE(o.password, k.password)) = COALESCE(o.password, k.password) AS m \
             FROM kinds k LEFT JOIN own o ON o.kind = k.kind \
           UNION ALL \
           SELECT false, crypt($2, '$1$dummysal$5bLo2Ukw4.xQo1cX3Bz2E/') = '' \
             WHERE NOT EXISTS (SELECT 1 FROM hashes)) \
         SELECT bool_or(own AND m) FROM checks",
    )
    .bind(&login)
    .bind(&password)
    .fetch_one(db)
    .await?;
    if matches == Some(true) {
        Ok(login)
    } else {
        Err(AuthError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_with_nul_are_refused_before_the_database() {
        // "worker-1:s3cret\0"
        assert!(matches!(
            parse_basic("Basic d29ya2VyLTE6czNjcmV0AA=="),
            Err(AuthError::Malformed)
        ));
    }

    #[test]
    fn basic_header_parsing() {
        assert_eq!(
            parse_basic("Basic d29ya2VyLTE6czNjcmV0").unwrap(),
            ("worker-1".into(), "s3cret".into())
        );
        assert_eq!(
            parse_basic("bAsIc d29ya2VyLTE6czNjcmV0").unwrap().0,
            "worker-1"
        );
        // latin-1 decoding of non-UTF-8 bytes: "\xe9:x"
        assert_eq!(parse_basic("Basic 6Tp4").unwrap(), ("é".into(), "x".into()));
        assert!(matches!(parse_basic(""), Err(AuthError::Missing)));
        assert!(matches!(
            parse_basic("Bearer abc"),
            Err(AuthError::Malformed)
        ));
        assert!(matches!(
            parse_basic("Basic !!!"),
            Err(AuthError::Malformed)
        ));
        assert!(matches!(
            parse_basic("Basic bm9jb2xvbg=="),
            Err(AuthError::Malformed)
        ));
    }
}
