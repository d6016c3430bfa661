//! Every broken manifest in tests/ui/ gives exit 78 and the error in its `.err` snapshot
//! (`RUSM_BLESS=1` rewrites the snapshots; review the diff).

use crate::*;

#[test]
fn broken_manifests_name_the_place_and_the_fix() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let bless = std::env::var_os("RUSM_BLESS").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&ui).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "toml")).collect();
    cases.sort();
    assert!(cases.len() >= 15, "the issue asks for at least 15 broken manifests, found {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let file = case.file_name().unwrap().to_str().unwrap();
        let o = rusm().args(["check", file]).current_dir(&ui).env_remove("RUSM_UI_TEST_UNSET").output().unwrap();
        let (_, stderr) = texts(&o);
        if o.status.code() != Some(78) {
            failures.push(format!("{file}: exit {:?}, not 78\n{stderr}", o.status.code()));
            continue;
        }
        assert!(stderr.contains(&format!("[{file}:")), "{file}: the error names no file:line:col\n{stderr}");
        let snap = case.with_extension("err");
        if bless {
            std::fs::write(&snap, &stderr).unwrap();
            continue;
        }
        match std::fs::read_to_string(&snap) {
            Ok(want) if want == stderr => {}
            Ok(want) => failures.push(format!("{file}: the error changed\n--- want\n{want}\n--- got\n{stderr}")),
            Err(_) => failures.push(format!("{file}: no snapshot {} (run with RUSM_BLESS=1)\n{stderr}", snap.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_missing_manifest_says_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let o = rusm().args(["run"]).current_dir(dir.path()).output().unwrap();
    let (_, stderr) = texts(&o);
    assert_eq!(o.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("cannot read rusm.toml") && stderr.contains("rusm new"), "{stderr}");
}

#[test]
fn a_good_manifest_checks_in_start_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(
        dir.path().join("rusm.toml"),
        "[app]\nname = \"order\"\n\n[components.web]\nwasm = \"tiny.wasm\"\nstart_after = [\"db\"]\n\n[components.db]\nwasm = \"tiny.wasm\"\ninstances = 2\n",
    )
    .unwrap();
    let o = rusm().args(["check"]).current_dir(dir.path()).output().unwrap();
    let (stdout, stderr) = texts(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let db = stdout.find("  db ×2").expect("db listed");
    let web = stdout.find("  web ×1").expect("web listed");
    assert!(db < web, "db starts before web:\n{stdout}");
}

#[test]
fn usage_errors_exit_2() {
    let o = rusm().args(["run", "--no-such-flag"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = rusm().args(["run", "--quiet", "--follow", "x", "examples/hello"]).current_dir(repo()).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "--quiet and --follow conflict");
}
