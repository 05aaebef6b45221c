//! A scripted stand-in for a FreeIPA server, for tests (feature `fake`): plain HTTP on
//! 127.0.0.1, answers requests in order from a script of canned answers and records every
//! request it receives: for the faults a live server does not produce on demand (malformed
//! answers, scripted sequences). Canned answers in `tests/fixtures/` are recorded from the
//! live FreeIPA test server (`scripts/freeipa.sh`).

// Test support, never part of a product build (only the tests turn on `fake`): it may
// unwrap, expect and panic like the tests that use it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One canned answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// A successful `login_password`: sets the session cookie (without `Secure`, because
    /// this stand-in speaks plain HTTP; FreeIPA's own cookie is `Secure`).
    pub fn login_ok() -> Answer {
        Answer {
            status: 200,
            headers: vec![(
                "Set-Cookie".into(),
                "ipa_session=MagBearerToken=fake-session-1; path=/ipa; httponly".into(),
            )],
            body: String::new(),
        }
    }

    /// A refused `login_password`, as FreeIPA sends it.
    pub fn login_refused(reason: &str) -> Answer {
        Answer {
            status: 401,
            headers: vec![("X-IPA-Rejection-Reason".into(), reason.into())],
            body: "Unauthorized".into(),
        }
    }

    /// A JSON-RPC answer with HTTP 200.
    pub fn json(v: &Value) -> Answer {
        Answer {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: v.to_string(),
        }
    }

    /// An expired session: HTTP 401 to a JSON-RPC call.
    pub fn unauthorized() -> Answer {
        Answer {
            status: 401,
            headers: Vec::new(),
            body: String::new(),
        }
    }
}

/// A request the stand-in received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names lowercased.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Request {
    /// The body as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// The stand-in server. Dropping it stops it.
pub struct FakeIpa {
    url: String,
    script: Arc<Mutex<VecDeque<Answer>>>,
    log: Arc<Mutex<Vec<Request>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeIpa {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeIpa {
    /// Starts on a free port; answers requests with `script`, in order, then with HTTP 500
    /// "unexpected request".
    pub async fn start(script: Vec<Answer>) -> std::io::Result<FakeIpa> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (s, l) = (script.clone(), log.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (s, l) = (s.clone(), l.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, s, l).await;
                });
            }
        });
        Ok(FakeIpa {
            url,
            script,
            log,
            task,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The JSON bodies of the JSON-RPC calls received so far (login excluded).
    pub fn calls(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/ipa/session/json")
            .map(|r| r.json())
            .collect()
    }

    /// How many canned answers are left.
    pub fn remaining(&self) -> usize {
        self.script.lock().map(|s| s.len()).unwrap_or(0)
    }
}

async fn serve(
    mut stream: TcpStream,
    script: Arc<Mutex<VecDeque<Answer>>>,
    log: Arc<Mutex<Vec<Request>>>,
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // Read one request: headers up to a blank line, then Content-Length bytes.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_string();
        let path = first.next().unwrap_or("").to_string();
        let headers: BTreeMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned();
        buf.drain(..head_end + len);
        if let Ok(mut l) = log.lock() {
            l.push(Request {
                method,
                path,
                headers,
                body,
            });
        }
        let answer = script
            .lock()
            .ok()
            .and_then(|mut s| s.pop_front())
            .unwrap_or(Answer {
                status: 500,
                headers: Vec::new(),
                body: "unexpected request: the script has no answer left".into(),
            });
        let mut out = format!("HTTP/1.1 {} X\r\n", answer.status);
        for (k, v) in &answer.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", answer.body.len()));
        out.push_str(&answer.body);
        stream.write_all(out.as_bytes()).await?;
    }
}
