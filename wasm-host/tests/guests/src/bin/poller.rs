//! `poll_oneoff` called directly, case by case (docs/WASM-ABI.md, "WASI"). First message:
//! [test pid]. Sends one line: `<case>=<errno>:<nevents>[:<userdata>/<error>/<type>...]`
//! for each case, space-separated; then passes a pointer outside its memory (which must
//! crash it).

use rusm_test_guests::*;

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    fn poll_oneoff(subs: *const u8, events: *mut u8, n: u32, nevents: *mut u32) -> i32;
    fn clock_time_get(id: u32, precision: u64, out: *mut u64) -> i32;
}

#[repr(C, align(8))]
struct Subs([u8; 48 * 4]);

#[repr(C, align(8))]
struct Events([u8; 32 * 4]);

fn clock(userdata: u64, id: u32, timeout: u64, absolute: bool) -> [u8; 48] {
    let mut s = [0u8; 48];
    s[0..8].copy_from_slice(&userdata.to_le_bytes());
    s[8] = 0;
    s[16..20].copy_from_slice(&id.to_le_bytes());
    s[24..32].copy_from_slice(&timeout.to_le_bytes());
    s[40] = absolute as u8;
    s
}

fn fd(userdata: u64, tag: u8, fd: u32) -> [u8; 48] {
    let mut s = [0u8; 48];
    s[0..8].copy_from_slice(&userdata.to_le_bytes());
    s[8] = tag;
    s[16..20].copy_from_slice(&fd.to_le_bytes());
    s
}

fn now(id: u32) -> u64 {
    let mut t = 0u64;
    // SAFETY: t is a live u64.
    assert_eq!(unsafe { clock_time_get(id, 0, &mut t) }, 0);
    t
}

/// Polls `subs` and renders the result.
fn poll(subs: &[[u8; 48]]) -> String {
    let mut input = Subs([0; 48 * 4]);
    for (i, s) in subs.iter().enumerate() {
        input.0[i * 48..(i + 1) * 48].copy_from_slice(s);
    }
    let mut events = Events([0; 32 * 4]);
    let mut n = u32::MAX;
    // SAFETY: both buffers hold 4 entries, n is a live u32.
    let rc = unsafe { poll_oneoff(input.0.as_ptr(), events.0.as_mut_ptr(), subs.len() as u32, &mut n) };
    let mut out = format!("{rc}:{}", if rc == 0 { n } else { 0 });
    if rc == 0 {
        for e in events.0.chunks_exact(32).take(n as usize) {
            let userdata = u64::from_le_bytes(e[0..8].try_into().unwrap());
            let error = u16::from_le_bytes(e[8..10].try_into().unwrap());
            out += &format!(":{userdata}/{error}/{}", e[10]);
        }
    }
    out
}

fn main() {
    let first = recv(-1).expect("setup");
    let test = pid_at(&first.data, 0);
    let mut line = Vec::new();
    line.push(format!("none={}", poll(&[])));
    line.push(format!("past={}", poll(&[clock(7, 1, now(1).saturating_sub(1), true)])));
    let t = now(1);
    line.push(format!("first={}", poll(&[clock(1, 1, 5_000_000_000, false), clock(2, 1, 20_000_000, false)])));
    let waited = now(1) - t;
    line.push(format!("waited20={}", waited >= 20_000_000 && waited < 5_000_000_000));
    line.push(format!("realtime={}", poll(&[clock(3, 0, now(0) + 10_000_000, true)])));
    line.push(format!("fd={}", poll(&[clock(4, 1, 5_000_000_000, false), fd(5, 1, 0), fd(6, 2, 1)])));
    line.push(format!("cputime={}", poll(&[clock(8, 2, 1000, false)])));
    line.push(format!("badtag={}", poll(&[fd(9, 7, 0)])));
    send(test, line.join(" ").as_bytes());
    let mut n = 0u32;
    // SAFETY: a deliberately bad pointer: the host must trap, not read it.
    unsafe { poll_oneoff(0x7fff_fff8 as *const u8, std::ptr::null_mut(), 1, &mut n) };
    send(test, b"survived");
}
