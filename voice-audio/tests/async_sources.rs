//! Async streams as sources: tokio's and futures-io's `AsyncRead`, read
//! as they trickle in, decode to exactly what the same file decodes to,
//! under a current-thread runtime whose only thread also feeds the stream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use voice_audio::{AudioFile, FRAME_LEN};

const MP3: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tone.mp3");

/// Every sample of a file, decoded on a thread (as the player does).
async fn decode_off_task(mut f: AudioFile) -> Vec<f32> {
    tokio::task::spawn_blocking(move || {
        let mut all = Vec::new();
        let mut frame = [0f32; FRAME_LEN];
        while f.next_frame(&mut frame).unwrap() {
            all.extend_from_slice(&frame);
        }
        all
    })
    .await
    .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn reference() -> Vec<f32> {
    let mut f = AudioFile::open(MP3).unwrap();
    let mut all = Vec::new();
    let mut frame = [0f32; FRAME_LEN];
    while f.next_frame(&mut frame).unwrap() {
        all.extend_from_slice(&frame);
    }
    all
}

#[test]
fn a_tokio_stream_that_trickles_in_decodes_like_the_file() {
    let bytes = std::fs::read(MP3).unwrap();
    let got = runtime().block_on(async move {
        let (mut tx, rx) = tokio::io::duplex(1024);
        // The writer runs on the runtime's one thread, which is also the
        // thread awaiting the probe: neither may block the other.
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for chunk in bytes.chunks(700) {
                tx.write_all(chunk).await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        let f = AudioFile::from_tokio_read(rx).await.unwrap();
        decode_off_task(f).await
    });
    let want = reference();
    assert!(want.len() >= 49 * FRAME_LEN);
    assert_eq!(got, want);
}

/// A futures-io stream that is pending before every chunk, woken from
/// another thread a moment later; it fails after `fail_after` bytes.
struct Trickle {
    bytes: Vec<u8>,
    at: usize,
    ready: bool,
    fail_after: usize,
}

impl futures_io::AsyncRead for Trickle {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        if !self.ready {
            self.ready = true;
            let waker = cx.waker().clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_micros(300));
                waker.wake();
            });
            return Poll::Pending;
        }
        self.ready = false;
        if self.at >= self.fail_after {
            return Poll::Ready(Err(std::io::Error::other("the connection broke")));
        }
        let n = buf.len().min(997).min(self.bytes.len() - self.at);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Poll::Ready(Ok(n))
    }
}

#[test]
fn a_futures_stream_decodes_like_the_file_and_a_broken_one_ends_early() {
    let bytes = std::fs::read(MP3).unwrap();
    let whole = Trickle { bytes: bytes.clone(), at: 0, ready: false, fail_after: usize::MAX };
    let half = Trickle { fail_after: bytes.len() / 2, bytes, at: 0, ready: false };
    let (got, broken) = runtime().block_on(async move {
        let f = AudioFile::from_async_read(whole).await.unwrap();
        let b = AudioFile::from_async_read(half).await.unwrap();
        (decode_off_task(f).await, decode_off_task(b).await)
    });
    let want = reference();
    assert_eq!(got, want);
    // A stream that breaks ends where it broke, its audio up to there intact.
    assert!(broken.len() > want.len() / 4 && broken.len() < want.len() * 3 / 4, "{} of {}", broken.len(), want.len());
    assert_eq!(broken[..FRAME_LEN * 10], want[..FRAME_LEN * 10]);
}
