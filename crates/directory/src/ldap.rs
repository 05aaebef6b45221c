//! The LDAP connection: connect, bind, fail-closed paged searches, entry parsing.

use std::collections::HashMap;
use std::sync::Arc;

use ldap3::asn1::parse_tag;
use ldap3::controls::{PagedResults, RawControl};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult, Scope, SearchOptions};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tracing::{debug, info, warn};

use crate::config::{is_loopback_host, uri_host, uri_scheme, LdapConfig, Secret};
use crate::dn::Dn;
use crate::error::{result_code_hint, result_code_name, DirectoryError};

const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";
const MAX_EMPTY_PAGES: u32 = 100;

/// An open, bound connection to the directory. Operations take `&mut self`: one at a time.
/// After a timeout or a lost connection every further call fails; connect again.
pub struct LdapDirectory {
    pub(crate) cfg: LdapConfig,
    ldap: Ldap,
    driver: tokio::task::JoinHandle<()>,
    pub(crate) user_base: Dn,
    pub(crate) group_base: Dn,
    /// Set when the connection can no longer be trusted (timeout, drop, garbage).
    broken: Option<String>,
}

impl std::fmt::Debug for LdapDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapDirectory")
            .field("uri", &self.cfg.uri)
            .field("bind_dn", &self.cfg.bind_dn)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Drop for LdapDirectory {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// One search result entry, attribute names lowercased.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub dn: Dn,
    attrs: HashMap<String, Vec<Vec<u8>>>,
}

impl Entry {
    pub fn values(&self, attr: &str) -> &[Vec<u8>] {
        self.attrs
            .get(&attr.to_ascii_lowercase())
            .map_or(&[], |v| v.as_slice())
    }

    /// The values as UTF-8 strings; a value that is not UTF-8 is an error (the attributes
    /// mattersync reads are all strings).
    pub fn strings(&self, attr: &str) -> Result<Vec<String>, DirectoryError> {
        self.values(attr)
            .iter()
            .map(|v| {
                String::from_utf8(v.clone()).map_err(|_| DirectoryError::Protocol {
                    op: format!("read of {}", self.dn),
                    detail: format!("attribute {attr} has a value that is not UTF-8"),
                })
            })
            .collect()
    }

    pub fn first(&self, attr: &str) -> Result<Option<String>, DirectoryError> {
        Ok(self.strings(attr)?.into_iter().find(|v| !v.is_empty()))
    }

    /// The values of a DN-valued attribute, parsed.
    pub fn dns(&self, attr: &str) -> Result<Vec<Dn>, DirectoryError> {
        self.strings(attr)?
            .iter()
            .map(|s| {
                Dn::parse(s).map_err(|e| DirectoryError::Protocol {
                    op: format!("read of {}", self.dn),
                    detail: format!("attribute {attr}: {e}"),
                })
            })
            .collect()
    }

    #[cfg(test)]
    pub fn for_test(dn: &str, attrs: &[(&str, &[&str])]) -> Entry {
        let dn = match Dn::parse(dn) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let mut map: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
        for (a, vs) in attrs {
            map.entry(a.to_ascii_lowercase())
                .or_default()
                .extend(vs.iter().map(|v| v.as_bytes().to_vec()));
        }
        Entry { dn, attrs: map }
    }
}

impl LdapDirectory {
    /// Connect and bind (simple bind with `bind_dn`, anonymous without). TLS for `ldaps://`
    /// and `starttls`, trusting `ca_file` (or the system store). Fails on anything short of a
    /// successful bind.
    pub async fn connect(cfg: &LdapConfig) -> Result<LdapDirectory, DirectoryError> {
        cfg.validate()?;
        let password = resolve_password(cfg)?;
        let user_base = parse_config_dn("user_base", &cfg.user_base())?;
        let group_base = parse_config_dn("group_base", &cfg.group_base())?;
        let scheme = uri_scheme(&cfg.uri).unwrap_or_default();
        let host = uri_host(&cfg.uri).unwrap_or_default();
        let tls = scheme == "ldaps" || cfg.starttls;
        let timeout = cfg.timeout();

        let mut settings = LdapConnSettings::new().set_conn_timeout(timeout);
        if tls {
            if cfg.insecure {
                warn!(
                    uri = %cfg.uri,
                    "TLS CERTIFICATE VERIFICATION IS DISABLED (insecure = true): anyone on the \
                     network path can impersonate the directory and read the bind password; \
                     set ca_file instead"
                );
            }
            settings = settings
                .set_config(tls_config(cfg)?)
                .set_starttls(cfg.starttls)
                .set_no_tls_verify(cfg.insecure);
        } else {
            if cfg.insecure {
                warn!(uri = %cfg.uri, "insecure = true has no effect without TLS");
            }
            if scheme == "ldap" && !is_loopback_host(&host) {
                warn!(
                    uri = %cfg.uri,
                    "plain ldap:// to a host that is not loopback: the bind password and the \
                     directory data cross the network unencrypted; use ldaps:// or starttls = true"
                );
            }
        }

        let (conn, ldap) = match LdapConnAsync::with_settings(settings, &cfg.uri).await {
            Ok(pair) => pair,
            Err(e) => return Err(connect_error(cfg, e)),
        };
        let driver = tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                debug!(error = %e, "LDAP connection ended with an error");
            }
        });
        let mut dir = LdapDirectory {
            cfg: cfg.clone(),
            ldap,
            driver,
            user_base,
            group_base,
            broken: None,
        };

        match (&cfg.bind_dn, password) {
            (Some(bind_dn), Some(pw)) => {
                if pw.expose().is_empty() {
                    return Err(DirectoryError::Config(
                        "the bind password is empty: an empty password makes an unauthenticated \
                         bind, which servers treat as anonymous"
                            .into(),
                    ));
                }
                dir.ldap.with_timeout(timeout);
                let res = dir.ldap.simple_bind(bind_dn, pw.expose()).await;
                match res {
                    Ok(r) if r.rc == 0 => {}
                    Ok(r) => return Err(bind_error(cfg, bind_dn, r)),
                    Err(LdapError::LdapResult { result }) => {
                        return Err(bind_error(cfg, bind_dn, result))
                    }
                    Err(e) => return Err(dir.op_error(&format!("bind as {bind_dn}"), e)),
                }
                info!(uri = %cfg.uri, bind_dn = %bind_dn, tls, "connected to the directory");
            }
            (Some(_), None) => {
                return Err(DirectoryError::Config(
                    "bind_dn is set but there is no bind password".into(),
                ))
            }
            (None, _) => {
                info!(uri = %cfg.uri, tls, "connected to the directory anonymously");
            }
        }
        Ok(dir)
    }

    /// Close the connection politely.
    pub async fn unbind(mut self) {
        if self.broken.is_none() {
            if let Err(e) = self.ldap.unbind().await {
                debug!(error = %e, "unbind failed");
            }
        }
    }

    pub(crate) fn config(&self) -> &LdapConfig {
        &self.cfg
    }

    /// The ldap3 handle, for the change-notification session (`syncrepl.rs`).
    pub(crate) fn handle(&mut self) -> &mut Ldap {
        &mut self.ldap
    }

    fn who(&self) -> String {
        self.cfg
            .bind_dn
            .clone()
            .unwrap_or_else(|| "anonymous".to_string())
    }

    /// Turn an ldap3 error during `op` into a `DirectoryError`; connection-level failures
    /// mark the connection broken.
    pub(crate) fn op_error(&mut self, op: &str, e: LdapError) -> DirectoryError {
        let err = match e {
            LdapError::LdapResult { result } => result_error(op, &result),
            e @ LdapError::Timeout { .. } => DirectoryError::Timeout {
                op: op.to_string(),
                secs: self.cfg.timeout_secs,
                source: Box::new(e),
            },
            e @ (LdapError::Io { .. }
            | LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::IdScrubSend { .. }
            | LdapError::MiscSend { .. }
            | LdapError::EndOfStream) => DirectoryError::ConnectionLost {
                uri: self.cfg.uri.clone(),
                op: op.to_string(),
                source: Box::new(e),
            },
            LdapError::FilterParsing => {
                DirectoryError::Config(format!("{op}: the filter is not a valid RFC 4515 filter"))
            }
            e => DirectoryError::Protocol {
                op: op.to_string(),
                detail: e.to_string(),
            },
        };
        if matches!(
            err,
            DirectoryError::Timeout { .. }
                | DirectoryError::ConnectionLost { .. }
                | DirectoryError::Protocol { .. }
        ) {
            self.broken = Some(err.to_string());
        }
        err
    }

    /// Every entry a search returns, all pages, or an error. Never part of the answer: a
    /// result code other than success on any page, a referral, a timeout or a dropped
    /// connection fails the whole search.
    pub(crate) async fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[String],
        paged: bool,
    ) -> Result<Vec<Entry>, DirectoryError> {
        let mut out = Vec::new();
        self.search_each(base, scope, filter, attrs, paged, |e| {
            out.push(e);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// As [`Self::search`], handing each entry to `each` as it arrives instead of collecting
    /// them (a large user search then needs memory only for what the caller keeps). Entries
    /// handed over before an error are part of a failed search: the caller must drop them
    /// with the error.
    pub(crate) async fn search_each(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[String],
        paged: bool,
        mut each: impl FnMut(Entry) -> Result<(), DirectoryError>,
    ) -> Result<usize, DirectoryError> {
        let op = format!("search under {base} for {filter}");
        if let Some(why) = &self.broken {
            return Err(DirectoryError::ConnectionLost {
                uri: self.cfg.uri.clone(),
                op,
                source: Box::new(LdapError::AdapterInit(format!(
                    "the connection failed earlier ({why}); connect again"
                ))),
            });
        }
        let timeout = self.cfg.timeout();
        let timelimit = i32::try_from(self.cfg.timeout_secs).unwrap_or(i32::MAX);
        let sizelimit = i32::try_from(self.cfg.size_limit).unwrap_or(i32::MAX);
        let page_size = i32::try_from(self.cfg.page_size).unwrap_or(i32::MAX);
        let mut count = 0usize;
        let mut cookie: Vec<u8> = Vec::new();
        let mut empty_pages = 0u32;
        let mut pages = 0u32;
        loop {
            pages += 1;
            let opts = SearchOptions::new()
                .sizelimit(sizelimit)
                .timelimit(timelimit);
            self.ldap.with_search_options(opts).with_timeout(timeout);
            if paged {
                let ctrl: RawControl = PagedResults {
                    size: page_size,
                    cookie: std::mem::take(&mut cookie),
                }
                .into();
                self.ldap.with_controls(vec![ctrl]);
            }
            let before = count;
            let started = self
                .ldap
                .streaming_search(base, scope, filter, attrs.to_vec())
                .await;
            let mut stream = match started {
                Ok(s) => s,
                Err(e) => return Err(self.op_error(&op, e)),
            };
            let mut refs: Vec<String> = Vec::new();
            loop {
                match stream.next().await {
                    Ok(Some(re)) => {
                        if re.is_ref() {
                            refs.extend(parse_refs(re.0));
                        } else if re.is_intermediate() {
                            continue;
                        } else {
                            match parse_entry(re.0) {
                                Ok(e) => {
                                    count += 1;
                                    each(e)?;
                                }
                                Err(detail) => {
                                    let err = DirectoryError::Protocol {
                                        op: op.clone(),
                                        detail,
                                    };
                                    self.broken = Some(err.to_string());
                                    return Err(err);
                                }
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return Err(self.op_error(&op, e)),
                }
            }
            let res = stream.finish().await;
            if !refs.is_empty() || res.rc == 10 || !res.refs.is_empty() {
                refs.extend(res.refs.iter().cloned());
                return Err(DirectoryError::Referral {
                    op,
                    refs: if refs.is_empty() {
                        "another server".to_string()
                    } else {
                        refs.join(", ")
                    },
                });
            }
            if res.rc != 0 {
                return Err(result_error(&op, &res));
            }
            // With paging, the server applies the request's size limit to each page (each is a
            // separate operation), so count the whole result here.
            if self.cfg.size_limit > 0 && count > self.cfg.size_limit as usize {
                return Err(DirectoryError::Operation {
                    op,
                    rc: 4,
                    reason: result_code_name(4),
                    detail: format!(
                        ": more than size_limit = {} entries (counted by mattersync)",
                        self.cfg.size_limit
                    ),
                    hint: "; raise size_limit",
                });
            }
            if !paged {
                break;
            }
            match paged_cookie(&res) {
                Ok(Some(next)) if !next.is_empty() => {
                    // 389-ds reuses one cookie for every page, so only a run of empty pages
                    // tells a server that pages forever.
                    empty_pages = if count == before { empty_pages + 1 } else { 0 };
                    if empty_pages > MAX_EMPTY_PAGES {
                        let err = DirectoryError::Protocol {
                            op,
                            detail: format!(
                                "the server sent {empty_pages} empty pages in a row and still \
                                 offers more"
                            ),
                        };
                        self.broken = Some(err.to_string());
                        return Err(err);
                    }
                    cookie = next;
                }
                Ok(_) => break,
                Err(detail) => {
                    let err = DirectoryError::Protocol { op, detail };
                    self.broken = Some(err.to_string());
                    return Err(err);
                }
            }
        }
        debug!(base, filter, entries = count, pages, "search done");
        Ok(count)
    }

    /// Read one entry by DN (base-scope search). `None` when the server says there is no
    /// such entry (result code 32 for the entry itself); any other failure is an error.
    pub(crate) async fn read_entry(
        &mut self,
        dn: &Dn,
        attrs: &[String],
    ) -> Result<Option<Entry>, DirectoryError> {
        self.read_entry_matching(dn, "(objectClass=*)", attrs).await
    }

    /// One entry by DN if it matches `filter`; `None` when it does not, or does not exist.
    pub(crate) async fn read_entry_matching(
        &mut self,
        dn: &Dn,
        filter: &str,
        attrs: &[String],
    ) -> Result<Option<Entry>, DirectoryError> {
        let base = dn.to_string();
        match self.search(&base, Scope::Base, filter, attrs, false).await {
            Ok(mut entries) => Ok(entries.pop()),
            Err(DirectoryError::Operation { rc: 32, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Check that the bind can see `base`. An ACI that hides everything makes searches
    /// "succeed" with no entries, which would look like empty groups.
    pub(crate) async fn check_readable(
        &mut self,
        what: &str,
        base: &str,
    ) -> Result<(), DirectoryError> {
        let found = self
            .search(
                base,
                Scope::Base,
                "(objectClass=*)",
                &["1.1".to_string()],
                false,
            )
            .await?;
        if found.is_empty() {
            return Err(DirectoryError::Inconsistent(format!(
                "{what} {base} is not visible to {}: the bind account cannot read it (check \
                 bind_dn and the directory's access controls); an empty answer would look like \
                 empty groups",
                self.who()
            )));
        }
        Ok(())
    }
}

fn parse_config_dn(name: &str, dn: &str) -> Result<Dn, DirectoryError> {
    Dn::parse(dn).map_err(|e| DirectoryError::Config(format!("{name}: {e}")))
}

fn resolve_password(cfg: &LdapConfig) -> Result<Option<Secret>, DirectoryError> {
    if let Some(p) = &cfg.bind_password {
        return Ok(Some(p.clone()));
    }
    let Some(path) = &cfg.bind_password_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|source| DirectoryError::File {
        what: "bind password",
        path: path.clone(),
        source,
    })?;
    let pw = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    Ok(Some(Secret::new(pw)))
}

fn result_error(op: &str, res: &LdapResult) -> DirectoryError {
    DirectoryError::Operation {
        op: op.to_string(),
        rc: res.rc,
        reason: result_code_name(res.rc),
        detail: if res.text.trim().is_empty() {
            String::new()
        } else {
            format!(": {}", res.text.trim())
        },
        hint: result_code_hint(res.rc),
    }
}

fn bind_error(cfg: &LdapConfig, bind_dn: &str, res: LdapResult) -> DirectoryError {
    DirectoryError::Bind {
        uri: cfg.uri.clone(),
        who: bind_dn.to_string(),
        rc: res.rc,
        reason: result_code_name(res.rc),
        detail: if res.text.trim().is_empty() {
            String::new()
        } else {
            format!(": {}", res.text.trim())
        },
        hint: result_code_hint(res.rc),
    }
}

/// A connect failure: TLS problems get their own variant and advice.
fn connect_error(cfg: &LdapConfig, e: LdapError) -> DirectoryError {
    let uri = cfg.uri.clone();
    let tls = cfg.starttls || uri_scheme(&cfg.uri).as_deref() == Some("ldaps");
    let tls_hint = if cfg.ca_file.is_some() {
        "; check that ca_file holds the CA that issued the directory's certificate and that the \
         certificate names the host in uri"
    } else {
        "; set ca_file to the CA certificate that issued the directory's certificate"
    };
    match e {
        e @ LdapError::Rustls { .. } | e @ LdapError::DNSName { .. } => DirectoryError::Tls {
            uri,
            hint: tls_hint,
            source: Box::new(e),
        },
        LdapError::Io { source } if is_tls_io_error(&source) => DirectoryError::Tls {
            uri,
            hint: tls_hint,
            source: Box::new(LdapError::Io { source }),
        },
        LdapError::Io { source } if tls && source.kind() == std::io::ErrorKind::UnexpectedEof => {
            DirectoryError::Tls {
                uri,
                hint: "; the server closed the connection during the TLS handshake: does this \
                       port serve TLS (ldaps://) or StartTLS?",
                source: Box::new(LdapError::Io { source }),
            }
        }
        LdapError::LdapResult { result } => DirectoryError::Tls {
            uri: uri.clone(),
            hint: "; the server refused StartTLS: use ldaps:// or enable TLS on the server",
            source: Box::new(LdapError::LdapResult { result }),
        },
        e @ LdapError::Timeout { .. } => DirectoryError::Timeout {
            op: format!("connect to {uri}"),
            secs: cfg.timeout_secs,
            source: Box::new(e),
        },
        e @ (LdapError::UrlParsing { .. } | LdapError::UnknownScheme(_)) => {
            DirectoryError::Config(format!("uri {uri:?}: {e}"))
        }
        e => DirectoryError::Connect {
            uri,
            source: Box::new(e),
        },
    }
}

/// tokio-rustls reports handshake failures as `io::Error`s wrapping a `rustls::Error`.
fn is_tls_io_error(e: &std::io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
}

fn tls_config(cfg: &LdapConfig) -> Result<Arc<ClientConfig>, DirectoryError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| DirectoryError::Config(format!("TLS setup: {e}")))?;
    if cfg.insecure {
        return Ok(Arc::new(
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
                .with_no_client_auth(),
        ));
    }
    let mut roots = RootCertStore::empty();
    match &cfg.ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|source| DirectoryError::File {
                what: "ca_file",
                path: path.clone(),
                source,
            })?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    DirectoryError::Config(format!("ca_file {}: {e}", path.display()))
                })?;
                roots.add(cert).map_err(|e| {
                    DirectoryError::Config(format!("ca_file {}: {e}", path.display()))
                })?;
            }
            if roots.is_empty() {
                return Err(DirectoryError::Config(format!(
                    "ca_file {} holds no PEM certificate",
                    path.display()
                )));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                debug!(error = %e, "could not load a system CA certificate");
            }
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                return Err(DirectoryError::Config(
                    "no ca_file and no system CA certificates: set ca_file to the directory's CA"
                        .into(),
                ));
            }
        }
    }
    Ok(Arc::new(
        builder.with_root_certificates(roots).with_no_client_auth(),
    ))
}

/// `insecure = true`: accept any certificate (signatures are still checked, so the handshake
/// is with the holder of the presented key — whoever that is).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Parse a SearchResultEntry without panicking on a malformed one (ldap3's
/// `SearchEntry::construct` panics).
pub(crate) fn parse_entry(tag: ldap3::asn1::StructureTag) -> Result<Entry, String> {
    if tag.id != 4 {
        return Err(format!(
            "expected a search result entry, got protocol op {}",
            tag.id
        ));
    }
    let mut parts = tag
        .expect_constructed()
        .ok_or("search result entry is not constructed")?
        .into_iter();
    let dn_bytes = parts
        .next()
        .and_then(|t| t.expect_primitive())
        .ok_or("search result entry has no DN")?;
    let dn_text = String::from_utf8(dn_bytes).map_err(|_| "entry DN is not UTF-8".to_string())?;
    let dn = Dn::parse(&dn_text).map_err(|e| e.to_string())?;
    let attr_list = parts
        .next()
        .and_then(|t| t.expect_constructed())
        .ok_or_else(|| format!("entry {dn_text} has no attribute list"))?;
    let mut attrs: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    for pa in attr_list {
        let mut pa = pa
            .expect_constructed()
            .ok_or_else(|| format!("entry {dn_text}: malformed attribute"))?
            .into_iter();
        let name = pa
            .next()
            .and_then(|t| t.expect_primitive())
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| format!("entry {dn_text}: malformed attribute name"))?;
        let values = pa
            .next()
            .and_then(|t| t.expect_constructed())
            .ok_or_else(|| format!("entry {dn_text}: attribute {name} has no value set"))?;
        let lower = name.to_ascii_lowercase();
        if lower.contains(";range=") {
            return Err(format!(
                "entry {dn_text}: the server returned {name} in ranges (ranged retrieval), \
                 which mattersync does not support: a member list would be partial"
            ));
        }
        let slot = attrs.entry(lower).or_default();
        for v in values {
            let v = v.expect_primitive().ok_or_else(|| {
                format!("entry {dn_text}: attribute {name} has a malformed value")
            })?;
            slot.push(v);
        }
    }
    Ok(Entry { dn, attrs })
}

/// The URIs of a SearchResultReference, without panicking.
fn parse_refs(tag: ldap3::asn1::StructureTag) -> Vec<String> {
    tag.expect_constructed()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| t.expect_primitive())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect()
}

/// The cookie of a Paged Results response control (`None` when the server sent none).
fn paged_cookie(res: &LdapResult) -> Result<Option<Vec<u8>>, String> {
    let Some(ctrl) = res.ctrls.iter().find(|c| c.1.ctype == PAGED_RESULTS_OID) else {
        return Ok(None);
    };
    let Some(val) = &ctrl.1.val else {
        return Err("paged results control without a value".into());
    };
    let (_, tag) = parse_tag(val).map_err(|_| "malformed paged results control".to_string())?;
    let cookie = tag
        .expect_constructed()
        .and_then(|parts| parts.into_iter().nth(1))
        .and_then(|t| t.expect_primitive())
        .ok_or("malformed paged results control")?;
    Ok(Some(cookie))
}
