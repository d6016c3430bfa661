use std::path::Path;

use super::*;

fn parse_str(src: &str, vars: &dyn Fn(&str) -> Option<String>) -> Result<App, Box<ManifestError>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let path = dir.path().join("rusm.toml");
    let r = parse(&path, src.to_owned(), vars);
    drop(dir);
    r
}

fn no_vars(_: &str) -> Option<String> {
    None
}

#[test]
fn sizes() {
    assert_eq!(parse_size("65536"), Ok(65536));
    assert_eq!(parse_size("512KiB"), Ok(512 << 10));
    assert_eq!(parse_size("64MiB"), Ok(64 << 20));
    assert_eq!(parse_size("1GiB"), Ok(1 << 30));
    assert!(parse_size("64MB").unwrap_err().contains("64MiB"));
    assert!(parse_size("lots").is_err());
    assert!(parse_size("99999999999GiB").unwrap_err().contains("too large"));
}

#[test]
fn defaults_are_otp_and_spin_like() {
    let app = parse_str("[app]\nname = \"x\"\n[components.a]\nwasm = \"a.wasm\"\n", &no_vars).unwrap();
    assert_eq!(app.root, SupervisorCfg::default());
    let c = &app.components[0];
    assert_eq!(c.profile, Profile::Sandboxed);
    assert_eq!(c.restart, Restart::Transient);
    assert_eq!(c.shutdown, Shutdown::Timeout(Duration::from_secs(5)));
    assert_eq!(c.instances, 1);
    assert_eq!(c.label(1), "a");
    assert!(c.network.is_none() && c.files.is_empty() && !c.other_apps);
}

#[test]
fn start_order_is_declaration_order_moved_by_start_after() {
    let src = "[app]\nname = \"x\"\n[components.c]\nwasm = \"a.wasm\"\nstart_after = [\"a\"]\n[components.b]\nwasm = \"a.wasm\"\n[components.a]\nwasm = \"a.wasm\"\n";
    let app = parse_str(src, &no_vars).unwrap();
    let order: Vec<&str> = app.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(order, ["b", "a", "c"]);
}

#[test]
fn env_values_interpolate_from_the_environment() {
    let src = "[app]\nname = \"x\"\n[components.a]\nwasm = \"a.wasm\"\nenv = { URL = \"redis://${HOST}:${PORT}/0\", PLAIN = \"p\" }\n";
    let vars = |k: &str| match k {
        "HOST" => Some("db".to_owned()),
        "PORT" => Some("6379".to_owned()),
        _ => None,
    };
    let app = parse_str(src, &vars).unwrap();
    assert_eq!(app.components[0].env, [("URL".to_owned(), "redis://db:6379/0".to_owned()), ("PLAIN".to_owned(), "p".to_owned())]);
}

#[test]
fn dotenv_fills_what_the_environment_lacks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(dir.path().join(".env"), "TOKEN=from-dotenv\nOTHER=x\n").unwrap();
    let src = "[app]\nname = \"x\"\n[components.a]\nwasm = \"a.wasm\"\nenv = { T = \"${TOKEN}\", O = \"${OTHER}\" }\n";
    let vars = |k: &str| (k == "OTHER").then(|| "from-env".to_owned());
    let app = parse(&dir.path().join("rusm.toml"), src.to_owned(), &vars).unwrap();
    assert_eq!(app.components[0].env, [("T".to_owned(), "from-dotenv".to_owned()), ("O".to_owned(), "from-env".to_owned())]);
}

#[test]
fn instances_and_groups() {
    let src = "[app]\nname = \"x\"\n[supervisors.pool]\nstrategy = \"one_for_all\"\nintensity = 10\nperiod = 2\n[components.w]\nwasm = \"a.wasm\"\ninstances = 4\nsupervisor = \"pool\"\nregister = \"workers\"\nrestart = \"permanent\"\nshutdown = \"brutal_kill\"\n";
    let app = parse_str(src, &no_vars).unwrap();
    assert_eq!(app.groups, [("pool".to_owned(), SupervisorCfg { strategy: Strategy::OneForAll, intensity: 10, period: Duration::from_secs(2) })]);
    let c = &app.components[0];
    assert_eq!((c.instances, c.label(3)), (4, "w/3".to_owned()));
    assert_eq!(c.group.as_deref(), Some("pool"));
    assert_eq!(c.restart, Restart::Permanent);
    assert_eq!(c.shutdown, Shutdown::BrutalKill);
}

#[test]
fn grants_within_the_profile_are_accepted() {
    let src = "[app]\nname = \"x\"\n[components.a]\nwasm = \"a.wasm\"\nprofile = \"trusted\"\ngrants = [\"other-apps\"]\nnetwork = [\"127.0.0.1:*\"]\n[components.b]\nwasm = \"a.wasm\"\nprofile = \"network-client\"\nnetwork = [\"127.0.0.1:6379\", \"[::1]:80\"]\n";
    let app = parse_str(src, &no_vars).unwrap();
    assert!(app.components[0].other_apps);
    assert_eq!(app.components[1].network.as_deref(), Some(&["127.0.0.1:6379".to_owned(), "[::1]:80".to_owned()][..]));
}

#[test]
fn locate_takes_a_directory_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(locate(dir.path()), dir.path().join("rusm.toml"));
    assert_eq!(locate(Path::new("x/app.toml")), Path::new("x/app.toml"));
}
