//! `memfit-guard`: the guard as a binary of its own, for container images
//! (`ENTRYPOINT ["memfit-guard", "--"]`). Same options as `memfit guard`.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::process::exit(memfit_guard::main_named("memfit-guard", &args));
}
