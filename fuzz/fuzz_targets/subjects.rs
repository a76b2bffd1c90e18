//! Subject, symbol, source, interval and time parsing: what every stage
//! applies to subjects and fields it reads from outside.
#![no_main]

use insite_schemas::{subjects, time, Interval, SourceName, Symbol};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = subjects::parse(text);
    let _ = subjects::live_to_final(text);
    if let Ok(symbol) = Symbol::new(text) {
        let token = symbol.subject_token();
        let back = Symbol::from_subject_token(&token).expect("a symbol's token reads back");
        assert_eq!(back, symbol);
        assert!(subjects::parse(&subjects::trades(&symbol)).is_ok());
    }
    let _ = Symbol::from_subject_token(text);
    let _ = SourceName::new(text);
    if let Ok(interval) = text.parse::<Interval>() {
        let again: Interval = interval
            .to_string()
            .parse()
            .expect("an interval reads back");
        assert_eq!(again, interval);
    }
    let _ = time::parse_time(text);
    let _ = time::parse_time_end(text);
    let _ = time::parse_date(text);
});
