//! Random bodies of the documented shape to every write route: the answer is a 2xx, or a
//! 4xx `application/problem+json` that changed nothing in the store; never a 5xx.
//!
//! The routes and their body schemas come from the server's own OpenAPI document, so a new
//! write route is fuzzed without touching this file. Values are drawn, field by field, from
//! the documented type and from pools of what careless and hostile callers send (blank and
//! oversized text, control characters, dates of every shape, ids that exist and that do
//! not, wrong codes, huge lists); the generator is seeded, so a failure replays.

use std::collections::BTreeMap;

use super::*;

/// SplitMix64: small, seeded, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }
}

const DATES: &[&str] = &[
    "2026-11-20",
    "2026-11-22",
    "2027-03-01",
    "1995-04-10",
    "1899-12-31",
    "2078-01-01",
    "1995-3-5",
    "+1995-03-15",
    " 1995-03-15 ",
    "1995-02-30",
    "9999-99-99",
    "",
    "yesterday",
];

const GLS: &[&str] = &[
    TYPING,
    "A*01:01+A*02:01^B*08:01+B*07:02^DRB1*03:01+DRB1*15:01",
    "hla#3.1.0#A*01:01+A*02:01^B*08:01+B*07:02^DRB1*03:01+DRB1*15:01",
    "A*99:99+A*01:01",
    "A*01:01",
    "A*01:01+A*02:01^B*08:01+B*07:02",
    "^^",
    "",
];

const TEXTS: &[&str] = &[
    "",
    " ",
    "x",
    "李娜",
    "BJ01",
    "BJ02",
    "NOPE",
    "AV",
    "TU",
    "RS",
    "DE",
    "PBSC",
    "BM",
    "DLI",
    "recruitment",
    "confirmatory_typing",
    "workup",
    "follow_up_contact",
    "done",
    "cancelled",
    "missed",
    "information_session",
    "medical_exam",
    "gcsf_start",
    "collection",
    "kidney",
    "cornea",
    "reservation",
    "extended_typing",
    "MED",
    "active",
    "suspended",
    "stopped",
    "typed",
    "stored",
    "adult",
    "cord",
    "M",
    "F",
    "O",
    "AB",
    "pos",
    "neg",
    "robot",
    "tab\there",
    "nul\u{0}byte",
    "bell\u{7}",
    "１１０１０５１９４９１２３１００２Ｘ",
    "11010519491231002X",
    "110105194912310021",
    "'; DROP TABLE donors; --",
    "hla#3.58.0#A*01:01+A*02:01^B*08:01+B*07:02^DRB1*03:01+DRB1*15:01",
];

/// Values a careful caller would send for a field of this name, so that some writes get
/// past validation and the rules behind it are reached too.
fn plausible(field: &str) -> &'static [&'static str] {
    match field {
        "station" | "station_code" => &["BJ01", "BJ02"],
        "branch" => &["BJ", "SH"],
        "code" => &["BJ03", "SH01"],
        "product" => &["PBSC", "DLI", "BM"],
        "scope" => &[
            "confirmatory_typing",
            "workup",
            "follow_up_contact",
            "recruitment",
        ],
        "kind" => &[
            "confirmatory_typing",
            "reservation",
            "workup",
            "extended_typing",
        ],
        "status" => &["AV", "TU", "DE", "RS"],
        "reason" => &["MED", "PER", "UC"],
        "milestone" => &[
            "information_session",
            "medical_exam",
            "gcsf_start",
            "collection",
        ],
        "state" => &[
            "done",
            "missed",
            "cancelled",
            "typed",
            "stored",
            "suspended",
            "active",
            "stopped",
        ],
        "sex" => &["M", "F"],
        "abo" => &["O", "A", "B", "AB"],
        "cmv" => &["pos", "neg"],
        "donor_type" => &["adult", "cord"],
        "form_version" | "consent_form_version" => &["CMDP-2024-1"],
        "family_name" | "given_name" | "name" | "label" => &["Li", "Wang Fang"],
        "national_id" => &["11010519491231002X", "110101199001010015", "E1234567"],
        "organs" => &["kidney", "liver", "heart"],
        "tissues" => &["cornea"],
        "outcome" | "note" | "diagnosis" => &["well", "mild bone pain"],
        _ => &[],
    }
}

fn string_for(rng: &mut Rng, field: &str) -> String {
    let good = plausible(field);
    if !good.is_empty() && rng.chance(50) {
        return rng.pick(good).to_string();
    }
    if rng.chance(8) {
        // Oversized: past every limit the store keeps.
        let n = rng.pick(&[101, 2001, 20_000]);
        return "长".repeat(n);
    }
    let f = field.to_ascii_lowercase();
    if (f.contains("date") || f.ends_with("_on") || f == "on" || f == "day" || f == "until")
        && rng.chance(85)
    {
        return rng.pick(DATES).to_string();
    }
    if (f == "gl" || f.contains("typing") || f == "patient_gl") && rng.chance(85) {
        return rng.pick(GLS).to_string();
    }
    rng.pick(TEXTS).to_string()
}

fn integer(rng: &mut Rng) -> Value {
    if rng.chance(60) {
        return json!(rng.pick(&[1_i64, 2, 3, 4]));
    }
    json!(rng.pick(&[5_i64, 6, 0, -1, 999_999, i64::MAX, i64::MIN]))
}

fn number(rng: &mut Rng) -> Value {
    json!(rng.pick(&[60.0_f64, 0.5, 0.0, -1.0, 1e9, 1e308, -1e308, 3.0]))
}

/// `schema` with its `$ref` followed.
fn resolve<'a>(schema: &'a Value, doc: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            resolve(&doc["components"]["schemas"][name], doc)
        }
        None => schema,
    }
}

/// A value of `schema`'s shape, mostly well typed, sometimes not.
fn value(rng: &mut Rng, schema: &Value, doc: &Value, field: &str, depth: usize) -> Value {
    let schema = resolve(schema, doc);
    if depth > 6 {
        return Value::Null;
    }
    if rng.chance(3) {
        // The wrong type altogether.
        return rng.pick(&[json!("?"), json!(7), json!([]), json!({}), json!(true)]);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(variants) = schema[key].as_array() {
            let non_null: Vec<&Value> = variants.iter().filter(|v| v["type"] != "null").collect();
            if non_null.is_empty() || (non_null.len() < variants.len() && rng.chance(15)) {
                return Value::Null;
            }
            let chosen = non_null[rng.below(non_null.len())];
            return value(rng, chosen, doc, field, depth + 1);
        }
    }
    if let Some(choices) = schema["enum"].as_array()
        && !choices.is_empty()
        && rng.chance(85)
    {
        return rng.pick(choices);
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ if schema.get("properties").is_some() => vec!["object"],
        _ => vec![],
    };
    if types.contains(&"null") && rng.chance(15) {
        return Value::Null;
    }
    match types.iter().find(|t| **t != "null").copied() {
        Some("string") => json!(string_for(rng, field)),
        Some("integer") => integer(rng),
        Some("number") => number(rng),
        Some("boolean") => json!(rng.chance(50)),
        Some("array") => {
            let n = if rng.chance(5) { 1000 } else { rng.below(4) };
            let item = &schema["items"];
            if n == 1000 {
                // A long list of one value: repeats, and a size no form produces (of short
                // items: the body limit is tested on its own).
                let one = value(rng, item, doc, field, depth + 1);
                let n = if one.to_string().len() > 64 { 10 } else { n };
                return Value::Array(vec![one; n]);
            }
            Value::Array(
                (0..n)
                    .map(|_| value(rng, item, doc, field, depth + 1))
                    .collect(),
            )
        }
        Some("object") | None if schema.get("properties").is_some() => {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut out = serde_json::Map::new();
            for (name, prop) in schema["properties"].as_object().unwrap() {
                if required.contains(&name.as_str()) || rng.chance(70) {
                    out.insert(name.clone(), value(rng, prop, doc, name, depth + 1));
                }
            }
            Value::Object(out)
        }
        // Free-form (`serde_json::Value`): anything.
        _ => rng.pick(&[json!({}), json!({"a": 1}), json!("x"), json!(null)]),
    }
}

/// Every write operation of the document: (method, path template, body schema).
fn write_operations(doc: &Value) -> Vec<(String, String, Option<Value>)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["post", "put", "patch", "delete"] {
            if let Some(op) = item.get(method) {
                let schema = op["requestBody"]["content"]["application/json"]["schema"].clone();
                out.push((
                    method.to_uppercase(),
                    path.clone(),
                    (!schema.is_null()).then_some(schema),
                ));
            }
        }
    }
    out
}

/// A path with its `{parameters}` filled.
fn fill_path(rng: &mut Rng, template: &str) -> String {
    let mut out = String::new();
    for segment in template.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some("day") => out.push_str(rng.pick(DATES)),
            Some("scope") => out.push_str(rng.pick(&[
                "recruitment",
                "confirmatory_typing",
                "workup",
                "follow_up_contact",
                "international_sharing",
                "nonsense",
            ])),
            Some(_) => out.push_str(&rng.pick(&[
                "1".to_string(),
                "2".to_string(),
                "3".to_string(),
                "4".to_string(),
                "999999".to_string(),
                "0".to_string(),
                "-1".to_string(),
                "abc".to_string(),
                i64::MAX.to_string(),
            ])),
            None => out.push_str(segment),
        }
    }
    out.replace(' ', "%20")
}

/// Everything the store holds, as one text per table (SQLite through its own connection,
/// PostgreSQL through `row::text`).
async fn fingerprint(url: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(path) = url.strip_prefix("sqlite://") {
        let conn =
            rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for table in tables {
            let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
            let columns = stmt.column_count();
            let mut rows: Vec<String> = stmt
                .query_map([], |r| {
                    Ok((0..columns)
                        .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                        .collect::<Vec<_>>()
                        .join(","))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            rows.sort();
            out.insert(table, rows.join("\n"));
        }
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name NOT LIKE '_sqlx%' ORDER BY 1",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for table in tables {
            let text: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COALESCE(string_agg(t::text, E'\\n' ORDER BY t::text), '') FROM \"{table}\" t"
            )))
            .fetch_one(&mut conn)
            .await
            .unwrap();
            out.insert(table, text);
        }
    }
    out
}

/// Donors, consents, a patient and open requests for the fuzzed writes to act on.
async fn seed(reg: &Registry) {
    let mut donors = Vec::new();
    let clerk = Actor::new("seed", "station").at_station("BJ01");
    let coordinator = Actor::new("seed", "coordinator");
    let today = reg.today();
    for i in 1..=4 {
        let donor = registry::NewDonor {
            external_id: format!("FZ{i}"),
            station: "BJ01".into(),
            birth_date: Some("1995-04-10".into()),
            identity: Some(registry::Identity {
                family_name: "Fuzz".into(),
                given_name: format!("Donor {i}"),
                national_id: Some(format!("FZ-NID-{i}")),
                ..Default::default()
            }),
            recruitment_consent: Some(registry::ConsentInput {
                form_version: "CMDP-2024-1".into(),
                note: None,
            }),
            typing: Some(registry::TypingInput {
                gl: TYPING.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let d = reg.enrol(&donor, &clerk, today).await.unwrap();
        donors.push(d.id);
        for scope in ["confirmatory_typing", "workup", "follow_up_contact"] {
            let consent = registry::ConsentInput {
                form_version: "CMDP-2024-1".into(),
                note: None,
            };
            let _ = reg
                .give_consent(d.id, scope, &consent, &clerk)
                .await
                .unwrap();
        }
    }
    let patient = registry::NewPatient {
        external_id: "FZP1".into(),
        gl: TYPING.into(),
        ..Default::default()
    };
    let p = reg.register_patient(&patient, &coordinator).await.unwrap();
    let _ = reg
        .open_request(p, donors[0], "confirmatory_typing", &coordinator, today)
        .await
        .unwrap();
    let _ = reg
        .open_request(p, donors[1], "workup", &coordinator, today)
        .await
        .unwrap();
    // A campaign, and an open death-donation case to complete or cancel.
    reg.create_campaign(
        &registry::NewCampaign {
            name: "Drive".into(),
            kind: "school_drive".into(),
            held_on: matching::model::format_day(today as u16),
            station: "BJ01".into(),
            place: "Campus".into(),
            note: None,
        },
        &clerk,
    )
    .await
    .unwrap();
    let died = matching::model::format_day(today as u16 - 1);
    reg.record_organ_case(
        &registry::NewOrganCase {
            kind: "organ".into(),
            died_on: died.clone(),
            family_consent: registry::FamilyConsent {
                relations: vec!["spouse".into()],
                in_writing: true,
                consented_on: died,
                note: None,
            },
            witnesses: vec!["Wang".into()],
            opo: "OPO".into(),
            station: Some("BJ01".into()),
            ..Default::default()
        },
        &Actor::new("seed", "case_manager"),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bodies_to_every_write_route_are_answered_and_refusals_change_nothing() {
    let doc = serde_json::to_value(<api::ApiDoc as utoipa::OpenApi>::openapi()).unwrap();
    let operations = write_operations(&doc);
    assert!(
        operations.len() >= 20,
        "{} write operations",
        operations.len()
    );
    let rounds: usize = std::env::var("BOAI_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    for (b, reg, _dir) in registries("fuzz").await {
        let url = reg.url.clone();
        let t = tokens(&reg).await;
        seed(&reg).await;
        let (addr, _stop, _reg) = start(reg).await;
        let tokens = [
            t.admin.as_str(),
            t.station.as_str(),
            t.other_station.as_str(),
            t.coordinator.as_str(),
            t.case_manager.as_str(),
            t.auditor.as_str(),
        ];
        let seed: u64 = std::env::var("BOAI_FUZZ_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0xB0A1);
        let mut rng = Rng(seed + b.len() as u64);
        let mut answered: BTreeMap<String, BTreeMap<u16, usize>> = BTreeMap::new();
        let mut allowed: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for round in 0..rounds {
            let (method, template, schema) = &operations[rng.below(operations.len())];
            let path = fill_path(&mut rng, template);
            let body = match schema {
                Some(s) => value(&mut rng, s, &doc, "", 0).to_string(),
                None => "{}".to_string(),
            };
            // Mostly a token this route did not refuse before, so the rounds reach past
            // the role checks; sometimes any token, so the checks themselves are fuzzed.
            let key = format!("{method} {template}");
            let welcome = allowed.get(&key).cloned().unwrap_or_default();
            let token = if !welcome.is_empty() && rng.chance(80) {
                rng.pick(&welcome)
            } else {
                rng.pick(&tokens)
            };
            let before = fingerprint(&url).await;
            let (status, text, content_type) =
                call_text(addr, method, &path, Some(token), Some(&body)).await;
            let shown: String = body.chars().take(400).collect();
            assert!(
                status < 500,
                "{b} round {round}: {method} {path} answered {status}: {text}\nbody: {shown}"
            );
            if status >= 400 {
                assert_eq!(
                    content_type, "application/problem+json",
                    "{b} round {round}: {method} {path} {status}: {text}"
                );
                let after = fingerprint(&url).await;
                for (table, rows) in &after {
                    assert!(
                        before.get(table) == Some(rows),
                        "{b} round {round}: {method} {path} was refused ({status}: {text}) but changed {table}\nbody: {shown}"
                    );
                }
            }
            if status != 403 && status != 401 {
                let welcome = allowed.entry(key).or_default();
                if !welcome.contains(&token) {
                    welcome.push(token);
                }
            }
            *answered
                .entry(format!("{method} {template}"))
                .or_default()
                .entry(status)
                .or_default() += 1;
        }
        // Every write route was reached, and some writes went through.
        assert_eq!(answered.len(), operations.len(), "{b}: {answered:?}");
        let successes: usize = answered
            .values()
            .flat_map(|by_status| by_status.iter())
            .filter(|(s, _)| **s < 300)
            .map(|(_, n)| n)
            .sum();
        assert!(successes > 0, "{b}: {answered:?}");
        eprintln!("{b}: {answered:?}");
    }
}
