//! What a failed ClickHouse call means: retry it, or stop.
//!
//! [`classify`] decides from the client error's *variant*, the ClickHouse
//! exception *code* the server sent, and the HTTP *status*, never from words
//! in a message (a syntax error at "position 503" is not an outage).
//!
//! - Variants: [`Error::Network`] (refused, reset, the transport's connect
//!   and read timeouts) and [`Error::TimedOut`] are retryable; a
//!   [`Error::BadResponse`] is classified by its code or status (below);
//!   every other variant is a failure of the client itself (serializing a
//!   row, a row type that does not match the answer): [`ErrorClass::Internal`].
//! - Codes: ClickHouse starts every error answer with its code:
//!   `Code: 241, e.displayText() = DB::Exception: ...` (18.16),
//!   `Code: 241. DB::Exception: ... (MEMORY_LIMIT_EXCEEDED) (version ...)`
//!   (current releases), or just `Code: 241` when only the
//!   `X-ClickHouse-Exception-Code` header came. [`RETRYABLE_CODES`] are
//!   conditions that pass (overload, limits, replication, shutdown);
//!   [`BAD_DATA_CODES`] are refusals of the statement or its rows (schema,
//!   syntax, types, access). A code in neither list is
//!   [`ErrorClass::Internal`]: insite does not know it, so it does not retry
//!   it blindly.
//! - Statuses: with no body (a proxy, a server going down) the client
//!   reports the status line, say `503 Service Unavailable`: 5xx, 408 and
//!   429 are retryable, other 4xx are [`ErrorClass::BadData`]. An answer
//!   that is neither (an HTML page from a proxy) is
//!   [`ErrorClass::Internal`].

use std::error::Error as StdError;
use std::io;

use clickhouse::error::Error;
use hyper::StatusCode;

/// What retrying a failed ClickHouse call can achieve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The server could not be reached, went silent, or reported a passing
    /// condition: the same call may succeed later.
    Retryable,
    /// The server refused the statement or its rows (schema, syntax, types,
    /// credentials): the same call fails again.
    BadData,
    /// The client failed, or the server answered something insite does not
    /// know: a bug or a misconfiguration, not an outage.
    Internal,
}

/// ClickHouse exception codes of conditions that pass, with their names in
/// ClickHouse's `src/Common/ErrorCodes.cpp`.
pub const RETRYABLE_CODES: &[(u32, &str)] = &[
    (159, "TIMEOUT_EXCEEDED"),
    (173, "CANNOT_ALLOCATE_MEMORY"),
    (201, "QUOTA_EXPIRED"),
    (202, "TOO_MANY_SIMULTANEOUS_QUERIES"),
    (203, "NO_FREE_CONNECTION"),
    (209, "SOCKET_TIMEOUT"),
    (210, "NETWORK_ERROR"),
    (225, "NO_ZOOKEEPER"),
    (241, "MEMORY_LIMIT_EXCEEDED"),
    (242, "TABLE_IS_READ_ONLY"),
    (243, "NOT_ENOUGH_SPACE"),
    (244, "UNEXPECTED_ZOOKEEPER_ERROR"),
    (252, "TOO_MANY_PARTS"),
    (279, "ALL_CONNECTION_TRIES_FAILED"),
    (285, "TOO_FEW_LIVE_REPLICAS"),
    (286, "UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE"),
    (319, "UNKNOWN_STATUS_OF_INSERT"),
    (364, "RECEIVED_ERROR_TOO_MANY_REQUESTS"),
    (394, "QUERY_WAS_CANCELLED"),
    (425, "SYSTEM_ERROR"),
    (439, "CANNOT_SCHEDULE_TASK"),
    (999, "KEEPER_EXCEPTION"),
];

/// ClickHouse exception codes of a refused statement or refused rows.
pub const BAD_DATA_CODES: &[(u32, &str)] = &[
    (6, "CANNOT_PARSE_TEXT"),
    (16, "NO_SUCH_COLUMN_IN_TABLE"),
    (26, "CANNOT_PARSE_QUOTED_STRING"),
    (27, "CANNOT_PARSE_INPUT_ASSERTION_FAILED"),
    (33, "CANNOT_READ_ALL_DATA"),
    (36, "BAD_ARGUMENTS"),
    (38, "CANNOT_PARSE_DATE"),
    (41, "CANNOT_PARSE_DATETIME"),
    (43, "ILLEGAL_TYPE_OF_ARGUMENT"),
    (44, "ILLEGAL_COLUMN"),
    (46, "UNKNOWN_FUNCTION"),
    (47, "UNKNOWN_IDENTIFIER"),
    (53, "TYPE_MISMATCH"),
    (57, "TABLE_ALREADY_EXISTS"),
    (60, "UNKNOWN_TABLE"),
    (62, "SYNTAX_ERROR"),
    (70, "CANNOT_CONVERT_TYPE"),
    (72, "CANNOT_PARSE_NUMBER"),
    (81, "UNKNOWN_DATABASE"),
    (115, "UNKNOWN_SETTING"),
    (117, "INCORRECT_DATA"),
    (164, "READONLY"),
    (192, "UNKNOWN_USER"),
    (193, "WRONG_PASSWORD"),
    (194, "REQUIRED_PASSWORD"),
    (195, "IP_ADDRESS_NOT_ALLOWED"),
    (291, "DATABASE_ACCESS_DENIED"),
    (321, "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE"),
    (497, "ACCESS_DENIED"),
    (516, "AUTHENTICATION_FAILED"),
];

/// What retrying `error` can achieve (see the classification table in
/// this module's docs).
pub fn classify(error: &Error) -> ErrorClass {
    match error {
        Error::Network(_) | Error::TimedOut => ErrorClass::Retryable,
        Error::Other(source) if has_io_error(source.as_ref()) => ErrorClass::Retryable,
        Error::BadResponse(answer) => classify_answer(answer),
        _ => ErrorClass::Internal,
    }
}

/// Whether retrying `error` may succeed: [`classify`] says
/// [`ErrorClass::Retryable`].
pub fn is_retryable(error: &Error) -> bool {
    classify(error) == ErrorClass::Retryable
}

/// The ClickHouse exception code the server answered with, if any.
pub fn exception_code(error: &Error) -> Option<u32> {
    match error {
        Error::BadResponse(answer) => code_of(answer),
        _ => None,
    }
}

/// Whether `error` is a timeout: the transport's connect or read timeout,
/// or the client's own.
pub fn is_timeout(error: &Error) -> bool {
    if matches!(error, Error::TimedOut) {
        return true;
    }
    let mut next = error.source();
    while let Some(cause) = next {
        if cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::TimedOut)
            || cause
                .downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_timeout)
        {
            return true;
        }
        next = cause.source();
    }
    false
}

/// Whether an I/O error is in `error`'s chain.
fn has_io_error(error: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(cause) = next {
        if cause.is::<io::Error>() {
            return true;
        }
        next = cause.source();
    }
    false
}

/// Classifies the server's (or a proxy's) error answer.
fn classify_answer(answer: &str) -> ErrorClass {
    if let Some(code) = code_of(answer) {
        classify_code(code)
    } else if let Some(status) = status_of(answer) {
        classify_status(status)
    } else {
        ErrorClass::Internal
    }
}

/// Classifies a ClickHouse exception code.
pub fn classify_code(code: u32) -> ErrorClass {
    if RETRYABLE_CODES.iter().any(|(c, _)| *c == code) {
        ErrorClass::Retryable
    } else if BAD_DATA_CODES.iter().any(|(c, _)| *c == code) {
        ErrorClass::BadData
    } else {
        ErrorClass::Internal
    }
}

/// Classifies an HTTP status that came without a ClickHouse exception.
pub fn classify_status(status: StatusCode) -> ErrorClass {
    if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        ErrorClass::Retryable
    } else if status.is_client_error() {
        ErrorClass::BadData
    } else {
        ErrorClass::Internal
    }
}

/// The code at the start of a ClickHouse error answer: `Code: NNN` followed
/// by `,` (18.16), `.` (current) or nothing (the header alone).
fn code_of(answer: &str) -> Option<u32> {
    let rest = answer.trim_start().strip_prefix("Code:")?.trim_start();
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (number, after) = rest.split_at(digits);
    let ends_well = after.is_empty() || after.starts_with([',', '.', ' ', '\n']);
    if number.is_empty() || !ends_well {
        return None;
    }
    number.parse().ok()
}

/// The status of an answer the client reported as its status line (what it
/// does when the body is empty or not text): `503 Service Unavailable`.
fn status_of(answer: &str) -> Option<StatusCode> {
    let (number, reason) = answer.trim().split_once(' ')?;
    if number.len() != 3 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let status = StatusCode::from_bytes(number.as_bytes()).ok()?;
    (status.canonical_reason().unwrap_or("<unknown>") == reason).then_some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> Error {
        Error::BadResponse(text.into())
    }

    #[test]
    fn codes_of_18_16_and_current_answers() {
        let old = answer(
            "Code: 241, e.displayText() = DB::Exception: Memory limit (for query) exceeded: \
             would use 9.32 GiB, maximum: 9.31 GiB, e.what() = DB::Exception",
        );
        let new = answer(
            "Code: 241. DB::Exception: Memory limit (for query) exceeded: would use 9.32 GiB \
             (attempt to allocate chunk of 4194304 bytes), maximum: 9.31 GiB. \
             (MEMORY_LIMIT_EXCEEDED) (version 24.8.4.13 (official build))",
        );
        let header_only = answer("Code: 241");
        for e in [&old, &new, &header_only] {
            assert_eq!(exception_code(e), Some(241), "{e}");
            assert_eq!(classify(e), ErrorClass::Retryable, "{e}");
        }
    }

    #[test]
    fn retryable_codes() {
        for text in [
            "Code: 252, e.displayText() = DB::Exception: Too many parts (300). Merges are \
             processing significantly slower than inserts., e.what() = DB::Exception",
            "Code: 202. DB::Exception: Too many simultaneous queries. Maximum: 100. \
             (TOO_MANY_SIMULTANEOUS_QUERIES) (version 23.8.8.20 (official build))",
            "Code: 159. DB::Exception: Timeout exceeded: elapsed 1.2 seconds, maximum: 0.1. \
             (TIMEOUT_EXCEEDED) (version 24.10.1.2812 (official build))",
            "Code: 210. DB::NetException: I/O error: Broken pipe, while writing to socket \
             (127.0.0.1:9000 -> 127.0.0.1:54646). (NETWORK_ERROR) (version 23.8.8.20 (official build))",
            "Code: 242, e.displayText() = DB::Exception: Table is in readonly mode, \
             e.what() = DB::Exception",
            "Code: 999. Coordination::Exception: Connection loss. (KEEPER_EXCEPTION)",
            "Code: 319. DB::Exception: Unknown status, client must retry. \
             (UNKNOWN_STATUS_OF_INSERT)",
            "Code: 394. DB::Exception: Query was cancelled. (QUERY_WAS_CANCELLED)",
        ] {
            assert_eq!(classify(&answer(text)), ErrorClass::Retryable, "{text}");
        }
    }

    #[test]
    fn bad_data_codes() {
        for text in [
            "Code: 62, e.displayText() = DB::Exception: Syntax error: failed at position 1: \
             SELEC 503., e.what() = DB::Exception",
            "Code: 60. DB::Exception: Table insite.t503 doesn't exist. (UNKNOWN_TABLE) \
             (version 24.8.4.13 (official build))",
            "Code: 81, e.displayText() = DB::Exception: Database nope doesn't exist, \
             e.what() = DB::Exception",
            "Code: 53. DB::Exception: Type mismatch in IN or VALUES section. (TYPE_MISMATCH)",
            "Code: 27, e.displayText() = DB::Exception: Cannot parse input: expected , \
             before: 503 Service Unavailable, e.what() = DB::Exception",
            "Code: 516. DB::Exception: default: Authentication failed: password is \
             incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)",
            "Code: 193, e.displayText() = DB::Exception: Wrong password for user default, \
             e.what() = DB::Exception",
        ] {
            assert_eq!(classify(&answer(text)), ErrorClass::BadData, "{text}");
        }
    }

    #[test]
    fn words_in_a_message_do_not_decide() {
        // Formerly retried because the text held "503" or "Code: 252".
        let quoted = answer(
            "Code: 62. DB::Exception: Syntax error: failed at position 10 ('Code: 252'): \
             503 Service Unavailable. (SYNTAX_ERROR)",
        );
        assert_eq!(classify(&quoted), ErrorClass::BadData);
        // An unknown code is not retried blindly.
        assert_eq!(
            classify(&answer(
                "Code: 49. DB::Exception: Logical error. (LOGICAL_ERROR)"
            )),
            ErrorClass::Internal
        );
        // Not a code: "Code: 2520" is 2520, "Code: 25x" is none.
        assert_eq!(exception_code(&answer("Code: 2520. x")), Some(2520));
        assert_eq!(exception_code(&answer("Code: 25x")), None);
        assert_eq!(exception_code(&answer("Error Code: 252")), None);
    }

    #[test]
    fn statuses_without_a_body() {
        for (text, class) in [
            ("503 Service Unavailable", ErrorClass::Retryable),
            ("502 Bad Gateway", ErrorClass::Retryable),
            ("500 Internal Server Error", ErrorClass::Retryable),
            ("504 Gateway Timeout", ErrorClass::Retryable),
            ("429 Too Many Requests", ErrorClass::Retryable),
            ("408 Request Timeout", ErrorClass::Retryable),
            ("401 Unauthorized", ErrorClass::BadData),
            ("404 Not Found", ErrorClass::BadData),
            ("599 <unknown>", ErrorClass::Retryable),
        ] {
            assert_eq!(classify(&answer(text)), class, "{text}");
        }
        // A body that merely mentions a status is not a status line.
        assert_eq!(
            classify(&answer(
                "<html><title>503 Service Unavailable</title></html>"
            )),
            ErrorClass::Internal
        );
        assert_eq!(
            classify(&answer("503 upstream says hello")),
            ErrorClass::Internal
        );
    }

    #[test]
    fn variants() {
        let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(
            classify(&Error::Network(Box::new(refused))),
            ErrorClass::Retryable
        );
        assert_eq!(classify(&Error::TimedOut), ErrorClass::Retryable);
        let reset = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(classify(&Error::from(reset)), ErrorClass::Retryable);
        assert_eq!(classify(&Error::NotEnoughData), ErrorClass::Internal);
        assert_eq!(classify(&Error::RowNotFound), ErrorClass::Internal);
        assert_eq!(
            classify(&Error::Custom("a serde error".into())),
            ErrorClass::Internal
        );
        assert_eq!(
            classify(&Error::Other("not I/O".into())),
            ErrorClass::Internal
        );
    }

    #[test]
    fn timeouts_are_found_in_the_chain() {
        let timed_out = io::Error::new(io::ErrorKind::TimedOut, "ClickHouse sent nothing");
        assert!(is_timeout(&Error::Network(Box::new(timed_out))));
        assert!(is_timeout(&Error::TimedOut));
        let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        assert!(!is_timeout(&Error::Network(Box::new(refused))));
    }

    #[test]
    fn the_lists_are_disjoint() {
        for (code, name) in RETRYABLE_CODES {
            assert!(
                !BAD_DATA_CODES.iter().any(|(c, _)| c == code),
                "{code} {name}"
            );
        }
    }
}
