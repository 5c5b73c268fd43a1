// `sqlx::migrate!` embeds the migration files at compile time; without this, adding a
// new migration file would not rebuild the crate and the file would be silently missing.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
