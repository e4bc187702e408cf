//! Links the `audithound` binary with packed relative relocations where the toolchain can.
//!
//! The binary holds hundreds of thousands of relative relocations (mostly DataFusion's tables
//! of functions and vtables). As RELA entries they are a table of megabytes that the dynamic
//! loader reads at every start; packed (RELR) they take a hundredth of that, and a short scan
//! starts measurably sooner. GNU ld 2.38+ and lld write the packed form, and glibc 2.36+ reads
//! it. The flag is added only after a test program linked with it builds
//! without a warning and runs, so that other toolchains build as before.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    // The test program must run here: only when building for this machine.
    let native = var("HOST") == var("TARGET");
    if native
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
        && links_packed_relocations(Path::new(&var("OUT_DIR")))
    {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the linker of Rust programs here (the configured one, else `cc`) builds a program
/// with packed relative relocations that the C library runs.
fn links_packed_relocations(dir: &Path) -> bool {
    let source = dir.join("relr_probe.c");
    let program = dir.join("relr_probe");
    if std::fs::write(&source, "int main(void) { return 0; }\n").is_err() {
        return false;
    }
    let linker = std::env::var("RUSTC_LINKER").unwrap_or_else(|_| "cc".into());
    let linked = Command::new(linker)
        .arg("-Wl,-z,pack-relative-relocs")
        .arg(&source)
        .arg("-o")
        .arg(&program)
        .output();
    // GNU ld only warns about a `-z` keyword it does not know.
    let linked = linked.is_ok_and(|out| out.status.success() && out.stderr.is_empty());
    linked && Command::new(&program).status().is_ok_and(|s| s.success())
}
