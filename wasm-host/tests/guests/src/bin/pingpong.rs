//! Module-to-module request/reply. argv[1] = "server" or "client".
//! server: registers "pong-server"; answers [reply-to pid][n] with "pong:"[n].
//! client: first message [test pid][count]; sends count requests, checks each reply,
//! reports "client ok <count>" to the test.

use rusm_test_guests::*;

fn main() {
    let role = std::env::args().nth(1).unwrap_or_default();
    if role == "server" {
        assert_eq!(register("pong-server", own_pid()), OK);
        loop {
            let Some(m) = recv(-1) else { continue };
            if m.kind != KIND_MESSAGE || m.data.len() < 8 {
                continue;
            }
            let mut reply = b"pong:".to_vec();
            reply.extend_from_slice(&m.data[8..]);
            send(pid_at(&m.data, 0), &reply);
        }
    }
    let first = recv(-1).expect("setup");
    let test = pid_at(&first.data, 0);
    let count = u32::from_le_bytes(first.data[8..12].try_into().unwrap());
    let server = loop {
        match whereis("pong-server") {
            Some(p) => break p,
            None => sleep_ms(1),
        }
    };
    let me = own_pid();
    for i in 0..count {
        let mut req = me.to_le_bytes().to_vec();
        req.extend_from_slice(&i.to_le_bytes());
        send(server, &req);
        let r = recv_match(KIND_MESSAGE, b"pong:", 0, 5000).expect("a reply within 5 s");
        assert_eq!(&r.data[5..], &i.to_le_bytes(), "replies come in order");
    }
    send(test, format!("client ok {count}").as_bytes());
}
