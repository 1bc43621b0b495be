//! `boai user`: people's accounts from the command line, the password only from standard
//! input and never shown.

use super::*;

#[test]
fn user_accounts_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("users.db").display());
    registry_with_station(&url);
    let create = |name: &str, role: &str, station: Option<&str>, password: &str| {
        let mut args = vec![
            "user",
            "create",
            name,
            "--role",
            role,
            "--password-stdin",
            "--db",
            &url,
        ];
        if let Some(s) = station {
            args.extend(["--station", s]);
        }
        boai_stdin(&args, password)
    };
    // Refusals name the field; nothing is created.
    for (name, role, station, password, field) in [
        ("clerk", "clerk", Some("BJ01"), "long enough 1\n", "role"),
        ("clerk", "station", None, "long enough 1\n", "station"),
        ("clerk", "station", Some("BJ01"), "short\n", "password"),
        ("clerk", "station", Some("BJ01"), "", "no password"),
    ] {
        let o = create(name, role, station, password);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(field),
            "{role} {password:?}: {err}"
        );
    }
    // The password is not an argument.
    let o = boai(&["user", "create", "clerk", "--role", "station", "--db", &url]);
    assert!(!o.status.success());
    let o = create("clerk", "station", Some("BJ01"), "long enough 1\n");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = boai(&["user", "list", "--db", &url]);
    let listed = String::from_utf8_lossy(&o.stdout);
    assert!(listed.contains("clerk\tstation\tBJ01\tactive"), "{listed}");
    assert!(!listed.contains("long enough"), "no password shown");
    let o = boai_stdin(
        &[
            "user",
            "password",
            "clerk",
            "--password-stdin",
            "--db",
            &url,
        ],
        "another one 22\n",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = boai(&["user", "disable", "clerk", "--db", &url]);
    assert!(o.status.success());
    let o = boai(&["user", "list", "--db", &url]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("disabled"));
    let o = boai(&["user", "enable", "nobody", "--db", &url]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no account named `nobody`"));
}
