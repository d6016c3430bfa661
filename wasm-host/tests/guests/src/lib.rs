//! A guest's view of the raw `rusm` ABI (docs/WASM-ABI.md): the imports and thin safe
//! wrappers. Test guests only; no dependencies.

#![allow(clippy::missing_safety_doc)]

pub mod sys {
    #[link(wasm_import_module = "rusm")]
    unsafe extern "C" {
        pub fn own_pid() -> i64;
        pub fn send(to: i64, ptr: *const u8, len: i32) -> i32;
        pub fn receive(buf: *mut u8, cap: i32, timeout_ms: i64, info: *mut u8) -> i32;
        pub fn receive_match(
            kinds: i32,
            tag: *const u8,
            tag_len: i32,
            monitor: i64,
            buf: *mut u8,
            cap: i32,
            timeout_ms: i64,
            info: *mut u8,
        ) -> i32;
        pub fn read_rest(buf: *mut u8, cap: i32) -> i32;
        pub fn list_processes(buf: *mut u8, cap: i32) -> i32;
        pub fn info(pid: i64, buf: *mut u8, cap: i32, out_len: *mut u8) -> i32;
        pub fn is_alive(pid: i64) -> i32;
        pub fn kill(pid: i64) -> i32;
        pub fn exit(pid: i64, reason: *const u8, len: i32) -> i32;
        pub fn link(pid: i64) -> i32;
        pub fn unlink(pid: i64) -> i32;
        pub fn monitor(pid: i64) -> i64;
        pub fn demonitor(monitor: i64, flush: i32) -> i32;
        pub fn trap_exit(on: i32) -> i32;
        pub fn register(name: *const u8, len: i32, pid: i64) -> i32;
        pub fn whereis(name: *const u8, len: i32, out: *mut u8) -> i32;
        pub fn unregister(name: *const u8, len: i32) -> i32;
        pub fn set_label(ptr: *const u8, len: i32) -> i32;
        pub fn spawn(name: *const u8, name_len: i32, msg: *const u8, msg_len: i32, flags: i32, out: *mut u8) -> i32;
        pub fn send_after(to: i64, ptr: *const u8, len: i32, delay_ms: i64) -> i64;
        pub fn cancel_timer(id: i64) -> i32;
        pub fn sleep(ms: i64) -> i32;
        pub fn stream_open(to: i64, out_handle: *mut u8) -> i32;
        pub fn stream_write(handle: i32, ptr: *const u8, len: i32, out_n: *mut u8) -> i32;
        pub fn stream_read(handle: i32, ptr: *mut u8, cap: i32, out_n: *mut u8) -> i32;
        pub fn stream_close(handle: i32) -> i32;
        pub fn stream_accept(timeout_ms: i64, out_handle: *mut u8, out_from: *mut u8) -> i32;
    }
}

pub const OK: i32 = 0;
pub const NOPROC: i32 = 1;
pub const TIMEOUT: i32 = 2;
pub const NOT_FOUND: i32 = 3;
pub const TAKEN: i32 = 4;
pub const BAD_HANDLE: i32 = 5;
pub const CLOSED: i32 = 6;
pub const TOO_SMALL: i32 = 9;

pub const KIND_MESSAGE: u32 = 1;
pub const KIND_EXIT: u32 = 2;
pub const KIND_DOWN: u32 = 4;
pub const KIND_STREAM: u32 = 8;

/// A received mailbox item.
#[derive(Debug, Clone)]
pub struct Item {
    pub kind: u32,
    pub data: Vec<u8>,
    pub pid: i64,
    pub reference: i64,
}

fn item(rc: i32, buf: &[u8], info: &[u8; 24]) -> Option<Item> {
    if rc != OK {
        return None;
    }
    let kind = u32::from_le_bytes(info[0..4].try_into().unwrap());
    let len = u32::from_le_bytes(info[4..8].try_into().unwrap()) as usize;
    let pid = i64::from_le_bytes(info[8..16].try_into().unwrap());
    let reference = i64::from_le_bytes(info[16..24].try_into().unwrap());
    let mut data = buf[..len.min(buf.len())].to_vec();
    while data.len() < len {
        let mut chunk = vec![0u8; (len - data.len()).min(4096)];
        // SAFETY: chunk is a live buffer of its length.
        let n = unsafe { sys::read_rest(chunk.as_mut_ptr(), chunk.len() as i32) } as usize;
        assert!(n > 0, "read_rest returned nothing before the payload's end");
        data.extend_from_slice(&chunk[..n]);
    }
    Some(Item { kind, data, pid, reference })
}

/// The next item (`None` on timeout; `timeout_ms` < 0 waits for ever).
pub fn recv(timeout_ms: i64) -> Option<Item> {
    recv_buf(timeout_ms, 1024)
}

/// As [`recv`] with a buffer of `cap` bytes (the rest comes through `read_rest`).
pub fn recv_buf(timeout_ms: i64, cap: usize) -> Option<Item> {
    let mut buf = vec![0u8; cap];
    let mut info = [0u8; 24];
    // SAFETY: both buffers are live and of the lengths given.
    let rc = unsafe { sys::receive(buf.as_mut_ptr(), cap as i32, timeout_ms, info.as_mut_ptr()) };
    item(rc, &buf, &info)
}

/// Selective receive: the first item of `kinds` whose message starts with `tag` (and
/// whose `Down` is for `monitor`, if not 0).
pub fn recv_match(kinds: u32, tag: &[u8], monitor: i64, timeout_ms: i64) -> Option<Item> {
    let mut buf = vec![0u8; 1024];
    let mut info = [0u8; 24];
    // SAFETY: all buffers are live and of the lengths given.
    let rc = unsafe {
        sys::receive_match(
            kinds as i32,
            tag.as_ptr(),
            tag.len() as i32,
            monitor,
            buf.as_mut_ptr(),
            1024,
            timeout_ms,
            info.as_mut_ptr(),
        )
    };
    item(rc, &buf, &info)
}

pub fn own_pid() -> i64 {
    // SAFETY: no arguments.
    unsafe { sys::own_pid() }
}

pub fn send(to: i64, msg: &[u8]) {
    // SAFETY: msg is live.
    unsafe { sys::send(to, msg.as_ptr(), msg.len() as i32) };
}

pub fn whereis(name: &str) -> Option<i64> {
    let mut out = [0u8; 8];
    // SAFETY: name and out are live.
    let rc = unsafe { sys::whereis(name.as_ptr(), name.len() as i32, out.as_mut_ptr()) };
    (rc == OK).then(|| i64::from_le_bytes(out))
}

pub fn register(name: &str, pid: i64) -> i32 {
    // SAFETY: name is live.
    unsafe { sys::register(name.as_ptr(), name.len() as i32, pid) }
}

pub fn sleep_ms(ms: i64) {
    // SAFETY: no pointers.
    unsafe { sys::sleep(ms) };
}

/// Writes all of `data` to stream `h`; returns how many calls it took, or the error.
pub fn stream_write_all(h: i32, mut data: &[u8]) -> Result<usize, i32> {
    let mut calls = 0;
    while !data.is_empty() {
        let mut n = [0u8; 4];
        // SAFETY: data and n are live.
        let rc = unsafe { sys::stream_write(h, data.as_ptr(), data.len() as i32, n.as_mut_ptr()) };
        if rc != OK {
            return Err(rc);
        }
        calls += 1;
        data = &data[u32::from_le_bytes(n) as usize..];
    }
    Ok(calls)
}

/// Reads stream `h` to its end.
pub fn stream_read_all(h: i32) -> Result<Vec<u8>, i32> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        let mut n = [0u8; 4];
        // SAFETY: buf and n are live.
        let rc = unsafe { sys::stream_read(h, buf.as_mut_ptr(), buf.len() as i32, n.as_mut_ptr()) };
        if rc != OK {
            return Err(rc);
        }
        let n = u32::from_le_bytes(n) as usize;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

pub fn pid_at(b: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
