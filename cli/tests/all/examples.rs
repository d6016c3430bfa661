//! The example apps, run by the binary as a user would (`rusm run examples/NAME`).

use std::time::{Duration, Instant};

use crate::*;

/// One `rusm run` of an app directory at a time (a second is refused: its control socket).
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn hello_prints_and_exits_normally() {
    let _one = one_at_a_time();
    let o = rusm().args(["run", "examples/hello"]).current_dir(repo()).output().unwrap();
    let (stdout, stderr) = texts(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.lines().any(|l| l == "hello | Hello, world! I am one of 1 process(es) of this app."), "no greeting:\n{stdout}");
    assert_eq!(stderr.matches("started hello <0.").count(), 1, "the built wasm/hello.wasm is the component's, not run again: {stderr}");
    assert!(stderr.contains("exited normally"), "{stderr}");
    assert!(stderr.contains("every process has exited"), "{stderr}");
}

#[test]
fn hello_as_json_events() {
    let _one = one_at_a_time();
    let o = rusm().args(["run", "--json", "examples/hello"]).current_dir(repo()).output().unwrap();
    let (stdout, stderr) = texts(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let events: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    let at = |k: &str| kinds.iter().position(|x| *x == k).unwrap_or_else(|| panic!("no {k} event in {kinds:?}"));
    assert!(at("started") < at("output") && at("output") < at("exited") && at("exited") < at("stopped"), "{kinds:?}");
    let out = &events[at("output")];
    assert_eq!(out["component"], "hello");
    assert_eq!(out["instance"], 1);
    assert!(out["line"].as_str().unwrap().starts_with("Hello, world!"));
    assert_eq!(events[at("exited")]["normal"], true);
    assert_eq!(events[at("stopped")]["code"], 0);
}

#[test]
fn pingpong_runs_its_round_trips_and_ends() {
    let o = rusm().args(["run", "examples/pingpong"]).current_dir(repo()).output().unwrap();
    let (stdout, stderr) = texts(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.lines().any(|l| l.starts_with("ping | ping: 10000 round trips to pong")), "{stdout}");
    assert!(stdout.lines().any(|l| l == "pong | pong: answered 10000 pings, stopping"), "{stdout}");
    // pong starts before ping (start_after).
    let pong = stderr.find("started pong").expect("pong started");
    let ping = stderr.find("started ping").expect("ping started");
    assert!(pong < ping, "{stderr}");
}

/// A manifest in a temp dir around a WAT component: `parked` waits for ever.
fn parked_app(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let wat = r#"(component
  (import "rusm:runtime/actor@0.1.0" (instance $a (export "sleep" (func (param "ms" u64)))))
  (core func $sleep (canon lower (func $a "sleep")))
  (core module $m (import "a" "sleep" (func $sleep (param i64)))
    (func (export "run") (call $sleep (i64.const -1))))
  (core instance $i (instantiate $m (with "a" (instance (export "sleep" (func $sleep))))))
  (func (export "run") (canon lift (core func $i "run"))))"#;
    std::fs::write(dir.path().join("parked.wat"), wat).unwrap();
    std::fs::write(dir.path().join("rusm.toml"), format!("[app]\nname = \"parked\"\n\n[components.parked]\nwasm = \"parked.wat\"\n{extra}")).unwrap();
    dir
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_every_process_and_exits_0() {
    let dir = parked_app("instances = 3\nshutdown = 200\n");
    let (mut child, lines) = start_run(dir.path(), 3);
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    let lines = lines.lock().unwrap().join("\n");
    assert_eq!(status.code(), Some(0), "{lines}");
    for i in 1..=3 {
        assert!(lines.contains(&format!("parked/{i} <0.")), "{lines}");
    }
    assert_eq!(lines.matches("exited: shutdown").count(), 3, "{lines}");
    // Stopped in reverse start order.
    let at = |i: u32| lines.find(&format!("parked/{i} <0.")).map(|_| lines.rfind(&format!("parked/{i} ")).unwrap()).unwrap();
    assert!(at(3) < at(2) && at(2) < at(1), "{lines}");
}

#[test]
fn a_new_app_runs_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let o = rusm().args(["new", "my-app"]).current_dir(dir.path()).output().unwrap();
    let (stdout, stderr) = texts(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("cd my-app && rusm run"), "{stdout}");
    let app = dir.path().join("my-app");
    for f in ["rusm.toml", "Cargo.toml", "components/my-app/src/lib.rs", "wit/runtime.wit", ".gitignore", ".env.example"] {
        assert!(app.join(f).is_file(), "rusm new wrote no {f}");
    }
    // Share the examples' target directory: the same profile, so wit-bindgen builds once.
    let o = rusm().args(["run"]).current_dir(&app).env("CARGO_TARGET_DIR", repo().join("examples/target")).output().unwrap();
    let (stdout, stderr) = texts(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.lines().any(|l| l.starts_with("my-app | Hello from my-app! My pid is ") && l.ends_with("my app has 1 process(es).")), "{stdout}");
    assert!(app.join("wasm/my-app.wasm").is_file(), "the build lands in ./wasm/");
    // A second `new` of the same name refuses and leaves the app alone.
    let o = rusm().args(["new", "my-app"]).current_dir(dir.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(texts(&o).1.contains("already exists"));
}

/// Starts `rusm run` in `dir` and waits for `n` "started" lines; returns the child and the
/// stderr lines so far (a thread keeps reading them).
#[cfg(unix)]
fn start_run(dir: &Path, n: usize) -> (Run, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let mut child = rusm().args(["run"]).current_dir(dir).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let l2 = lines.clone();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            l2.lock().unwrap().push(line);
        }
    });
    let end = Instant::now() + Duration::from_secs(60);
    while lines.lock().unwrap().iter().filter(|l| l.contains("started ")).count() < n {
        assert!(Instant::now() < end, "not started: {:?}", lines.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    (Run { child, reader: Some(reader) }, lines)
}

/// A running `rusm run` and the thread reading its stderr.
#[cfg(unix)]
struct Run {
    child: std::process::Child,
    reader: Option<std::thread::JoinHandle<()>>,
}

#[cfg(unix)]
impl Run {
    fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, once every line it wrote has been read.
    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let status = self.child.wait()?;
        if let Some(r) = self.reader.take() {
            r.join().expect("the reader");
        }
        Ok(status)
    }
}

#[cfg(unix)]
#[test]
fn the_control_socket_lists_shows_and_stops_a_running_app() {
    let dir = parked_app("instances = 2\nshutdown = 100\n");
    // A socket left by a crashed run is replaced.
    std::fs::create_dir_all(dir.path().join(".rusm")).unwrap();
    drop(std::os::unix::net::UnixListener::bind(dir.path().join(".rusm/control.sock")).unwrap());
    let (mut child, lines) = start_run(dir.path(), 2);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(".rusm/control.sock")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the socket is the owner's only: {mode:o}");
    }
    let app = dir.path().to_str().unwrap();
    let o = rusm().args(["ps", "--json", "--app", app]).output().unwrap();
    let (stdout, stderr) = texts(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rows.len(), 2, "{stdout}");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["component"], "parked");
        assert_eq!(r["instance"], i as u64 + 1);
        assert_eq!(r["status"], "waiting", "{r}");
        assert_eq!(r["restarts"], 0);
        assert!(r["pid"].as_str().unwrap().starts_with("<0."));
    }
    let o = rusm().args(["ps", "--app", app]).output().unwrap();
    let table = texts(&o).0;
    assert!(table.starts_with("PID") && table.lines().count() == 3, "{table}");
    let o = rusm().args(["info", "parked/2", "--json", "--app", app]).output().unwrap();
    let info: Vec<serde_json::Value> = serde_json::from_str(&texts(&o).0).unwrap();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0]["label"], "parked/2");
    assert!(info[0]["links"].as_array().unwrap().len() == 1, "linked to its supervisor: {}", info[0]);
    let o = rusm().args(["info", "nobody", "--app", app]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(texts(&o).1.contains("no process \"nobody\""));
    // A second run of the same app is refused while this one lives.
    let o = rusm().args(["run"]).current_dir(dir.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(texts(&o).1.contains("already running"), "{}", texts(&o).1);
    // stop: graceful, exit 0, the socket gone.
    let o = rusm().args(["stop", "--app", app]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", texts(&o).1);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", lines.lock().unwrap());
    assert_eq!(lines.lock().unwrap().iter().filter(|l| l.contains("exited: shutdown")).count(), 2);
    assert!(!dir.path().join(".rusm/control.sock").exists());
    let o = rusm().args(["ps", "--app", app]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(texts(&o).1.contains("no running app"), "{}", texts(&o).1);
}

#[cfg(unix)]
#[test]
fn echo_tcp_gives_each_of_200_clients_its_own_bytes_while_a_crash_ends_only_itself() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let source = repo().join("examples/echo-tcp/components/echo");
    std::fs::write(
        dir.path().join("rusm.toml"),
        format!("[app]\nname = \"echo-test\"\n\n[components.echo]\nsource = {:?}\nlisten = \"127.0.0.1:0\"\n", source.to_str().unwrap()),
    )
    .unwrap();
    let (mut child, lines) = start_run(dir.path(), 1);
    let addr: std::net::SocketAddr = {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let found = lines.lock().unwrap().iter().find_map(|l| l.split("echo listening on ").nth(1).map(|a| a.trim().parse().unwrap()));
            if let Some(a) = found {
                break a;
            }
            assert!(Instant::now() < end, "{:?}", lines.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let clients: Vec<_> = (0..200u32)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                if i == 7 {
                    s.write_all(b"hello\ncrash\n").unwrap();
                    let mut got = Vec::new();
                    // The instance crashes: the connection ends (EOF or reset), whatever
                    // was echoed before it.
                    let _ = s.read_to_end(&mut got);
                    return None;
                }
                let mine: Vec<u8> = (0..4000u32).flat_map(|k| (i * 7919 + k).to_le_bytes()).collect();
                s.write_all(&mine).unwrap();
                s.shutdown(std::net::Shutdown::Write).unwrap();
                let mut got = Vec::new();
                s.read_to_end(&mut got).unwrap();
                Some(got == mine)
            })
        })
        .collect();
    let results: Vec<Option<bool>> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| **r == Some(true)).count(), 199, "every other client got its own 16,000 bytes back");
    // The listener lives on: one more client after the crash.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"still here").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    assert_eq!(got, "still here");
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", lines.lock().unwrap());
    let lines = lines.lock().unwrap();
    assert!(!lines.iter().any(|l| l.contains("restarted")), "the listener never restarted: {lines:?}");
}

#[test]
fn workers_answer_every_job_while_crashing_workers_restart() {
    let o = rusm().args(["run", "examples/workers"]).current_dir(repo()).output().unwrap();
    let (stdout, stderr) = texts(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let summary = stdout.lines().find(|l| l.starts_with("dispatch | dispatch: 100 jobs answered, 100 correct, ")).unwrap_or_else(|| panic!("{stdout}"));
    let retried: u32 = summary.split(", ").nth(2).and_then(|s| s.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
    // Each worker crashes on its 5th job: with 100 jobs over 4 workers, many times.
    assert!(retried >= 10, "{summary}");
    let crashes = stderr.lines().filter(|l| l.contains("exited: crashed: wasm trap")).count();
    let restarts = stderr.lines().filter(|l| l.contains("restarted worker/")).count();
    assert_eq!(crashes, retried as usize, "every retry was a crash:\n{stderr}");
    assert_eq!(restarts, crashes, "every crash was restarted:\n{stderr}");
    assert!(stdout.contains("worker crashed on job"), "the panic message is the guest's stderr");
}

#[test]
fn mixed_a_wasip1_module_and_a_component_talk() {
    let o = rusm().args(["run", "examples/mixed"]).current_dir(repo()).output().unwrap();
    let (stdout, stderr) = texts(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.lines().any(|l| l == "client | client (component): counted to 10 through the wasip1 module"), "{stdout}");
    assert!(stdout.lines().any(|l| l == "counter | counter (wasip1 module): answered 10 requests, stopping"), "{stdout}");
}

/// A component whose `run` returns at once, as WAT text (which `.wasm` files may hold).
const NOOP: &str = r#"(component
  (core module $m (func (export "run")))
  (core instance $i (instantiate $m))
  (func (export "run") (canon lift (core func $i "run"))))"#;

fn started(stdout: &str) -> Vec<String> {
    let mut names: Vec<String> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "started")
        .map(|v| v["component"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn every_unclaimed_wasm_in_the_wasm_dir_runs_unless_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("wasm")).unwrap();
    std::fs::write(dir.path().join("main.wasm"), NOOP).unwrap();
    std::fs::write(dir.path().join("wasm/extra.wasm"), NOOP).unwrap();
    std::fs::write(dir.path().join("wasm/main.wasm"), NOOP).unwrap(); // a component's name: not run twice
    std::fs::write(dir.path().join("wasm/not wasm.txt"), "ignored").unwrap();
    std::fs::write(dir.path().join("rusm.toml"), "[app]\nname = \"dropins\"\n\n[components.main]\nwasm = \"main.wasm\"\n").unwrap();
    let o = rusm().args(["run", "--json"]).current_dir(dir.path()).output().unwrap();
    let (stdout, stderr) = texts(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(started(&stdout), ["extra", "main"], "{stdout}");
    let o = rusm().args(["run", "--json", "--no-wasm-dir"]).current_dir(dir.path()).output().unwrap();
    assert_eq!(started(&texts(&o).0), ["main"]);
}

#[test]
fn a_single_wasm_file_runs_alone_and_its_crash_is_exit_1_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("noop.wasm"), NOOP).unwrap();
    let o = rusm().args(["run", "--json", "noop.wasm"]).current_dir(dir.path()).output().unwrap();
    let (stdout, stderr) = texts(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(started(&stdout), ["noop"]);
    // A trapping component: temporary (never restarted), its reason printed.
    let trap = NOOP.replace("(func (export \"run\")))", "(func (export \"run\") unreachable))");
    std::fs::write(dir.path().join("trap.wasm"), trap).unwrap();
    let o = rusm().args(["run", "trap.wasm"]).current_dir(dir.path()).output().unwrap();
    let (_, stderr) = texts(&o);
    assert_eq!(o.status.code(), Some(1), "a single artifact's crash is the exit code, as wasmtime run's: {stderr}");
    assert!(stderr.contains("trap <0.") && stderr.contains("exited: crashed: wasm trap"), "{stderr}");
    assert!(!stderr.contains("restarted"), "{stderr}");
}

#[test]
fn a_crash_loop_makes_the_root_supervisor_give_up_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let trap = NOOP.replace("(func (export \"run\")))", "(func (export \"run\") unreachable))");
    std::fs::write(dir.path().join("trap.wasm"), trap).unwrap();
    std::fs::write(dir.path().join("rusm.toml"), "[app]\nname = \"crashy\"\n\n[components.trap]\nwasm = \"trap.wasm\"\nrestart = \"permanent\"\n").unwrap();
    let o = rusm().args(["run"]).current_dir(dir.path()).output().unwrap();
    let (_, stderr) = texts(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    // OTP's default intensity: one restart in 5 s, then the supervisor gives up.
    assert_eq!(stderr.matches("exited: crashed").count(), 2, "{stderr}");
    assert!(stderr.contains("restarted trap") && stderr.contains("supervisor root gave up"), "{stderr}");
}

#[test]
fn a_compile_error_shows_cargos_output_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path().join("components/broken");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(krate.join("Cargo.toml"), "[package]\nname = \"broken\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[workspace]\n").unwrap();
    std::fs::write(krate.join("src/lib.rs"), "pub fn oops() -> u32 { \"not a number\" }\n").unwrap();
    std::fs::write(dir.path().join("rusm.toml"), "[app]\nname = \"broken\"\n\n[components.broken]\nsource = \"components/broken\"\n").unwrap();
    for cmd in ["build", "run"] {
        let o = rusm().arg(cmd).current_dir(dir.path()).output().unwrap();
        let (_, stderr) = texts(&o);
        assert_eq!(o.status.code(), Some(1), "{cmd}: {stderr}");
        assert!(stderr.contains("building component broken failed") && stderr.contains("mismatched types"), "{cmd}: {stderr}");
    }
    assert!(!dir.path().join("wasm/broken.wasm").exists());
}
