//! A client of the dashboard WebSocket for the tests: connect, sign in, send commands, wait for messages.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::TestApp;

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn connect(app: &TestApp) -> Socket {
    let url = format!(
        "{}/api/v1/ws/dashboard",
        app.url.replace("http://", "ws://")
    );
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// What the server sent next: a JSON message, or the close code.
#[derive(Debug)]
pub enum Next {
    Json(Value),
    Closed(Option<u16>),
    Nothing,
}

pub async fn next(ws: &mut Socket, within: Duration) -> Next {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Next::Nothing,
            Ok(None) | Ok(Some(Err(_))) => return Next::Closed(None),
            Ok(Some(Ok(Message::Text(text)))) => {
                return Next::Json(serde_json::from_str(text.as_str()).unwrap())
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Next::Closed(frame.map(|f| u16::from(f.code)))
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// The close code the server ends with, skipping messages.
pub async fn close_code(ws: &mut Socket, within: Duration) -> Option<u16> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match next(ws, deadline - Instant::now()).await {
            Next::Closed(code) => return code,
            Next::Nothing => return None,
            Next::Json(_) => {}
        }
    }
    None
}

/// Signs in with `credential` and returns the `ready` message.
pub async fn sign_in(ws: &mut Socket, credential: &str) -> Value {
    ws.send(Message::Text(credential.to_owned().into()))
        .await
        .unwrap();
    match next(ws, Duration::from_secs(10)).await {
        Next::Json(m) if m["type"] == "ready" => {
            assert_eq!(m["v"], 1);
            m
        }
        other => panic!("expected ready, got {other:?}"),
    }
}

pub async fn command(ws: &mut Socket, command: Value) -> Value {
    ws.send(Message::Text(command.to_string().into()))
        .await
        .unwrap();
    loop {
        match next(ws, Duration::from_secs(10)).await {
            Next::Json(m) if m["type"] == "subscribed" || m["type"] == "error" => return m,
            Next::Json(_) => {}
            other => panic!("expected an answer, got {other:?}"),
        }
    }
}

pub async fn expect(
    ws: &mut Socket,
    kind: &str,
    within: Duration,
    want: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        assert!(Instant::now() < deadline, "no {kind} message");
        match next(ws, deadline - Instant::now()).await {
            Next::Json(m) if m["type"] == kind && want(&m) => return m,
            Next::Json(_) => {}
            other => panic!("waiting for {kind}: {other:?}"),
        }
    }
}
