//! What can go wrong talking to the directory. Every variant means "no answer": the caller
//! must not act on a partial view (fail closed).

use std::path::PathBuf;

use ldap3::LdapError;

/// A directory operation failed; nothing was read that the caller may use.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The configuration is unusable (found before any network traffic).
    #[error("directory configuration: {0}")]
    Config(String),

    #[error("cannot read the {what} file {}: {source}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// TCP connect failed or timed out.
    #[error("cannot connect to the directory at {uri}: {source}; is it running and reachable?")]
    Connect {
        uri: String,
        #[source]
        source: Box<LdapError>,
    },

    /// The TLS handshake (ldaps:// or StartTLS) failed, e.g. an untrusted certificate.
    #[error("TLS with the directory at {uri} failed: {source}{hint}")]
    Tls {
        uri: String,
        hint: &'static str,
        #[source]
        source: Box<LdapError>,
    },

    /// The server refused the bind.
    #[error("bind to {uri} as {who} failed: {reason} (code {rc}){detail}{hint}")]
    Bind {
        uri: String,
        who: String,
        rc: u32,
        reason: &'static str,
        detail: String,
        hint: &'static str,
    },

    /// The server answered an operation with a result code other than success.
    #[error("directory {op} failed: {reason} (code {rc}){detail}{hint}; nothing was changed")]
    Operation {
        /// e.g. `search under cn=groups,cn=accounts,dc=rockylinux,dc=org for (cn=mm_*)`.
        op: String,
        rc: u32,
        reason: &'static str,
        /// The server's diagnostic message, as `: <text>`, or empty.
        detail: String,
        hint: &'static str,
    },

    /// The server sent a referral (continuation reference or result code 10). mattersync does
    /// not chase referrals: a view assembled from several servers could be partial.
    #[error(
        "directory {op} returned a referral to {refs}; mattersync does not follow referrals \
         (point uri at the server that holds the data); nothing was changed"
    )]
    Referral { op: String, refs: String },

    /// No answer within `timeout_secs`.
    #[error("directory {op} timed out after {secs} s (timeout_secs); nothing was changed")]
    Timeout {
        op: String,
        secs: u64,
        #[source]
        source: Box<LdapError>,
    },

    /// The connection broke during an operation.
    #[error("connection to {uri} lost during {op}: {source}; nothing was changed")]
    ConnectionLost {
        uri: String,
        op: String,
        #[source]
        source: Box<LdapError>,
    },

    /// The server's answer could not be understood.
    #[error("directory {op}: unexpected response: {detail}; nothing was changed")]
    Protocol { op: String, detail: String },

    /// The data read does not make a consistent snapshot (two groups with one name, a group
    /// without a stable id, a base the bind cannot see, ...).
    #[error("{0}; nothing was changed")]
    Inconsistent(String),
}

impl DirectoryError {
    /// The LDAP result code, when the server sent one.
    pub fn result_code(&self) -> Option<u32> {
        match self {
            DirectoryError::Bind { rc, .. } | DirectoryError::Operation { rc, .. } => Some(*rc),
            DirectoryError::Referral { .. } => Some(10),
            _ => None,
        }
    }
}

/// RFC 4511 appendix A names for result codes, in words.
pub fn result_code_name(rc: u32) -> &'static str {
    match rc {
        0 => "success",
        1 => "operations error",
        2 => "protocol error",
        3 => "time limit exceeded",
        4 => "size limit exceeded",
        7 => "authentication method not supported",
        8 => "stronger authentication required",
        10 => "referral",
        11 => "administrative limit exceeded",
        12 => "unavailable critical extension",
        13 => "confidentiality required",
        14 => "SASL bind in progress",
        16 => "no such attribute",
        17 => "undefined attribute type",
        18 => "inappropriate matching",
        19 => "constraint violation",
        20 => "attribute or value exists",
        21 => "invalid attribute syntax",
        32 => "no such object",
        33 => "alias problem",
        34 => "invalid DN syntax",
        36 => "alias dereferencing problem",
        48 => "inappropriate authentication",
        49 => "invalid credentials",
        50 => "insufficient access rights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwilling to perform",
        54 => "loop detect",
        64 => "naming violation",
        65 => "object class violation",
        66 => "not allowed on non-leaf",
        67 => "not allowed on RDN",
        68 => "entry already exists",
        69 => "object class modifications prohibited",
        71 => "affects multiple DSAs",
        80 => "other",
        _ => "unknown result code",
    }
}

/// What a person can do about a result code, as `; <advice>` or empty.
pub(crate) fn result_code_hint(rc: u32) -> &'static str {
    match rc {
        3 => "; the server's time limit for this bind was reached: raise it (nsTimeLimit) or timeout_secs",
        4 => "; the search matched more entries than allowed: raise the size limit for the bind account (nsSizeLimit / nsPagedSizeLimit) or size_limit",
        11 => "; the server's administrative limit was reached (e.g. nsslapd-lookthroughlimit / nsLookThroughLimit): raise it for the bind account",
        8 | 13 => "; the server requires TLS: use ldaps:// or starttls = true",
        32 => "; check base_dn, user_base and group_base",
        48 | 49 => "; check bind_dn and the bind password",
        50 => "; the bind account may not read this: grant it read access (ACI)",
        51 | 52 => "; the server is busy or shutting down: retry later",
        53 => "; the server refuses this (e.g. anonymous access disabled, or an unauthenticated bind with an empty password)",
        _ => "",
    }
}
