//! A stock `wasi:cli/run` command (no RUSM imports): prints its arguments, exits with
//! the status its first argument names.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("command says {}", args[1..].join(" "));
    let code: i32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(0);
    if code != 0 {
        std::process::exit(code);
    }
}
