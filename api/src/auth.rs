//! API keys: `Authorization: Bearer <key>` checked against the configured
//! SHA-256 digests. Only digests are held, so a leaked config or core dump
//! leaks no key, and every digest is compared in constant time so response
//! timing says nothing about how close a guess was.

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::config::KeyDigests;
use crate::error::AppError;

/// Which configured key a request used; indexes the rate-limit buckets.
/// With no keys configured every request is key 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyId(pub usize);

/// The configured keys.
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl ApiKeys {
    /// Holds `digests`; an empty list leaves the API open.
    pub fn new(digests: &KeyDigests) -> Self {
        ApiKeys {
            digests: digests.0.clone(),
        }
    }

    /// True when requests need a key.
    pub fn required(&self) -> bool {
        !self.digests.is_empty()
    }

    /// How many rate-limit buckets the keys need.
    pub fn bucket_count(&self) -> usize {
        self.digests.len().max(1)
    }

    /// The first 16 hex digits of the SHA-256 of the key the request
    /// carries (to tell keys apart in kept records without keeping them);
    /// `None` when the API is open or there is no key.
    pub fn key_hash_prefix(&self, headers: &HeaderMap) -> Option<String> {
        if !self.required() {
            return None;
        }
        let token = bearer(headers)?;
        Some(hex::encode(&Sha256::digest(token.as_bytes())[..8]))
    }

    /// Identifies the key a request carries, or says why it is refused.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<KeyId, AppError> {
        if !self.required() {
            return Ok(KeyId(0));
        }
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(AppError::Unauthorized(
                "missing API key: send `Authorization: Bearer <key>`".to_owned(),
            ));
        };
        let token = bearer_value(value).ok_or_else(|| {
            AppError::Unauthorized(
                "malformed Authorization header: expected `Bearer <key>`".to_owned(),
            )
        })?;
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Look at every digest whatever matches, so timing reveals nothing.
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, digest) in self.digests.iter().enumerate() {
            let equal = digest.ct_eq(&presented);
            index.conditional_assign(&(i as u64), equal);
            found |= equal;
        }
        if bool::from(found) {
            Ok(KeyId(index as usize))
        } else {
            Err(AppError::Unauthorized("invalid API key".to_owned()))
        }
    }
}

/// The key of an `Authorization: Bearer <key>` header, if well-formed.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    bearer_value(headers.get(header::AUTHORIZATION)?)
}

fn bearer_value(value: &axum::http::HeaderValue) -> Option<&str> {
    value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn keys() -> ApiKeys {
        ApiKeys::new(&KeyDigests(vec![
            KeyDigests::digest("alpha"),
            KeyDigests::digest("beta"),
        ]))
    }

    fn auth(keys: &ApiKeys, value: Option<&str>) -> Result<KeyId, String> {
        let mut headers = HeaderMap::new();
        if let Some(v) = value {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        keys.authenticate(&headers).map_err(|e| e.to_string())
    }

    #[test]
    fn each_key_is_told_apart() {
        let k = keys();
        assert_eq!(auth(&k, Some("Bearer alpha")), Ok(KeyId(0)));
        assert_eq!(auth(&k, Some("Bearer beta")), Ok(KeyId(1)));
    }

    #[test]
    fn refusals_say_why() {
        let k = keys();
        assert!(auth(&k, None).unwrap_err().contains("missing API key"));
        assert!(
            auth(&k, Some("Basic YWxwaGE="))
                .unwrap_err()
                .contains("malformed")
        );
        assert!(auth(&k, Some("Bearer ")).unwrap_err().contains("malformed"));
        assert_eq!(
            auth(&k, Some("Bearer gamma")).unwrap_err(),
            "invalid API key"
        );
    }

    #[test]
    fn no_keys_means_open() {
        let open = ApiKeys::new(&KeyDigests::default());
        assert_eq!(auth(&open, None), Ok(KeyId(0)));
    }
}
