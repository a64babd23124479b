//! TLS for the voice websocket: rustls's unbuffered client over the
//! runtime's TCP stream, with buffers that hold only what is in flight.
//!
//! A call keeps its websocket for its whole life and it is quiet almost
//! all the time (a heartbeat every few seconds). rustls's buffered
//! connection keeps a 4 KiB receive buffer from its first read on; here
//! TCP is read into one scratch buffer per thread, the complete records in
//! it are decrypted in place, and only what is left over (part of a
//! record, plaintext the reader has not taken, ciphertext the socket has
//! not taken) is kept with the call, and released once drained. An idle
//! call holds no buffer at all.
//!
//! The rules of the unbuffered API that this keeps: the bytes rustls did
//! not discard are passed back, unchanged and first, with whatever is read
//! next (they may hold parts of handshake messages it has already joined);
//! encoded TLS data is sent in the order it was encoded, and before any
//! application data encrypted after it.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_io::{AsyncRead, AsyncWrite};
use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::{ClientConfig, Error as TlsError};

use crate::runtime::ByteStream;

/// The scratch buffer's size: room for a whole record of the largest size
/// TLS allows (16 KiB of payload plus header and expansion).
const SCRATCH: usize = 18 * 1024;
/// The most received TLS data kept waiting for the rest of a record
/// (rustls allows handshake messages of up to 64 KiB).
const MAX_INCOMING: usize = 128 * 1024;
/// Plaintext accepted per write: one record's worth.
const MAX_WRITE: usize = 16 * 1024;
/// TCP reads one poll of the reader makes, at most, when none brings
/// plaintext.
const READ_PASSES: usize = 16;

thread_local! {
    /// Where TCP is read into. One per thread: a read and the processing
    /// of what it brought happen in one poll, with nothing else between.
    static SCRATCH_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A TLS client stream over `io`.
pub(crate) struct TlsStream {
    io: Box<dyn ByteStream>,
    conn: UnbufferedClientConnection,
    /// Received TLS bytes rustls has not discarded yet (part of a record).
    incoming: Vec<u8>,
    /// Decrypted data not yet read, from `plain_at` on.
    plaintext: Vec<u8>,
    plain_at: usize,
    /// TLS bytes not yet written to `io`, from `out_at` on.
    outgoing: Vec<u8>,
    out_at: usize,
    /// The peer closed (close_notify or end of the TCP stream).
    eof: bool,
    close_sent: bool,
    /// A TLS error ended the stream: every later poll fails.
    failed: bool,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream").field("eof", &self.eof).finish_non_exhaustive()
    }
}

/// Where processing stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// More TLS bytes are needed.
    NeedInput,
    /// The handshake is done and nothing more can be processed now.
    Writable,
    /// The peer closed.
    Closed,
}

/// What to do once the connection can carry application data.
#[derive(Clone, Copy)]
enum Write<'a> {
    Nothing,
    Data(&'a [u8]),
    CloseNotify,
}

fn tls_error(e: TlsError) -> io::Error {
    // An io::Error around the rustls error: the connect failure tells it
    // apart (`ConnectFailure::Tls`).
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Opens TLS to `name` over `io`: the handshake, done.
pub(crate) async fn connect(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    io: Box<dyn ByteStream>,
) -> io::Result<TlsStream> {
    let conn = UnbufferedClientConnection::new(config, name).map_err(tls_error)?;
    let mut s = TlsStream {
        io,
        conn,
        incoming: Vec::new(),
        plaintext: Vec::new(),
        plain_at: 0,
        outgoing: Vec::new(),
        out_at: 0,
        eof: false,
        close_sent: false,
        failed: false,
    };
    std::future::poll_fn(|cx| s.poll_handshake(cx)).await?;
    Ok(s)
}

impl TlsStream {
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let stop = self.process_incoming(Write::Nothing)?;
            ready!(self.poll_write_out(cx))?;
            match stop {
                Stop::Writable => return Poll::Ready(Ok(())),
                Stop::Closed => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                Stop::NeedInput => {
                    if !ready!(self.poll_read_tls(cx))? {
                        return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                    }
                }
            }
        }
    }

    /// Processes the records in `buf` until rustls needs more input or the
    /// connection is writable (then does `write`). Returns the bytes of
    /// `buf` to discard and where it stopped; `written` gets the plaintext
    /// bytes `write` encrypted.
    fn process(
        conn: &mut UnbufferedClientConnection,
        buf: &mut [u8],
        plaintext: &mut Vec<u8>,
        outgoing: &mut Vec<u8>,
        write: Write<'_>,
        written: &mut usize,
        close_sent: &mut bool,
    ) -> io::Result<(usize, Stop)> {
        let mut discarded = 0;
        loop {
            let UnbufferedStatus { discard, state } = conn.process_tls_records(&mut buf[discarded..]);
            let state = state.map_err(tls_error)?;
            // Records decrypted in place add their own discard (none in
            // rustls 0.23 yet, which decrypts into buffers of its own).
            let mut records_discard = 0;
            let stop = match state {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        let record = record.map_err(tls_error)?;
                        records_discard += record.discard;
                        plaintext.extend_from_slice(record.payload);
                    }
                    None
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    append(outgoing, 0, |out| {
                        encode.encode(out).map_err(|e| match e {
                            EncodeError::InsufficientSize(s) => Some(s.required_size),
                            _ => None,
                        })
                    })?;
                    None
                }
                // What was encoded is in `outgoing`, which goes out before
                // anything encoded after it.
                ConnectionState::TransmitTlsData(transmit) => {
                    transmit.done();
                    None
                }
                ConnectionState::BlockedHandshake => Some(Stop::NeedInput),
                ConnectionState::WriteTraffic(mut traffic) => {
                    match write {
                        Write::Nothing => {}
                        Write::Data(data) => {
                            // Room for the records' headers and tags, so that one try
                            // does (rustls asks for more when it splits records).
                            append(outgoing, data.len() + 64, |out| traffic.encrypt(data, out).map_err(insufficient))?;
                            *written = data.len();
                        }
                        Write::CloseNotify => {
                            append(outgoing, 64, |out| traffic.queue_close_notify(out).map_err(insufficient))?;
                            *close_sent = true;
                        }
                    }
                    Some(Stop::Writable)
                }
                ConnectionState::PeerClosed | ConnectionState::Closed => Some(Stop::Closed),
                _ => return Err(io::Error::other("TLS: unexpected connection state")),
            };
            discarded += discard + records_discard;
            if let Some(stop) = stop {
                return Ok((discarded, stop));
            }
        }
    }

    /// Processes what `incoming` holds (with `write` done if it can be).
    fn process_incoming(&mut self, write: Write<'_>) -> io::Result<Stop> {
        let (mut written, mut close_sent) = (0, self.close_sent);
        let (discard, stop) = Self::process(
            &mut self.conn,
            &mut self.incoming,
            &mut self.plaintext,
            &mut self.outgoing,
            write,
            &mut written,
            &mut close_sent,
        )?;
        self.close_sent = close_sent;
        self.incoming.drain(..discard);
        if stop == Stop::Closed {
            // Nothing after close_notify is read.
            self.eof = true;
            self.incoming.clear();
        }
        trim(&mut self.incoming);
        Ok(stop)
    }

    /// Notes that `r` failed the stream for good.
    fn check<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn failed_error() -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, "TLS: the stream failed earlier")
    }

    /// Reads TCP once and processes what came; `false` at the end of the
    /// TCP stream.
    fn poll_read_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        SCRATCH_BUF.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => self.poll_read_into(cx, &mut scratch),
            // Only a poll within a poll on one thread finds it taken.
            Err(_) => self.poll_read_into(cx, &mut Vec::new()),
        })
    }

    fn poll_read_into(&mut self, cx: &mut Context<'_>, scratch: &mut Vec<u8>) -> Poll<io::Result<bool>> {
        if scratch.len() < SCRATCH {
            scratch.resize(SCRATCH, 0);
        }
        let n = ready!(Pin::new(&mut *self.io).poll_read(cx, scratch))?;
        if n == 0 {
            if !self.incoming.is_empty() {
                // The stream was cut inside a record.
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            return Poll::Ready(Ok(false));
        }
        let result = self.process_read(&mut scratch[..n]);
        // Records are decrypted where they lie: no call's plaintext stays
        // in the thread's buffer.
        scratch[..n].fill(0);
        result?;
        Poll::Ready(Ok(true))
    }

    /// Processes `n` bytes just read into `scratch`.
    fn process_read(&mut self, scratch: &mut [u8]) -> io::Result<()> {
        let n = scratch.len();
        if !self.incoming.is_empty() {
            // Behind what rustls kept: append, then process it all. rustls
            // refuses records and handshake messages past its limits long
            // before this one.
            if self.incoming.len() + n > MAX_INCOMING {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "TLS: record too large"));
            }
            self.incoming.extend_from_slice(scratch);
            self.process_incoming(Write::Nothing)?;
            return Ok(());
        }
        let (mut written, mut close_sent) = (0, self.close_sent);
        let (discard, stop) = Self::process(
            &mut self.conn,
            scratch,
            &mut self.plaintext,
            &mut self.outgoing,
            Write::Nothing,
            &mut written,
            &mut close_sent,
        )?;
        if stop == Stop::Closed {
            // Nothing after close_notify is read.
            self.eof = true;
        } else {
            // The rest is part of a record: the call keeps it.
            self.incoming.extend_from_slice(&scratch[discard..n]);
        }
        Ok(())
    }

    /// Writes `outgoing` to TCP until it is empty.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_at < self.outgoing.len() {
            let n = ready!(Pin::new(&mut *self.io).poll_write(cx, &self.outgoing[self.out_at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_at += n;
        }
        self.outgoing.clear();
        self.out_at = 0;
        trim(&mut self.outgoing);
        Poll::Ready(Ok(()))
    }
}

fn insufficient(e: EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

/// Appends what `f` writes into the spare room it is given, growing the
/// room to the size `f` asks for when it is too small.
fn append(
    out: &mut Vec<u8>,
    mut room: usize,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, Option<usize>>,
) -> io::Result<()> {
    let start = out.len();
    loop {
        out.resize(start + room, 0);
        match f(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(Some(required)) if required > room => room = required,
            Err(_) => {
                out.truncate(start);
                return Err(io::Error::other("TLS: could not encode a record"));
            }
        }
    }
}

/// Releases a drained buffer, and most of one that holds far less than
/// its capacity (a large record once, a few bytes now).
fn trim(buf: &mut Vec<u8>) {
    if buf.is_empty() {
        if buf.capacity() > 0 {
            *buf = Vec::new();
        }
    } else if buf.capacity() > 1024 && buf.capacity() > 4 * buf.len() {
        buf.shrink_to(buf.len());
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(Err(Self::failed_error()));
        }
        for _ in 0..READ_PASSES {
            // What the records read asked to send (an alert, say) goes out
            // when the socket takes it; the read does not wait for that.
            if this.out_at < this.outgoing.len() {
                let r = this.poll_write_out(cx);
                if let Poll::Ready(Err(e)) = r {
                    return Poll::Ready(Err(e));
                }
            }
            if this.plain_at < this.plaintext.len() {
                let n = buf.len().min(this.plaintext.len() - this.plain_at);
                buf[..n].copy_from_slice(&this.plaintext[this.plain_at..this.plain_at + n]);
                this.plain_at += n;
                if this.plain_at == this.plaintext.len() {
                    this.plaintext.clear();
                    this.plain_at = 0;
                    trim(&mut this.plaintext);
                }
                return Poll::Ready(Ok(n));
            }
            if this.eof || buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let read = ready!(this.poll_read_tls(cx));
            if !this.check(read)? {
                this.eof = true;
            }
        }
        // Records without data (tickets, empty records) kept coming: let
        // other tasks run, and read on at the next poll.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(Err(Self::failed_error()));
        }
        ready!(this.poll_write_out(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.close_sent {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let data = &buf[..buf.len().min(MAX_WRITE)];
        let (mut written, mut close_sent) = (0, this.close_sent);
        let processed = Self::process(
            &mut this.conn,
            &mut this.incoming,
            &mut this.plaintext,
            &mut this.outgoing,
            Write::Data(data),
            &mut written,
            &mut close_sent,
        );
        let (discard, stop) = this.check(processed)?;
        this.incoming.drain(..discard);
        trim(&mut this.incoming);
        if stop == Stop::Closed {
            this.eof = true;
        }
        if written == 0 {
            // Only a closed connection refuses data once the handshake is done.
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        // Accepted: it goes out now if the socket takes it, else at the
        // next write or flush.
        let _ = this.poll_write_out(cx)?;
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut *this.io).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_sent && !this.failed {
            ready!(this.poll_write_out(cx))?;
            // A peer that closed first gets our close_notify all the same:
            // rustls tells of the peer's close once, before it offers the
            // write again.
            for _ in 0..2 {
                match this.process_incoming(Write::CloseNotify) {
                    Ok(Stop::Closed) if !this.close_sent => continue,
                    _ => break,
                }
            }
            this.close_sent = true;
        }
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut *this.io).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    //! The client against rustls's own (buffered) server over an in-memory
    //! pipe whose client end hands out a few bytes per read, so that
    //! records arrive in pieces.
    use std::collections::VecDeque;
    use std::io::{Read, Write as _};
    use std::sync::{Condvar, Mutex};
    use std::task::Waker;

    use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    use super::*;

    /// One direction: bytes, whether the writer closed, the async reader.
    #[derive(Default)]
    struct Pipe {
        state: Mutex<(VecDeque<u8>, bool, Option<Waker>)>,
        cv: Condvar,
    }

    impl Pipe {
        fn push(&self, data: &[u8]) {
            let mut s = self.state.lock().unwrap();
            s.0.extend(data);
            let w = s.2.take();
            drop(s);
            self.cv.notify_all();
            if let Some(w) = w {
                w.wake();
            }
        }

        fn close(&self) {
            let mut s = self.state.lock().unwrap();
            s.1 = true;
            let w = s.2.take();
            drop(s);
            self.cv.notify_all();
            if let Some(w) = w {
                w.wake();
            }
        }
    }

    struct ClientEnd {
        rx: Arc<Pipe>,
        tx: Arc<Pipe>,
        chunk: usize,
    }

    impl AsyncRead for ClientEnd {
        fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            let mut s = self.rx.state.lock().unwrap();
            if s.0.is_empty() {
                if s.1 {
                    return Poll::Ready(Ok(0));
                }
                s.2 = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = buf.len().min(self.chunk).min(s.0.len());
            for (b, v) in buf.iter_mut().zip(s.0.drain(..n)) {
                *b = v;
            }
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for ClientEnd {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.tx.push(buf);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.tx.close();
            Poll::Ready(Ok(()))
        }
    }

    struct ServerEnd {
        rx: Arc<Pipe>,
        tx: Arc<Pipe>,
    }

    impl Read for ServerEnd {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let mut s = self.rx.state.lock().unwrap();
            while s.0.is_empty() && !s.1 {
                s = self.rx.cv.wait(s).unwrap();
            }
            let n = buf.len().min(s.0.len());
            for (b, v) in buf.iter_mut().zip(s.0.drain(..n)) {
                *b = v;
            }
            Ok(n)
        }
    }

    impl std::io::Write for ServerEnd {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.tx.push(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    type Server = rustls::StreamOwned<rustls::ServerConnection, ServerEnd>;

    /// A leaf certificate for `localhost`, the server's config with it
    /// (offering only `versions`) and a client config trusting it.
    fn configs(
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> (Arc<rustls::ServerConfig>, Arc<ClientConfig>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.self_signed(&key).unwrap();
        let der: CertificateDer<'static> = cert.der().clone();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    /// Runs `serve` on a thread as the server, and `client` against it
    /// with reads of at most `chunk` bytes; returns the client's result.
    fn run<T>(
        versions: &[&'static rustls::SupportedProtocolVersion],
        chunk: usize,
        serve: impl FnOnce(&mut Server) + Send + 'static,
        client: impl AsyncFnOnce(io::Result<TlsStream>) -> T,
    ) -> T {
        let (server_config, client_config) = configs(versions);
        let (up, down) = (Arc::new(Pipe::default()), Arc::new(Pipe::default()));
        let end = ServerEnd { rx: up.clone(), tx: down.clone() };
        let server = std::thread::spawn(move || {
            let conn = rustls::ServerConnection::new(server_config).unwrap();
            let mut s = rustls::StreamOwned::new(conn, end);
            serve(&mut s);
            s.sock.tx.close();
        });
        let io: Box<dyn ByteStream> = Box::new(ClientEnd { rx: down, tx: up, chunk });
        let name = ServerName::try_from("localhost").unwrap();
        let out = crate::queue::block_on(async { client(connect(client_config, name, io).await).await });
        server.join().unwrap();
        out
    }

    async fn write_all(s: &mut TlsStream, mut data: &[u8]) {
        while !data.is_empty() {
            let n = std::future::poll_fn(|cx| Pin::new(&mut *s).poll_write(cx, data)).await.unwrap();
            data = &data[n..];
        }
        std::future::poll_fn(|cx| Pin::new(&mut *s).poll_flush(cx)).await.unwrap();
    }

    /// Reads until `len` bytes or the end.
    async fn read_up_to(s: &mut TlsStream, len: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 700];
        while got.len() < len {
            let n = std::future::poll_fn(|cx| Pin::new(&mut *s).poll_read(cx, &mut buf)).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// Echoes `len` bytes back in one write (several records when large).
    fn echo(len: usize) -> impl FnOnce(&mut Server) + Send + 'static {
        move |s| {
            let mut got = vec![0; len];
            s.read_exact(&mut got).unwrap();
            s.write_all(&got).unwrap();
            s.flush().unwrap();
        }
    }

    #[test]
    fn data_crosses_both_ways_on_tls13_and_tls12_in_small_reads() {
        for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12][..]] {
            for (len, chunk) in [(300, 7), (40_000, 1000), (5, 1 << 16)] {
                let data = pattern(len);
                let sent = data.clone();
                let got = run(versions, chunk, echo(len), async move |s| {
                    let mut s = s.unwrap();
                    write_all(&mut s, &sent).await;
                    read_up_to(&mut s, len).await
                });
                assert_eq!(got, data, "{versions:?}, {len} bytes in reads of {chunk}");
            }
        }
    }

    #[test]
    fn an_idle_stream_holds_no_buffer() {
        let held = run(&[&rustls::version::TLS13], 100, echo(3000), async |s| {
            let mut s = s.unwrap();
            write_all(&mut s, &pattern(3000)).await;
            let got = read_up_to(&mut s, 3000).await;
            (got.len(), s.incoming.capacity(), s.plaintext.capacity(), s.outgoing.capacity())
        });
        assert_eq!(held, (3000, 0, 0, 0));
    }

    #[test]
    fn the_peer_closing_ends_the_stream_and_close_notify_goes_out() {
        let (got, closed) = run(
            &[&rustls::version::TLS13],
            64,
            |s| {
                s.write_all(b"bye").unwrap();
                s.conn.send_close_notify();
                s.flush().unwrap();
                // Our close_notify comes back: the server reads to the end.
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest);
                assert!(rest.is_empty());
            },
            async |s| {
                let mut s = s.unwrap();
                let got = read_up_to(&mut s, 100).await;
                let closed = std::future::poll_fn(|cx| Pin::new(&mut s).poll_close(cx)).await;
                (got, closed.is_ok())
            },
        );
        assert_eq!(got, b"bye");
        assert!(closed);
    }

    #[test]
    fn a_key_update_from_the_server_is_followed() {
        let got = run(
            &[&rustls::version::TLS13],
            50,
            |s| {
                s.write_all(b"before").unwrap();
                s.flush().unwrap();
                s.conn.refresh_traffic_keys().unwrap();
                s.write_all(b" after").unwrap();
                s.flush().unwrap();
                echo(4)(s);
            },
            async |s| {
                let mut s = s.unwrap();
                let mut got = read_up_to(&mut s, 12).await;
                write_all(&mut s, b"ping").await;
                got.extend(read_up_to(&mut s, 4).await);
                got
            },
        );
        assert_eq!(got, b"before afterping");
    }

    #[test]
    fn an_untrusted_certificate_fails_with_the_rustls_error() {
        let (server_config, _) = configs(&[&rustls::version::TLS13]);
        let (_, other_client) = configs(&[&rustls::version::TLS13]);
        let (up, down) = (Arc::new(Pipe::default()), Arc::new(Pipe::default()));
        let end = ServerEnd { rx: up.clone(), tx: down.clone() };
        let server = std::thread::spawn(move || {
            let mut conn = rustls::ServerConnection::new(server_config).unwrap();
            let mut end = end;
            // Handshake until the client gives up (its alert or its close).
            while conn.complete_io(&mut end).is_ok_and(|(r, _)| r > 0) {}
            end.tx.close();
        });
        let io: Box<dyn ByteStream> = Box::new(ClientEnd { rx: down, tx: up.clone(), chunk: 1 << 16 });
        let err = crate::queue::block_on(connect(other_client, ServerName::try_from("localhost").unwrap(), io))
            .expect_err("an unknown issuer");
        up.close();
        server.join().unwrap();
        let tls = err.get_ref().and_then(|e| e.downcast_ref::<TlsError>());
        assert!(matches!(tls, Some(TlsError::InvalidCertificate(_))), "{err:?}");
    }

    #[test]
    fn garbage_from_the_server_is_a_typed_error() {
        // Bytes that are no TLS record, in pieces: the handshake fails
        // with rustls's error, whatever the pieces' sizes.
        for chunk in [1, 5, 4096] {
            let err = run(
                &[&rustls::version::TLS13],
                chunk,
                |s| {
                    let garbage: Vec<u8> =
                        (0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
                    s.sock.write_all(&garbage).unwrap();
                },
                async |s| s.err().map(|e| (e.kind(), e.get_ref().is_some_and(|e| e.is::<TlsError>()))),
            );
            assert_eq!(err, Some((io::ErrorKind::InvalidData, true)), "reads of {chunk}");
        }
    }

    #[test]
    fn a_stream_cut_inside_a_record_fails_and_stays_failed() {
        let (first, second) = run(
            &[&rustls::version::TLS13],
            1 << 16,
            |s| {
                while s.conn.is_handshaking() {
                    s.conn.complete_io(&mut s.sock).unwrap();
                }
                while s.conn.wants_write() {
                    s.conn.write_tls(&mut s.sock).unwrap();
                }
                s.conn.writer().write_all(&pattern(2000)).unwrap();
                let mut record = Vec::new();
                s.conn.write_tls(&mut record).unwrap();
                s.sock.write_all(&record[..record.len() / 2]).unwrap();
            },
            async |s| {
                let mut s = s.unwrap();
                let mut buf = [0u8; 100];
                let first = std::future::poll_fn(|cx| Pin::new(&mut s).poll_read(cx, &mut buf)).await;
                let second = std::future::poll_fn(|cx| Pin::new(&mut s).poll_read(cx, &mut buf)).await;
                (first.map_err(|e| e.kind()), second.map_err(|e| e.kind()))
            },
        );
        assert_eq!(first, Err(io::ErrorKind::UnexpectedEof));
        assert_eq!(second, Err(io::ErrorKind::InvalidData));
    }

    #[test]
    fn no_plaintext_stays_in_the_threads_buffer() {
        let secret = b"session 0123456789abcdef token";
        let got = run(
            &[&rustls::version::TLS13],
            1 << 16,
            |s| {
                s.write_all(secret).unwrap();
                s.flush().unwrap();
            },
            async |s| read_up_to(&mut s.unwrap(), secret.len()).await,
        );
        assert_eq!(got, secret);
        // The client ran on this thread: its scratch buffer was used.
        SCRATCH_BUF.with_borrow(|scratch| {
            assert_eq!(scratch.len(), SCRATCH);
            assert!(scratch.iter().all(|b| *b == 0));
        });
    }

    #[test]
    fn the_end_of_tcp_during_the_handshake_is_an_error() {
        let err = run(&[&rustls::version::TLS13], 10, |s| s.sock.tx.close(), async |s| s.err().map(|e| e.kind()));
        assert_eq!(err, Some(io::ErrorKind::UnexpectedEof));
    }
}
