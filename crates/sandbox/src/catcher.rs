//! Stand-ins for where offboard's notifications go (DESIGN.md §13): a
//! [`MailCatcher`] that speaks just enough SMTP (EHLO, AUTH, MAIL, RCPT, DATA,
//! RSET, NOOP, QUIT; no STARTTLS) to receive what an SMTP client sends, and a
//! [`HookCatcher`] that receives HTTP POSTs. Both listen on loopback, keep what
//! arrived for the caller to read, and can be told to fail the next deliveries
//! (a 4xx/5xx answer, or a dropped connection) so retries can be shown and
//! tested. `offboard demo` prints what they caught; the tests assert on it.
//!
//! They are deliberately small and strict about nothing: they record, they do
//! not judge (signature checks and header checks are the caller's).

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use base64::Engine;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// How the next delivery is made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatcherFault {
    /// Answer with this status (HTTP), or a `451` temporary failure after DATA
    /// (SMTP; the code is ignored).
    Status(u16),
    /// Close the connection without answering (HTTP: after reading the request;
    /// SMTP: right after the greeting).
    Drop,
}

impl<T> Default for Caught<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            faults: VecDeque::new(),
            failed: 0,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One e-mail as the SMTP server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaughtMail {
    /// `MAIL FROM` (without the angle brackets).
    pub from: String,
    /// Every `RCPT TO`, in order.
    pub to: Vec<String>,
    /// The user name of `AUTH PLAIN`/`AUTH LOGIN`, if the client authenticated.
    pub auth_user: Option<String>,
    /// The message as sent after DATA (dot-unstuffed, CRLF line ends).
    pub data: String,
}

impl CaughtMail {
    /// A header of the message (the first with this name, unfolded, with RFC 2047
    /// `=?utf-8?b?…?=` words decoded), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        header_in(split_head(&self.data).0, name).map(|v| decode_words(&v))
    }

    /// The decoded bodies of the message's parts whose `Content-Type` starts
    /// with `mime` (`text/plain`, `text/html`), in order; the whole body when the
    /// message is not multipart.
    pub fn parts(&self, mime: &str) -> Vec<String> {
        let (head, body) = split_head(&self.data);
        let content_type = header_in(head, "content-type").unwrap_or_default();
        match boundary_of(&content_type) {
            None if content_type.to_lowercase().starts_with(mime) || content_type.is_empty() => {
                vec![decode(head, body)]
            }
            None => Vec::new(),
            Some(boundary) => {
                let delimiter = format!("--{boundary}");
                body.split(delimiter.as_str())
                    .skip(1)
                    .filter(|p| !p.starts_with("--"))
                    .filter_map(|part| {
                        let part = part.strip_prefix("\r\n").unwrap_or(part);
                        let (h, b) = split_head(part);
                        let ct = header_in(h, "content-type").unwrap_or_default();
                        ct.to_lowercase().starts_with(mime).then(|| decode(h, b))
                    })
                    .collect()
            }
        }
    }
}

/// Decodes base64 encoded-words (`=?charset?b?…?=`, what `lettre` writes for
/// non-ASCII header text); other text is kept as it is.
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    for (i, word) in value.split(' ').enumerate() {
        let decoded = word
            .strip_prefix("=?")
            .and_then(|w| w.strip_suffix("?="))
            .and_then(|w| {
                let mut parts = w.splitn(3, '?');
                let (_charset, enc, text) = (parts.next()?, parts.next()?, parts.next()?);
                enc.eq_ignore_ascii_case("b").then_some(text)
            })
            .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        if i > 0 && decoded.is_none() {
            out.push(' ');
        }
        out.push_str(decoded.as_deref().unwrap_or(word));
    }
    out
}

fn split_head(text: &str) -> (&str, &str) {
    match text.find("\r\n\r\n") {
        Some(i) => (&text[..i], &text[i + 4..]),
        None => (text, ""),
    }
}

fn header_in(head: &str, name: &str) -> Option<String> {
    let mut lines = head.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case(name) {
            let mut value = value.trim().to_owned();
            while let Some(next) = lines.peek().filter(|l| l.starts_with([' ', '\t'])) {
                value.push(' ');
                value.push_str(next.trim());
                lines.next();
            }
            return Some(value);
        }
    }
    None
}

fn boundary_of(content_type: &str) -> Option<String> {
    let lower = content_type.to_lowercase();
    let i = lower.find("boundary=")?;
    let rest = &content_type[i + "boundary=".len()..];
    let rest = rest.trim_start_matches('"');
    Some(
        rest.split(['"', ';'])
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
    )
}

/// A part's body decoded by its `Content-Transfer-Encoding` (base64 or
/// quoted-printable; anything else as it is), trailing line ends trimmed.
fn decode(head: &str, body: &str) -> String {
    let encoding = header_in(head, "content-transfer-encoding")
        .unwrap_or_default()
        .to_lowercase();
    let text = match encoding.as_str() {
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        }
        "quoted-printable" => quoted_printable(body),
        _ => body.to_owned(),
    };
    text.trim_end_matches(['\r', '\n']).to_owned()
}

fn quoted_printable(body: &str) -> String {
    let bytes = body.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' if bytes.get(i + 1..i + 3) == Some(b"\r\n") => i += 3,
            b'=' if bytes.get(i + 1) == Some(&b'\n') => i += 2,
            b'=' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3).unwrap_or_default())
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'=');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug)]
struct Caught<T> {
    items: Vec<T>,
    faults: VecDeque<CatcherFault>,
    /// Connections or requests that were failed on purpose.
    failed: usize,
}

/// A loopback SMTP server that keeps every message it accepts.
#[derive(Debug)]
pub struct MailCatcher {
    addr: SocketAddr,
    caught: Arc<Mutex<Caught<CaughtMail>>>,
    task: JoinHandle<()>,
}

impl MailCatcher {
    /// Listens on `127.0.0.1:0`.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let caught: Arc<Mutex<Caught<CaughtMail>>> = Arc::default();
        let shared = caught.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(smtp_session(stream, shared.clone()));
            }
        });
        Ok(Self { addr, caught, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smtp://127.0.0.1:PORT`, for `[notify.email] smtp_url`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Every message accepted so far, oldest first.
    pub fn messages(&self) -> Vec<CaughtMail> {
        lock(&self.caught).items.clone()
    }

    /// Fails the next connections, one fault each, in order.
    pub fn fail_next(&self, faults: &[CatcherFault]) {
        lock(&self.caught).faults.extend(faults.iter().copied());
    }

    /// How many deliveries were failed on purpose so far.
    pub fn failed(&self) -> usize {
        lock(&self.caught).failed
    }
}

impl Drop for MailCatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn smtp_session(stream: TcpStream, caught: Arc<Mutex<Caught<CaughtMail>>>) {
    let fault = {
        let mut c = lock(&caught);
        let f = c.faults.pop_front();
        if f.is_some() {
            c.failed += 1;
        }
        f
    };
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    if write.write_all(b"220 catcher ESMTP\r\n").await.is_err() {
        return;
    }
    if fault == Some(CatcherFault::Drop) {
        return;
    }
    let mut mail = CaughtMail {
        from: String::new(),
        to: Vec::new(),
        auth_user: None,
        data: String::new(),
    };
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_uppercase();
        let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            "250-catcher\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 OK\r\n".into()
        } else if upper.starts_with("AUTH PLAIN") {
            let arg = command.get(10..).unwrap_or_default().trim().to_owned();
            let arg = if arg.is_empty() {
                if write.write_all(b"334 \r\n").await.is_err() {
                    return;
                }
                let mut next = String::new();
                if lines.read_line(&mut next).await.is_err() {
                    return;
                }
                next.trim().to_owned()
            } else {
                arg
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(arg)
                .unwrap_or_default();
            let user = decoded
                .split(|b| *b == 0)
                .nth(1)
                .map(|u| String::from_utf8_lossy(u).into_owned());
            mail.auth_user = user;
            "235 2.7.0 accepted\r\n".into()
        } else if upper.starts_with("AUTH LOGIN") {
            let mut answers = Vec::new();
            for prompt in ["334 VXNlcm5hbWU6\r\n", "334 UGFzc3dvcmQ6\r\n"] {
                if write.write_all(prompt.as_bytes()).await.is_err() {
                    return;
                }
                let mut next = String::new();
                if lines.read_line(&mut next).await.is_err() {
                    return;
                }
                answers.push(next.trim().to_owned());
            }
            mail.auth_user = answers.first().and_then(|u| {
                base64::engine::general_purpose::STANDARD
                    .decode(u)
                    .ok()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
            });
            "235 2.7.0 accepted\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            mail.from = address(&command[10..]);
            mail.to.clear();
            "250 OK\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(address(&command[8..]));
            "250 OK\r\n".into()
        } else if upper == "DATA" {
            if write
                .write_all(b"354 end with <CRLF>.<CRLF>\r\n")
                .await
                .is_err()
            {
                return;
            }
            let mut data = String::new();
            loop {
                let mut l = String::new();
                match lines.read_line(&mut l).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if l == ".\r\n" || l == ".\n" {
                    break;
                }
                let l = l
                    .strip_prefix('.')
                    .filter(|_| l.starts_with(".."))
                    .unwrap_or(&l);
                data.push_str(l);
            }
            if let Some(CatcherFault::Status(_)) = fault {
                "451 4.3.0 try again later\r\n".into()
            } else {
                mail.data = data;
                lock(&caught).items.push(mail.clone());
                "250 OK queued\r\n".into()
            }
        } else if upper == "RSET" || upper == "NOOP" {
            "250 OK\r\n".into()
        } else if upper == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            "502 5.5.2 not implemented\r\n".into()
        };
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn address(arg: &str) -> String {
    let arg = arg.trim();
    let inner = arg
        .strip_prefix('<')
        .and_then(|a| a.split_once('>'))
        .map_or(arg, |(a, _)| a);
    inner
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// One HTTP request as the hook catcher received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaughtRequest {
    /// `POST`, …
    pub method: String,
    /// The request target (path and query).
    pub path: String,
    /// Every header, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Whether it was failed on purpose (not answered 2xx).
    pub failed: bool,
}

impl CaughtRequest {
    /// A header's value (the first with this name).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A loopback HTTP/1.1 server that answers every request `204` (unless told to
/// fail it) and keeps each one, answered or not.
#[derive(Debug)]
pub struct HookCatcher {
    addr: SocketAddr,
    caught: Arc<Mutex<Caught<CaughtRequest>>>,
    task: JoinHandle<()>,
}

impl HookCatcher {
    /// Listens on `127.0.0.1:0`.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::serve(listener)
    }

    /// Serves on an already bound listener (a test that must know the port
    /// before the catcher runs binds it first).
    pub fn serve(listener: TcpListener) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let caught: Arc<Mutex<Caught<CaughtRequest>>> = Arc::default();
        let shared = caught.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(http_session(stream, shared.clone()));
            }
        });
        Ok(Self { addr, caught, task })
    }

    /// `http://127.0.0.1:PORT/hook`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Every request received so far (failed ones too), oldest first.
    pub fn requests(&self) -> Vec<CaughtRequest> {
        lock(&self.caught).items.clone()
    }

    /// The requests answered 2xx.
    pub fn accepted(&self) -> Vec<CaughtRequest> {
        self.requests().into_iter().filter(|r| !r.failed).collect()
    }

    /// Fails the next requests, one fault each, in order.
    pub fn fail_next(&self, faults: &[CatcherFault]) {
        lock(&self.caught).faults.extend(faults.iter().copied());
    }

    /// How many requests were failed on purpose so far.
    pub fn failed(&self) -> usize {
        lock(&self.caught).failed
    }
}

impl Drop for HookCatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn http_session(stream: TcpStream, caught: Arc<Mutex<Caught<CaughtRequest>>>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_lowercase(), v.trim().to_owned()));
            }
        }
        let length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0)
            .min(1 << 20);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let fault = {
            let mut c = lock(&caught);
            let fault = c.faults.pop_front();
            if fault.is_some() {
                c.failed += 1;
            }
            c.items.push(CaughtRequest {
                method,
                path,
                headers,
                body,
                failed: fault.is_some(),
            });
            fault
        };
        let answer = match fault {
            Some(CatcherFault::Drop) => return,
            Some(CatcherFault::Status(code)) => {
                format!("HTTP/1.1 {code} Failing\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            }
            None => "HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n".to_owned(),
        };
        if write.write_all(answer.as_bytes()).await.is_err() || fault.is_some() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_decoded_from_multipart_bodies() {
        let mail = CaughtMail {
            from: "a@x".into(),
            to: vec!["b@x".into()],
            auth_user: None,
            data: "Subject: hi\r\nMessage-ID: <ntf_1@x>\r\nContent-Type: multipart/alternative;\r\n boundary=\"BB\"\r\n\r\n--BB\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nmoved 3 =E2=80=A2 deal=\r\ns\r\n--BB\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nPHA+aGk8L3A+\r\n--BB--\r\n".into(),
        };
        assert_eq!(mail.header("message-id").as_deref(), Some("<ntf_1@x>"));
        assert_eq!(mail.parts("text/plain"), ["moved 3 • deals"]);
        assert_eq!(mail.parts("text/html"), ["<p>hi</p>"]);
    }
}
