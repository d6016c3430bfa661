//! A core module on the raw `rusm` ABI: answers each [reply-to: u64][n: u64] with
//! [n + 1]; `stop` ends it. (The rusm name it is registered under comes from rusm.toml.)

#[link(wasm_import_module = "rusm")]
unsafe extern "C" {
    fn receive(buf: *mut u8, cap: i32, timeout_ms: i64, info: *mut u8) -> i32;
    fn send(to: i64, ptr: *const u8, len: i32) -> i32;
}

fn main() {
    let (mut buf, mut info) = ([0u8; 64], [0u8; 24]);
    let mut answered = 0u64;
    loop {
        // SAFETY: both pointers are to live buffers of the lengths given.
        let status = unsafe { receive(buf.as_mut_ptr(), buf.len() as i32, -1, info.as_mut_ptr()) };
        if status != 0 {
            continue;
        }
        let kind = u32::from_le_bytes(info[0..4].try_into().unwrap());
        let len = u32::from_le_bytes(info[4..8].try_into().unwrap()) as usize;
        if kind != 1 {
            continue;
        }
        if &buf[..len.min(64)] == b"stop" {
            println!("counter (wasip1 module): answered {answered} requests, stopping");
            return;
        }
        if len != 16 {
            continue;
        }
        let to = i64::from_le_bytes(buf[..8].try_into().unwrap());
        let n = u64::from_le_bytes(buf[8..16].try_into().unwrap());
        let reply = (n + 1).to_le_bytes();
        // SAFETY: `reply` is live for the call.
        unsafe { send(to, reply.as_ptr(), 8) };
        answered += 1;
    }
}
