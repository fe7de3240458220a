//! Response compression (`minimumCompressionSize`), as AWS does it: a response of at least
//! that many bytes is compressed with gzip or deflate when the client's `Accept-Encoding`
//! allows one of them, unless the backend already encoded it. Every answer that could have
//! been compressed says `Vary: Accept-Encoding`.
//!
//! The size is the declared one when there is one. A streamed body of unknown length is read
//! until the threshold (then compressed as it streams on) or its end (then sent as it is).

use std::{
    io::Write as _,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use flate2::{
    Compression,
    write::{GzEncoder, ZlibEncoder},
};
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::body::{BoxError, ProxyBody};

/// A content coding the gateway produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Deflate,
}

impl Coding {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
        })
    }
}

/// The coding to use for an `Accept-Encoding` value: gzip when acceptable, else deflate,
/// else none (identity). `q=0` refuses a coding; `*` stands for any not named.
pub fn negotiate(accept_encoding: &str) -> Option<Coding> {
    let mut gzip = None;
    let mut deflate = None;
    let mut any = None;
    for item in accept_encoding.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let accepted = q > 0.0;
        if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(accepted);
        } else if name.eq_ignore_ascii_case("deflate") {
            deflate = Some(accepted);
        } else if name == "*" {
            any = Some(accepted);
        }
    }
    if gzip.or(any) == Some(true) {
        Some(Coding::Gzip)
    } else if deflate.or(any) == Some(true) {
        Some(Coding::Deflate)
    } else {
        None
    }
}

/// Compresses `resp` when it is at least `min` bytes and the client accepts a coding.
pub async fn response(
    resp: Response<ProxyBody>,
    min: u64,
    accept_encoding: Option<&HeaderValue>,
    method: &Option<Method>,
) -> Response<ProxyBody> {
    let status = resp.status();
    if resp.headers().contains_key(header::CONTENT_ENCODING)
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status.is_informational()
        || *method == Some(Method::HEAD)
    {
        return resp;
    }
    let (mut head, body) = resp.into_parts();
    head.headers
        .append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    let coding = accept_encoding.and_then(|v| v.to_str().ok()).and_then(negotiate);
    let Some(coding) = coding else {
        return Response::from_parts(head, body);
    };
    let declared = head
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or_else(|| body.size_hint().exact());
    let (prefix, mut rest) = match declared {
        Some(n) if n < min => return Response::from_parts(head, body),
        Some(_) => (Bytes::new(), body),
        None => match read_up_to(body, min).await {
            Peeked::Whole(bytes) => return Response::from_parts(head, ProxyBody::full(bytes)),
            Peeked::Over(prefix, rest) => (prefix, rest),
        },
    };
    head.headers.remove(header::CONTENT_LENGTH);
    head.headers.insert(header::CONTENT_ENCODING, coding.header());
    let received = rest.take_received();
    Response::from_parts(
        head,
        ProxyBody::compressed(Compressor::new(coding, prefix, rest), received),
    )
}

enum Peeked {
    /// The body ended below the threshold.
    Whole(Bytes),
    /// At least `min` bytes arrived: those, and the rest of the body.
    Over(Bytes, ProxyBody),
}

/// Reads a body of unknown length until `min` bytes or its end. An error ends the read: what
/// arrived is sent uncompressed and the body's end is the client's to notice (as a cut).
async fn read_up_to(mut body: ProxyBody, min: u64) -> Peeked {
    let mut buf = BytesMut::new();
    while (buf.len() as u64) < min.max(1) {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(_)) | None => return Peeked::Whole(buf.freeze()),
        }
    }
    Peeked::Over(buf.freeze(), body)
}

/// A body compressed as it streams: each frame of the inner body is fed to the encoder and
/// what the encoder has produced is sent.
pub struct Compressor {
    encoder: Option<Encoder>,
    prefix: Option<Bytes>,
    inner: ProxyBody,
}

enum Encoder {
    Gzip(GzEncoder<Vec<u8>>),
    Deflate(ZlibEncoder<Vec<u8>>),
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor").finish_non_exhaustive()
    }
}

// === impl Compressor ===

impl Compressor {
    fn new(coding: Coding, prefix: Bytes, inner: ProxyBody) -> Self {
        // Level 6 (the zlib default): most of the size gain for a fraction of level 9's time.
        let level = Compression::default();
        let encoder = match coding {
            Coding::Gzip => Encoder::Gzip(GzEncoder::new(Vec::new(), level)),
            // HTTP's "deflate" is the zlib format (RFC 9110, 8.4.1.2).
            Coding::Deflate => Encoder::Deflate(ZlibEncoder::new(Vec::new(), level)),
        };
        Compressor {
            encoder: Some(encoder),
            prefix: (!prefix.is_empty()).then_some(prefix),
            inner,
        }
    }

    /// Feeds `data` and takes what the encoder has produced so far.
    fn feed(&mut self, data: &[u8]) -> Result<Option<Bytes>, BoxError> {
        let Some(encoder) = self.encoder.as_mut() else {
            return Ok(None);
        };
        let out = match encoder {
            Encoder::Gzip(e) => {
                e.write_all(data)?;
                std::mem::take(e.get_mut())
            }
            Encoder::Deflate(e) => {
                e.write_all(data)?;
                std::mem::take(e.get_mut())
            }
        };
        Ok((!out.is_empty()).then(|| Bytes::from(out)))
    }

    /// Ends the stream: the encoder's last bytes (the trailer).
    fn finish(&mut self) -> Result<Option<Bytes>, BoxError> {
        let out = match self.encoder.take() {
            None => return Ok(None),
            Some(Encoder::Gzip(e)) => e.finish()?,
            Some(Encoder::Deflate(e)) => e.finish()?,
        };
        Ok((!out.is_empty()).then(|| Bytes::from(out)))
    }
}

impl Body for Compressor {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(prefix) = this.prefix.take() {
            match this.feed(&prefix) {
                Ok(Some(out)) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
        loop {
            if this.encoder.is_none() {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    this.encoder = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers are dropped: the encoded body ends with the encoder's own.
                    let Ok(data) = frame.into_data() else { continue };
                    match this.feed(&data) {
                        Ok(Some(out)) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                        Ok(None) => continue,
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
                Poll::Ready(None) => {
                    return Poll::Ready(this.finish().transpose().map(|r| r.map(Frame::data)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.encoder.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_gzip_and_honours_q_zero() {
        assert_eq!(negotiate("gzip"), Some(Coding::Gzip));
        assert_eq!(negotiate("deflate, gzip;q=0.5"), Some(Coding::Gzip));
        assert_eq!(negotiate("deflate"), Some(Coding::Deflate));
        assert_eq!(negotiate("gzip;q=0, deflate"), Some(Coding::Deflate));
        assert_eq!(negotiate("gzip;q=0"), None);
        assert_eq!(negotiate("identity"), None);
        assert_eq!(negotiate("*"), Some(Coding::Gzip));
        assert_eq!(negotiate("*;q=0, identity"), None);
        assert_eq!(negotiate(""), None);
    }
}
