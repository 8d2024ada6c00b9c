fn main() {
    restore_sigpipe();
    if let Err(err) = tokentrace::cli::run() {
        eprintln!("tokentrace: error: {err:#}");
        if let Some(hint) = tokentrace::store::explain_error(&err) {
            eprintln!("tokentrace: {hint}");
        }
        std::process::exit(1);
    }
}

/// `tokentrace report | head` should end quietly when `head` exits, as other Unix tools do, instead of
/// panicking in `println!`. Rust ignores SIGPIPE by default; sockets are unaffected by restoring it (the
/// standard library sends with `MSG_NOSIGNAL`, so a closed connection is still an error, not a signal).
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
