//! Rebuilds when a migration is added: `sqlx::migrate!` embeds the files it finds at compile
//! time, and Cargo does not otherwise notice a new file in a directory (sqlx's documented
//! build script).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
