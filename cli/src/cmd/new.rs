//! `rusm new NAME`: a new app that runs as it is.
//!
//! ```text
//! NAME/
//!   rusm.toml              one component, built from source
//!   Cargo.toml             a workspace of the app's components (one target dir)
//!   components/NAME/       a Rust component on the rusm:runtime world
//!   wit/                   the world, copied from this binary (nothing is published)
//!   .gitignore  .env.example
//! ```
//!
//! Nothing is overwritten: an existing directory of that name is an error.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::args::NewArgs;
use crate::{EXIT_FAILURE, Failure};

/// The WIT files, as this binary speaks them.
const WIT: &[(&str, &str)] = &[
    ("wit/runtime.wit", include_str!("../../../wit/runtime.wit")),
    ("wit/deps/clocks/clocks.wit", include_str!("../../../wit/deps/clocks/clocks.wit")),
];

/// Runs `rusm new`.
///
/// # Errors
///
/// A bad name, an existing directory, or a file that cannot be written.
pub fn new(args: NewArgs) -> Result<i32, Failure> {
    scaffold(&args.name, args.path.as_deref()).map_err(|e| Failure::Code(EXIT_FAILURE, e))?;
    Ok(0)
}

fn scaffold(name: &str, at: Option<&Path>) -> Result<()> {
    if !crate::manifest::is_plain_name(name) || name.starts_with(|c: char| c.is_ascii_digit()) {
        bail!("\"{name}\" is not a plain name: use letters, digits (not first), `-` and `_`");
    }
    let root = at.map_or_else(|| Path::new(name).to_owned(), Path::to_owned);
    if root.exists() {
        bail!("{} already exists: pick another name, or remove it first", root.display());
    }
    let crate_name = name.replace('-', "_");
    let files: Vec<(String, String)> = vec![
        ("rusm.toml".into(), format!(
            "# The app manifest: every key is in RUSM's docs/MANIFEST.md.\n[app]\nname = \"{name}\"\n\n[components.{name}]\nsource = \"components/{name}\"\n# profile = \"sandboxed\"        # the default: no network, no files\n# env = {{ GREETING = \"${{GREETING}}\" }}   # from the environment or .env\n"
        )),
        ("Cargo.toml".into(), format!(
            "# The app's components: one workspace, one target directory.\n[workspace]\nresolver = \"3\"\nmembers = [\"components/{name}\"]\n\n[workspace.dependencies]\nwit-bindgen = {{ version = \"0.63\", default-features = false, features = [\"macros\", \"realloc\"] }}\n\n[profile.release]\nopt-level = \"s\"\ndebug = false\nstrip = true\npanic = \"abort\"\n"
        )),
        (format!("components/{name}/Cargo.toml"), format!(
            "[package]\nname = \"{crate_name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nwit-bindgen.workspace = true\n"
        )),
        (format!("components/{name}/src/lib.rs"), format!(
            "//! The {name} component: a process of the rusm:runtime world. `run` is its body; when\n//! it returns, the process exits normally.\nwit_bindgen::generate!({{ path: \"../../wit\", world: \"rusm:runtime/process\" }});\n\nuse rusm::runtime::actor;\n\nstruct Component;\n\nimpl Guest for Component {{\n    fn run() {{\n        let me = actor::self_pid();
        println!(\"Hello from {name}! My pid is {{me}}; my app has {{}} process(es).\", actor::list_processes().len());\n    }}\n}}\n\nexport!(Component);\n"
        )),
        (".gitignore".into(), "target/\nwasm/\n.rusm/\n.env\n".into()),
        (".env.example".into(), "# Copy to .env: values here fill ${VAR} in rusm.toml's env tables when the\n# environment does not set them.\n# GREETING=hello\n".into()),
    ];
    for (path, text) in files.iter().map(|(p, t)| (p.as_str(), t.as_str())).chain(WIT.iter().copied()) {
        let p = root.join(path);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    println!("Created the app {name} in {}. Run it:\n\n    cd {} && rusm run\n", root.display(), root.display());
    Ok(())
}
