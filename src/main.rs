fn main() {
    if let Err(err) = tokentrace::cli::run() {
        eprintln!("tokentrace: error: {err:#}");
        std::process::exit(1);
    }
}
