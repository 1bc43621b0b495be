//! The server's own limits, over real sockets: how many requests it serves at once (in all
//! and per client), how long a client may take to send one, and which request ids it keeps.

use std::time::{Duration, Instant};

use super::*;

/// A request whose body never comes: it holds its place until the connection is dropped.
async fn slow_post(addr: SocketAddr, path: &str, token: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// One request with extra header lines; the whole response head and body.
async fn raw(addr: SocketAddr, method: &str, path: &str, headers: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}Content-Length: 0\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

async fn until_in_flight(admission: &api::Admission, n: usize) {
    let start = Instant::now();
    while admission.in_flight() != n {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "in flight {} != {n}",
            admission.in_flight()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_count_for_the_server_one_per_client_and_every_refusal_says_when_to_retry() {
    for (b, reg, _dir) in registries("admission").await {
        let t = tokens(&reg).await;
        let state = api::AppState::new(Arc::new(reg)).with_limits(4, 2);
        let admission = state.admission.clone();
        let (addr, _stop) = serve_state(state).await;
        // One client's two slow requests fill its share; its third is refused, 429.
        let a1 = slow_post(addr, "/v1/donors", &t.station).await;
        let a2 = slow_post(addr, "/v1/donors", &t.station).await;
        until_in_flight(&admission, 2).await;
        let (s, head, body) = raw(
            addr,
            "GET",
            "/v1/donors",
            &format!("Authorization: Bearer {}\r\n", t.station),
        )
        .await;
        assert_eq!(s, 429, "{b}: {head}");
        assert!(head.contains("retry-after: 1"), "{b}: {head}");
        assert!(head.contains("application/problem+json"), "{b}: {head}");
        assert!(body.contains("in progress"), "{b}: {body}");
        // Another client still gets in, on other routes, until the server is full.
        let c1 = slow_post(addr, "/v1/patients", &t.coordinator).await;
        let c2 = slow_post(addr, "/v1/holidays", &t.admin).await;
        until_in_flight(&admission, 4).await;
        // Full: four slow requests over three routes take every place; anyone is refused.
        let (s, head, _) = raw(addr, "GET", "/healthz", "").await;
        assert_eq!(s, 503, "{b}: {head}");
        assert!(head.contains("retry-after: 1"), "{b}: {head}");
        assert!(head.contains("application/problem+json"), "{b}: {head}");
        // Places come back when the requests end.
        drop((a1, a2, c1, c2));
        until_in_flight(&admission, 0).await;
        let (s, _, _) = raw(addr, "GET", "/healthz", "").await;
        assert_eq!(s, 200, "{b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_slowly_is_cut_off() {
    let (_, reg, _dir) = registries("slow").await.remove(0);
    let t = tokens(&reg).await;
    let timeouts = api::Timeouts {
        headers: Duration::from_secs(1),
        body: Duration::from_secs(1),
        request: Duration::from_secs(5),
    };
    let state = api::AppState::new(Arc::new(reg)).with_timeouts(timeouts);
    let (addr, _stop) = serve_state(state).await;
    // Headers a byte at a time: the connection is closed once the header time is up,
    // without an answer.
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut closed = false;
    for byte in b"GET /healthz HTTP/1.1\r\nHost: slow.example\r\nX-Padding: 0123456789abcdef" {
        if stream.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut rest)).await;
    assert!(
        closed || read.is_ok(),
        "the server still holds a connection whose headers are late"
    );
    assert!(!String::from_utf8_lossy(&rest).contains(" 200 "));
    assert!(started.elapsed() < Duration::from_secs(6));
    // A kept-alive connection waits for its next request's headers no longer either.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answered = Vec::new();
    let idle =
        tokio::time::timeout(Duration::from_secs(4), stream.read_to_end(&mut answered)).await;
    assert!(
        idle.is_ok(),
        "an idle kept-alive connection is closed after the header time"
    );
    assert!(String::from_utf8_lossy(&answered).starts_with("HTTP/1.1 200"));
    // A body that does not all arrive in time is answered 408, naming the body.
    let started = Instant::now();
    let mut stream = slow_post(addr, "/v1/patients", &t.coordinator).await;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(4), stream.read_to_end(&mut response))
        .await
        .expect("answered within the body time")
        .unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        text.contains("application/problem+json") && text.contains("\"body\""),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_short_printable_request_ids_are_kept() {
    let (_, reg, _dir) = registries("requestid").await.remove(0);
    let t = tokens(&reg).await;
    let (addr, _stop) = serve_state(api::AppState::new(Arc::new(reg))).await;
    let long = "r".repeat(4096);
    for (sent, kept) in [
        ("client-42", true),
        (long.as_str(), false),
        ("two words", false),
    ] {
        let (s, head, body) = raw(
            addr,
            "POST",
            "/v1/holidays",
            &format!(
                "Authorization: Bearer {}\r\nx-request-id: {sent}\r\nContent-Type: application/json\r\n",
                t.admin
            ),
        )
        .await;
        // An empty body: refused as a problem, but it still shows the id the server used.
        assert!(s == 400 || s == 422, "{s} {body}");
        let id = head
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .unwrap()
            .to_string();
        if kept {
            assert_eq!(id, sent);
        } else {
            assert_eq!(id.len(), 36, "replaced by a UUID: {id}");
        }
    }
    // What the audit log keeps is bounded the same way.
    let holiday = json!({"day": "2027-10-01", "name": "National Day"}).to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /v1/holidays HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {}\r\nx-request-id: {long}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{holiday}",
        t.admin,
        holiday.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 20"), "{text}");
    let audit = expect(
        addr,
        "GET",
        "/v1/audit?entity=holiday&limit=5",
        &t.auditor,
        None,
        200,
    )
    .await;
    let entry = &audit["entries"][0];
    assert_eq!(entry["action"], "holiday.add", "{audit}");
    assert_eq!(
        entry["request_id"].as_str().map(str::len),
        Some(36),
        "the server's own id, not the client's 4 KB one: {audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_and_wrong_types_are_named_by_their_place_in_the_body() {
    for (b, reg, _dir) in registries("bodypath").await {
        let t = tokens(&reg).await;
        let (addr, _stop, _reg) = start(reg).await;
        let body = enrolment("C1", "CN1").replace("\"Li\"", "\"L\\u0000i\"");
        let (s, v, ct) = call(addr, "POST", "/v1/donors", Some(&t.station), Some(&body)).await;
        assert_eq!(
            (s, ct.as_str()),
            (422, "application/problem+json"),
            "{b}: {v}"
        );
        assert_eq!(v["errors"][0]["field"], "identity.family_name", "{b}: {v}");
        assert!(v["detail"].as_str().unwrap().contains("U+0000"), "{b}: {v}");
        let body = json!({"day": "2027-10-01", "name": ["a", "b\u{1b}"]}).to_string();
        let (s, v, _) = call(addr, "POST", "/v1/holidays", Some(&t.admin), Some(&body)).await;
        assert_eq!(
            (s, v["errors"][0]["field"].as_str()),
            (422, Some("name[1]")),
            "{b}: {v}"
        );
        // A field of the wrong type is named by its path too.
        let body = enrolment("C2", "CN2").replace("\"Li\"", "17");
        let (s, v, _) = call(addr, "POST", "/v1/donors", Some(&t.station), Some(&body)).await;
        assert_eq!(
            (s, v["errors"][0]["field"].as_str()),
            (422, Some("identity.family_name")),
            "{b}: {v}"
        );
        // Line breaks and tabs are text.
        let body = json!({"day": "2027-10-02", "name": "Mid-Autumn\tFestival"}).to_string();
        expect(addr, "POST", "/v1/holidays", &t.admin, Some(&body), 201).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn national_ids_text_limits_and_releases_hold_over_http() {
    for (b, reg, _dir) in registries("inputhttp").await {
        let t = tokens(&reg).await;
        let (addr, _stop, _reg) = start(reg).await;
        // One person however the id is typed; a resident id with a wrong check character.
        let first = enrolment("H1", "１１０１０５ 19491231002x");
        expect(addr, "POST", "/v1/donors", &t.station, Some(&first), 201).await;
        let again = enrolment("H2", "11010519491231002X");
        expect(addr, "POST", "/v1/donors", &t.station, Some(&again), 409).await;
        let wrong = enrolment("H3", "110105194912310021");
        let v = expect(addr, "POST", "/v1/donors", &t.station, Some(&wrong), 422).await;
        assert_eq!(v["errors"][0]["field"], "identity.national_id", "{b}: {v}");
        // Text past its limit is refused naming the field.
        let long = enrolment("H4", "HN4").replace("\"Li\"", &format!("\"{}\"", "李".repeat(101)));
        let v = expect(addr, "POST", "/v1/donors", &t.station, Some(&long), 422).await;
        assert_eq!(v["errors"][0]["field"], "identity.family_name", "{b}: {v}");
        let organs = json!({"family_name": "Zhao", "given_name": "Lei", "national_id": "ON-1",
            "birth_date": "1970-02-02", "organs": vec!["kidney"; 10_000], "tissues": []})
        .to_string();
        let v = expect(
            addr,
            "POST",
            "/v1/organ-registrations",
            &t.station,
            Some(&organs),
            422,
        )
        .await;
        assert_eq!(v["errors"][0]["field"], "organs", "{b}: {v}");
        // A GL string of another release: refused at enrolment and for a patient.
        let old = enrolment("H5", "HN5").replace(TYPING, &format!("hla#3.1.0#{TYPING}"));
        let v = expect(addr, "POST", "/v1/donors", &t.station, Some(&old), 422).await;
        assert!(v["detail"].as_str().unwrap().contains("3.1.0"), "{b}: {v}");
        let patient =
            json!({"external_id": "HP1", "gl": format!("hla#3.57.0#{TYPING}")}).to_string();
        let v = expect(
            addr,
            "POST",
            "/v1/patients",
            &t.coordinator,
            Some(&patient),
            422,
        )
        .await;
        assert!(v["detail"].as_str().unwrap().contains("3.57.0"), "{b}: {v}");
        let same = enrolment("H6", "HN6").replace(TYPING, &format!("hla#3.58.0#{TYPING}"));
        expect(addr, "POST", "/v1/donors", &t.station, Some(&same), 201).await;
    }
}
