//! Reading captured streams back, for tests, examples and tools.

use timely::dataflow::operators::capture::Event;
use timely::order::TotalOrder;
use timely::progress::Timestamp;

/// The records of captured `events` (e.g. the `Receiver` that
/// `timely::dataflow::operators::Capture::capture` returns), each with its
/// timely time, in the order they were captured.
pub fn captured<T, D, I>(events: I) -> Vec<(T, D)>
where
    T: Timestamp + TotalOrder,
    I: IntoIterator<Item = Event<T, Vec<D>>>,
{
    let mut out = Vec::new();
    for event in events {
        if let Event::Messages(stamp, data) = event {
            if let Some(time) = stamp.least() {
                out.extend(data.into_iter().map(|d| (time.clone(), d)));
            }
        }
    }
    out
}
