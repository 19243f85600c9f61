//! Driving Debian's Chromium through chromedriver (WebDriver, with fantoccini): starting both,
//! logging in to a dashboard, reading and clicking elements, and saving screenshots.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process on a free loopback port, killed when dropped.
pub struct Driver {
    _process: tokio::process::Child,
    pub url: String,
    /// Chromium's profile, thrown away after the test.
    pub profile: tempfile::TempDir,
}

pub async fn start_driver() -> Driver {
    for path in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            std::path::Path::new(path).exists(),
            "{path} is missing: install Debian's chromium and chromium-driver (scripts/test.sh does)"
        );
    }
    let port = super::free_ports(1)[0];
    let process = tokio::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromedriver");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Driver {
        _process: process,
        url: format!("http://127.0.0.1:{port}"),
        profile: tempfile::tempdir().unwrap(),
    }
}

pub async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic", "--lang=zh-CN",
                format!("--user-data-dir={}", driver.profile.path().display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("open a Chromium session through chromedriver")
}

/// The text of the element `css` selects. A click on a link may return before the browser has
/// left the old page, so an element found there can go stale before its text is read: it is
/// then found again on the page that loaded.
pub async fn text(c: &Client, css: &str) -> String {
    let mut tries = 0;
    loop {
        let element = c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"));
        match element.text().await {
            Ok(text) => return text.trim().to_string(),
            Err(e) if tries < 20 => {
                tries += 1;
                println!("{css}: {e}; reading it again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot read {css}: {e}"),
        }
    }
}

/// Logs the browser in to the dashboard at `web` through its login page, as staff do. Every
/// dashboard of the test is on 127.0.0.1, where cookies do not tell ports apart, so each switch
/// of node logs in again.
pub async fn login(c: &Client, web: SocketAddr, token: &str) {
    c.goto(&format!("http://{web}/login")).await.unwrap();
    c.find(Locator::Css("form.login input[name=token]"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    click(c, "form.login.token button[type=submit]").await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("header .who"))
        .await
        .unwrap_or_else(|e| panic!("not logged in at {web}: {e}"));
}

pub async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
}

/// Clicks `css`, which submits a form or follows a link, and waits until the page it leads to
/// has loaded: the page being left is marked first, and a page without the mark is the next
/// one. Reading right after a bare click can find the old page's elements (a notice from the
/// form before, a step it offered) while the new page is still on its way.
pub async fn click_to_next_page(c: &Client, css: &str) {
    c.execute("document.documentElement.dataset.leaving = '1';", vec![])
        .await
        .expect("mark the page being left");
    click(c, css).await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("html:not([data-leaving]) body"))
        .await
        .unwrap_or_else(|e| panic!("no page loaded after clicking {css}: {e}"));
}

/// Logs in through the login page with a personal account's name and password, as staff do.
pub async fn login_account(c: &Client, web: &str, name: &str, password: &str) {
    c.goto(&format!("{web}/login")).await.unwrap();
    fill(c, "form.login.account input[name=name]", name).await;
    fill(c, "form.login.account input[name=password]", password).await;
    click(c, "form.login.account button[type=submit]").await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("header .who"))
        .await
        .unwrap_or_else(|e| panic!("{name} is not logged in at {web}: {e}"));
}

/// Types `value` into the input or text area `css` selects, replacing what it held.
pub async fn fill(c: &Client, css: &str, value: &str) {
    let element = c
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"));
    element
        .clear()
        .await
        .unwrap_or_else(|e| panic!("cannot clear {css}: {e}"));
    element
        .send_keys(value)
        .await
        .unwrap_or_else(|e| panic!("cannot type into {css}: {e}"));
}

/// Sets the date input `css` selects (typing a date depends on the browser's locale).
pub async fn set_value(c: &Client, css: &str, value: &str) {
    let found = c
        .execute(
            "const e = document.querySelector(arguments[0]); if (!e) return false; e.value = arguments[1]; return true;",
            vec![json!(css), json!(value)],
        )
        .await
        .unwrap();
    assert_eq!(found, json!(true), "no element {css}");
}

/// Chooses the option with `value` in the select `css` selects.
pub async fn choose(c: &Client, css: &str, value: &str) {
    c.find(Locator::Css(&format!("{css} option[value=\"{value}\"]")))
        .await
        .unwrap_or_else(|e| panic!("no option {value} in {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot choose {value} in {css}: {e}"));
}

/// Saves a PNG of what the browser shows as `target/workbench/{name}.png`.
pub async fn screenshot(c: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../workbench");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// The element `css` selects, waiting up to ten seconds for it to appear.
pub async fn wait_for(c: &Client, css: &str) {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css} appeared: {e}"));
}
