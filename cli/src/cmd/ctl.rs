//! `rusm ps`, `rusm info`, `rusm stop`: requests to a running app's control socket.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::args::{CtlArgs, InfoArgs};
use crate::control;
use crate::{EXIT_FAILURE, Failure};

/// The app directory: a manifest's directory, or the directory given.
fn app_dir(p: &Path) -> PathBuf {
    if p.is_dir() { p.to_owned() } else { p.parent().map(Path::to_owned).unwrap_or_else(|| PathBuf::from(".")) }
}

fn ask(a: &CtlArgs, req: serde_json::Value) -> Result<serde_json::Value, Failure> {
    control::request(&app_dir(&a.app), &req).map_err(|e| Failure::Code(EXIT_FAILURE, e))
}

/// `rusm ps`.
///
/// # Errors
///
/// No running app, or it refused.
pub fn ps(a: CtlArgs) -> Result<i32, Failure> {
    let v = ask(&a, json!({"cmd": "ps"}))?;
    let rows = v["processes"].as_array().cloned().unwrap_or_default();
    if a.json {
        println!("{}", serde_json::Value::Array(rows));
    } else {
        control::print_table(&rows);
    }
    Ok(0)
}

/// `rusm info`.
///
/// # Errors
///
/// No running app, no such process, or it refused.
pub fn info(a: InfoArgs) -> Result<i32, Failure> {
    let v = ask(&a.ctl, json!({"cmd": "info", "target": a.target}))?;
    let rows = v["processes"].as_array().cloned().unwrap_or_default();
    if a.ctl.json {
        println!("{}", serde_json::Value::Array(rows));
        return Ok(0);
    }
    for r in rows {
        println!("{}", r["label"].as_str().unwrap_or("?"));
        if let Some(o) = r.as_object() {
            for (k, v) in o {
                println!("  {k:<13} {v}");
            }
        }
    }
    Ok(0)
}

/// `rusm stop`.
///
/// # Errors
///
/// No running app.
pub fn stop(a: CtlArgs) -> Result<i32, Failure> {
    ask(&a, json!({"cmd": "stop"}))?;
    println!("stopping");
    Ok(0)
}
