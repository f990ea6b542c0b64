//! A recording TCP relay: what a client sends to a server passes through unchanged and
//! is kept, so a test can check what went over the wire (an STS request's parameters).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Relays connections to `upstream` (`http://host:port`) and records the client's bytes.
pub struct Recorder {
    pub url: String,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl Recorder {
    pub async fn start(upstream: &str) -> Self {
        let target = upstream
            .strip_prefix("http://")
            .unwrap()
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let sent = Arc::new(Mutex::new(Vec::new()));
        let record = sent.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (target, record) = (target.clone(), record.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(n) = cr.read(&mut buf).await {
                            if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            record.lock().unwrap().extend_from_slice(&buf[..n]);
                        }
                        let _ = sw.shutdown().await;
                    };
                    let down = async move {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                        let _ = cw.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        Recorder { url, sent }
    }

    /// The requests sent so far, one string each (split at each request line).
    pub fn requests(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.sent.lock().unwrap()).into_owned();
        text.split("POST ")
            .filter(|r| !r.is_empty())
            .map(|r| format!("POST {r}"))
            .collect()
    }
}
