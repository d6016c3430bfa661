//! Reports what its capabilities let it do. First message: [test pid]. Sends one line:
//! "file=<ok:contents|err> env=<ok:value|err> socket=<ok|err> write=<ok|err>".

use rusm_test_guests::*;

fn main() {
    let first = recv(-1).expect("setup");
    let test = pid_at(&first.data, 0);
    let file = match std::fs::read_to_string("/data/hello.txt") {
        Ok(s) => format!("ok:{}", s.trim()),
        Err(_) => "err".into(),
    };
    let env = match std::env::var("RUSM_SECRET") {
        Ok(v) => format!("ok:{v}"),
        Err(_) => "err".into(),
    };
    let socket = match std::net::TcpStream::connect("127.0.0.1:9") {
        Ok(_) => "ok",
        Err(_) => "err",
    };
    let write = match std::fs::write("/data/out.txt", b"written") {
        Ok(()) => "ok",
        Err(_) => "err",
    };
    println!("caps guest reporting");
    send(test, format!("file={file} env={env} socket={socket} write={write}").as_bytes());
}
