//! What can go wrong talking to FreeIPA.

/// FreeIPA's error numbers (`ipalib/errors.py`) that mattersync treats specially.
pub mod codes {
    /// `InvalidSessionPassword`: the session login failed.
    pub const INVALID_SESSION_PASSWORD: i64 = 1201;
    /// `ACIError`: the account may not do this.
    pub const ACI_ERROR: i64 = 2100;
    /// `ValidationError`: an option value was refused.
    pub const VALIDATION_ERROR: i64 = 3009;
    /// `NotFound`: no such entry (e.g. the group).
    pub const NOT_FOUND: i64 = 4001;
    /// `DuplicateEntry`: it exists already (e.g. `group_add` of an existing group).
    pub const DUPLICATE_ENTRY: i64 = 4002;
    /// `NotGroupMember`.
    pub const NOT_GROUP_MEMBER: i64 = 4012;
    /// `AlreadyGroupMember`.
    pub const ALREADY_GROUP_MEMBER: i64 = 4014;
    /// `EmptyModlist`: the modification changes nothing ("already a FAS group").
    pub const EMPTY_MODLIST: i64 = 4202;
}

/// A FreeIPA call failed.
#[derive(Debug, thiserror::Error)]
pub enum IpaError {
    /// The configuration is unusable (found before any network traffic).
    #[error("FreeIPA configuration: {0}")]
    Config(String),

    /// The request could not be sent or its answer not received.
    #[error("FreeIPA {what} at {url} failed: {}{}", causes(source), if *.maybe_done {
        "; the server may or may not have acted on it"
    } else { "" })]
    Transport {
        what: String,
        url: String,
        /// The request may have reached the server (a timeout or a connection lost after
        /// sending), so a write may have happened.
        maybe_done: bool,
        #[source]
        source: reqwest::Error,
    },

    /// `/ipa/session/login_password` refused the account.
    #[error("FreeIPA login as {user} failed: HTTP {status}{}{hint}", .reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
    Login {
        user: String,
        status: u16,
        /// `X-IPA-Rejection-Reason` (`invalid-password`, `password-expired`, …).
        reason: Option<String>,
        hint: &'static str,
    },

    /// An HTTP status other than 200 for a JSON-RPC call.
    #[error("FreeIPA {method}: HTTP {status}{detail}")]
    Status {
        method: String,
        status: u16,
        detail: String,
    },

    /// The answer is not what the JSON-RPC API documents.
    #[error("FreeIPA {method}: unexpected answer: {detail}")]
    Decode { method: String, detail: String },

    /// The server ran the command and answered with an error object.
    #[error("FreeIPA {method}: {message} ({name} {code})")]
    Api {
        method: String,
        code: i64,
        name: String,
        message: String,
    },
}

/// An error and its causes, outermost first, without repeats: reqwest's own message
/// ("error sending request") says nothing of why (an unknown CA, a refused connection).
fn causes(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    parts.join(": ")
}

impl IpaError {
    /// The FreeIPA error number, when the server sent an error object.
    pub fn code(&self) -> Option<i64> {
        match self {
            IpaError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(codes::NOT_FOUND)
    }

    pub fn is_duplicate(&self) -> bool {
        self.code() == Some(codes::DUPLICATE_ENTRY)
    }

    pub fn is_empty_modlist(&self) -> bool {
        self.code() == Some(codes::EMPTY_MODLIST)
    }

    /// Whether a write may have happened although this error came back: the request left
    /// but no usable answer arrived (a timeout, a connection lost after sending, a server
    /// error page). Every other error means the server did not act on the request.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            IpaError::Transport { maybe_done, .. } => *maybe_done,
            IpaError::Status { status, .. } => *status >= 500,
            IpaError::Decode { .. } => true,
            _ => false,
        }
    }
}
