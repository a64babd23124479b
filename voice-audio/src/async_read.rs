//! Async streams as sources: a blocking [`Read`] over an `AsyncRead`
//! (futures-io's, which async-std and smol use, or tokio's), polled on the
//! thread that decodes with a waker that unparks that thread. It needs no
//! runtime of its own: the stream's runtime keeps running, and its reactor
//! wakes the reader. The probe, which reads the stream's start, runs on a
//! thread too, so [`AudioFile::from_async_read`] never blocks a task.

use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::AudioError;
use crate::decode::AudioFile;

/// Wakes the thread that polled.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `poll` until it is ready, parking the thread in between.
fn block_on<T>(mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>) -> T {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = poll(&mut cx) {
            return v;
        }
        // A wake that came before the park leaves a token: no wake is lost.
        std::thread::park();
    }
}

/// A futures-io stream read by blocking.
struct FuturesRead<R>(R);

impl<R: futures_io::AsyncRead + Unpin> Read for FuturesRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        block_on(|cx| Pin::new(&mut self.0).poll_read(cx, buf))
    }
}

/// A tokio stream read by blocking.
struct TokioRead<R>(R);

impl<R: tokio::io::AsyncRead + Unpin> Read for TokioRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut rb = tokio::io::ReadBuf::new(buf);
        block_on(|cx| Pin::new(&mut self.0).poll_read(cx, &mut rb))?;
        Ok(rb.filled().len())
    }
}

/// Probes `reader` on a thread of its own and hands the file back.
async fn probe_off_task(reader: impl Read + Send + Sync + 'static) -> Result<AudioFile, AudioError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("voice-audio-probe".into()).spawn(move || {
        let _ = tx.send(AudioFile::from_reader(reader));
    })?;
    rx.await.map_err(|_| AudioError::Decode("the probe stopped".into()))?
}

impl AudioFile {
    /// Reads an async stream (futures-io's `AsyncRead`: async-std's and
    /// smol's files, sockets and child processes). The stream is read on
    /// the decoding thread; its start is probed on a thread here, so this
    /// never blocks the task awaiting it.
    pub async fn from_async_read(
        reader: impl futures_io::AsyncRead + Send + Sync + Unpin + 'static,
    ) -> Result<Self, AudioError> {
        probe_off_task(FuturesRead(reader)).await
    }

    /// Reads a tokio stream (tokio's `AsyncRead`: `tokio::fs::File`, a
    /// `TcpStream`, a child's stdout, an HTTP body through
    /// `StreamReader`). As [`AudioFile::from_async_read`].
    pub async fn from_tokio_read(
        reader: impl tokio::io::AsyncRead + Send + Sync + Unpin + 'static,
    ) -> Result<Self, AudioError> {
        probe_off_task(TokioRead(reader)).await
    }
}
