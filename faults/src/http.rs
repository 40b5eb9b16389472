//! A fired rule's effects on an HTTP answer: its delays, and a connection reset partway through the body.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::header::CONTENT_LENGTH;
use axum::response::Response;
use bytes::Bytes;
use http_body::Frame;

use crate::Fired;

/// Waits out the delay a fired rule adds before the operation.
pub async fn delay_before(fired: Option<&Fired>) {
    if let Some(fired) = fired.filter(|f| !f.delay_before.is_zero()) {
        tokio::time::sleep(fired.delay_before).await;
    }
}

/// Applies the rest of a fired rule to `response`: the delay after the operation, then the reset.
pub async fn finish(fired: Option<&Fired>, response: Response) -> Response {
    let Some(fired) = fired else {
        return response;
    };
    if !fired.delay_after.is_zero() {
        tokio::time::sleep(fired.delay_after).await;
    }
    if fired.reset { reset_midway(response) } else { response }
}

/// `response` with its head intact (its `Content-Length` too) and only the first half of its body (the first
/// chunk of a body of unknown length), after which the body fails: the server aborts the connection, and the
/// client sees it reset mid-answer. The body is streamed, never buffered.
pub fn reset_midway(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let length = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let pass = match length {
        Some(length) => length / 2,
        None => u64::MAX,
    };
    Response::from_parts(parts, Body::new(ResetMidway { inner: body, pass, sent_a_chunk: false }))
}

/// Passes `pass` bytes of `inner` (or its first chunk), then fails.
struct ResetMidway {
    inner: Body,
    pass: u64,
    sent_a_chunk: bool,
}

fn reset() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fault injected: connection reset")
}

impl http_body::Body for ResetMidway {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.pass == 0 || (self.pass == u64::MAX && self.sent_a_chunk) {
            return Poll::Ready(Some(Err(reset())));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => {
                let Ok(mut data) = frame.into_data() else {
                    return Poll::Ready(Some(Err(reset())));
                };
                self.sent_a_chunk = true;
                if self.pass != u64::MAX {
                    let take = usize::try_from(self.pass).unwrap_or(usize::MAX).min(data.len());
                    data.truncate(take);
                    self.pass -= take as u64;
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(_) => Poll::Ready(Some(Err(reset()))),
        }
    }
}
