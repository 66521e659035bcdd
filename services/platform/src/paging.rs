//! Paging for every List method: one rule for `page_size`, one shape of page token.
//!
//! A page token is opaque to clients: base64url of a tag naming the listing and its version, then
//! the fields the listing needs to carry on after the last row (the key of that row, and whatever
//! binds the token to its listing), separated by U+001F. A token that does not decode, has another
//! tag, or the wrong number of fields is `INVALID_ARGUMENT` naming `page_token`.

use crate::grpc;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tonic::Status;

const SEP: char = '\u{1f}';

/// A listing's page sizes: 0 asks for the default; more than the maximum is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize {
    pub default: u32,
    pub max: u32,
}

impl PageSize {
    pub const fn new(default: u32, max: u32) -> Self {
        Self { default, max }
    }

    /// The number of rows to return for the request's `page_size`.
    pub fn parse(&self, requested: i32) -> Result<i64, Status> {
        match requested {
            0 => Ok(i64::from(self.default)),
            n if n >= 1 && n as u32 <= self.max => Ok(i64::from(n)),
            n => Err(grpc::invalid_argument(
                "page_size",
                format!(
                    "must be between 1 and {}, or 0 for the default of {} (got {n})",
                    self.max, self.default
                ),
            )),
        }
    }
}

/// Encodes a page token for listing `tag` with `fields` (none may contain U+001F, except the
/// last, which is read to the end).
pub fn encode_token(tag: &str, fields: &[&str]) -> String {
    let mut text = String::from(tag);
    for f in fields {
        text.push(SEP);
        text.push_str(f);
    }
    URL_SAFE_NO_PAD.encode(text)
}

/// Decodes a page token of listing `tag` into its `n` fields; `None` for an empty token (the
/// first page).
pub fn decode_token(tag: &str, token: &str, n: usize) -> Result<Option<Vec<String>>, Status> {
    let token = token.trim();
    if token.is_empty() {
        return Ok(None);
    }
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad_token())?;
    let text = String::from_utf8(raw).map_err(|_| bad_token())?;
    let mut parts = text.splitn(n + 1, SEP);
    if parts.next() != Some(tag) {
        return Err(bad_token());
    }
    let fields: Vec<String> = parts.map(str::to_string).collect();
    if fields.len() != n {
        return Err(bad_token());
    }
    Ok(Some(fields))
}

/// The error for a token this API did not return.
pub fn bad_token() -> Status {
    grpc::invalid_argument(
        "page_token",
        "is not a next_page_token this API returned: pass it unchanged, or none for the first page",
    )
}

/// The error for a token of another listing (another workspace, filter or window).
pub fn foreign_token() -> Status {
    grpc::invalid_argument(
        "page_token",
        "belongs to another listing (other workspace or filters): start again with an empty page_token",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_default_and_are_bounded_naming_the_field() {
        let s = PageSize::new(20, 100);
        assert_eq!(s.parse(0).unwrap(), 20);
        assert_eq!(s.parse(1).unwrap(), 1);
        assert_eq!(s.parse(100).unwrap(), 100);
        for bad in [-1, 101, i32::MAX, i32::MIN] {
            let e = s.parse(bad).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(e.message().starts_with("page_size: "), "{}", e.message());
        }
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_refused_naming_the_field() {
        let t = encode_token("m1", &["a", "b\u{1f}c"]);
        assert_eq!(
            decode_token("m1", &t, 2).unwrap(),
            Some(vec!["a".to_string(), "b\u{1f}c".to_string()])
        );
        assert_eq!(decode_token("m1", "", 2).unwrap(), None);
        for bad in [
            "%%%",
            "bm90IGEgdG9rZW4",
            &encode_token("m2", &["a", "b"]),
            &encode_token("m1", &["a"]),
        ] {
            let e = decode_token("m1", bad, 2).unwrap_err();
            assert!(e.message().starts_with("page_token: "), "{}", e.message());
        }
    }
}
