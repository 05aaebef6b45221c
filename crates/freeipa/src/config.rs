//! How to reach FreeIPA: server URL, account, password, CA, timeout.

use std::path::PathBuf;
use std::time::Duration;

/// The password's type: `Debug` prints `***`; there is no `Display` and no `Serialize`.
pub use mattersync_core::Secret;

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
