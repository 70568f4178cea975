fn main() -> std::process::ExitCode {
    keep_large_allocations_mapped();
    vellum::cli::main()
}

/// Makes glibc's malloc give every large allocation (over 128 KiB) its own mapping,
/// returned to the system when freed: its default, but glibc raises the threshold to the
/// size of the largest such allocation freed so far (up to 32 MiB) and then serves
/// everything under it from the allocating thread's arena, which keeps the memory. A
/// password hash (argon2, 19 MiB) is one: each login left another 19 MiB behind, and 20
/// logins grew the server from 16 to 406 MB. Setting the threshold turns that off.
/// Process-wide, so here rather than in the library (tests and embedders keep theirs).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_large_allocations_mapped() {
    // SAFETY: mallopt only sets a malloc parameter, and no other thread exists yet.
    let set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
    debug_assert_eq!(set, 1, "mallopt(M_MMAP_THRESHOLD) refused");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_large_allocations_mapped() {}
