//! Recompile when the UI's build changes: rust-embed reads ui/dist at compile time, and
//! a rebuilt UI has new (content-hashed) file names.
fn main() {
    println!("cargo:rerun-if-changed=../../ui/dist");
}
