//! The configuration file: each setting from its flag, else its environment variable, else
//! the file, else the default; a bad key or value is named; `serve` takes its database and
//! listen address from the file.

use std::process::Command;

use super::http;

fn check(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_boai"));
    cmd.args(["config", "check"]).args(args);
    for name in [
        "BOAI_ION",
        "BOAI_TIME_ZONE",
        "BOAI_CONFIG",
        "BOAI_DATABASE_URL",
        "BOAI_LISTEN",
        "BOAI_AGE_OUT",
        "BOAI_SNAPSHOT",
    ] {
        cmd.env_remove(name);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn settings_come_from_flags_then_environment_then_the_file_then_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("boai.toml");
    let addr = super::free_loopback_addr();
    let db = dir.path().join("from-file.db");
    std::fs::write(
        &file,
        format!(
            "database_url = \"sqlite://{}\"\ntime_zone = \"Asia/Urumqi\"\nlisten = \"{addr}\"\nion = 1234\nsnapshot = \"/var/lib/boai/index.snapshot\"\n\
             [ages]\nage_out = 60\n[intervals]\nreservation_working_days = 50\n[pool]\nmax_connections = 3\n",
            db.display()
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let (code, out) = check(&["--config", f], &[]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ion"], 1234);
    assert_eq!(v["time_zone"], "Asia/Urumqi");
    assert_eq!(v["ages"]["age_out"], 60);
    assert_eq!(v["ages"]["max_enrol"], 45, "a default");
    assert_eq!(v["intervals"]["reservation_working_days"], 50);
    assert_eq!(v["pool"]["max_connections"], 3);
    assert_eq!(v["snapshot"], "/var/lib/boai/index.snapshot");
    // The environment over the file, the flag over both; the file found through BOAI_CONFIG.
    let (code, out) = check(
        &["--time-zone", "Europe/London"],
        &[
            ("BOAI_CONFIG", f),
            ("BOAI_ION", "4321"),
            ("BOAI_TIME_ZONE", "Asia/Tokyo"),
        ],
    );
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["ion"].as_u64(), v["time_zone"].as_str()),
        (Some(4321), Some("Europe/London"))
    );
    let (_, out) = check(
        &[],
        &[("BOAI_CONFIG", f), ("BOAI_SNAPSHOT", "/tmp/other.snapshot")],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["snapshot"], "/tmp/other.snapshot",
        "the environment over the file"
    );
    // A password is never printed.
    let (_, out) = check(&["--db", "postgres://boai:s3cret@db.internal/boai"], &[]);
    assert!(
        !out.contains("s3cret") && out.contains("boai:***@"),
        "{out}"
    );
    // Bad settings are named.
    for (text, named) in [
        ("[ages]\nage_outt = 3\n", "age_outt"),
        ("[ages]\nmin_enrol = 50\n", "min_enrol"),
        ("ion = 123456\n", "ion"),
        ("time_zone = \"Mars/Olympus\"\n", "time_zone"),
        (
            "[intervals]\nextended_reservation_working_days = 10\n",
            "extended_reservation_working_days",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let (code, out) = check(&["--config", f], &[]);
        assert_eq!(code, 2, "{text}: {out}");
        assert!(out.contains(named), "{text}: {out}");
    }
    let (code, out) = check(&[], &[("BOAI_ION", "x")]);
    assert_eq!((code, out.contains("BOAI_ION")), (2, true), "{out}");

    // `serve` takes its database and listen address from the file.
    std::fs::write(
        &file,
        format!(
            "database_url = \"sqlite://{}\"\nlisten = \"{addr}\"\n",
            db.display()
        ),
    )
    .unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_boai"))
        .args(["serve", "--config", f])
        .env_remove("BOAI_DATABASE_URL")
        .env_remove("BOAI_LISTEN")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        http(&addr, "GET", "/readyz", "", None).0 == 200
    });
    server.kill().ok();
    server.wait().ok();
    assert!(ready, "serve did not listen where the file says");
    assert!(db.exists(), "serve did not open the file's database");
}
