//! Running the built binary from tests: a server started on a store, the CLI, and a plain
//! HTTP GET (beside `tests/common`, which sends requests in process).

#![allow(dead_code)] // each test file uses its own part

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, ChildStdout, Command, Output, Stdio},
};

/// The mock's own account (`MOCK_ACCOUNT` in the binary).
pub const MOCK_ACCOUNT: &str = "f1a70c4e-0000-4000-8000-000000000001";

/// A SQLite store URL in `dir`.
pub fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("mock.db").display())
}

/// `finout-mock serve` on `store`, any free port, with `extra` arguments.
pub fn spawn(store: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_finout-mock"))
        .args(["serve", "--listen", "127.0.0.1:0", "--store", store])
        .args(extra)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The first stdout line (with `--json`, the one JSON object), and the rest of stdout.
pub fn first_line(child: &mut Child) -> (String, BufReader<ChildStdout>) {
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    (line, stdout)
}

/// Stop `child` with SIGTERM; its stderr (the logs).
pub fn stop(mut child: Child) -> String {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    logs
}

/// `finout-mock ARGS...`, run to its end.
pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_finout-mock"))
        .args(args)
        .output()
        .unwrap()
}

/// `finout-mock ARGS...`, which must succeed: its stdout as JSON.
pub fn cli(args: &[&str]) -> serde_json::Value {
    let output = run(args);
    assert!(
        output.status.success(),
        "finout-mock {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The whole answer (status line, headers, body) to `GET base_url + path` with these
/// credentials.
pub fn get(base_url: &str, path: &str, creds: (&str, &str)) -> String {
    request(base_url, "GET", path, creds)
}

/// The whole answer to a bodiless `METHOD base_url + path` with these credentials.
pub fn request(base_url: &str, method: &str, path: &str, creds: (&str, &str)) -> String {
    let addr = base_url.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nx-finout-client-id: {}\r\n\
         x-finout-secret-key: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        creds.0, creds.1
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// The status of an answer.
pub fn status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"))
}

/// The status of `GET base_url + path` with these credentials.
pub fn get_status(base_url: &str, path: &str, creds: (&str, &str)) -> u16 {
    status(&get(base_url, path, creds))
}
