//! The web pages in a real headless Chromium (Debian's `chromium` and `chromium-driver`),
//! driven over WebDriver (fantoccini) against the real server on loopback: each role signs
//! in and does its work; a clerk's invalid HLA typing is refused beside its field with
//! nothing stored; a station cannot reach another station's donor by editing the URL; a
//! form without its CSRF token is refused; the report's charts render; the pages' inputs
//! are labelled and the sign-in works from the keyboard alone. Screenshots of each page are
//! written to `$CARGO_TARGET_TMPDIR/screenshots`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use registry::Actor;
use serde_json::{Value, json};

use super::{TYPING, registries, start, tokens};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start chromedriver, or `None` where the browser is not installed (a failure under CI).
async fn driver() -> Option<Driver> {
    if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "CI=true but {CHROMEDRIVER} or {CHROMIUM} is missing: the browser tests must run"
            );
        }
        eprintln!("chromium or chromedriver not installed: browser tests skipped");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(Driver {
                child,
                port,
                _profile: tempfile::tempdir().unwrap(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("chromedriver did not listen on {port}");
}

async fn browser(driver: &Driver) -> Client {
    let profile = tempfile::tempdir().unwrap().keep();
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            // As root in a closed network: no sandbox, no background connections.
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1400",
                "--lang=en-US", "--accept-lang=en-US,en", format!("--user-data-dir={}", profile.display())],
        }
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    // chromedriver speaks plain HTTP on loopback: no TLS client needed.
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session")
}

fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots().join(format!("{name}.png")), png).unwrap();
}

struct Site {
    addr: SocketAddr,
}

impl Site {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

async fn css(c: &Client, selector: &str) -> fantoccini::elements::Element {
    match c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(selector))
        .await
    {
        Ok(e) => e,
        Err(e) => {
            // What the page said, for the failure's reader.
            if let Ok(source) = c.source().await {
                std::fs::write(shots().join("failed-page.html"), source).unwrap();
            }
            panic!(
                "no `{selector}` on {:?}: {e}",
                c.current_url().await.map(|u| u.to_string())
            )
        }
    }
}

async fn text(c: &Client, selector: &str) -> String {
    css(c, selector).await.text().await.unwrap()
}

async fn fill(c: &Client, id: &str, value: &str) {
    let e = css(c, &format!("#{id}")).await;
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

async fn choose(c: &Client, id: &str, value: &str) {
    css(c, &format!("#{id}"))
        .await
        .select_by_value(value)
        .await
        .unwrap();
}

async fn submit(c: &Client, form: &str) {
    let button = css(c, &format!("{form} button[type=submit]")).await;
    follow(c, button).await;
}

/// Click something that loads a new page, and wait until the old page is gone.
async fn follow(c: &Client, target: fantoccini::elements::Element) {
    let old = c.find(Locator::Css("html")).await.unwrap();
    target.click().await.unwrap();
    for _ in 0..200 {
        if old.tag_name().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("clicking did not load a page");
}

/// Accessibility basics of the page: every visible input and select has a label (or an
/// aria-label), and all visible text has a contrast of at least 4.5:1 against its
/// background (WCAG AA for normal text).
async fn accessible(c: &Client) {
    let unlabelled = c
        .execute(
            "return Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
                .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label')).map(e => e.name || e.id);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        unlabelled,
        json!([]),
        "unlabelled inputs on {:?}",
        c.current_url().await
    );
    let low_contrast = c
        .execute(
            "const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
             const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); })
                 .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
             const background = e => { for (; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.length < 4 || c[3] > 0) return c; } return [255, 255, 255]; };
             const low = [];
             for (const e of document.querySelectorAll('body *')) {
                 if (!Array.from(e.childNodes).some(n => n.nodeType === 3 && n.textContent.trim())) continue;
                 if (e.offsetParent === null || e.closest('.visually-hidden, .skip, option')) continue;
                 const a = lum(rgb(getComputedStyle(e).color)), b = lum(background(e));
                 const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
                 if (ratio < 4.5) low.push(e.tagName + ' ' + e.textContent.trim().slice(0, 30) + ': ' + ratio.toFixed(2));
             }
             return low;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        low_contrast,
        json!([]),
        "text below 4.5:1 on {:?}",
        c.current_url().await
    );
}

/// Sign in with the keyboard alone: Tab from field to field, Enter to submit.
async fn sign_in(c: &Client, site: &Site, name: &str, password: &str) {
    c.goto(&site.url("/sign-in")).await.unwrap();
    c.delete_all_cookies().await.unwrap();
    c.goto(&site.url("/sign-in")).await.unwrap();
    let name_field = css(c, "#name").await;
    name_field.click().await.unwrap();
    name_field.send_keys(name).await.unwrap();
    let old = c.find(Locator::Css("html")).await.unwrap();
    c.active_element()
        .await
        .unwrap()
        .send_keys(&format!(
            "{}{password}{}",
            char::from(Key::Tab),
            char::from(Key::Enter)
        ))
        .await
        .unwrap();
    for _ in 0..200 {
        if old.tag_name().await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(
        page_status(c).await,
        "Sign in",
        "{name} signed in with the keyboard"
    );
}

async fn page_status(c: &Client) -> String {
    text(c, "main h1").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_works_in_a_real_browser() {
    let Some(driver) = driver().await else { return };
    let (_, reg, _dir) = registries("browser").await.into_iter().next().unwrap();
    let _t = tokens(&reg).await;
    let admin = Actor::new("test", "admin");
    let people = [
        ("clerk", "station", Some("BJ01")),
        ("other.clerk", "station", Some("BJ02")),
        ("coord", "coordinator", None),
        ("manager", "case_manager", None),
        ("staff", "admin", None),
        ("audit", "auditor", None),
    ];
    for (name, role, station) in people {
        reg.create_person(name, role, station, "a long password 1", &admin)
            .await
            .unwrap();
    }
    let (addr, _stop, reg) = start(reg).await;
    let site = Site { addr };
    let c = browser(&driver).await;
    let pw = "a long password 1";

    // The sign-in page speaks the browser's language (English here), and switches.
    c.goto(&site.url("/")).await.unwrap();
    assert_eq!(page_status(&c).await, "Sign in");
    accessible(&c).await;
    shot(&c, "01-sign-in").await;
    follow(&c, css(&c, "a[hreflang=zh-CN]").await).await;
    assert_eq!(page_status(&c).await, "登录");
    shot(&c, "01b-sign-in-zh").await;
    follow(&c, css(&c, "a[hreflang=en]").await).await;
    assert_eq!(page_status(&c).await, "Sign in");

    // Clerk: an invalid typing is flagged beside its field as it is typed, refused when
    // posted with the offending token beside the field, and nothing is stored.
    sign_in(&c, &site, "clerk", pw).await;
    // The session cookie is out of scripts' reach and never sent from other sites.
    let cookie = c.get_named_cookie("boai_session").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    // The JSON API takes bearer tokens only: a page's cookie opens nothing there.
    c.goto(&site.url("/v1/stations")).await.unwrap();
    assert!(
        c.source().await.unwrap().contains("401"),
        "the API refuses a session cookie"
    );
    c.goto(&site.url("/donors/new")).await.unwrap();
    accessible(&c).await;
    for (id, value) in [
        ("external_id", "WEB-1"),
        ("family_name", "Li"),
        ("given_name", "Na"),
        ("national_id", "110101199504100020"),
        ("consent_form_version", "CMDP-2024-1"),
    ] {
        fill(&c, id, value).await;
    }
    // A date input's typing depends on the browser's locale: set its value.
    c.execute(
        "document.getElementById('birth_date').value = '1995-04-10';",
        vec![],
    )
    .await
    .unwrap();
    choose(&c, "sex", "F").await;
    choose(&c, "abo", "A").await;
    let alleles: Vec<(String, String)> = TYPING
        .split('^')
        .flat_map(|locus| {
            let l = locus.split('*').next().unwrap().to_string();
            locus
                .split('+')
                .enumerate()
                .map(move |(i, a)| (format!("hla_{l}_{}", i + 1), a.to_string()))
        })
        .collect();
    for (id, value) in &alleles {
        fill(&c, id, value).await;
    }
    fill(&c, "hla_A_1", "A*99:99").await;
    // The live check (script) names the token beside the field.
    let live = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//span[@id='hla_A_1-error'][contains(., '99:99')]",
        ))
        .await;
    assert!(live.is_ok(), "the live HLA check did not flag A*99:99");
    c.execute(
        "document.getElementById('hla_A_1').scrollIntoView({block: 'center'});",
        vec![],
    )
    .await
    .unwrap();
    shot(&c, "02-enrol-live-error").await;
    submit(&c, "form.wide").await;
    let beside = text(&c, "#hla_A_1-error").await;
    assert!(
        beside.contains("A*99:99"),
        "server-side error beside the field: {beside}"
    );
    assert_eq!(
        css(&c, "#hla_A_1")
            .await
            .attr("aria-invalid")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    // The other fields kept what was typed.
    assert_eq!(
        css(&c, "#external_id")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("WEB-1")
    );
    c.execute(
        "document.getElementById('hla_A_1').scrollIntoView({block: 'center'});",
        vec![],
    )
    .await
    .unwrap();
    shot(&c, "03-enrol-refused").await;
    assert_eq!(
        reg.donor_by_external_id("WEB-1").await.unwrap(),
        None,
        "nothing stored"
    );
    fill(&c, "hla_A_1", "A*02:01").await;
    submit(&c, "form.wide").await;
    assert!(text(&c, "p.notice").await.contains("enrolled"));
    let donor_url = c.current_url().await.unwrap();
    let donor_id: i64 = donor_url
        .path()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    accessible(&c).await;
    shot(&c, "04-donor").await;
    // On a tablet's width the page fits: nothing wider than the screen but tables' own
    // scrolling.
    c.set_window_size(820, 1180).await.unwrap();
    let overflow = c
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the donor page overflows a tablet: {overflow}"
    );
    shot(&c, "04b-donor-tablet").await;
    c.set_window_size(1280, 1400).await.unwrap();
    // A sample, through its form.
    fill(&c, "barcode", "BC-WEB-1").await;
    submit(&c, "form[action$='/samples']").await;
    assert!(text(&c, "p.notice").await.contains("sample"));
    c.goto(&site.url("/donors")).await.unwrap();
    assert!(text(&c, "table").await.contains("WEB-1"));
    accessible(&c).await;
    shot(&c, "05-donor-list").await;
    c.goto(&site.url("/samples")).await.unwrap();
    assert!(text(&c, "table").await.contains("BC-WEB-1"));
    accessible(&c).await;
    shot(&c, "06-samples").await;
    // Signing out ends the session: the pages ask to sign in again.
    follow(&c, css(&c, "form[action='/sign-out'] button").await).await;
    assert_eq!(page_status(&c).await, "Sign in");
    c.goto(&site.url("/samples")).await.unwrap();
    assert_eq!(page_status(&c).await, "Sign in");
    sign_in(&c, &site, "clerk", pw).await;

    // A form posted without its CSRF token is refused, and changes nothing.
    c.goto(donor_url.as_ref()).await.unwrap();
    c.execute(
        "document.querySelector(\"form[action$='/consents'] input[name=csrf]\").remove();",
        vec![],
    )
    .await
    .unwrap();
    choose(&c, "scope", "research").await;
    fill(&c, "form_version", "R-1").await;
    submit(&c, "form[action$='/consents']").await;
    assert_eq!(page_status(&c).await, "Not allowed");
    assert!(
        text(&c, "p.error")
            .await
            .contains("did not come from this site")
    );
    accessible(&c).await;
    shot(&c, "07-csrf-refused").await;
    let consents = reg.consents(donor_id).await.unwrap();
    assert!(
        !consents.iter().any(|c| c.scope == "research"),
        "no research consent stored"
    );

    // Another station's clerk cannot reach the donor by editing the URL.
    sign_in(&c, &site, "other.clerk", pw).await;
    c.goto(donor_url.as_ref()).await.unwrap();
    assert_eq!(page_status(&c).await, "Not allowed");
    assert!(!c.source().await.unwrap().contains("WEB-1"));
    accessible(&c).await;
    shot(&c, "08-other-station-refused").await;

    // Coordinator: register a patient, search, see the grid, open a confirmatory typing.
    sign_in(&c, &site, "coord", pw).await;
    c.goto(&site.url("/patients/new")).await.unwrap();
    accessible(&c).await;
    fill(&c, "external_id", "P-WEB-1").await;
    fill(&c, "gl", TYPING).await;
    submit(&c, "form.wide").await;
    assert!(text(&c, "p.notice").await.contains("registered"));
    accessible(&c).await;
    shot(&c, "09-patient").await;
    choose(&c, "max_mismatches", "0").await;
    submit(&c, "form[action='/searches']").await;
    let row = format!("tr[data-donor='{donor_id}']");
    let cells = css(&c, &row)
        .await
        .find_all(Locator::Css("td.cell"))
        .await
        .unwrap();
    assert_eq!(cells.len(), 5, "a grid cell per matched locus");
    for cell in &cells {
        assert_eq!(
            cell.attr("class").await.unwrap().as_deref(),
            Some("cell match")
        );
    }
    accessible(&c).await;
    shot(&c, "10-search-results").await;
    // A page number past the end (or past any number) shows an empty page, not an error.
    let results_url = c.current_url().await.unwrap();
    c.goto(&format!(
        "{}?page=18446744073709551615&size=100",
        results_url.as_str().split('?').next().unwrap()
    ))
    .await
    .unwrap();
    assert!(page_status(&c).await.starts_with("Search"));
    assert_eq!(
        c.find_all(Locator::Css("tr[data-donor]"))
            .await
            .unwrap()
            .len(),
        0
    );
    c.goto(results_url.as_str()).await.unwrap();
    // Run again: nothing new.
    submit(&c, "form[action$='/rerun']").await;
    assert!(text(&c, "p.diff").await.contains("0 new"));
    follow(
        &c,
        css(&c, &format!("{row} form[action='/requests'] button")).await,
    )
    .await;
    assert!(text(&c, "p.notice").await.contains("request is open"));
    let case_url = c.current_url().await.unwrap();
    shot(&c, "11-case-opened").await;

    // Case manager: consent for the workup, open it, record a milestone.
    sign_in(&c, &site, "manager", pw).await;
    c.goto(case_url.as_ref()).await.unwrap();
    accessible(&c).await;
    choose(&c, "scope", "workup").await;
    fill(&c, "form_version", "WU-2024").await;
    submit(&c, "form[action$='/consents']").await;
    assert!(text(&c, "p.notice").await.contains("consent is recorded"));
    let consent_table = text(&c, "section[aria-labelledby=consent-h] table").await;
    assert!(consent_table.contains("Workup In force"), "{consent_table}");
    submit(&c, "form[action='/requests']").await;
    assert!(text(&c, "main h1").await.contains("Workup"));
    choose(&c, "milestone", "information_session").await;
    submit(&c, "form[action$='/milestones']").await;
    assert!(text(&c, "p.notice").await.contains("milestone is recorded"));
    let timeline = text(&c, "ol.timeline li.done").await;
    assert!(
        timeline.contains("Information session") && timeline.contains("2026-11-22"),
        "{timeline}"
    );
    shot(&c, "12-case-timeline").await;
    c.goto(&site.url("/followups")).await.unwrap();
    accessible(&c).await;
    shot(&c, "13-followups").await;

    // Registry staff: the report's charts render (images with a size), the stations.
    sign_in(&c, &site, "staff", pw).await;
    c.goto(&site.url("/reports/yearly?year=2026"))
        .await
        .unwrap();
    assert!(!text(&c, "#summary").await.is_empty());
    let rendered = c
        .execute(
            "const imgs = Array.from(document.querySelectorAll('.charts img'));
             return [imgs.length, imgs.filter(i => i.complete && i.naturalWidth > 0).length];",
            vec![],
        )
        .await
        .unwrap();
    let (charts, drawn) = (rendered[0].as_u64().unwrap(), rendered[1].as_u64().unwrap());
    assert!(
        charts >= 2 && drawn == charts,
        "charts rendered: {rendered}"
    );
    accessible(&c).await;
    shot(&c, "14-report").await;
    c.goto(&site.url("/stations")).await.unwrap();
    assert!(text(&c, "#stations").await.contains("BJ01"));
    accessible(&c).await;
    shot(&c, "15-stations").await;
    c.goto(&site.url("/people")).await.unwrap();
    accessible(&c).await;
    shot(&c, "16-people").await;

    // Auditor: the audit log shows the identity-free trail of what was done.
    sign_in(&c, &site, "audit", pw).await;
    c.goto(&site.url("/audit?entity=donor")).await.unwrap();
    let log = text(&c, "table").await;
    assert!(
        log.contains("donor.enrol") || log.contains("enrol"),
        "{log}"
    );
    assert!(
        log.contains("person:"),
        "people act under their account id: {log}"
    );
    accessible(&c).await;
    shot(&c, "17-audit").await;
    // An auditor opening a clerk's page is refused.
    c.goto(&site.url("/donors/new")).await.unwrap();
    assert_eq!(page_status(&c).await, "Not allowed");

    // Lock-out: five wrong passwords lock the account, the right one included.
    c.delete_all_cookies().await.unwrap();
    for _ in 0..5 {
        c.goto(&site.url("/sign-in")).await.unwrap();
        fill(&c, "name", "coord").await;
        fill(&c, "password", "wrong password!").await;
        submit(&c, "form.narrow").await;
    }
    assert!(text(&c, "#sign-in-error").await.contains("locked"));
    c.goto(&site.url("/sign-in")).await.unwrap();
    fill(&c, "name", "coord").await;
    fill(&c, "password", pw).await;
    submit(&c, "form.narrow").await;
    assert!(text(&c, "#sign-in-error").await.contains("locked"));
    accessible(&c).await;
    shot(&c, "18-locked").await;

    c.close().await.unwrap();
    eprintln!("screenshots in {}", shots().display());
}
