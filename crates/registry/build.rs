//! `sqlx::migrate!` embeds the migration files at compile time, but cargo does not know to
//! rebuild when one is added or changed: tell it (what sqlx's documentation advises), so a
//! build never carries a stale set of migrations.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
