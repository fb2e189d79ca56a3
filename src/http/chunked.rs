//! Incremental decoder for the `chunked` transfer coding (RFC 9112 §7.1): of request bodies here,
//! of response bodies in the remote-server client.
//!
//! It is fed whatever bytes are available, appends decoded data to the body, and reports how many
//! input bytes it consumed; it stops right after the final CRLF, so bytes of a pipelined request
//! that follow are left untouched in the caller's buffer.
//!
//! Invariants:
//! - Every input byte is looked at once; data runs are copied in bulk, framing bytes go through a
//!   one-byte state machine, so decoding is O(input) however the input is split.
//! - The decoded size never exceeds the body budget: a chunk size is checked against what is left
//!   of it while its hex digits are still arriving, so an oversized chunk is refused (413) before
//!   any of its data is read, and the size cannot overflow.
//! - Metadata that produces no body bytes (chunk extensions, trailer fields) draws on its own
//!   budget, so a peer cannot stream it forever; chunk-size lines are bounded by
//!   [`MAX_SIZE_DIGITS`].
//! - Framing line ends must be exactly CRLF. Lenient bare-LF or whitespace handling in chunked
//!   framing is a known request-smuggling vector when proxies disagree, so it is refused (400).
//!   The only leniency is optional whitespace before a chunk extension (`BWS` in the grammar).

use super::request::HttpError;

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// Framing that breaks the grammar; the words say how.
    Malformed(&'static str),
    /// A chunk would take the body past its budget (or past 64 bits).
    BodyTooLarge,
    /// Chunk extensions exhausted the metadata budget.
    ExtensionsTooLarge,
    /// Trailer fields exhausted the metadata budget.
    TrailersTooLarge,
}

impl From<ChunkError> for HttpError {
    fn from(error: ChunkError) -> HttpError {
        match error {
            ChunkError::Malformed(words) => HttpError::BadRequest(words),
            ChunkError::BodyTooLarge => HttpError::BodyTooLarge,
            ChunkError::ExtensionsTooLarge => HttpError::BadRequest("chunk extensions too long"),
            // Trailers are header fields sent late; oversized ones get the header status.
            ChunkError::TrailersTooLarge => HttpError::HeadersTooLarge,
        }
    }
}

/// Most hex digits accepted in a chunk size, leading zeros included: enough for any 64-bit size.
const MAX_SIZE_DIGITS: u8 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Reading the hex chunk size; `digits` seen so far, value in `ChunkedDecoder::chunk`.
    Size { digits: u8 },
    /// Whitespace after the size, before `;` or CR.
    SizeSpace,
    /// Skipping a chunk extension up to the CR.
    Extension,
    /// CR of the chunk-size line seen, LF expected.
    SizeLf,
    /// `ChunkedDecoder::chunk` data bytes still to copy.
    Data,
    /// CR expected after chunk data.
    DataCr,
    /// LF expected after chunk data.
    DataLf,
    /// Start of a trailer field line, or of the final empty line.
    TrailerStart,
    /// Inside a trailer field line (discarded).
    Trailer,
    /// CR of a trailer field line seen, LF expected.
    TrailerLf,
    /// CR of the final empty line seen, LF expected.
    FinalLf,
    /// The final CRLF has been read.
    Done,
}

/// Incremental chunked-body decoder; see the module docs.
#[derive(Debug)]
pub struct ChunkedDecoder {
    step: Step,
    /// Size of the chunk being read (while in `Size`), then its data bytes still to copy.
    chunk: usize,
    /// Decoded bytes still allowed.
    body_budget: usize,
    /// Extension and trailer bytes still allowed.
    meta_budget: usize,
}

impl ChunkedDecoder {
    /// A decoder allowing `max_body` decoded bytes and `max_meta` bytes of extensions + trailers.
    pub fn new(max_body: usize, max_meta: usize) -> Self {
        ChunkedDecoder {
            step: Step::Size { digits: 0 },
            chunk: 0,
            body_budget: max_body,
            meta_budget: max_meta,
        }
    }

    /// Whether the whole body, trailers included, has been read.
    pub fn is_done(&self) -> bool {
        self.step == Step::Done
    }

    /// Decodes from the front of `input`, appending data to `body`. Returns the number of input
    /// bytes consumed: all of them unless the body ended inside `input`.
    pub fn decode(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<usize, ChunkError> {
        let mut pos = 0;
        while self.step != Step::Done {
            let rest = input.get(pos..).unwrap_or_default();
            if self.step == Step::Data {
                // `chunk` is never 0 in `Data`, so taking nothing means the input is exhausted.
                let take = self.chunk.min(rest.len());
                if take == 0 {
                    break;
                }
                body.extend_from_slice(rest.get(..take).unwrap_or_default());
                self.chunk -= take;
                pos += take;
                if self.chunk == 0 {
                    self.step = Step::DataCr;
                }
                continue;
            }
            let Some(&byte) = rest.first() else { break };
            self.step = self.framing_byte(byte)?;
            pos += 1;
        }
        Ok(pos)
    }

    /// Consumes one framing byte and returns the next step.
    fn framing_byte(&mut self, byte: u8) -> Result<Step, ChunkError> {
        let malformed = ChunkError::Malformed("malformed chunked body");
        Ok(match (self.step, byte) {
            (Step::Size { digits }, _) if byte.is_ascii_hexdigit() => {
                if digits >= MAX_SIZE_DIGITS {
                    return Err(ChunkError::Malformed("chunk size too long"));
                }
                let digit = char::from(byte).to_digit(16).unwrap_or(0) as usize;
                self.chunk = self
                    .chunk
                    .checked_mul(16)
                    .and_then(|size| size.checked_add(digit))
                    .filter(|&size| size <= self.body_budget)
                    .ok_or(ChunkError::BodyTooLarge)?;
                Step::Size { digits: digits + 1 }
            }
            (Step::Size { digits: 0 }, _) => {
                return Err(ChunkError::Malformed("missing chunk size"))
            }
            (Step::Size { .. } | Step::SizeSpace, b' ' | b'\t') => Step::SizeSpace,
            (Step::Size { .. } | Step::SizeSpace, b';') => {
                self.spend_meta(ChunkError::ExtensionsTooLarge)?;
                Step::Extension
            }
            (Step::Size { .. } | Step::SizeSpace | Step::Extension, b'\r') => Step::SizeLf,
            (Step::Extension, b'\n') => return Err(malformed),
            (Step::Extension, _) => {
                self.spend_meta(ChunkError::ExtensionsTooLarge)?;
                Step::Extension
            }
            (Step::SizeLf, b'\n') if self.chunk == 0 => Step::TrailerStart,
            (Step::SizeLf, b'\n') => {
                // `chunk <= body_budget` was enforced digit by digit, so this cannot underflow.
                self.body_budget -= self.chunk;
                Step::Data
            }
            (Step::DataCr, b'\r') => Step::DataLf,
            (Step::DataLf, b'\n') => Step::Size { digits: 0 },
            (Step::TrailerStart, b'\r') => Step::FinalLf,
            (Step::Trailer, b'\r') => Step::TrailerLf,
            (Step::TrailerLf, b'\n') => Step::TrailerStart,
            (Step::TrailerStart | Step::Trailer, b'\n') => return Err(malformed),
            (Step::TrailerStart | Step::Trailer, _) => {
                self.spend_meta(ChunkError::TrailersTooLarge)?;
                Step::Trailer
            }
            (Step::FinalLf, b'\n') => Step::Done,
            _ => return Err(malformed),
        })
    }

    /// Charges one byte of extension or trailer to the metadata budget.
    fn spend_meta(&mut self, exhausted: ChunkError) -> Result<(), ChunkError> {
        self.meta_budget = self.meta_budget.checked_sub(1).ok_or(exhausted)?;
        Ok(())
    }
}
