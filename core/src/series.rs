//! Requests grouped by series: what exporters read instead of one event per request.
//!
//! A [`Series`] holds the requests of one flush that share a request type and a name, as
//! [`Point`]s: the numbers of each request, without its strings. While a listener asks for
//! series ([`crate::RequestListener::wants_series`]), each worker thread's shard appends a
//! request's point to its name's vector, found by the id the shard's statistics already looked
//! up, so that the request path clones no string and builds no event; a flush lends the vectors
//! to the listeners ([`crate::RequestListener::on_series`]) and takes them back, emptied, with
//! their memory.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::shard::Sample;
use crate::wall::nanos;

/// One finished request, as a series holds it (its series holds its names).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Time from the request's (scheduled) start to its end.
    pub response_time: Duration,
    /// Bytes counted for it.
    pub response_length: u64,
    /// When it ended, in nanoseconds since the Unix epoch (0 before the epoch): its start, kept
    /// as nanoseconds from the moment it was recorded, plus its response time.
    pub end_ns: u64,
    /// Why it failed; `None` for a success.
    pub error: Option<Arc<str>>,
}

impl Point {
    /// Whether the request succeeded.
    pub fn is_success(&self) -> bool {
        self.error.is_none()
    }

    /// A point for a request that started at `start_time`.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use load_density_core::series::Point;
    ///
    /// let point = Point::started_at(
    ///     UNIX_EPOCH + Duration::from_secs(2),
    ///     Duration::from_millis(5),
    ///     0,
    ///     None,
    /// );
    /// assert_eq!(point.end_ns, 2_005_000_000);
    /// ```
    pub fn started_at(
        start_time: SystemTime,
        response_time: Duration,
        response_length: u64,
        error: Option<Arc<str>>,
    ) -> Self {
        Point {
            response_time,
            response_length,
            end_ns: crate::wall::epoch_ns(start_time).saturating_add(nanos(response_time)),
            error,
        }
    }

    pub(crate) fn of_sample(sample: &Sample<'_>) -> Self {
        Point {
            response_time: sample.response_time,
            response_length: sample.response_length,
            end_ns: sample.end_ns(),
            error: sample.error.clone(),
        }
    }
}

/// Requests that share a request type and a name.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The request type (`GET`, ...).
    pub request_type: Arc<str>,
    /// The name.
    pub name: Arc<str>,
    /// The requests, in the order they were made on one worker thread.
    pub points: Vec<Point>,
}

/// The points one shard kept since the last flush, per statistics entry id.
#[derive(Debug, Default)]
pub(crate) struct ShardSeries {
    /// Indexed by the shard's entry id; emptied (capacity kept) by each flush.
    by_entry: Vec<Vec<Point>>,
    /// Requests under names the shard keeps no entry for, one series each.
    spilled: Vec<Series>,
}

/// Where a lent series came from, to take its vector back.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Origin {
    /// The vector of entry `id` of shard `shard`.
    Entry { shard: usize, id: u32 },
    /// A spilled request's series (dropped after the listeners).
    Spilled,
}

impl ShardSeries {
    /// Keeps one request under entry `entry` (`None`: a name the shard has no entry for).
    pub(crate) fn push(&mut self, entry: Option<u32>, sample: &Sample<'_>) {
        let point = Point::of_sample(sample);
        match entry {
            Some(id) => {
                let id = id as usize;
                if id >= self.by_entry.len() {
                    self.by_entry.resize_with(id + 1, Vec::new);
                }
                self.by_entry[id].push(point);
            }
            None => self.spilled.push(Series {
                request_type: sample.request_type.clone(),
                name: sample.name.clone(),
                points: vec![point],
            }),
        }
    }

    /// Moves entry `id`'s points out (its memory comes back with [`give_back`](Self::give_back)).
    pub(crate) fn take(&mut self, id: u32) -> Vec<Point> {
        self.by_entry
            .get_mut(id as usize)
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The spilled requests' series, moved out.
    pub(crate) fn take_spilled(&mut self) -> std::vec::Drain<'_, Series> {
        if self.spilled.capacity() > 1 << 12 && self.spilled.len() < 1 << 10 {
            self.spilled.shrink_to(1 << 10);
        }
        self.spilled.drain(..)
    }

    /// Returns entry `id`'s vector, emptied, to reuse its memory: room for twice what it
    /// held, so that a steady rate reallocates nothing and a burst, or a name that went
    /// quiet, does not pin its peak (the memory kept stays within twice a flush's requests).
    pub(crate) fn give_back(&mut self, id: u32, mut points: Vec<Point>) {
        let held = points.len();
        points.clear();
        if points.capacity() > 2 * held + 16 {
            points.shrink_to(2 * held);
        }
        if let Some(slot) = self.by_entry.get_mut(id as usize) {
            if slot.capacity() < points.capacity() {
                *slot = points;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point() -> Point {
        Point::started_at(SystemTime::UNIX_EPOCH, Duration::from_millis(1), 0, None)
    }

    #[test]
    fn a_vector_given_back_keeps_room_for_twice_what_it_held() {
        let mut series = ShardSeries::default();
        series.by_entry.resize_with(1, Vec::new);
        // A burst: 100,000 points, then a quiet flush of 10.
        let burst = vec![point(); 100_000];
        series.give_back(0, burst);
        assert!(
            series.by_entry[0].capacity() >= 100_000,
            "a steady rate keeps its room"
        );
        let mut quiet = series.take(0);
        quiet.extend((0..10).map(|_| point()));
        series.give_back(0, quiet);
        let room = series.by_entry[0].capacity();
        assert!(
            (10..=36).contains(&room),
            "room for {room} points after a quiet flush"
        );
        assert!(series.by_entry[0].is_empty());
    }
}
