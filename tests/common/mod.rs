//! Shared helpers of the integration tests: the test-data folder and a real
//! server process on free ports.
#![allow(dead_code)]

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The shared test material (`NUCLIO_ORT_TEST_DATA`, default `../shared`).
/// Missing data fails the test under CI and skips it (with a note) elsewhere.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("NUCLIO_ORT_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let dir = if dir.is_relative() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir)
    } else {
        dir
    };
    if dir.join("models").is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "test data not found at {} (set NUCLIO_ORT_TEST_DATA)",
            dir.display()
        );
    }
    eprintln!("SKIP: test data not found at {}", dir.display());
    None
}

/// `let Some(shared) = require_shared!() else { return };`
#[macro_export]
macro_rules! require_shared {
    () => {
        common::shared_dir()
    };
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "reply is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn reply(mut response: ureq::http::Response<ureq::Body>) -> Reply {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

pub fn get(url: &str) -> Reply {
    reply(
        agent()
            .get(url)
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}")),
    )
}

pub fn post(url: &str, body: &[u8]) -> Reply {
    reply(
        agent()
            .post(url)
            .header("Content-Type", "application/json")
            .send(body)
            .unwrap_or_else(|e| panic!("POST {url}: {e}")),
    )
}

pub fn post_with(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut request = agent().post(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    reply(
        request
            .send(body)
            .unwrap_or_else(|e| panic!("POST {url}: {e}")),
    )
}

/// The CVAT detector body for an image file.
pub fn detector_body(image: &std::path::Path, threshold: Option<f32>) -> Vec<u8> {
    use base64::Engine;
    let bytes = std::fs::read(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let mut body =
        serde_json::json!({ "image": base64::engine::general_purpose::STANDARD.encode(bytes) });
    if let Some(t) = threshold {
        body["threshold"] = serde_json::json!(t);
    }
    serde_json::to_vec(&body).expect("json")
}

/// A `nuclio-ort serve` process on free ports, killed on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub health_port: u16,
    pub metrics_port: u16,
}

impl Server {
    /// Starts the server with `args` after `serve`, without waiting.
    pub fn spawn(args: &[&str]) -> Server {
        let (port, health_port, metrics_port) = (free_port(), free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_nuclio-ort"))
            .arg("serve")
            .args(args)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--health-listen", &format!("127.0.0.1:{health_port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .env("NUCLIO_ORT_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("start nuclio-ort");
        Server {
            child,
            port,
            health_port,
            metrics_port,
        }
    }

    /// Starts the server and waits until it is ready.
    pub fn start(args: &[&str]) -> Server {
        let mut server = Self::spawn(args);
        server.wait_ready(Duration::from_secs(120));
        server
    }

    pub fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("server exited before becoming ready: {status}");
            }
            let ready = agent()
                .get(&self.health_url("/ready"))
                .call()
                .map(|r| r.status().as_u16() == 200)
                .unwrap_or(false);
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server not ready within {limit:?}");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
    pub fn health_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.health_port)
    }
    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.metrics_port)
    }

    /// Peak resident memory of the server process, in KiB (Linux).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn signal(&self, signal: &str) {
        Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Intersection over union of two `[x1, y1, x2, y2]` boxes.
pub fn iou(a: &[f64], b: &[f64]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f64]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}
