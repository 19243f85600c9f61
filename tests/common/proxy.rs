//! A TCP proxy on loopback that a test puts on a link to break it the ways real networks do:
//! cut it (every open connection closed, new ones refused), freeze the connections that are open
//! (they stop forwarding but stay open, as when a NAT mapping expires, while new connections
//! pass), or stall everything (connections accepted, nothing forwarded).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Forward everything.
    Pass = 0,
    /// Close every connection and refuse new ones.
    Cut = 1,
    /// Accept connections but forward nothing, in either direction, on any connection.
    Stall = 2,
}

struct Conn {
    frozen: Arc<AtomicBool>,
    task: tokio::task::AbortHandle,
}

pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<AtomicU8>,
    conns: Arc<std::sync::Mutex<Vec<Conn>>>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy on `listen` (or an ephemeral port when `None`) forwarding to `upstream`.
    pub async fn start(listen: Option<SocketAddr>, upstream: SocketAddr) -> Proxy {
        let bind = listen.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
        let listener = TcpListener::bind(bind).await.expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(AtomicU8::new(State::Pass as u8));
        let conns: Arc<std::sync::Mutex<Vec<Conn>>> = Default::default();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (st, cs, count) = (state.clone(), conns.clone(), accepted.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((down, _)) = listener.accept().await else {
                    continue;
                };
                if st.load(Ordering::SeqCst) == State::Cut as u8 {
                    drop(down);
                    continue;
                }
                count.fetch_add(1, Ordering::SeqCst);
                let frozen = Arc::new(AtomicBool::new(false));
                let (f, st2) = (frozen.clone(), st.clone());
                let task = tokio::spawn(async move {
                    let Ok(up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = down.set_nodelay(true);
                    let _ = up.set_nodelay(true);
                    let (dr, dw) = down.into_split();
                    let (ur, uw) = up.into_split();
                    tokio::join!(pump(dr, uw, f.clone(), st2.clone()), pump(ur, dw, f, st2));
                });
                let mut conns = cs.lock().unwrap();
                conns.retain(|c| !c.task.is_finished());
                conns.push(Conn {
                    frozen,
                    task: task.abort_handle(),
                });
            }
        });
        Proxy {
            addr,
            state,
            conns,
            accepted,
            accept,
        }
    }

    pub fn set(&self, state: State) {
        self.state.store(state as u8, Ordering::SeqCst);
        if state == State::Cut {
            for c in self.conns.lock().unwrap().drain(..) {
                c.task.abort();
            }
        }
    }

    /// The connections open now stop forwarding without closing; new ones pass.
    pub fn freeze_open(&self) -> usize {
        let conns = self.conns.lock().unwrap();
        let mut n = 0;
        for c in conns.iter().filter(|c| !c.task.is_finished()) {
            c.frozen.store(true, Ordering::SeqCst);
            n += 1;
        }
        n
    }

    /// Connections accepted so far (a link that redials makes a new one).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections open and not frozen.
    pub fn live_connections(&self) -> usize {
        self.conns
            .lock()
            .unwrap()
            .iter()
            .filter(|c| !c.task.is_finished() && !c.frozen.load(Ordering::SeqCst))
            .count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for c in self.conns.lock().unwrap().drain(..) {
            c.task.abort();
        }
    }
}

/// Copies `from` to `to` until either closes; while frozen or stalled it holds the bytes and
/// reads no more, so the sender's window fills and the connection goes quiet without closing.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
    state: Arc<AtomicU8>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while frozen.load(Ordering::SeqCst) || state.load(Ordering::SeqCst) == State::Stall as u8 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Bytes read just as the connection froze are held, as a dead middlebox would.
        while frozen.load(Ordering::SeqCst) || state.load(Ordering::SeqCst) == State::Stall as u8 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
