//! Replaying real data files: trades and quotes CSV, posts JSONL.
//!
//! | file | columns / fields |
//! |---|---|
//! | trades CSV | header with `symbol,ts,price,size`, optional `trade_id`, `exchange`, `conditions` (space-separated codes), any order |
//! | quotes CSV | header with `symbol,ts,bid,bid_size,ask,ask_size`, any order |
//! | posts JSONL | one object per line: `id`, `ts`, `source`, `author`, `text`, optional `followers`, `cashtags` |
//!
//! `ts` is RFC 3339 (`2024-03-01T14:30:00.125Z`) or integer milliseconds
//! since the epoch. Symbols are upper-cased; sources must match
//! `[a-z0-9_-]`. One record per line (no quoted line breaks).
//!
//! The three files are merged by event time (each is expected in time
//! order) and published as fast as possible or at `speed` times their
//! original pace, batched like the synthetic feed. A malformed line is
//! counted, logged with its file and line number and sent, raw, to
//! `insite.dlq.ingest` with the reason; the rest goes on.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

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
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FilesConfig {
    /// Trades CSV.
    pub trades: Option<PathBuf>,
    /// Quotes CSV.
    pub quotes: Option<PathBuf>,
    /// Posts JSONL.
    pub posts: Option<PathBuf>,
    /// `None`: as fast as possible; `Some(n)`: n times the original pace.
    pub speed: Option<f64>,
    /// Batching.
    pub batch: BatchConfig,
    /// Publishing.
    pub publisher: PublisherConfig,
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

/// The kind of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Trades CSV.
    Trades,
    /// Quotes CSV.
    Quotes,
    /// Posts JSONL.
    Posts,
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
    Symbol::new(&text.trim().to_ascii_uppercase()).map_err(|e| e.to_string())
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
}

const TRADE_COLUMNS: [(&str, bool); 7] = [
    ("symbol", true),
    ("ts", true),
    ("price", true),
    ("size", true),
    ("trade_id", false),
    ("exchange", false),
    ("conditions", false),
];

const QUOTE_COLUMNS: [(&str, bool); 6] = [
    ("symbol", true),
    ("ts", true),
    ("bid", true),
    ("bid_size", true),
    ("ask", true),
    ("ask_size", true),
];

/// One input file, read line by line.
struct LineFile {
    /// What it holds.
    kind: FileKind,
    /// Its name for messages (`trades.csv`).
    name: String,
    /// Its path.
    path: PathBuf,
    /// The reader (a file, or any byte source for [`read_records`]).
    reader: BufReader<Box<dyn Read + Send>>,
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
        let file = File::open(path).map_err(|source| IngestError::Io {
            path: path.to_owned(),
            source,
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Self::from_reader(kind, name, path.to_owned(), Box::new(file))
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
        let wanted: &[(&str, bool)] = match self.kind {
            FileKind::Trades => &TRADE_COLUMNS,
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
        for (column, required) in wanted {
            let at = names.iter().position(|n| n == column);
            if at.is_none() && *required {
                return Err(bad(format!(
                    "header {:?} lacks the column {column:?} (needs {})",
                    names.join(","),
                    wanted
                        .iter()
                        .filter(|(_, r)| *r)
                        .map(|(c, _)| *c)
                        .collect::<Vec<_>>()
                        .join(",")
                )));
            }
            positions.push(at);
        }
        self.columns = Some(Columns { positions });
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
                let fields = split_csv(&self.buf).map_err(|r| ("csv", r))?;
                let columns = self
                    .columns
                    .as_ref()
                    .map(|c| c.positions.as_slice())
                    .unwrap_or(&[]);
                let get = |i: usize| -> Option<&str> {
                    columns
                        .get(i)
                        .copied()
                        .flatten()
                        .and_then(|p| fields.get(p))
                        .map(String::as_str)
                };
                let required = |i: usize, name: &str| -> Result<&str, (&'static str, String)> {
                    get(i).ok_or_else(|| {
                        (
                            "csv",
                            format!("missing field {name:?} (line has {} fields)", fields.len()),
                        )
                    })
                };
                if kind == FileKind::Trades {
                    Event::Trade(Trade {
                        symbol: field(parse_symbol(required(0, "symbol")?))?,
                        ts: field(parse_ts(required(1, "ts")?))?,
                        price: field(parse_num("price", required(2, "price")?))?,
                        size: field(parse_num("size", required(3, "size")?))?,
                        trade_id: get(4).unwrap_or("").trim().into(),
                        exchange: get(5).unwrap_or("").trim().into(),
                        conditions: get(6)
                            .unwrap_or("")
                            .split_whitespace()
                            .map(Into::into)
                            .collect(),
                    })
                } else {
                    Event::Quote(Quote {
                        symbol: field(parse_symbol(required(0, "symbol")?))?,
                        ts: field(parse_ts(required(1, "ts")?))?,
                        bid: field(parse_num("bid", required(2, "bid")?))?,
                        bid_size: field(parse_num("bid_size", required(3, "bid_size")?))?,
                        ask: field(parse_num("ask", required(4, "ask")?))?,
                        ask_size: field(parse_num("ask_size", required(5, "ask_size")?))?,
                    })
                }
            }
        };
        event.validate().map_err(|e| ("invalid", e.to_string()))?;
        Ok(event)
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

/// The merged, time-ordered reader over the input files.
struct Merged {
    /// The open files.
    files: Vec<LineFile>,
}

impl Merged {
    /// The next event by event time (ties: trades, quotes, posts), after
    /// moving every bad line met on the way into `rejects`.
    fn next(&mut self, rejects: &mut Vec<Rejected>) -> Result<Option<Event>, IngestError> {
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
}

/// Replays the files of `config` until they end or `shutdown` fires, then
/// flushes what is in flight.
pub async fn publish_files(
    js: &jetstream::Context,
    streams: &StreamsConfig,
    config: FilesConfig,
    shutdown: CancellationToken,
) -> Result<IngestReport, IngestError> {
    let mut files = Vec::new();
    for (kind, path) in [
        (FileKind::Trades, &config.trades),
        (FileKind::Quotes, &config.quotes),
        (FileKind::Posts, &config.posts),
    ] {
        if let Some(path) = path {
            files.push(LineFile::open(kind, path)?);
        }
    }
    if files.is_empty() {
        return Err(IngestError::Config(
            "ingest files needs at least one of trades, quotes or posts".into(),
        ));
    }
    insite_sinks::streams::ensure_streams(js, streams).await?;
    let mut merged = Merged { files };
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
    let result: Result<(), IngestError> = async {
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let next = merged.next(&mut rejects)?;
            for reject in rejects.drain(..) {
                tracing::warn!(origin = %reject.origin, reason = %reject.reason, "rejected line");
                publisher.count_rejected();
                publisher
                    .dead_letter(
                        Bytes::from(reject.raw),
                        &reject.reason,
                        reject.kind,
                        &reject.origin,
                    )
                    .await?;
            }
            let Some(event) = next else { break };
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
