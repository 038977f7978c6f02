//! Links the guest at 1 MiB with our own script, as a fixed-address (non-PIE)
//! executable. Link arguments live here, not in .cargo/config.toml, so that
//! builds started from the repository root get them too.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
    // The target defaults to static-pie; the monitor loads at p_paddr and
    // applies no relocations, so resolve every address at link time.
    println!("cargo:rustc-link-arg-bins=--no-pie");
}
