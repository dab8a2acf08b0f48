use std::io::Error as IoError;
use std::io::{self, Cursor, ErrorKind, Read, Write};

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use std::sync::mpsc::Sender;

use crate::util::{EqualReader, FusedReader};
use crate::{HTTPVersion, Header, Method, Response, StatusCode};
use chunked_transfer::Decoder;

/// Represents an HTTP request made by a client.
///
/// A `Request` object is what is produced by the server, and is your what
/// your code must analyse and answer.
///
/// This object implements the `Send` trait, therefore you can dispatch your requests to
/// worker threads.
///
/// # Pipelining
///
/// If a client sends multiple requests in a row (without waiting for the response), then you will
/// get multiple `Request` objects simultaneously. This is called *requests pipelining*.
/// Tiny-http automatically reorders the responses so that you don't need to worry about the order
/// in which you call `respond` or `into_writer`.
///
/// This mechanic is disabled if:
///
///  - The body of a request is large enough (handling requires pipelining requires storing the
///    body of the request in a buffer ; if the body is too big, tiny-http will avoid doing that)
///  - A request sends a `Expect: 100-continue` header (which means that the client waits to
///    know whether its body will be processed before sending it)
///  - A request sends a `Connection: close` header or `Connection: upgrade` header (used for
///    websockets), which indicates that this is the last request that will be received on this
///    connection
///
/// # Automatic cleanup
///
/// If a `Request` object is destroyed without `into_writer` or `respond` being called,
/// an empty response with a 500 status code (internal server error) will automatically be
/// sent back to the client.
/// This means that if your code fails during the handling of a request, this "internal server
/// error" response will automatically be sent during the stack unwinding.
///
/// # Testing
///
/// If you want to build fake requests to test your server, use [`TestRequest`](crate::test::TestRequest).
pub struct Request {
    // where to read the body from
    data_reader: Option<Box<dyn Read + Send + 'static>>,

    // if this writer is empty, then the request has been answered
    response_writer: Option<Box<dyn Write + Send + 'static>>,

    remote_addr: Option<SocketAddr>,

    // true if HTTPS, false if HTTP
    secure: bool,

    method: Method,

    path: String,

    http_version: HTTPVersion,

    headers: Vec<Header>,

    body_length: Option<usize>,

    // true if a `100 Continue` response must be sent when `as_reader()` is called
    must_send_continue: bool,

    // If Some, a message must be sent after responding
    notify_when_responded: Option<Sender<()>>,

    // claude-bridge patch: the connection's socket (see `Request::connection`)
    connection: Option<std::sync::Arc<crate::connection::Connection>>,

    // claude-bridge patch: keeps the request counted in `Server::requests_in_progress`
    _counted: Option<InProgress>,

    // claude-bridge patch: whether the body has been read to its end (see `BodyState`)
    body: std::sync::Arc<BodyState>,

    // claude-bridge patch: the connection's read deadlines (the body's starts in `as_reader`)
    clock: Option<std::sync::Arc<crate::util::HeadClock>>,

    // claude-bridge patch: the bytes of head and body memory this request holds (see
    // `HeadMemory`)
    _memory: Option<[HeadMemory; 2]>,
}

/// claude-bridge patch: what a request's body reader shares with its request and connection.
/// A body not read to its end is never drained: the answer says `Connection: close` and the
/// connection is closed after it (what is left of the body is discarded only while the
/// connection closes, on its own thread). Upstream drained it when the request was dropped,
/// on whatever thread dropped it, for as long as the client cared to drip it; and a chunked body
/// left after an error was parsed as the next requests.
pub(crate) struct BodyState {
    done: std::sync::atomic::AtomicBool,
    closing: std::sync::OnceLock<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl BodyState {
    fn new(done: bool) -> std::sync::Arc<BodyState> {
        std::sync::Arc::new(BodyState {
            done: std::sync::atomic::AtomicBool::new(done),
            closing: std::sync::OnceLock::new(),
        })
    }

    fn done(&self) -> bool {
        self.done.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// claude-bridge patch: a body reader that notes when the body has been read to its end, and
/// when it is dropped before that, marks the connection as closing.
struct Tracked {
    inner: Box<dyn Read + Send + 'static>,
    state: std::sync::Arc<BodyState>,
}

impl Read for Tracked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.state
                .done
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(n)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // Runs before `inner` is dropped, which hands the connection to its next request.
        if !self.state.done() {
            if let Some(closing) = self.state.closing.get() {
                closing.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }
}

/// claude-bridge patch: a reader that fails with the error a prefetch met, holding the
/// connection's reader until it is dropped.
struct Failing(Option<IoError>, Box<dyn Read + Send + 'static>);

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(self
            .0
            .take()
            .unwrap_or_else(|| IoError::new(ErrorKind::ConnectionAborted, "body cut short")))
    }
}

/// claude-bridge patch: bytes of request heads (or of bodies read ahead) reserved in one of the
/// server's memory budgets, given back when dropped (with the request that holds them).
pub(crate) struct HeadMemory {
    total: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    held: usize,
}

impl HeadMemory {
    pub(crate) fn new(total: std::sync::Arc<std::sync::atomic::AtomicUsize>) -> HeadMemory {
        HeadMemory { total, held: 0 }
    }

    /// Reserve `n` more bytes; false (reserving nothing) when that would pass `budget`.
    pub(crate) fn reserve(&mut self, n: usize, budget: usize) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        let mut now = self.total.load(SeqCst);
        loop {
            if now.saturating_add(n) > budget {
                return false;
            }
            match self.total.compare_exchange(now, now + n, SeqCst, SeqCst) {
                Ok(_) => {
                    self.held += n;
                    return true;
                }
                Err(actual) => now = actual,
            }
        }
    }
}

impl Drop for HeadMemory {
    fn drop(&mut self) {
        self.total
            .fetch_sub(self.held, std::sync::atomic::Ordering::SeqCst);
    }
}

/// claude-bridge patch: one request counted as in progress until this is dropped.
pub(crate) struct InProgress(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl InProgress {
    pub(crate) fn enter(counter: std::sync::Arc<std::sync::atomic::AtomicUsize>) -> InProgress {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InProgress(counter)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// claude-bridge patch: a handle on the socket of a request's connection, for watching it while
/// the answer is prepared elsewhere (e.g. peeking to learn that the client has gone). It keeps
/// the socket open while it lives. Do not read from or write to it: the request's own reader and
/// writer own the stream.
#[derive(Clone)]
pub struct ConnectionHandle(std::sync::Arc<crate::connection::Connection>);

impl ConnectionHandle {
    /// The TCP socket, or `None` for a Unix-socket connection.
    pub fn tcp(&self) -> Option<&std::net::TcpStream> {
        match &*self.0 {
            crate::connection::Connection::Tcp(s) => Some(s),
            #[cfg(unix)]
            crate::connection::Connection::Unix(_) => None,
        }
    }
}

struct NotifyOnDrop<R> {
    sender: Sender<()>,
    inner: R,
}

impl<R: Read> Read for NotifyOnDrop<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}
impl<R: Write> Write for NotifyOnDrop<R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
impl<R> Drop for NotifyOnDrop<R> {
    fn drop(&mut self) {
        self.sender.send(()).unwrap();
    }
}

/// Error that can happen when building a `Request` object.
#[derive(Debug)]
pub enum RequestCreationError {
    /// The client sent an `Expect` header that was not recognized by tiny-http.
    ExpectationFailed,

    /// Error while reading data from the socket during the creation of the `Request`.
    CreationIoError(IoError),
}

impl From<IoError> for RequestCreationError {
    fn from(err: IoError) -> RequestCreationError {
        RequestCreationError::CreationIoError(err)
    }
}

/// Builds a new request.
///
/// After the request line and headers have been read from the socket, a new `Request` object
/// is built.
///
/// You must pass a `Read` that will allow the `Request` object to read from the incoming data.
/// It is the responsibility of the `Request` to read only the data of the request and not further.
///
/// The `Write` object will be used by the `Request` to write the response.
#[allow(clippy::too_many_arguments)]
pub fn new_request<R, W>(
    secure: bool,
    method: Method,
    path: String,
    version: HTTPVersion,
    headers: Vec<Header>,
    remote_addr: Option<SocketAddr>,
    source_data: R,
    writer: W,
) -> Result<Request, RequestCreationError>
where
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    new_request_prefetching(
        secure,
        method,
        path,
        version,
        headers,
        remote_addr,
        source_data,
        writer,
        None,
    )
}

/// claude-bridge patch: [`new_request`], reading a body of up to `prefetch` bytes (declared, or
/// chunked) whole before the request is handed out, so the server never waits for it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_request_prefetching<R, W>(
    secure: bool,
    method: Method,
    path: String,
    version: HTTPVersion,
    headers: Vec<Header>,
    remote_addr: Option<SocketAddr>,
    mut source_data: R,
    writer: W,
    prefetch: Option<usize>,
) -> Result<Request, RequestCreationError>
where
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    // finding the transfer-encoding header
    let transfer_encoding = headers
        .iter()
        .find(|h: &&Header| h.field.equiv("Transfer-Encoding"))
        .map(|h| h.value.clone());

    // finding the content-length header
    let content_length = if transfer_encoding.is_some() {
        // if transfer-encoding is specified, the Content-Length
        // header must be ignored (RFC2616 #4.4)
        None
    } else {
        headers
            .iter()
            .find(|h: &&Header| h.field.equiv("Content-Length"))
            .and_then(|h| FromStr::from_str(h.value.as_str()).ok())
    };

    // true if the client sent a `Expect: 100-continue` header
    let expects_continue = {
        match headers
            .iter()
            .find(|h: &&Header| h.field.equiv("Expect"))
            .map(|h| h.value.as_str())
        {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("100-continue") => true,
            _ => return Err(RequestCreationError::ExpectationFailed),
        }
    };

    // true if the client sent a `Connection: upgrade` header
    let connection_upgrade = {
        match headers
            .iter()
            .find(|h: &&Header| h.field.equiv("Connection"))
            .map(|h| h.value.as_str())
        {
            Some(v) if v.to_ascii_lowercase().contains("upgrade") => true,
            _ => false,
        }
    };

    // claude-bridge patch: whether the body has been read to its end here (every body but a
    // streamed one: Content-Length over 1 KiB, or chunked, unless prefetched)
    let mut done = true;
    type BoxRead = Box<dyn Read + Send + 'static>;
    // claude-bridge patch: a prefetch that failed hands over what arrived, then the error; it
    // holds on to the connection's reader (`hold`) so that the next request is not read before
    // this one is done with the connection (which is then closed: the body is not done)
    let failed = |got: Vec<u8>, e: IoError, hold: BoxRead| -> BoxRead {
        Box::new(Cursor::new(got).chain(Failing(Some(e), hold)))
    };
    let prefetch = prefetch.filter(|_| !expects_continue && !connection_upgrade);

    // we wrap `source_data` around a reading whose nature depends on the transfer-encoding and
    // content-length headers
    let reader = if connection_upgrade {
        // if we have a `Connection: upgrade`, always keeping the whole reader
        Box::new(source_data) as Box<dyn Read + Send + 'static>
    } else if let Some(content_length) = content_length {
        if content_length == 0 {
            Box::new(io::empty()) as Box<dyn Read + Send + 'static>
        } else if content_length <= 1024 && !expects_continue {
            // if the content-length is small enough, we just read everything into a buffer

            let mut buffer = vec![0; content_length];
            let mut offset = 0;

            while offset != content_length {
                let read = source_data.read(&mut buffer[offset..])?;
                if read == 0 {
                    // the socket returned EOF, but we were before the expected content-length
                    // aborting
                    let info = "Connection has been closed before we received enough data";
                    let err = IoError::new(ErrorKind::ConnectionAborted, info);
                    return Err(RequestCreationError::CreationIoError(err));
                }

                offset += read;
            }

            Box::new(Cursor::new(buffer)) as Box<dyn Read + Send + 'static>
        } else if prefetch.is_some_and(|max| content_length <= max) {
            // claude-bridge patch: prefetched whole (within the body deadline)
            let mut got = Vec::with_capacity(content_length);
            let (mut data_reader, _) = EqualReader::new(source_data, content_length);
            match data_reader.read_to_end(&mut got) {
                Ok(_) if got.len() == content_length => Box::new(Cursor::new(got)) as BoxRead,
                Ok(_) => {
                    done = false;
                    let info = "Connection has been closed before we received enough data";
                    let e = IoError::new(ErrorKind::ConnectionAborted, info);
                    failed(got, e, Box::new(data_reader))
                }
                Err(e) => {
                    done = false;
                    failed(got, e, Box::new(data_reader))
                }
            }
        } else {
            done = false;
            let (data_reader, _) = EqualReader::new(source_data, content_length); // TODO:
            Box::new(FusedReader::new(data_reader)) as Box<dyn Read + Send + 'static>
        }
    } else if transfer_encoding.is_some() {
        // if a transfer-encoding was specified, then "chunked" is ALWAYS applied
        // over the message (RFC2616 #3.6)
        let mut decoder = Decoder::new(source_data);
        match prefetch {
            // claude-bridge patch: prefetched up to one byte past `max` (within the body
            // deadline); a longer body is left pending after it, for the server to refuse
            Some(max) => {
                let mut got = Vec::new();
                match (&mut decoder).take(max as u64 + 1).read_to_end(&mut got) {
                    Ok(_) if got.len() <= max => Box::new(Cursor::new(got)) as BoxRead,
                    Ok(_) => {
                        done = false;
                        Box::new(Cursor::new(got).chain(FusedReader::new(decoder))) as BoxRead
                    }
                    Err(e) => {
                        done = false;
                        failed(got, e, Box::new(decoder))
                    }
                }
            }
            None => {
                done = false;
                Box::new(FusedReader::new(decoder)) as Box<dyn Read + Send + 'static>
            }
        }
    } else {
        // if we have neither a Content-Length nor a Transfer-Encoding,
        // assuming that we have no data
        // TODO: could also be multipart/byteranges
        Box::new(io::empty()) as Box<dyn Read + Send + 'static>
    };
    let body = BodyState::new(done);

    let reader = Box::new(Tracked {
        inner: reader,
        state: std::sync::Arc::clone(&body),
    });

    Ok(Request {
        data_reader: Some(reader),
        response_writer: Some(Box::new(writer) as Box<dyn Write + Send + 'static>),
        remote_addr,
        secure,
        method,
        path,
        http_version: version,
        headers,
        body_length: content_length,
        must_send_continue: expects_continue,
        notify_when_responded: None,
        connection: None,
        _counted: None,
        body,
        clock: None,
        _memory: None,
    })
}

impl Request {
    /// claude-bridge patch: remember the connection's socket (see `connection`).
    pub(crate) fn with_connection(
        mut self,
        connection: Option<std::sync::Arc<crate::connection::Connection>>,
    ) -> Self {
        self.connection = connection;
        self
    }

    /// claude-bridge patch: the connection's read deadlines, its closing flag (raised when this
    /// request is dropped with its body unread) and the head and body memory the request holds.
    pub(crate) fn on_connection(
        mut self,
        clock: std::sync::Arc<crate::util::HeadClock>,
        closing: std::sync::Arc<std::sync::atomic::AtomicBool>,
        memory: [HeadMemory; 2],
    ) -> Self {
        let _ = self.body.closing.set(closing);
        self.clock = Some(clock);
        self._memory = Some(memory);
        self
    }

    /// claude-bridge patch: whether the request's body has not been read to its end (yet).
    /// Answered so, the response says `Connection: close` and the connection is closed after it
    /// (the rest of the body is never read).
    pub fn body_pending(&self) -> bool {
        !self.body.done()
    }

    /// claude-bridge patch: keep the request counted while it lives.
    pub(crate) fn counted(mut self, counted: Option<InProgress>) -> Self {
        self._counted = counted;
        self
    }

    /// claude-bridge patch: a handle on this request's connection (`None` for TLS connections and
    /// requests built by hand).
    pub fn connection(&self) -> Option<ConnectionHandle> {
        self.connection.clone().map(ConnectionHandle)
    }

    /// Returns true if the request was made through HTTPS.
    #[inline]
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Returns the method requested by the client (eg. `GET`, `POST`, etc.).
    #[inline]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Returns the resource requested by the client.
    #[inline]
    pub fn url(&self) -> &str {
        &self.path
    }

    /// Returns a list of all headers sent by the client.
    #[inline]
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// Returns the HTTP version of the request.
    #[inline]
    pub fn http_version(&self) -> &HTTPVersion {
        &self.http_version
    }

    /// Returns the length of the body in bytes.
    ///
    /// Returns `None` if the length is unknown.
    #[inline]
    pub fn body_length(&self) -> Option<usize> {
        self.body_length
    }

    /// Returns the address of the client that sent this request.
    ///
    /// The address is always `Some` for TCP listeners, but always `None` for UNIX listeners
    /// (as the remote address of a UNIX client is almost always unnamed).
    ///
    /// Note that this is gathered from the socket. If you receive the request from a proxy,
    /// this function will return the address of the proxy and not the address of the actual
    /// user.
    #[inline]
    pub fn remote_addr(&self) -> Option<&SocketAddr> {
        self.remote_addr.as_ref()
    }

    /// Sends a response with a `Connection: upgrade` header, then turns the `Request` into a `Stream`.
    ///
    /// The main purpose of this function is to support websockets.
    /// If you detect that the request wants to use some kind of protocol upgrade, you can
    ///  call this function to obtain full control of the socket stream.
    ///
    /// If you call this on a non-websocket request, tiny-http will wait until this `Stream` object
    ///  is destroyed before continuing to read or write on the socket. Therefore you should always
    ///  destroy it as soon as possible.
    pub fn upgrade<R: Read>(
        mut self,
        protocol: &str,
        response: Response<R>,
    ) -> Box<dyn ReadWrite + Send> {
        use crate::util::CustomStream;

        response
            .raw_print(
                self.response_writer.as_mut().unwrap().by_ref(),
                self.http_version.clone(),
                &self.headers,
                false,
                Some(protocol),
            )
            .ok(); // TODO: unused result

        self.response_writer.as_mut().unwrap().flush().ok(); // TODO: unused result

        let stream = CustomStream::new(self.extract_reader_impl(), self.extract_writer_impl());
        if let Some(sender) = self.notify_when_responded.take() {
            let stream = NotifyOnDrop {
                sender,
                inner: stream,
            };
            Box::new(stream) as Box<dyn ReadWrite + Send>
        } else {
            Box::new(stream) as Box<dyn ReadWrite + Send>
        }
    }

    /// Allows to read the body of the request.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # extern crate rustc_serialize;
    /// # extern crate tiny_http;
    /// # use rustc_serialize::json::Json;
    /// # use std::io::Read;
    /// # fn get_content_type(_: &tiny_http::Request) -> &'static str { "" }
    /// # fn main() {
    /// # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
    /// let mut request = server.recv().unwrap();
    ///
    /// if get_content_type(&request) == "application/json" {
    ///     let mut content = String::new();
    ///     request.as_reader().read_to_string(&mut content).unwrap();
    ///     let json: Json = content.parse().unwrap();
    /// }
    /// # }
    /// ```
    ///
    /// If the client sent a `Expect: 100-continue` header with the request, calling this
    ///  function will send back a `100 Continue` response.
    #[inline]
    pub fn as_reader(&mut self) -> &mut dyn Read {
        // claude-bridge patch: the body must now arrive within the body deadline
        if let Some(clock) = &self.clock {
            clock.body_started();
        }
        if self.must_send_continue {
            let msg = Response::new_empty(StatusCode(100));
            msg.raw_print(
                self.response_writer.as_mut().unwrap().by_ref(),
                self.http_version.clone(),
                &self.headers,
                true,
                None,
            )
            .ok();
            self.response_writer.as_mut().unwrap().flush().ok();
            self.must_send_continue = false;
        }

        self.data_reader.as_mut().unwrap()
    }

    /// Turns the `Request` into a writer.
    ///
    /// The writer has a raw access to the stream to the user.
    /// This function is useful for things like CGI.
    ///
    /// Note that the destruction of the `Writer` object may trigger
    /// some events. For exemple if a client has sent multiple requests and the requests
    /// have been processed in parallel, the destruction of a writer will trigger
    /// the writing of the next response.
    /// Therefore you should always destroy the `Writer` as soon as possible.
    #[inline]
    pub fn into_writer(mut self) -> Box<dyn Write + Send + 'static> {
        let writer = self.extract_writer_impl();
        if let Some(sender) = self.notify_when_responded.take() {
            let writer = NotifyOnDrop {
                sender,
                inner: writer,
            };
            Box::new(writer) as Box<dyn Write + Send + 'static>
        } else {
            writer
        }
    }

    /// Extract the response `Writer` object from the Request, dropping this `Writer` has the same side effects
    /// as the object returned by `into_writer` above.
    ///
    /// This may only be called once on a single request.
    fn extract_writer_impl(&mut self) -> Box<dyn Write + Send + 'static> {
        use std::mem;

        assert!(self.response_writer.is_some());

        let mut writer = None;
        mem::swap(&mut self.response_writer, &mut writer);
        writer.unwrap()
    }

    /// Extract the body `Reader` object from the Request.
    ///
    /// This may only be called once on a single request.
    fn extract_reader_impl(&mut self) -> Box<dyn Read + Send + 'static> {
        use std::mem;

        assert!(self.data_reader.is_some());

        let mut reader = None;
        mem::swap(&mut self.data_reader, &mut reader);
        reader.unwrap()
    }

    /// Sends a response to this request.
    #[inline]
    pub fn respond<R>(mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        let res = self.respond_impl(response);
        if let Some(sender) = self.notify_when_responded.take() {
            sender.send(()).unwrap();
        }
        res
    }

    fn respond_impl<R>(&mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        let mut writer = self.extract_writer_impl();

        let do_not_send_body = self.method == Method::Head;

        // claude-bridge patch: a body left unread ends the connection
        let response = if self.body_pending() {
            response.with_connection_close()
        } else {
            response
        };

        Self::ignore_client_closing_errors(response.raw_print(
            writer.by_ref(),
            self.http_version.clone(),
            &self.headers,
            do_not_send_body,
            None,
        ))?;

        Self::ignore_client_closing_errors(writer.flush())
    }

    fn ignore_client_closing_errors(result: io::Result<()>) -> io::Result<()> {
        result.or_else(|err| match err.kind() {
            ErrorKind::BrokenPipe => Ok(()),
            ErrorKind::ConnectionAborted => Ok(()),
            ErrorKind::ConnectionRefused => Ok(()),
            ErrorKind::ConnectionReset => Ok(()),
            _ => Err(err),
        })
    }

    pub(crate) fn with_notify_sender(mut self, sender: Sender<()>) -> Self {
        self.notify_when_responded = Some(sender);
        self
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> Result<(), fmt::Error> {
        write!(
            formatter,
            "Request({} {} from {:?})",
            self.method, self.path, self.remote_addr
        )
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if self.response_writer.is_some() {
            let response = Response::empty(500);
            let _ = self.respond_impl(response); // ignoring any potential error
            if let Some(sender) = self.notify_when_responded.take() {
                sender.send(()).unwrap();
            }
        }
    }
}

/// Dummy trait that regroups the `Read` and `Write` traits.
///
/// Automatically implemented on all types that implement both `Read` and `Write`.
pub trait ReadWrite: Read + Write {}
impl<T> ReadWrite for T where T: Read + Write {}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn must_be_send() {
        #![allow(dead_code)]
        fn f<T: Send>(_: &T) {}
        fn bar(rq: &Request) {
            f(rq);
        }
    }
}
