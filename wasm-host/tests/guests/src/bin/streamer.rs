//! A stream between a guest and a native process. First message: [peer pid][bytes u32].
//! Writes `bytes` bytes (i % 251) to the peer in 16 KiB calls, closes, then accepts a
//! stream from the peer, reads it to the end and sends back "got <len> <sum>".

use rusm_test_guests::*;

fn main() {
    let first = recv(-1).expect("setup");
    let peer = pid_at(&first.data, 0);
    let bytes = u32::from_le_bytes(first.data[8..12].try_into().unwrap()) as usize;
    let data: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
    let mut h = [0u8; 4];
    // SAFETY: h is live.
    assert_eq!(unsafe { sys::stream_open(peer, h.as_mut_ptr()) }, OK);
    let h = i32::from_le_bytes(h);
    for chunk in data.chunks(16 << 10) {
        stream_write_all(h, chunk).expect("the reader stays");
    }
    // SAFETY: no pointers.
    unsafe { sys::stream_close(h) };
    let mut h = [0u8; 4];
    let mut from = [0u8; 8];
    // SAFETY: buffers are live.
    assert_eq!(unsafe { sys::stream_accept(-1, h.as_mut_ptr(), from.as_mut_ptr()) }, OK);
    let got = stream_read_all(i32::from_le_bytes(h)).expect("a clean end");
    let sum: u64 = got.iter().map(|&b| u64::from(b)).sum();
    send(peer, format!("got {} {sum}", got.len()).as_bytes());
}
