use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufReader, BufWriter, ErrorKind, Read};

use std::net::SocketAddr;
use std::str::FromStr;

use crate::common::{HTTPVersion, Method};
use crate::util::RefinedTcpStream;
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::Request;

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    // claude-bridge patch: the socket, shared with every request (see `Request::connection`)
    connection: Option<std::sync::Arc<crate::connection::Connection>>,

    // claude-bridge patch: the server's count of requests in progress
    in_progress: Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>,

    // claude-bridge patch: the deadline for reading a request's head (see `HeadClock`)
    head_clock: std::sync::Arc<crate::util::HeadClock>,

    // claude-bridge patch: headers for the answers written here (see `Server::set_own_headers`)
    own_headers: std::sync::Arc<[crate::Header]>,

    // claude-bridge patch: raised when a request is dropped with its body unread: the
    // connection then ends after that request's answer (see `request::BodyState`)
    closing: std::sync::Arc<std::sync::atomic::AtomicBool>,

    // claude-bridge patch: the server's count of bytes held in request heads
    head_memory: std::sync::Arc<std::sync::atomic::AtomicUsize>,

    // claude-bridge patch: the server's count of bytes held in bodies read ahead
    body_memory: std::sync::Arc<std::sync::atomic::AtomicUsize>,

    // claude-bridge patch: which bodies to read whole before handing a request out
    prefetch: Option<crate::Prefetch>,
}

/// claude-bridge patch: how long a connection closed with input left unread keeps discarding
/// what the client still sends (after its answer is written and the sending side shut), so that
/// closing does not reset the connection under the answer before the client has read it.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// claude-bridge patch: the longest line of a request head, and the most header lines.
const MAX_HEAD_LINE: usize = 16 * 1024;
const MAX_HEADERS: usize = 128;

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    WrongRequestLine,
    WrongHeader(HTTPVersion),
    /// claude-bridge patch: the head is larger than `ReadLimits::max_head_bytes`
    HeadTooLarge(HTTPVersion),
    /// claude-bridge patch: the heads held by all connections would pass
    /// `ReadLimits::head_memory`
    HeadMemoryFull(HTTPVersion),
    /// claude-bridge patch: the previous request left its body unread; the connection ends
    Closing,
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed(HTTPVersion),
    ReadIoError(IoError),
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        limits: crate::util::ReadLimits,
        [head_memory, body_memory]: [std::sync::Arc<std::sync::atomic::AtomicUsize>; 2],
        prefetch: Option<crate::Prefetch>,
    ) -> ClientConnection {
        let head_clock = std::sync::Arc::new(crate::util::HeadClock::new(limits));
        read_socket.set_head_clock(std::sync::Arc::clone(&head_clock));
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();
        let connection = write_socket.connection();

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            connection,
            in_progress: None,
            head_clock,
            own_headers: std::sync::Arc::from(Vec::new()),
            closing: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
            head_memory,
            body_memory,
            prefetch,
        }
    }

    /// claude-bridge patch: put `headers` on the answers this connection writes itself.
    pub(crate) fn with_own_headers(mut self, headers: std::sync::Arc<[crate::Header]>) -> Self {
        self.own_headers = headers;
        self
    }

    /// claude-bridge patch: `response` with the server's own headers added.
    fn own<R: Read>(&self, mut response: crate::Response<R>) -> crate::Response<R> {
        for h in self.own_headers.iter() {
            response.add_header(h.clone());
        }
        response
    }

    /// claude-bridge patch: count each request in `counter` from the moment its head has
    /// arrived until it is dropped (see `Server::requests_in_progress`).
    pub(crate) fn counting_requests_in(
        mut self,
        counter: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) -> Self {
        self.in_progress = Some(counter);
        self
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Reads the next line from self.next_header_source.
    ///
    /// Reads until `CRLF` is reached. The next read will start
    ///  at the first byte of the new line.
    fn read_next_line(&mut self) -> IoResult<AsciiString> {
        let mut buf = Vec::new();
        let mut prev_byte_was_cr = false;

        loop {
            let byte = self.next_header_source.by_ref().bytes().next();

            let byte = match byte {
                Some(b) => b?,
                None => return Err(IoError::new(ErrorKind::ConnectionAborted, "Unexpected EOF")),
            };

            // claude-bridge patch: a line without end no longer grows without bound
            if buf.len() >= MAX_HEAD_LINE {
                return Err(IoError::new(ErrorKind::InvalidData, "header line too long"));
            }

            if byte == b'\n' && prev_byte_was_cr {
                buf.pop(); // removing the '\r'
                return AsciiString::from_ascii(buf)
                    .map_err(|_| IoError::new(ErrorKind::InvalidInput, "Header is not in ASCII"));
            }

            prev_byte_was_cr = byte == b'\r';

            buf.push(byte);
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        // claude-bridge patch: wait until the previous request is done with the connection (it
        // may still read its body, under the body deadline), then see whether it left its body
        // unread
        self.next_header_source.wait_turn();
        if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ReadError::Closing);
        }
        // claude-bridge patch: the head (and a small body read with it) must arrive in time
        self.head_clock.arm();
        let result = self.read_head_and_request();
        if let Ok(rq) = &result {
            self.head_clock.head_done(rq.body_pending());
        }
        result
    }

    /// claude-bridge patch: close a connection whose last request left input unread: once the
    /// last answer is written (unless it goes on elsewhere, a stream), shut the sending side so
    /// the client sees the end; then discard what the client still sends for at most
    /// [`LINGER`], on this connection's own thread.
    fn linger(&mut self) {
        let by = std::time::Instant::now() + LINGER;
        if let Some(mut writer) = self.sink.next() {
            if writer.try_turn() {
                writer.with_inner(|w| {
                    let _ = std::io::Write::flush(w);
                    w.get_mut().shutdown_write();
                });
            }
        }
        self.head_clock.linger_until(by);
        let mut sink = [0u8; 4096];
        while let Ok(n) = self.next_header_source.read(&mut sink) {
            if n == 0 {
                break;
            }
        }
    }

    fn read_head_and_request(&mut self) -> Result<Request, ReadError> {
        // claude-bridge patch: the head's size, and its share of the server's head memory
        let limits = self.head_clock.limits();
        let mut memory = crate::request::HeadMemory::new(std::sync::Arc::clone(&self.head_memory));
        let mut head_len = 0usize;
        let mut count = |len: usize, version: &HTTPVersion| {
            head_len += len + 2;
            if head_len > limits.max_head_bytes {
                return Err(ReadError::HeadTooLarge(version.clone()));
            }
            if !memory.reserve(len + 2, limits.head_memory) {
                return Err(ReadError::HeadMemoryFull(version.clone()));
            }
            Ok(())
        };
        let (method, path, version, headers) = {
            // reading the request line
            let (method, path, version) = {
                let line = self.read_next_line().map_err(|e| match e.kind() {
                    ErrorKind::InvalidData => ReadError::WrongRequestLine,
                    _ => ReadError::ReadIoError(e),
                })?;

                let parsed = parse_request_line(
                    line.as_str().trim(), // TODO: remove this conversion
                )?;
                count(line.len(), &parsed.2)?;
                parsed
            };

            // getting all headers
            let headers = {
                let mut headers = Vec::new();
                loop {
                    let line = self.read_next_line().map_err(|e| match e.kind() {
                        ErrorKind::InvalidData => ReadError::WrongHeader(version.clone()),
                        _ => ReadError::ReadIoError(e),
                    })?;

                    count(line.len(), &version)?;
                    if line.is_empty() {
                        break;
                    };
                    if headers.len() >= MAX_HEADERS {
                        return Err(ReadError::WrongHeader(version));
                    }
                    headers.push(match FromStr::from_str(line.as_str().trim()) {
                        // TODO: remove this conversion
                        Ok(h) => h,
                        _ => return Err(ReadError::WrongHeader(version)),
                    });
                }

                headers
            };

            (method, path, version, headers)
        };

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // claude-bridge patch: counted from here (a small body is read in `new_request`)
        let counted = self
            .in_progress
            .clone()
            .map(crate::request::InProgress::enter);

        // claude-bridge patch: a body the server will want is read whole here, on the
        // connection's own thread, within the body deadline and the body-memory budget (it
        // holds its declared size, or the limit for a chunked one), so no server thread ever
        // waits for a slow body; past the budget, it is left for the server to read
        let mut body_memory =
            crate::request::HeadMemory::new(std::sync::Arc::clone(&self.body_memory));
        let prefetch = self.prefetch.and_then(|p| {
            let declared = body_size(&headers)?;
            let wanted = (p.wanted)(&method, &path)
                && declared.is_none_or(|n| n > 1024 && n <= p.max);
            let size = declared.unwrap_or(p.max).min(p.max);
            (wanted && body_memory.reserve(size, limits.body_memory)).then_some(p.max)
        });
        if prefetch.is_some() {
            self.head_clock.head_done(true);
            self.head_clock.body_started();
        }

        // building the next reader
        let request = crate::request::new_request_prefetching(
            self.secure,
            method,
            path,
            version.clone(),
            headers,
            *self.remote_addr.as_ref().unwrap(),
            data_source,
            writer,
            prefetch,
        )
        .map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::ExpectationFailed(version)
                }
            }
        })?;

        let request = request
            .with_connection(self.connection.clone())
            .counted(counted)
            .on_connection(
                std::sync::Arc::clone(&self.head_clock),
                std::sync::Arc::clone(&self.closing),
                [memory, body_memory],
            );

        // return the request
        Ok(request)
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        use crate::{Response, StatusCode};

        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            // claude-bridge patch: a last request that leaves its body unread still gets a
            // lingering close (this waits until that request is done with the connection)
            self.next_header_source.wait_turn();
            if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
                self.linger();
            }
            return None;
        }

        loop {
            let rq = match self.read() {
                Err(ReadError::WrongRequestLine) => {
                    let writer = self.sink.next().unwrap();
                    let response = self.own(Response::new_empty(StatusCode(400)));
                    response
                        .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                        .ok();
                    return None; // we don't know where the next request would start,
                                 // se we have to close
                }

                Err(ReadError::WrongHeader(ver)) => {
                    let writer = self.sink.next().unwrap();
                    let response = self.own(Response::new_empty(StatusCode(400)));
                    response.raw_print(writer, ver, &[], false, None).ok();
                    return None; // we don't know where the next request would start,
                                 // se we have to close
                }

                // claude-bridge patch: a head over the size limit, or one the server has no
                // memory left for, is refused and the connection closed
                Err(ReadError::HeadTooLarge(ver)) => {
                    let writer = self.sink.next().unwrap();
                    let response = self.own(json_answer(431, "request head too large"));
                    response.raw_print(writer, ver, &[], false, None).ok();
                    return None;
                }

                Err(ReadError::HeadMemoryFull(ver)) => {
                    let writer = self.sink.next().unwrap();
                    let mut response =
                        self.own(json_answer(503, "too many large request heads; retry later"));
                    response.add_header(
                        crate::Header::from_bytes(&b"Retry-After"[..], &b"1"[..]).unwrap(),
                    );
                    response.raw_print(writer, ver, &[], false, None).ok();
                    return None;
                }

                Err(ReadError::Closing) => {
                    self.linger();
                    return None;
                }

                Err(ReadError::ReadIoError(ref err)) if err.kind() == ErrorKind::TimedOut => {
                    // request timeout
                    let writer = self.sink.next().unwrap();
                    let response = self.own(Response::new_empty(StatusCode(408)));
                    response
                        .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                        .ok();
                    return None; // closing the connection
                }

                Err(ReadError::ExpectationFailed(ver)) => {
                    let writer = self.sink.next().unwrap();
                    let response = self.own(Response::new_empty(StatusCode(417)));
                    response.raw_print(writer, ver, &[], true, None).ok();
                    return None; // TODO: should be recoverable, but needs handling in case of body
                }

                Err(ReadError::ReadIoError(_)) => return None,

                Ok(rq) => rq,
            };

            // checking HTTP version
            // claude-bridge patch: answered through the request's own writer, then closed.
            // Upstream took the connection's next writer, which waits for the request's writer
            // to be dropped while the request was still alive: every `HTTP/2.0` request line
            // hung its connection thread for good, with no answer.
            if *rq.http_version() > (1, 1) {
                let response = self.own(
                    Response::from_string(
                        "This server only supports HTTP versions 1.0 and 1.1".to_owned(),
                    )
                    .with_status_code(StatusCode(505)),
                );
                let _ = rq.respond(response);
                return None; // its framing may not be HTTP/1's
            }

            // updating the status of the connection
            let connection_header = rq
                .headers()
                .iter()
                .find(|h| h.field.equiv("Connection"))
                .map(|h| h.value.as_str());

            let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

            match lowercase {
                Some(ref val) if val.contains("close") => self.no_more_requests = true,
                Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
                Some(ref val)
                    if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
                {
                    self.no_more_requests = true
                }
                None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
                _ => (),
            };

            // returning the request
            return Some(rq);
        }
    }
}

/// claude-bridge patch: the size a request's head declares for its body: `Some(Some(n))` for
/// `Content-Length: n`, `Some(None)` for a chunked body, `None` for no body (or framing the
/// server will refuse unread: both headers, several lengths).
fn body_size(headers: &[crate::Header]) -> Option<Option<usize>> {
    let mut lengths = headers.iter().filter(|h| h.field.equiv("Content-Length"));
    let chunked = headers.iter().any(|h| h.field.equiv("Transfer-Encoding"));
    match (lengths.next(), lengths.next(), chunked) {
        (None, _, true) => Some(None),
        (Some(l), None, false) => l.value.as_str().trim().parse().ok().map(Some),
        _ => None,
    }
}

/// claude-bridge patch: an answer written here with a JSON error body.
fn json_answer(status: u16, error: &str) -> crate::Response<std::io::Cursor<Vec<u8>>> {
    crate::Response::from_data(format!("{{\"error\":\"{error}\"}}").into_bytes())
        .with_status_code(crate::StatusCode(status))
        .with_header(
            crate::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]).unwrap(),
        )
}

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    let (major, minor) = match version {
        "HTTP/0.9" => (0, 9),
        "HTTP/1.0" => (1, 0),
        "HTTP/1.1" => (1, 1),
        "HTTP/2.0" => (2, 0),
        "HTTP/3.0" => (3, 0),
        _ => return Err(ReadError::WrongRequestLine),
    };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
    }
}
