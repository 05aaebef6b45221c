//! A secret string: a password, an access token.
//!
//! Its `Debug` prints `***`; it has no `Display` and no `Serialize`, so it cannot end up in a
//! log line or a JSON dump by accident. The value is only reachable through
//! [`Secret::expose`], and it is overwritten with zeros when the `Secret` is dropped.
//!
//! It can be deserialized (a TOML `bind_password = "…"` reads straight into one).

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use zeroize::Zeroize;

/// A secret string (a bind password, an access token). See the [module docs](self).
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// Reads a secret from a file, trimming surrounding white space (a trailing newline).
    ///
    /// The one function of this crate that does I/O; nothing in the crate calls it.
    pub fn from_file(path: &Path) -> std::io::Result<Secret> {
        let mut raw = std::fs::read_to_string(path)?;
        let secret = Secret(raw.trim().to_string());
        raw.zeroize();
        Ok(secret)
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2-very-secret");
        let dbg = format!("{s:?} {:?} {:#?}", Some(&s), vec![s.clone()]);
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("***"), "{dbg}");
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn debug_of_a_struct_holding_one_shows_no_value() {
        #[derive(Debug)]
        #[allow(dead_code)] // only read through Debug
        struct Config {
            user: String,
            password: Secret,
        }
        let c = Config {
            user: "admin".into(),
            password: "s3cr3t-token-value".into(),
        };
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        assert!(dbg.contains("admin") && dbg.contains("***"), "{dbg}");
    }

    #[test]
    fn deserializes_from_a_plain_string() {
        #[derive(Deserialize)]
        struct Config {
            password: Secret,
        }
        let c: Config = serde_json::from_str(r#"{"password": "s3cret"}"#).expect("parses");
        assert_eq!(c.password.expose(), "s3cret");
        assert!(!format!("{:?}", c.password).contains("s3cret"));
    }

    #[test]
    fn conversions_emptiness_and_equality() {
        assert!(Secret::default().is_empty());
        assert!(Secret::new("").is_empty());
        assert!(!Secret::from("x").is_empty());
        assert_eq!(Secret::from("abc"), Secret::from(String::from("abc")));
        assert_ne!(Secret::new("abc"), Secret::new("abd"));
    }

    #[test]
    fn from_file_trims_the_newline() {
        let dir =
            std::env::temp_dir().join(format!("mattersync-core-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("token");
        std::fs::write(&path, "  abc123\n").expect("write");
        let s = Secret::from_file(&path).expect("read");
        assert_eq!(s.expose(), "abc123");
        assert!(Secret::from_file(&dir.join("missing")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
