// Gives the package's binaries and test binaries an absolute rpath to libtorch's `lib/`
// (`LIBTORCH`, which `.cargo/config.toml` points at the repo's `.libtorch`), so they run with
// no `LD_LIBRARY_PATH` wherever the target directory is (`CARGO_TARGET_DIR` outside the repo, a
// shared target directory) and whatever `RUSTFLAGS` says. `RESNEXT_LIBTORCH_LIB` tells the code
// the same folder (the fallback for loading `libtorch_cuda.so`). `resnext-train` and
// `resnext-cli` include this file as their build script too.

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(libtorch) = std::env::var_os("LIBTORCH") else {
        return;
    };
    let lib = std::path::Path::new(&libtorch).join("lib");
    let Some(lib) = lib.to_str() else {
        println!(
            "cargo:warning=LIBTORCH is not UTF-8; binaries need LD_LIBRARY_PATH to find libtorch"
        );
        return;
    };
    println!("cargo:rustc-env=RESNEXT_LIBTORCH_LIB={lib}");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
