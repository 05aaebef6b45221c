//! How to reach FreeIPA: server URL, account, password, CA, timeout.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A password. `Debug` prints `***`; there is no `Display` and no `Serialize`, so it cannot
/// end up in a log line or a JSON dump by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that sends it (the login form).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Everything [`crate::IpaClient::new`] needs.
#[derive(Debug, Clone)]
pub struct IpaConfig {
    /// The server, e.g. `https://ipa.rockylinux.org` (a trailing `/ipa` is accepted).
    pub url: String,
    /// The account that logs in (e.g. a dedicated `mattersync-admin` with the group
    /// administration privileges).
    pub user: String,
    pub password: Secret,
    /// PEM file with the CA certificate(s) to trust (FreeIPA's own CA, `/etc/ipa/ca.crt`);
    /// default: the system's trust store.
    pub ca_file: Option<PathBuf>,
    /// Time limit for each HTTP request.
    pub timeout: Duration,
    /// The API version to send (`"2.251"` …). `None` sends none, as the JSON-RPC guide's own
    /// examples do: the server then uses its own version (and answers with a
    /// `VersionMissing` warning that is logged at debug level). Pinning a version makes an
    /// older server refuse every call.
    pub api_version: Option<String>,
}

impl IpaConfig {
    pub fn new(url: impl Into<String>, user: impl Into<String>, password: Secret) -> IpaConfig {
        IpaConfig {
            url: url.into(),
            user: user.into(),
            password,
            ca_file: None,
            timeout: Duration::from_secs(30),
            api_version: None,
        }
    }
}
