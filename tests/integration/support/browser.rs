//! A small W3C WebDriver client for browser tests: starts `chromedriver` on
//! a free port, opens headless Chromium with a temp profile, and offers the
//! handful of commands the tests need. Skips (one line on stderr) when the
//! driver is missing, unless browser tests are required (`CI=true` or
//! `GATEHOUSE_TEST_BROWSER=require`), when it panics instead.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

pub fn browser_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("GATEHOUSE_TEST_BROWSER").is_ok_and(|v| v == "require")
}

fn find_binary(names: &[&str]) -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    for name in names {
        for dir in path.split(':').chain(["/usr/bin", "/usr/lib/chromium"]) {
            let candidate = std::path::Path::new(dir).join(name);
            if candidate.is_file() {
                return Some(candidate.to_string_lossy().into_owned());
            }
        }
    }
    None
}

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A headless Chromium session, or `None` when browser tests are skipped.
    pub async fn start() -> Option<Self> {
        let (Some(driver_bin), Some(chromium)) = (
            find_binary(&["chromedriver"]),
            find_binary(&["chromium", "chromium-browser", "google-chrome"]),
        ) else {
            assert!(
                !browser_required(),
                "browser tests are required but chromedriver/chromium are not installed \
                 (apt-get install chromium chromium-driver)"
            );
            eprintln!("chromedriver or chromium not found; skipping browser tests");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("profile dir");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        "--window-size=1280,900",
                        format!("--user-data-dir={}", profile.path().display()),
                    ]
                }
            }}
        });
        let mut browser = Self {
            driver,
            base,
            session: String::new(),
            http,
            _profile: profile,
        };
        let created = browser.command("POST", "/session", capabilities).await;
        browser.session = created["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        Some(browser)
    }

    async fn command(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_command(method, path, body)
            .await
            .unwrap_or_else(|error| panic!("webdriver {method} {path}: {error}"))
    }

    async fn try_command(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).json(&body),
        };
        let response: Value = request
            .send()
            .await
            .expect("webdriver answers")
            .json()
            .await
            .expect("webdriver JSON");
        match response["value"]["error"].as_str() {
            Some(error) => Err(format!("{error}: {}", response["value"]["message"])),
            None => Ok(response["value"].clone()),
        }
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub async fn goto(&self, url: &str) {
        self.command("POST", &self.session_path("/url"), json!({ "url": url }))
            .await;
    }

    pub async fn current_url(&self) -> String {
        self.command("GET", &self.session_path("/url"), Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn source(&self) -> String {
        self.command("GET", &self.session_path("/source"), Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits up to 10 s for an element matching `css`.
    pub async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let response: Value = self
                .http
                .post(format!("{}{}", self.base, self.session_path("/element")))
                .json(&json!({ "using": "css selector", "value": css }))
                .send()
                .await
                .expect("webdriver answers")
                .json()
                .await
                .expect("webdriver JSON");
            if let Some(id) = response["value"][ELEMENT_KEY].as_str() {
                return id.to_owned();
            }
            assert!(Instant::now() < deadline, "no element matches {css}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.command(
            "POST",
            &self.session_path(&format!("/element/{id}/clear")),
            json!({}),
        )
        .await;
        self.command(
            "POST",
            &self.session_path(&format!("/element/{id}/value")),
            json!({ "text": text }),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        // The site scrolls smoothly: bring the element into view at once, or
        // the click lands while the page is still moving.
        self.script(&format!(
            "document.querySelector({css:?}).scrollIntoView({{ block: 'center', behavior: 'instant' }});"
        ))
        .await;
        let clicked = self
            .try_command(
                "POST",
                &self.session_path(&format!("/element/{id}/click")),
                json!({}),
            )
            .await;
        if let Err(error) = clicked {
            let covering = self
                .script(&format!(
                    "var e = document.querySelector({css:?}); var r = e.getBoundingClientRect();
                     var top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
                     return [r.left, r.top, r.width, r.height, window.innerWidth, window.innerHeight,
                             top ? top.outerHTML.slice(0, 200) : 'nothing'].join(' | ');"
                ))
                .await;
            panic!("click on {css}: {error}; at that point: {covering}");
        }
    }

    /// Runs a script in the page and returns its result.
    pub async fn script(&self, script: &str) -> Value {
        self.command(
            "POST",
            &self.session_path("/execute/sync"),
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// Runs an asynchronous script: its last argument is the callback that
    /// returns the result.
    pub async fn script_async(&self, script: &str) -> Value {
        self.command(
            "POST",
            &self.session_path("/execute/async"),
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let encoded = self
            .command("GET", &self.session_path("/screenshot"), json!({}))
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .expect("a base64 PNG")
    }

    /// Makes the page `width` × `height` CSS pixels (a phone is 390 × 844),
    /// through the DevTools device metrics: a window cannot be that narrow.
    pub async fn set_viewport(&self, width: u32, height: u32) {
        self.command(
            "POST",
            &self.session_path("/goog/cdp/execute"),
            json!({ "cmd": "Emulation.setDeviceMetricsOverride", "params": {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600
            }}),
        )
        .await;
    }

    /// Waits until the page's visible text contains `needle` (reading it in
    /// one script call, so a page being replaced mid-read is just retried).
    pub async fn wait_for_text(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let body = self
                .try_command(
                    "POST",
                    &self.session_path("/execute/sync"),
                    json!({ "script": "return document.body ? document.body.innerText : ''", "args": [] }),
                )
                .await
                .ok()
                .and_then(|value| value.as_str().map(str::to_owned))
                .unwrap_or_default();
            if body.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "page never showed {needle:?}; it shows:\n{body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Steps of the journeys several browser tests walk.
impl Browser {
    /// On the reference request page: asks Ginger Rogers for a reference
    /// with `message` and waits for the confirmation.
    pub async fn ask_ginger_for_a_reference(&self, message: &str) {
        self.fill("#name", "Ginger Rogers").await;
        self.fill("#email", "ginger@example.org").await;
        self.fill("#message", message).await;
        self.click("#reference-request button[type=submit]").await;
        self.wait_for_text("Your request has been sent to Ginger Rogers.")
            .await;
    }
}

impl Browser {
    /// Closes the browser cleanly (the driver ends Chromium's processes).
    pub async fn quit(mut self) {
        let session = std::mem::take(&mut self.session);
        let _ = self
            .http
            .delete(format!("{}/session/{session}", self.base))
            .send()
            .await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // After a failed assertion `quit` never ran: ask the driver to close
        // the browser (blocking is fine here), then stop the driver.
        if !self.session.is_empty() {
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = Command::new("curl")
                .args(["-s", "-m", "5", "-X", "DELETE", &url])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
