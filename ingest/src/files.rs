//! Reading real data files: trades and quotes CSV (insite's own layout or
//! the vendor flat-file layout), posts JSONL; plain or gzip.
//!
//! | file | columns / fields |
//! |---|---|
//! | trades CSV | header with `symbol,ts,price,size`, optional `trade_id`, `exchange`, `conditions` (space- or comma-separated codes), any order |
//! | vendor trades CSV | `ticker, conditions, correction, exchange, id, participant_timestamp, price, sequence_number, sip_timestamp, size, tape, trf_id, trf_timestamp`: `ticker` is the symbol, `sip_timestamp` (else `participant_timestamp`) the event time in **nanoseconds**, `id` the trade id |
//! | quotes CSV | header with `symbol,ts,bid,bid_size,ask,ask_size`, any order (the vendor's `ticker`, `sip_timestamp`, `bid_price`, `ask_price` also) |
//! | posts JSONL | one object per line: `id`, `ts`, `source`, `author`, `text`, optional `followers`, `cashtags` |
//!
//! `ts` is RFC 3339 (`2024-03-01T14:30:00.125Z`) or integer milliseconds
//! since the epoch. Symbols are upper-cased; sources must match
//! `[a-z0-9_-]`. One record per line (no quoted line breaks). A file that
//! starts with gzip's magic bytes is read through gzip, whatever its name.
//!
//! [`FileReader`] merges the files by event time (each is expected in time
//! order) into one sequence of events; bad lines come out beside it as
//! [`Rejected`] with their file and line number. [`publish_files`] batches
//! that sequence (by count per symbol, cut at slices of event time kept
//! below the allowed lateness) and publishes it as fast as possible or at
//! `speed` times its original pace, dead-lettering bad lines to
//! `insite.dlq.ingest`; `insite backfill` feeds the same batches to the
//! pipeline's operators directly.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_nats::jetstream;
use bytes::Bytes;
use insite_schemas::config::StreamsConfig;
use insite_schemas::{Post, Quote, SourceName, Symbol, TimestampMs, Trade};
use tokio_util::sync::CancellationToken;

use crate::batch::{BatchConfig, Batcher};
use crate::error::IngestError;
use crate::event::Event;
use crate::pacing::Pacer;
use crate::publisher::{IngestReport, Publisher, PublisherConfig};
use crate::synthetic::publish_all;

/// Settings of a file publish.
#[derive(Debug, Clone, PartialEq)]
pub struct FilesConfig {
    /// Trades CSV.
    pub trades: Option<PathBuf>,
    /// Quotes CSV.
    pub quotes: Option<PathBuf>,
    /// Posts JSONL.
    pub posts: Option<PathBuf>,
    /// `None`: as fast as possible; `Some(n)`: n times the original pace.
    pub speed: Option<f64>,
    /// Batching ([`BatchConfig::for_files`] by default).
    pub batch: BatchConfig,
    /// Publishing.
    pub publisher: PublisherConfig,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            trades: None,
            quotes: None,
            posts: None,
            speed: None,
            batch: BatchConfig::for_files(),
            publisher: PublisherConfig::default(),
        }
    }
}

/// A line that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The line as read.
    pub raw: Vec<u8>,
    /// `file:line`.
    pub origin: String,
    /// What is wrong.
    pub reason: String,
    /// A short code (`csv`, `json`, `field`, `invalid`).
    pub kind: &'static str,
}

impl Rejected {
    /// Counts the line as rejected and sends it, raw, to
    /// `insite.dlq.ingest` with its reason, kind and `file:line`.
    pub async fn dead_letter(self, publisher: &mut Publisher) -> Result<(), IngestError> {
        publisher.count_rejected();
        publisher
            .dead_letter(Bytes::from(self.raw), &self.reason, self.kind, &self.origin)
            .await
    }
}

/// The kind of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Trades CSV.
    Trades,
    /// Quotes CSV.
    Quotes,
    /// Posts JSONL.
    Posts,
    /// Vendor minute aggregates CSV (read by [`read_minute_aggs`]).
    MinuteAggs,
}

/// Parses a timestamp field: RFC 3339, integer epoch milliseconds or a
/// `YYYY-MM-DD` date ([`insite_schemas::time::parse_time`]).
fn parse_ts(text: &str) -> Result<TimestampMs, String> {
    insite_schemas::time::parse_time(text).map_err(|e| e.reason)
}

fn field<T>(r: Result<T, String>) -> Result<T, (&'static str, String)> {
    r.map_err(|e| ("field", e))
}

fn parse_symbol(text: &str) -> Result<Symbol, String> {
    let text = text.trim();
    // Nearly every file writes its symbols upper-case already: no copy then.
    let symbol = if text.bytes().any(|b| b.is_ascii_lowercase()) {
        Symbol::new(&text.to_ascii_uppercase())
    } else {
        Symbol::new(text)
    };
    symbol.map_err(|e| e.to_string())
}

fn parse_num<T: std::str::FromStr>(field: &str, text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{field} {text:?} is not a valid number"))
}

/// Column positions of a CSV header.
#[derive(Debug, Clone)]
struct Columns {
    /// Position of each wanted column (None: optional and absent).
    positions: Vec<Option<usize>>,
    /// Whether the time column counts nanoseconds (the vendor layout's
    /// `sip_timestamp`/`participant_timestamp`) rather than being a `ts`.
    ts_nanos: bool,
}

/// One wanted column: the names it may have (the first found wins) and
/// whether it is required.
type Wanted = (&'static [&'static str], bool);

/// Names of the time column that count nanoseconds.
const NANOSECOND_TIME_COLUMNS: [&str; 2] = ["sip_timestamp", "participant_timestamp"];

const TRADE_COLUMNS: [Wanted; 7] = [
    (&["symbol", "ticker"], true),
    (&["ts", "sip_timestamp", "participant_timestamp"], true),
    (&["price"], true),
    (&["size"], true),
    (&["trade_id", "id"], false),
    (&["exchange"], false),
    (&["conditions"], false),
];

const QUOTE_COLUMNS: [Wanted; 6] = [
    (&["symbol", "ticker"], true),
    (&["ts", "sip_timestamp", "participant_timestamp"], true),
    (&["bid", "bid_price"], true),
    (&["bid_size"], true),
    (&["ask", "ask_price"], true),
    (&["ask_size"], true),
];

/// Bytes read from a file so far, shared with whoever reports progress.
#[derive(Debug)]
struct Counted<R> {
    /// The reader.
    inner: R,
    /// Bytes read from it.
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens `path`, through gzip if it starts with gzip's magic bytes; the
/// returned counter follows the bytes read from the file itself.
fn open_maybe_gzip(path: &Path) -> Result<(Box<dyn Read + Send>, Arc<AtomicU64>), IngestError> {
    let io = |source| IngestError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut magic = [0u8; 2];
    let gzip = matches!(file.read(&mut magic), Ok(2) if magic == [0x1f, 0x8b]);
    std::io::Seek::rewind(&mut file).map_err(io)?;
    let read = Arc::new(AtomicU64::new(0));
    let counted = Counted {
        inner: file,
        read: Arc::clone(&read),
    };
    let reader: Box<dyn Read + Send> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 16,
            counted,
        )))
    } else {
        Box::new(counted)
    };
    Ok((reader, read))
}

/// One input file, read line by line.
struct LineFile {
    /// What it holds.
    kind: FileKind,
    /// Its name for messages (`trades.csv`).
    name: String,
    /// Its path.
    path: PathBuf,
    /// The reader (a file, through gzip if it is compressed, or any byte
    /// source for [`read_records`]).
    reader: BufReader<Box<dyn Read + Send>>,
    /// Bytes read from the source itself (compressed, if it is).
    bytes_read: Arc<AtomicU64>,
    /// The source's size (0 when unknown).
    size: u64,
    /// The last line number read (1-based).
    line: u64,
    /// CSV column positions (after the header).
    columns: Option<Columns>,
    /// The next good event, read ahead for the merge.
    peeked: Option<Event>,
    /// Whether the file is exhausted.
    done: bool,
    /// Reused line buffer.
    buf: Vec<u8>,
}

impl LineFile {
    fn open(kind: FileKind, path: &Path) -> Result<Self, IngestError> {
        let size = std::fs::metadata(path)
            .map(|m| m.len())
            .map_err(|source| IngestError::Io {
                path: path.to_owned(),
                source,
            })?;
        let (reader, bytes_read) = open_maybe_gzip(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let mut this = Self::from_reader(kind, name, path.to_owned(), reader)?;
        this.bytes_read = bytes_read;
        this.size = size;
        Ok(this)
    }

    /// Reads `reader` as a file of `kind` named `name` (at `path`, for
    /// error messages); CSV files have their header read here.
    fn from_reader(
        kind: FileKind,
        name: String,
        path: PathBuf,
        reader: Box<dyn Read + Send>,
    ) -> Result<Self, IngestError> {
        let mut this = Self {
            kind,
            name,
            reader: BufReader::with_capacity(1 << 16, reader),
            bytes_read: Arc::new(AtomicU64::new(0)),
            size: 0,
            path,
            line: 0,
            columns: None,
            peeked: None,
            done: false,
            buf: Vec::with_capacity(256),
        };
        if kind != FileKind::Posts {
            let path = this.path.clone();
            this.read_header(&path)?;
        }
        Ok(this)
    }

    fn read_header(&mut self, path: &Path) -> Result<(), IngestError> {
        let wanted: &[Wanted] = match self.kind {
            FileKind::Trades => &TRADE_COLUMNS,
            FileKind::MinuteAggs => &MINUTE_AGG_COLUMNS,
            _ => &QUOTE_COLUMNS,
        };
        let bad = |reason: String| IngestError::BadInput {
            origin: format!("{}:1", path.display()),
            reason,
        };
        if !self.read_line(path)? {
            return Err(bad("empty file, expected a CSV header".into()));
        }
        let fields = split_csv(&self.buf).map_err(bad)?;
        let names: Vec<String> = fields
            .iter()
            .map(|f| f.trim().to_ascii_lowercase())
            .collect();
        let mut positions = Vec::with_capacity(wanted.len());
        let mut ts_nanos = false;
        for (index, (aliases, required)) in wanted.iter().enumerate() {
            let found = aliases
                .iter()
                .find_map(|alias| names.iter().position(|n| n == alias).map(|at| (alias, at)));
            if found.is_none() && *required {
                let also = if aliases.len() > 1 {
                    format!(" (or {})", aliases[1..].join(", "))
                } else {
                    String::new()
                };
                return Err(bad(format!(
                    "header {:?} lacks the column {:?}{also} (needs {})",
                    names.join(","),
                    aliases[0],
                    wanted
                        .iter()
                        .filter(|(_, r)| *r)
                        .map(|(c, _)| c.join("|"))
                        .collect::<Vec<_>>()
                        .join(",")
                )));
            }
            if index == 1 {
                ts_nanos = found.is_some_and(|(alias, _)| NANOSECOND_TIME_COLUMNS.contains(alias));
            }
            positions.push(found.map(|(_, at)| at));
        }
        self.columns = Some(Columns {
            positions,
            ts_nanos,
        });
        Ok(())
    }

    /// Reads the next line into `buf` (without its line break).
    fn read_line(&mut self, path: &Path) -> Result<bool, IngestError> {
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|source| IngestError::Io {
                path: path.to_owned(),
                source,
            })?;
        if n == 0 {
            return Ok(false);
        }
        self.line += 1;
        while self.buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            self.buf.pop();
        }
        Ok(true)
    }

    /// Reads ahead to the next good event; bad lines go to `rejects`.
    fn fill(&mut self, rejects: &mut Vec<Rejected>) -> Result<(), IngestError> {
        let path = self.path.clone();
        while self.peeked.is_none() && !self.done {
            if !self.read_line(&path)? {
                self.done = true;
                break;
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match self.parse() {
                Ok(event) => self.peeked = Some(event),
                Err((kind, reason)) => rejects.push(Rejected {
                    raw: self.buf.clone(),
                    origin: format!("{}:{}", self.name, self.line),
                    reason,
                    kind,
                }),
            }
        }
        Ok(())
    }

    fn parse(&self) -> Result<Event, (&'static str, String)> {
        let event = match self.kind {
            FileKind::Posts => parse_post(&self.buf).map_err(|r| ("json", r))?,
            kind => {
                let fields = Fields::split(&self.buf).map_err(|r| ("csv", r))?;
                let (columns, ts_nanos) = self
                    .columns
                    .as_ref()
                    .map(|c| (c.positions.as_slice(), c.ts_nanos))
                    .unwrap_or((&[], false));
                let get = |i: usize| -> Option<&str> {
                    columns
                        .get(i)
                        .copied()
                        .flatten()
                        .and_then(|p| fields.get(p))
                };
                let required = |i: usize, name: &str| -> Result<&str, (&'static str, String)> {
                    get(i).ok_or_else(|| {
                        (
                            "csv",
                            format!("missing field {name:?} (line has {} fields)", fields.len()),
                        )
                    })
                };
                let ts = |text: &str| {
                    if ts_nanos {
                        parse_num::<i64>("sip_timestamp", text).map(|ns| ns.div_euclid(1_000_000))
                    } else {
                        parse_ts(text)
                    }
                };
                if kind == FileKind::Trades {
                    Event::Trade(Trade {
                        symbol: field(parse_symbol(required(0, "symbol")?))?,
                        ts: field(ts(required(1, "ts")?))?,
                        price: field(parse_num("price", required(2, "price")?))?,
                        size: field(parse_size(required(3, "size")?))?,
                        trade_id: get(4).unwrap_or("").trim().into(),
                        exchange: get(5).unwrap_or("").trim().into(),
                        conditions: get(6)
                            .unwrap_or("")
                            .split(|c: char| c == ',' || c.is_whitespace())
                            .filter(|code| !code.is_empty())
                            .map(Into::into)
                            .collect(),
                    })
                } else {
                    Event::Quote(Quote {
                        symbol: field(parse_symbol(required(0, "symbol")?))?,
                        ts: field(ts(required(1, "ts")?))?,
                        bid: field(parse_num("bid", required(2, "bid")?))?,
                        bid_size: field(parse_size(required(3, "bid_size")?))?,
                        ask: field(parse_num("ask", required(4, "ask")?))?,
                        ask_size: field(parse_size(required(5, "ask_size")?))?,
                    })
                }
            }
        };
        event.validate().map_err(|e| ("invalid", e.to_string()))?;
        Ok(event)
    }
}

impl LineFile {
    fn parse_minute_agg(&self) -> Result<MinuteAgg, (&'static str, String)> {
        let fields = Fields::split(&self.buf).map_err(|r| ("csv", r))?;
        let columns = self
            .columns
            .as_ref()
            .map(|c| c.positions.as_slice())
            .unwrap_or(&[]);
        let get = |i: usize| {
            columns
                .get(i)
                .copied()
                .flatten()
                .and_then(|p| fields.get(p))
        };
        let required = |i: usize| -> Result<&str, (&'static str, String)> {
            get(i).ok_or_else(|| {
                let name = MINUTE_AGG_COLUMNS[i].0[0];
                (
                    "csv",
                    format!("missing field {name:?} (line has {} fields)", fields.len()),
                )
            })
        };
        let price = |i: usize| -> Result<f64, (&'static str, String)> {
            let name = MINUTE_AGG_COLUMNS[i].0[0];
            let value: f64 = field(parse_num(name, required(i)?))?;
            if value.is_finite() && value > 0.0 {
                Ok(value)
            } else {
                Err(("invalid", format!("{name} {value} is not a positive price")))
            }
        };
        let start_ns: i64 = field(parse_num("window_start", required(6)?))?;
        let window_start = start_ns.div_euclid(1_000_000);
        insite_schemas::time::check_event_time("window_start", window_start)
            .map_err(|e| ("invalid", e.to_string()))?;
        if window_start.rem_euclid(60_000) != 0 {
            return Err((
                "invalid",
                format!("window_start {start_ns} ns is not the start of a minute"),
            ));
        }
        let (open, high, low, close) = (price(2)?, price(4)?, price(5)?, price(3)?);
        if !(low <= open.min(close) && high >= open.max(close)) {
            return Err((
                "invalid",
                format!("open {open}, close {close} do not lie within low {low} .. high {high}"),
            ));
        }
        let vwap = match get(8).map(str::trim).filter(|v| !v.is_empty()) {
            Some(text) => Some(field(parse_num("vwap", text))?),
            None => None,
        };
        Ok(MinuteAgg {
            symbol: field(parse_symbol(required(0)?))?,
            window_start,
            open,
            high,
            low,
            close,
            volume: field(parse_size(required(1)?))?,
            transactions: field(parse_size(required(7)?))?,
            vwap,
        })
    }
}

/// A whole number of shares, also written as a decimal with no fraction
/// (`100.0`), as some vendor files do.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if let Ok(n) = text.parse::<u64>() {
        return Ok(n);
    }
    match text.parse::<f64>() {
        Ok(x) if x >= 0.0 && x.fract() == 0.0 && x < u64::MAX as f64 => Ok(x as u64),
        _ => Err(format!("size {text:?} is not a whole number of shares")),
    }
}

/// Fields of a record held without an allocation ([`Fields::Inline`]).
const INLINE_FIELDS: usize = 16;

/// The fields of one CSV record: borrowed from the line when it has no
/// quotes (nearly always), parsed by the `csv` crate when it has.
// The inline variant is large by design: it lives on the stack for one
// line's parse, and boxing it would be the allocation it avoids.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Fields<'a> {
    /// Split at commas, up to [`INLINE_FIELDS`] of them (no allocation per
    /// line).
    Inline([&'a str; INLINE_FIELDS], usize),
    /// Split at commas, more than [`INLINE_FIELDS`].
    Plain(Vec<&'a str>),
    /// Parsed with quoting.
    Quoted(Vec<String>),
}

impl<'a> Fields<'a> {
    fn split(line: &'a [u8]) -> Result<Self, String> {
        if line.contains(&b'"') {
            return split_csv(line).map(Self::Quoted);
        }
        let text = std::str::from_utf8(line).map_err(|e| format!("not UTF-8: {e}"))?;
        let mut inline = [""; INLINE_FIELDS];
        let mut count = 0;
        for field in text.split(',') {
            match inline.get_mut(count) {
                Some(slot) => *slot = field,
                None => return Ok(Self::Plain(text.split(',').collect())),
            }
            count += 1;
        }
        Ok(Self::Inline(inline, count))
    }

    fn get(&self, i: usize) -> Option<&str> {
        match self {
            Self::Inline(v, len) => v.get(..*len).and_then(|v| v.get(i)).copied(),
            Self::Plain(v) => v.get(i).copied(),
            Self::Quoted(v) => v.get(i).map(String::as_str),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Inline(_, len) => *len,
            Self::Plain(v) => v.len(),
            Self::Quoted(v) => v.len(),
        }
    }
}

/// Splits one CSV record (quotes allowed, no line breaks inside).
fn split_csv(line: &[u8]) -> Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(line.len().max(64))
        .from_reader(line);
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => Ok(record.iter().map(str::to_owned).collect()),
        Ok(false) => Ok(Vec::new()),
        Err(e) => Err(format!("not a CSV record: {e}")),
    }
}

/// A posts JSONL line.
#[derive(Debug, serde::Deserialize)]
struct PostLine {
    id: serde_json::Value,
    ts: serde_json::Value,
    source: String,
    #[serde(default)]
    author: String,
    text: String,
    #[serde(default)]
    followers: Option<u64>,
    #[serde(default)]
    cashtags: Vec<String>,
}

fn parse_post(line: &[u8]) -> Result<Event, String> {
    let raw: PostLine =
        serde_json::from_slice(line).map_err(|e| format!("not a post JSON object: {e}"))?;
    let id = match raw.id {
        serde_json::Value::String(s) => s,
        serde_json::Value::Number(n) => n.to_string(),
        other => return Err(format!("id {other} is neither a string nor a number")),
    };
    let ts = match raw.ts {
        serde_json::Value::String(s) => parse_ts(&s)?,
        serde_json::Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("ts {n} is not integer milliseconds"))?,
        other => return Err(format!("ts {other} is neither a string nor a number")),
    };
    let source = SourceName::new(&raw.source).map_err(|e| e.to_string())?;
    let cashtags = raw
        .cashtags
        .iter()
        .map(|c| parse_symbol(c.trim_start_matches('$')))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Event::Post(Post {
        id,
        source,
        author: raw.author,
        ts,
        text: raw.text,
        cashtags,
        author_followers: raw.followers,
    }))
}

/// The columns of a vendor minute-aggregates flat file (`vwap` is
/// optional: the vendor's files have none).
const MINUTE_AGG_COLUMNS: [Wanted; 9] = [
    (&["ticker", "symbol"], true),
    (&["volume"], true),
    (&["open"], true),
    (&["close"], true),
    (&["high"], true),
    (&["low"], true),
    (&["window_start"], true),
    (&["transactions"], true),
    (&["vwap", "vw"], false),
];

/// One row of a vendor minute-aggregates flat file
/// (`ticker, volume, open, close, high, low, window_start, transactions`,
/// `window_start` in nanoseconds): a one-minute bar.
#[derive(Debug, Clone, PartialEq)]
pub struct MinuteAgg {
    /// The symbol.
    pub symbol: Symbol,
    /// Start of the minute, ms.
    pub window_start: TimestampMs,
    /// First price.
    pub open: f64,
    /// Highest price.
    pub high: f64,
    /// Lowest price.
    pub low: f64,
    /// Last price.
    pub close: f64,
    /// Shares traded.
    pub volume: u64,
    /// Trades.
    pub transactions: u64,
    /// The volume-weighted price, if the file has it.
    pub vwap: Option<f64>,
}

/// Reads a vendor minute-aggregates file (plain or gzip): its rows, and
/// its bad lines with their line numbers.
pub fn read_minute_aggs(path: &Path) -> Result<(Vec<MinuteAgg>, Vec<Rejected>), IngestError> {
    let mut file = LineFile::open(FileKind::MinuteAggs, path)?;
    let (mut rows, mut rejects) = (Vec::new(), Vec::new());
    let at = |file: &LineFile| format!("{}:{}", file.name, file.line);
    while file.read_line(path)? {
        if file.buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match file.parse_minute_agg() {
            Ok(row) => rows.push(row),
            Err((kind, reason)) => rejects.push(Rejected {
                raw: file.buf.clone(),
                origin: at(&file),
                reason,
                kind,
            }),
        }
    }
    Ok((rows, rejects))
}

/// Reads a whole input of `kind` (CSV with its header, or JSONL) through
/// the same parser as [`publish_files`], without publishing: the good
/// events in file order and the rejected lines. `name` names the input in
/// each reject's origin. An unreadable input or a bad CSV header is an
/// error, as it is for a file.
pub fn read_records(
    kind: FileKind,
    name: &str,
    reader: impl Read + Send + 'static,
) -> Result<(Vec<Event>, Vec<Rejected>), IngestError> {
    let mut file = LineFile::from_reader(kind, name.to_owned(), name.into(), Box::new(reader))?;
    let mut events = Vec::new();
    let mut rejects = Vec::new();
    loop {
        file.fill(&mut rejects)?;
        match file.peeked.take() {
            Some(event) => events.push(event),
            None => break,
        }
    }
    Ok((events, rejects))
}

/// The input files merged into one sequence of events by event time (ties:
/// trades, quotes, posts); see the module docs.
pub struct FileReader {
    /// The open files.
    files: Vec<LineFile>,
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field(
                "files",
                &self.files.iter().map(|f| &f.path).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl FileReader {
    /// Opens the given files (at least one), reading each CSV's header.
    pub fn open(
        trades: Option<&Path>,
        quotes: Option<&Path>,
        posts: Option<&Path>,
    ) -> Result<Self, IngestError> {
        let mut files = Vec::new();
        for (kind, path) in [
            (FileKind::Trades, trades),
            (FileKind::Quotes, quotes),
            (FileKind::Posts, posts),
        ] {
            if let Some(path) = path {
                files.push(LineFile::open(kind, path)?);
            }
        }
        if files.is_empty() {
            return Err(IngestError::Config(
                "reading files needs at least one of trades, quotes or posts".into(),
            ));
        }
        Ok(Self { files })
    }

    /// The next event by event time, after moving every bad line met on
    /// the way into `rejects`; `None` once every file is exhausted.
    pub fn next_event(
        &mut self,
        rejects: &mut Vec<Rejected>,
    ) -> Result<Option<Event>, IngestError> {
        for file in &mut self.files {
            file.fill(rejects)?;
        }
        let pick = self
            .files
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.peeked.as_ref().map(|e| (e.ts(), i)))
            .min();
        Ok(pick.and_then(|(_, i)| self.files[i].peeked.take()))
    }

    /// Bytes read so far and the files' total size (compressed sizes for
    /// gzip files), for a progress bar.
    pub fn progress(&self) -> (u64, u64) {
        self.files.iter().fold((0, 0), |(read, total), f| {
            (
                read + f.bytes_read.load(Ordering::Relaxed).min(f.size),
                total + f.size,
            )
        })
    }
}

/// How far behind MARKET's clock a file may start before publishing it
/// warns: the pipeline's default allowed lateness.
const BEHIND_THE_CLOCK_MS: TimestampMs = 2_000;

/// The event time MARKET's clock has reached, as the stream shows it: the
/// latest clock tick a live pipeline wrote there, or the newest event of
/// the last trade or quote message (`None`: nothing there).
async fn market_clock(js: &jetstream::Context, streams: &StreamsConfig) -> Option<TimestampMs> {
    let stream = js.get_stream_no_info(&streams.market).await.ok()?;
    let mut clock = None;
    for wildcard in ["md.clock.>", "md.trades.>", "md.quotes.>"] {
        let Ok(message) = stream
            .get_last_raw_message_by_subject(&streams.subject(wildcard))
            .await
        else {
            continue;
        };
        let schema = message
            .headers
            .get(insite_schemas::wire::SCHEMA_HEADER)
            .map(|v| v.as_str());
        let ts = if wildcard.starts_with("md.clock") {
            insite_schemas::wire::decode_clock(schema, &message.payload)
                .ok()
                .map(|tick| tick.ts)
        } else {
            insite_schemas::wire::decode_inbound(schema, &message.payload)
                .ok()
                .and_then(|events| events.max_ts())
        };
        clock = clock.max(ts);
    }
    clock
}

/// Replays the files of `config` until they end or `shutdown` fires, then
/// flushes what is in flight.
pub async fn publish_files(
    js: &jetstream::Context,
    streams: &StreamsConfig,
    config: FilesConfig,
    shutdown: CancellationToken,
) -> Result<IngestReport, IngestError> {
    let mut merged = FileReader::open(
        config.trades.as_deref(),
        config.quotes.as_deref(),
        config.posts.as_deref(),
    )?;
    insite_sinks::streams::ensure_streams(js, streams).await?;
    let mut publisher = Publisher::new(
        js.clone(),
        streams.clone(),
        config.publisher.clone(),
        "files",
    );
    let mut batcher = Batcher::new(config.batch.clone(), streams.clone());
    let mut pacer = Pacer::new(config.speed);
    let mut out = Vec::with_capacity(64);
    let mut rejects = Vec::new();
    let mut first_clock = Some(market_clock(js, streams).await);
    let result: Result<(), IngestError> = async {
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let next = merged.next_event(&mut rejects)?;
            for reject in rejects.drain(..) {
                tracing::warn!(origin = %reject.origin, reason = %reject.reason, "rejected line");
                reject.dead_letter(&mut publisher).await?;
            }
            let Some(event) = next else { break };
            if let Some(clock) = first_clock.take().flatten() {
                if event.ts() < clock - BEHIND_THE_CLOCK_MS {
                    tracing::warn!(
                        first_event_ms = event.ts(),
                        stream_clock_ms = clock,
                        "the files start behind the stream's clock: a live pipeline reading it \
                         counts their events late; to load history, use `insite backfill`"
                    );
                }
            }
            if let Some(due) = pacer.due(event.ts()) {
                batcher.advance_to(event.ts() - 1, &mut out)?;
                publish_all(&mut publisher, &mut out).await?;
                tokio::select! {
                    () = publisher.idle_until(due) => {}
                    () = shutdown.cancelled() => break,
                }
            }
            batcher.push(event, &mut out)?;
            publish_all(&mut publisher, &mut out).await?;
        }
        batcher.close_all(&mut out)?;
        publish_all(&mut publisher, &mut out).await
    }
    .await;
    let flushed = publisher.flush().await;
    result?;
    let report = flushed?;
    tracing::info!(%report, "replay done");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_split_like_commas_whatever_their_count() {
        for count in [
            1,
            2,
            13,
            INLINE_FIELDS - 1,
            INLINE_FIELDS,
            INLINE_FIELDS + 1,
            40,
        ] {
            let line: Vec<String> = (0..count).map(|i| format!("f{i}")).collect();
            let line = line.join(",");
            let fields = Fields::split(line.as_bytes()).unwrap();
            assert_eq!(fields.len(), count, "{line}");
            for (i, expected) in line.split(',').enumerate() {
                assert_eq!(fields.get(i), Some(expected), "field {i} of {line}");
            }
            assert_eq!(fields.get(count), None);
            if count <= INLINE_FIELDS {
                assert_eq!(
                    fields.get(INLINE_FIELDS),
                    None,
                    "a slot past the line's fields"
                );
            }
        }
        let empty = Fields::split(b",,").unwrap();
        assert_eq!(
            (empty.len(), empty.get(2), empty.get(3)),
            (3, Some(""), None)
        );
    }

    #[test]
    fn timestamps_in_both_forms() {
        assert_eq!(parse_ts("1700000000123").unwrap(), 1_700_000_000_123);
        assert_eq!(
            parse_ts("2023-11-14T22:13:20.123Z").unwrap(),
            1_700_000_000_123
        );
        assert_eq!(
            parse_ts("2023-11-14T23:13:20.123+01:00").unwrap(),
            1_700_000_000_123
        );
        assert!(parse_ts("yesterday").is_err());
        assert!(parse_ts("").is_err());
    }

    #[test]
    fn csv_fields_allow_quotes() {
        assert_eq!(
            split_csv(br#"AAPL,"1,2",x"#).unwrap(),
            vec!["AAPL", "1,2", "x"]
        );
    }

    #[test]
    fn posts_parse_and_reject() {
        let ok = br#"{"id":"p1","ts":"2023-11-14T22:13:20Z","source":"reddit","author":"a","text":"$AAPL up","followers":12}"#;
        let Event::Post(p) = parse_post(ok).unwrap() else {
            panic!("not a post")
        };
        assert_eq!(p.author_followers, Some(12));
        assert_eq!(p.ts, 1_700_000_000_000);
        assert!(parse_post(br#"{"id":"p1","ts":1,"source":"Bad Source","text":""}"#).is_err());
        assert!(parse_post(b"{not json").is_err());
    }

    fn read_all(path: &Path) -> (Vec<Event>, Vec<Rejected>) {
        let mut reader = FileReader::open(Some(path), None, None).unwrap();
        let (mut events, mut rejects) = (Vec::new(), Vec::new());
        while let Some(e) = reader.next_event(&mut rejects).unwrap() {
            events.push(e);
        }
        assert_eq!(reader.progress().0, reader.progress().1);
        (events, rejects)
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("insite-files-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn vendor_trades_layout_and_gzip_read_like_the_native_layout() {
        let dir = temp_dir("vendor");
        let native = write(
            &dir,
            "native.csv",
            b"symbol,ts,price,size,trade_id,exchange,conditions\n\
              AAPL,1700000000123,189.5,100,t1,4,12 37\n\
              MSFT,1700000000124,370.25,7,t2,11,\n",
        );
        let vendor_csv = b"ticker,conditions,correction,exchange,id,participant_timestamp,price,sequence_number,sip_timestamp,size,tape,trf_id,trf_timestamp\n\
              AAPL,\"12,37\",0,4,t1,1700000000122000001,189.5,1,1700000000123456789,100,3,,\n\
              MSFT,,0,11,t2,1700000000124000000,370.25,2,1700000000124999999,7.0,3,,\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, vendor_csv).unwrap();
        // The name says nothing: gzip is known by its magic bytes.
        let vendor = write(&dir, "vendor.csv", &gz.finish().unwrap());
        let (a, bad_a) = read_all(&native);
        let (b, bad_b) = read_all(&vendor);
        assert!(bad_a.is_empty() && bad_b.is_empty(), "{bad_a:?} {bad_b:?}");
        assert_eq!(a.len(), 2);
        assert_eq!(a, b);
        let Event::Trade(t) = &b[0] else {
            panic!("not a trade")
        };
        assert_eq!(t.ts, 1_700_000_000_123);
        assert_eq!(t.conditions.len(), 2);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn bad_lines_are_rejected_with_their_line_number_and_the_rest_is_read() {
        let dir = temp_dir("bad");
        let path = write(
            &dir,
            "trades.csv",
            b"symbol,ts,price,size\nAAPL,1700000000000,10,1\nAAPL,soon,10,1\n\n\"AAPL\",1700000000001,10,2\nAAPL,1700000000002,-3,1\nAAPL,1700000000003,10\n\xff,1,1,1\nAAPL,1700000000004,10,3\n",
        );
        let (events, rejects) = read_all(&path);
        assert_eq!(events.len(), 3);
        let lines: Vec<&str> = rejects.iter().map(|r| r.origin.as_str()).collect();
        assert_eq!(
            lines,
            [
                "trades.csv:3",
                "trades.csv:6",
                "trades.csv:7",
                "trades.csv:8"
            ]
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn records_from_any_reader_keep_good_lines_and_reject_bad_ones() {
        let csv = "ts,symbol,price,size\n1700000000000,aapl,189.5,10\n\nx,AAPL,1,1\n";
        let (events, rejects) =
            read_records(FileKind::Trades, "t.csv", std::io::Cursor::new(csv)).unwrap();
        assert_eq!(events.len(), 1);
        let Event::Trade(t) = &events[0] else {
            panic!("not a trade")
        };
        assert_eq!((t.symbol.as_str(), t.size), ("AAPL", 10));
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].origin, "t.csv:4");
        assert_eq!(rejects[0].kind, "field");
        let no_header = read_records(FileKind::Quotes, "q.csv", std::io::Cursor::new("a,b\n"));
        assert!(matches!(no_header, Err(IngestError::BadInput { .. })));
    }
}
