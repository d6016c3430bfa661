//! raw → [`App`]: every rule of docs/MANIFEST.md, each failure a [`Located`] error.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusm_otp::supervisor::{Restart, Shutdown, Strategy};
use rusm_wasm::Profile;
use toml::Spanned;

use super::diag::Located;
use super::raw;
use super::{App, ArtifactSource, Component, FileGrant, SupervisorCfg, Target};

type Result<T> = std::result::Result<T, Located>;

/// The largest `instances` (an app's process quota, rusm_wasm::Quotas::processes).
const MAX_INSTANCES: i64 = 4096;
/// The largest `memory` (rusm_wasm::HostConfig's default memory slot).
const MAX_MEMORY: u64 = 256 << 20;
/// The grants a manifest may list (docs/SECURITY.md).
const GRANTS: &[&str] = &["other-apps"];

pub(super) fn check(m: raw::Manifest, path: &Path, dir: &Path, vars: &dyn Fn(&str) -> Option<String>) -> Result<App> {
    let name = m.app.get_ref().name.clone();
    if name.get_ref().trim().is_empty() {
        return Err(Located::at(name.span(), "the app's name is empty", "here").help("name it: `name = \"myapp\"`"));
    }
    let root = match &m.supervisor {
        Some(s) => supervisor(s.get_ref())?,
        None => SupervisorCfg::default(),
    };
    let mut groups = Vec::new();
    for (gname, table) in &m.supervisors {
        check_name(gname, "supervisor group")?;
        groups.push((gname.get_ref().clone(), supervisor(table.get_ref())?));
    }
    let group_names: Vec<&str> = groups.iter().map(|(n, _)| n.as_str()).collect();
    let names: Vec<&str> = m.components.keys().map(|k| k.get_ref().as_str()).collect();

    let mut components = Vec::new();
    let mut registered: HashMap<String, String> = HashMap::new();
    for (cname, table) in &m.components {
        check_name(cname, "component")?;
        let c = component(cname, table, dir, vars, &group_names, &names)?;
        if let Some(r) = &table.get_ref().register {
            if let Some(first) = registered.get(r.get_ref()) {
                return Err(Located::at(r.span(), format!("the name \"{}\" is registered twice", r.get_ref()), "registered again here")
                    .help(format!("[components.{first}] registers it too; registry names are unique in an app: pick another name for one of them")));
            }
            registered.insert(r.get_ref().clone(), cname.get_ref().clone());
        }
        components.push(c);
    }
    let order = start_order(&m)?;
    let mut by_name: HashMap<String, Component> = components.into_iter().map(|c| (c.name.clone(), c)).collect();
    let components = order.into_iter().filter_map(|n| by_name.remove(&n)).collect();
    Ok(App {
        name: name.into_inner(),
        path: path.to_owned(),
        dir: dir.to_owned(),
        root,
        groups,
        components,
    })
}

/// Component and group names become labels (`name/3`) and file names (`wasm/name.wasm`).
fn check_name(n: &Spanned<String>, what: &str) -> Result<()> {
    let s = n.get_ref();
    if super::is_plain_name(s) {
        Ok(())
    } else {
        Err(Located::at(n.span(), format!("{what} name \"{s}\" is not a plain name"), "this name")
            .help("use letters, digits, `-` and `_` (it names processes and the file ./wasm/NAME.wasm)"))
    }
}

fn supervisor(t: &raw::SupervisorTable) -> Result<SupervisorCfg> {
    let mut cfg = SupervisorCfg::default();
    if let Some(s) = &t.strategy {
        cfg.strategy = match s.get_ref().as_str() {
            "one_for_one" => Strategy::OneForOne,
            "one_for_all" => Strategy::OneForAll,
            "rest_for_one" => Strategy::RestForOne,
            other => return Err(unknown_word(s, other, "strategy", &["one_for_one", "one_for_all", "rest_for_one"])),
        };
    }
    if let Some(i) = &t.intensity {
        cfg.intensity = u32::try_from(*i.get_ref())
            .map_err(|_| Located::at(i.span(), "intensity must be 0 or more", "this value").help("the most restarts allowed within `period`, e.g. `intensity = 3`"))?;
    }
    if let Some(p) = &t.period {
        let secs = u64::try_from(*p.get_ref()).ok().filter(|s| *s > 0).ok_or_else(|| {
            Located::at(p.span(), "period must be at least 1 second", "this value").help("seconds over which `intensity` restarts are counted, e.g. `period = 5`")
        })?;
        cfg.period = Duration::from_secs(secs);
    }
    Ok(cfg)
}

fn unknown_word(s: &Spanned<String>, word: &str, key: &str, options: &[&str]) -> Located {
    Located::at(s.span(), format!("unknown {key} \"{word}\""), format!("not a {key}")).suggest(word, options, || format!("one of: {}", options.join(", ")))
}

fn component(
    cname: &Spanned<String>,
    table: &Spanned<raw::ComponentTable>,
    dir: &Path,
    vars: &dyn Fn(&str) -> Option<String>,
    groups: &[&str],
    names: &[&str],
) -> Result<Component> {
    let t = table.get_ref();
    let name = cname.get_ref().clone();
    let profile = match &t.profile {
        None => Profile::Sandboxed,
        Some(p) => match p.get_ref().as_str() {
            "sandboxed" => Profile::Sandboxed,
            "network-client" => Profile::NetworkClient,
            "trusted" => Profile::Trusted,
            other => return Err(unknown_word(p, other, "profile", &["sandboxed", "network-client", "trusted"])),
        },
    };
    let profile_name = t.profile.as_ref().map_or("sandboxed", |p| p.get_ref().as_str());
    let artifact = artifact(cname, table, dir)?;
    let memory = match &t.memory {
        None => None,
        Some(m) => {
            let bytes = super::parse_size(m.get_ref()).map_err(|why| Located::at(m.span(), format!("bad memory size: {why}"), "this size"))?;
            if bytes < 64 << 10 {
                return Err(Located::at(m.span(), "memory must be at least 64KiB (one Wasm page)", "too small"));
            }
            if bytes > MAX_MEMORY {
                return Err(Located::at(m.span(), "memory above the host's largest memory slot, 256MiB", "too large").help("ask for 256MiB or less"));
            }
            Some(bytes)
        }
    };
    let instances = match &t.instances {
        None => 1,
        Some(i) => {
            let n = *i.get_ref();
            if n < 1 {
                return Err(Located::at(i.span(), format!("instances = {n}: a component runs at least one instance"), "this count")
                    .help("remove the component, or set `instances = 1` or more"));
            }
            if n > MAX_INSTANCES {
                return Err(Located::at(i.span(), format!("instances = {n} is above an app's process quota, {MAX_INSTANCES}"), "this count"));
            }
            n as u32
        }
    };
    let restart = match &t.restart {
        None => Restart::Transient,
        Some(r) => match r.get_ref().as_str() {
            "transient" => Restart::Transient,
            "permanent" => Restart::Permanent,
            "temporary" => Restart::Temporary,
            other => return Err(unknown_word(r, other, "restart policy", &["transient", "permanent", "temporary"])),
        },
    };
    let shutdown = match &t.shutdown {
        None => Shutdown::Timeout(Duration::from_secs(5)),
        Some(s) => match s.get_ref() {
            toml::Value::Integer(ms) if *ms >= 0 => Shutdown::Timeout(Duration::from_millis(*ms as u64)),
            toml::Value::String(w) if w == "brutal_kill" => Shutdown::BrutalKill,
            toml::Value::String(w) if w == "infinity" => Shutdown::Infinity,
            _ => {
                return Err(Located::at(s.span(), "bad shutdown", "this value")
                    .help("milliseconds to wait after `shutdown` before killing (`shutdown = 5000`), \"brutal_kill\" or \"infinity\""));
            }
        },
    };
    let group = match &t.supervisor {
        None => None,
        Some(g) if groups.contains(&g.get_ref().as_str()) => Some(g.get_ref().clone()),
        Some(g) => {
            return Err(Located::at(g.span(), format!("no supervisor group \"{}\"", g.get_ref()), "not declared")
                .suggest(g.get_ref(), groups, || format!("declare it: [supervisors.{}] with a strategy", g.get_ref())));
        }
    };
    let register = match &t.register {
        None => None,
        Some(r) if r.get_ref().is_empty() || r.get_ref().len() > 255 => {
            return Err(Located::at(r.span(), "a registry name is 1 to 255 bytes", "this name"));
        }
        Some(r) => Some(r.get_ref().clone()),
    };
    let mut env = Vec::new();
    for (k, v) in &t.env {
        env.push((k.clone(), interpolate(v, vars)?));
    }
    let mut files = Vec::new();
    for f in &t.files {
        let f = f.get_ref();
        let writable = match &f.mode {
            None => false,
            Some(m) => match m.get_ref().as_str() {
                "ro" => false,
                "rw" => true,
                other => return Err(unknown_word(m, other, "mode", &["ro", "rw"])),
            },
        };
        if writable && profile != Profile::Trusted {
            let span = f.mode.as_ref().map_or(f.host.span(), Spanned::span);
            return Err(Located::at(span, format!("a writable directory is above the {profile_name} profile"), "grant above the profile")
                .help("use `mode = \"ro\"`, or `profile = \"trusted\"` if the component must write"));
        }
        let host = dir.join(f.host.get_ref());
        if !host.is_dir() {
            return Err(Located::at(f.host.span(), format!("no directory {}", host.display()), "not found")
                .help("host paths are relative to the manifest's directory; create it or fix the path"));
        }
        if f.guest.get_ref().is_empty() {
            return Err(Located::at(f.guest.span(), "the guest path is empty", "here").help("the path the guest sees, e.g. \"/data\""));
        }
        files.push(FileGrant { host, guest: f.guest.get_ref().clone(), writable });
    }
    let network = match &t.network {
        None => None,
        Some(list) => {
            if profile == Profile::Sandboxed {
                return Err(Located::at(list.span(), "network access is above the sandboxed profile", "grant above the profile")
                    .help("set `profile = \"network-client\"` for outbound connections"));
            }
            let mut out = Vec::new();
            for h in list.get_ref() {
                check_host(h)?;
                out.push(h.get_ref().clone());
            }
            Some(out)
        }
    };
    let mut other_apps = false;
    for g in &t.grants {
        if !GRANTS.contains(&g.get_ref().as_str()) {
            return Err(unknown_word(g, g.get_ref(), "grant", GRANTS));
        }
        if profile != Profile::Trusted {
            return Err(Located::at(g.span(), format!("the grant \"{}\" is above the {profile_name} profile", g.get_ref()), "grant above the profile")
                .help("reaching processes outside the app needs `profile = \"trusted\"`"));
        }
        other_apps = true;
    }
    let listen = match &t.listen {
        None => None,
        Some(l) => {
            let addr: SocketAddr = l.get_ref().parse().map_err(|_| {
                Located::at(l.span(), format!("bad address \"{}\"", l.get_ref()), "not an address").help("an IP and a port, e.g. \"127.0.0.1:7000\"")
            })?;
            if let Some(i) = t.instances.as_ref().filter(|_| instances > 1) {
                return Err(Located::at(i.span(), "`instances` with `listen`: a listening component runs one instance per connection", "remove this")
                    .help("each accepted connection starts its own instance; remove `instances`"));
            }
            if let Some(r) = &t.register {
                return Err(Located::at(r.span(), "`register` with `listen`: connection instances come and go", "remove this")
                    .help("register a component the connections talk to instead"));
            }
            Some(addr)
        }
    };
    let mut start_after = Vec::new();
    for a in &t.start_after {
        if !names.contains(&a.get_ref().as_str()) {
            return Err(Located::at(a.span(), format!("start_after names no component \"{}\"", a.get_ref()), "unknown component")
                .suggest(a.get_ref(), names, || format!("the components are: {}", names.join(", "))));
        }
        if a.get_ref() == &name {
            return Err(Located::at(a.span(), format!("\"{name}\" cannot start after itself"), "itself"));
        }
        start_after.push(a.get_ref().clone());
    }
    Ok(Component {
        name,
        artifact,
        profile,
        memory,
        instances,
        restart,
        shutdown,
        group,
        register,
        args: t.args.clone(),
        env,
        files,
        network,
        other_apps,
        start_after,
        listen,
    })
}

fn artifact(cname: &Spanned<String>, table: &Spanned<raw::ComponentTable>, dir: &Path) -> Result<ArtifactSource> {
    let t = table.get_ref();
    let target = match &t.target {
        None => Target::Wasip2,
        Some(s) => match s.get_ref().as_str() {
            "wasip2" => Target::Wasip2,
            "wasip1" => Target::Wasip1,
            other => return Err(unknown_word(s, other, "target", &["wasip2", "wasip1"])),
        },
    };
    match (&t.source, &t.wasm) {
        (Some(_), Some(w)) => Err(Located::at(w.span(), format!("[components.{}] has both `source` and `wasm`", cname.get_ref()), "the second one")
            .help("keep `source` to build the crate, or `wasm` to run a prebuilt file, not both")),
        (None, None) => Err(Located::at(cname.span(), format!("[components.{}] names no artifact", cname.get_ref()), "this component")
            .help("add `wasm = \"path/to/file.wasm\"` or `source = \"path/to/crate\"`")),
        (None, Some(w)) => {
            if let Some(t) = &t.target {
                return Err(Located::at(t.span(), "`target` is for `source` components", "not used").help("a prebuilt file's kind is read from the file: remove `target`"));
            }
            let path = dir.join(w.get_ref());
            if !path.is_file() {
                return Err(Located::at(w.span(), format!("no file {}", path.display()), "not found")
                    .help("paths are relative to the manifest's directory; build it first or fix the path"));
            }
            Ok(ArtifactSource::Wasm(path))
        }
        (Some(s), None) => {
            let path: PathBuf = dir.join(s.get_ref());
            if !path.join("Cargo.toml").is_file() {
                return Err(Located::at(s.span(), format!("no Cargo.toml in {}", path.display()), "not a crate")
                    .help("`source` is a cargo crate's directory (relative to the manifest)"));
            }
            Ok(ArtifactSource::Source { dir: path, target })
        }
    }
}

/// `host:port`, `host:*`, `[v6]:port`; a wildcard host name is not supported (the
/// allow-list is resolved to addresses once, at start).
fn check_host(h: &Spanned<String>) -> Result<()> {
    let s = h.get_ref();
    let bad = |why: &str| Located::at(h.span(), format!("bad network entry \"{s}\": {why}"), "this entry");
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(bad("no port").help("write \"host:port\" or \"host:*\", e.g. \"127.0.0.1:6379\""));
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if host.contains('*') {
        return Err(bad("wildcard host names are not supported").help("name each host (it is resolved once, at start) or give its address"));
    }
    if port != "*" && port.parse::<u16>().is_err() {
        return Err(bad("the port is not a number from 0 to 65535").help("write a port number or `*`"));
    }
    Ok(())
}

/// `${VAR}` in a value, from the process environment, then `.env`.
fn interpolate(v: &Spanned<String>, vars: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let s = v.get_ref();
    let mut out = String::new();
    let mut rest = s.as_str();
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            return Err(Located::at(v.span(), "unclosed `${` in an env value", "here").help("write `${NAME}`, or `$${` for a literal `${`"));
        };
        let var = &after[..end];
        match vars(var) {
            Some(val) => out.push_str(&val),
            None => {
                return Err(Located::at(v.span(), format!("the environment variable {var} is not set"), format!("needs {var}"))
                    .help(format!("set {var} in the environment or in .env beside rusm.toml (see .env.example)")));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Declaration order, each component moved after what it must start after; a cycle is
/// an error naming it.
fn start_order(m: &raw::Manifest) -> Result<Vec<String>> {
    let names: Vec<&Spanned<String>> = m.components.keys().collect();
    let deps: HashMap<&str, Vec<&Spanned<String>>> =
        m.components.iter().map(|(k, t)| (k.get_ref().as_str(), t.get_ref().start_after.iter().collect())).collect();
    let mut done: Vec<String> = Vec::new();
    let mut placed: HashSet<&str> = HashSet::new();
    while placed.len() < names.len() {
        let next = names
            .iter()
            .find(|n| !placed.contains(n.get_ref().as_str()) && deps[n.get_ref().as_str()].iter().all(|d| placed.contains(d.get_ref().as_str())));
        match next {
            Some(n) => {
                placed.insert(n.get_ref().as_str());
                done.push(n.get_ref().clone());
            }
            None => {
                // Everything left waits on something left: walk one chain to show the cycle.
                let first = names.iter().find(|n| !placed.contains(n.get_ref().as_str())).copied().expect("some left");
                let mut chain = vec![first.get_ref().as_str()];
                let mut at = first;
                loop {
                    let d = deps[at.get_ref().as_str()].iter().find(|d| !placed.contains(d.get_ref().as_str())).copied().expect("waits on one left");
                    if let Some(i) = chain.iter().position(|c| *c == d.get_ref().as_str()) {
                        let cycle: Vec<&str> = chain[i..].iter().copied().chain([d.get_ref().as_str()]).collect();
                        return Err(Located::at(d.span(), format!("start_after makes a cycle: {}", cycle.join(" → ")), "closes the cycle")
                            .help("components in a cycle can never start: remove one of these start_after entries"));
                    }
                    chain.push(d.get_ref().as_str());
                    at = names.iter().find(|n| n.get_ref() == d.get_ref()).copied().expect("declared");
                }
            }
        }
    }
    Ok(done)
}
