//! Statistics of one worker thread between two flushes: what [`crate::EventBus`] aggregates
//! per shard, so that a request costs a table lookup by pointer and a few additions instead of
//! an event sent to a collector.
//!
//! A shard keys its entries by a small integer id, found from the addresses of the request's
//! type and name strings (a task's [`crate::RequestMeta`] shares them between every request
//! it makes); the strings are compared only the first time a new pair of addresses is seen.
//! The entries keep their histograms from one flush to the next (cleared, not freed).
//!
//! Merging a shard into [`crate::RequestStats`] gives exactly what adding the shard's
//! requests one by one, in the order they were made, would give, the caps on names and error
//! groups included: the shard remembers the order in which entries and error groups were
//! first touched since the last flush, and merges in that order.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Duration;

use crate::event::RequestEvent;
use crate::stats::{StatsEntry, TOTAL_RATE_HISTORY_SECS};

/// Names one shard keeps entries for; requests under further names are kept as plain numbers
/// until the next flush (a run whose names vary per request must not allocate a histogram per
/// request).
pub(crate) const SHARD_NAMES: usize = 256;
/// Extra string addresses one shard remembers for names it already has (metas built per
/// request carry new addresses each time).
const SHARD_ALIASES: usize = 1024;

/// One finished request as a protocol reports it, borrowing the task's strings.
#[derive(Debug)]
pub(crate) struct Sample<'a> {
    pub request_type: &'a Arc<str>,
    pub name: &'a Arc<str>,
    pub url: &'a Arc<str>,
    pub status: Option<u16>,
    pub response_time: Duration,
    pub response_length: u64,
    pub error: Option<Arc<str>>,
    /// When the request started, in nanoseconds since the Unix epoch.
    pub start_ns: u64,
    pub start_delay: Option<Duration>,
}

impl Sample<'_> {
    /// The event a listener of the event stream receives.
    pub(crate) fn to_event(&self) -> RequestEvent {
        RequestEvent {
            request_type: self.request_type.clone(),
            name: self.name.clone(),
            url: self.url.clone(),
            status: self.status,
            response_time: self.response_time,
            response_length: self.response_length,
            error: self.error.clone(),
            start_time: crate::wall::from_epoch_ns(self.start_ns),
            start_delay: self.start_delay,
        }
    }

    pub(crate) fn of_event(event: &RequestEvent) -> Sample<'_> {
        Sample {
            request_type: &event.request_type,
            name: &event.name,
            url: &event.url,
            status: event.status,
            response_time: event.response_time,
            response_length: event.response_length,
            error: event.error.clone(),
            start_ns: crate::wall::epoch_ns(event.start_time),
            start_delay: event.start_delay,
        }
    }

    fn numbers(&self) -> Numbers {
        let us = u64::try_from(self.response_time.as_micros()).unwrap_or(u64::MAX);
        Numbers {
            us,
            failed: self.error.is_some(),
            length: self.response_length,
            start_delay: self.start_delay,
            second: self.end_ns() / 1_000_000_000,
        }
    }

    /// When the request ended, in nanoseconds since the Unix epoch.
    pub(crate) fn end_ns(&self) -> u64 {
        self.start_ns
            .saturating_add(crate::wall::nanos(self.response_time))
    }
}

/// The numbers statistics keep of one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Numbers {
    us: u64,
    failed: bool,
    length: u64,
    start_delay: Option<Duration>,
    second: u64,
}

impl Numbers {
    pub(crate) fn add_to(&self, entry: &mut StatsEntry, window: u64) {
        entry.add_sample(
            self.us,
            self.failed,
            self.length,
            self.start_delay,
            self.second,
            window,
        );
    }
}

/// What was touched since the last flush, in order.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Touch {
    /// The first request of entry `id` since the last flush.
    Entry(u32),
    /// A request under a name the shard keeps no entry for (index in `spilled`).
    Spilled(u32),
}

/// Hashes the two string addresses of a key: they are already spread, a multiply mixes them.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 =
                (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_usize(&mut self, value: usize) {
        self.0 = (self.0.rotate_left(5) ^ value as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type AddressMap = HashMap<(usize, usize), u32, BuildHasherDefault<AddressHasher>>;

/// An error group's key: (request type, name, message).
pub(crate) type ErrorKey = (Arc<str>, Arc<str>, Arc<str>);

fn address(text: &Arc<str>) -> usize {
    Arc::as_ptr(text).cast::<u8>() as usize
}

/// The statistics one shard aggregated since the last flush.
#[derive(Debug)]
pub(crate) struct ShardStats {
    /// (type address, name address) -> entry id. Every address in it belongs to a string this
    /// shard holds (in `entries` or `aliases`), so it cannot be reused by another string.
    by_address: AddressMap,
    by_text: HashMap<(Arc<str>, Arc<str>), u32>,
    aliases: Vec<(Arc<str>, Arc<str>)>,
    entries: Vec<StatsEntry>,
    total: StatsEntry,
    touched: Vec<Touch>,
    spilled: Vec<(Arc<str>, Arc<str>, Numbers)>,
    /// (type, name, message) -> index in `errors`.
    error_index: HashMap<ErrorKey, usize>,
    /// Error groups in the order first seen since the last flush, with their counts.
    errors: Vec<(ErrorKey, u64)>,
    /// Requests since the last flush.
    requests: u64,
}

impl Default for ShardStats {
    fn default() -> Self {
        Self {
            by_address: AddressMap::default(),
            by_text: HashMap::new(),
            aliases: Vec::new(),
            entries: Vec::new(),
            total: StatsEntry::empty(Arc::from(""), Arc::from("Aggregated")),
            touched: Vec::new(),
            spilled: Vec::new(),
            error_index: HashMap::new(),
            errors: Vec::new(),
            requests: 0,
        }
    }
}

impl ShardStats {
    /// The entry id of `(request_type, name)`, creating the entry when the shard has room.
    fn id_of(&mut self, request_type: &Arc<str>, name: &Arc<str>) -> Option<u32> {
        let addresses = (address(request_type), address(name));
        if let Some(&id) = self.by_address.get(&addresses) {
            return Some(id);
        }
        // Compared as text: another task, or a meta built per request, with the same strings.
        let key = (request_type.clone(), name.clone());
        if let Some(&id) = self.by_text.get(&key) {
            if self.aliases.len() < SHARD_ALIASES {
                self.aliases.push(key);
                self.by_address.insert(addresses, id);
            }
            return Some(id);
        }
        if self.entries.len() >= SHARD_NAMES {
            return None;
        }
        let id = u32::try_from(self.entries.len()).ok()?;
        self.entries
            .push(StatsEntry::empty(request_type.clone(), name.clone()));
        self.by_text.insert(key, id);
        self.by_address.insert(addresses, id);
        Some(id)
    }

    /// Adds one request; returns the id of its entry (`None`: a name this shard has no room
    /// for until the next flush).
    pub(crate) fn add(&mut self, sample: &Sample<'_>) -> Option<u32> {
        let numbers = sample.numbers();
        self.requests += 1;
        let entry = self.id_of(sample.request_type, sample.name);
        let (request_type, name) = match entry {
            Some(id) => {
                let entry = &mut self.entries[id as usize];
                if entry.num_requests() == 0 {
                    self.touched.push(Touch::Entry(id));
                }
                // The total's window, not an entry's: the total is completed from the entries
                // at the flush (`settle`), and merging trims entries to their own window.
                numbers.add_to(entry, TOTAL_RATE_HISTORY_SECS);
                (entry.request_type_arc(), entry.name_arc())
            }
            None => {
                let index = u32::try_from(self.spilled.len()).unwrap_or(u32::MAX);
                self.touched.push(Touch::Spilled(index));
                self.spilled
                    .push((sample.request_type.clone(), sample.name.clone(), numbers));
                numbers.add_to(&mut self.total, TOTAL_RATE_HISTORY_SECS);
                (sample.request_type, sample.name)
            }
        };
        if let Some(message) = &sample.error {
            let key = (request_type.clone(), name.clone(), message.clone());
            match self.error_index.get(&key) {
                Some(&index) => self.errors[index].1 += 1,
                None => {
                    self.error_index.insert(key.clone(), self.errors.len());
                    self.errors.push((key, 1));
                }
            }
        }
        entry
    }

    /// Requests aggregated since the last flush.
    pub(crate) fn requests(&self) -> u64 {
        self.requests
    }

    /// Completes the total with the entries touched since the last flush (it holds only the
    /// requests under spilled names until then: a request adds to one entry, not two). A
    /// flush calls it once, before merging.
    pub(crate) fn settle(&mut self) {
        for touch in &self.touched {
            if let Touch::Entry(id) = *touch {
                self.total
                    .merge_from(&self.entries[id as usize], TOTAL_RATE_HISTORY_SECS);
            }
        }
    }

    /// What was touched since the last flush, in order.
    pub(crate) fn touched(&self) -> &[Touch] {
        &self.touched
    }

    /// Entry `id`.
    pub(crate) fn entry(&self, id: u32) -> &StatsEntry {
        &self.entries[id as usize]
    }

    /// Spilled request `index`: its type, name and numbers.
    pub(crate) fn spilled(&self, index: u32) -> &(Arc<str>, Arc<str>, Numbers) {
        &self.spilled[index as usize]
    }

    /// The total over every request since the last flush, once [`settle`](Self::settle)d.
    pub(crate) fn total(&self) -> &StatsEntry {
        &self.total
    }

    /// The error groups since the last flush, in the order first seen.
    pub(crate) fn errors(&self) -> &[(ErrorKey, u64)] {
        &self.errors
    }

    /// Starts over after a flush; entries stay (emptied) for the next requests, unless the
    /// shard is full, when it forgets them so that the names in use now can have entries.
    pub(crate) fn clear(&mut self) {
        if self.entries.len() >= SHARD_NAMES || self.aliases.len() >= SHARD_ALIASES {
            *self = Self::default();
            return;
        }
        for touch in &self.touched {
            if let Touch::Entry(id) = touch {
                self.entries[*id as usize].clear();
            }
        }
        self.total.clear();
        self.requests = 0;
        self.touched.clear();
        self.spilled.clear();
        if !self.errors.is_empty() {
            self.error_index.clear();
            self.errors.clear();
        }
    }
}

/// Record keys one shard remembers: (type, name, URL) string triples.
const SHARD_RECORD_KEYS: usize = 4096;

/// One request kept for the record store, as numbers and a key into the shard's
/// [`ShardRecords`] table: no string is cloned on the request path.
#[derive(Debug)]
pub(crate) struct CompactRecord {
    key: u32,
    status: Option<u16>,
    response_time_us: u64,
    response_length: u64,
    start_time_us: u64,
    error: Option<Arc<str>>,
}

/// The records one shard kept since the last flush; the strings are resolved when the record
/// store takes them (on the collector's thread).
#[derive(Debug, Default)]
pub(crate) struct ShardRecords {
    by_address: HashMap<(usize, usize, usize), u32, BuildHasherDefault<AddressHasher>>,
    keys: Vec<(Arc<str>, Arc<str>, Arc<str>)>,
    records: Vec<CompactRecord>,
    /// Records whose strings the table had no room for.
    full: Vec<crate::record::Record>,
}

impl ShardRecords {
    /// Keeps one request.
    pub(crate) fn push(&mut self, sample: &Sample<'_>) {
        let addresses = (
            address(sample.request_type),
            address(sample.name),
            address(sample.url),
        );
        let key = match self.by_address.get(&addresses) {
            Some(&key) => key,
            None if self.keys.len() < SHARD_RECORD_KEYS => {
                // Holding the strings keeps their addresses from being reused.
                let key = u32::try_from(self.keys.len()).unwrap_or(u32::MAX);
                self.keys.push((
                    sample.request_type.clone(),
                    sample.name.clone(),
                    sample.url.clone(),
                ));
                self.by_address.insert(addresses, key);
                key
            }
            None => {
                self.full.push(crate::record::Record::from_sample(sample));
                return;
            }
        };
        self.records.push(CompactRecord {
            key,
            status: sample.status,
            response_time_us: u64::try_from(sample.response_time.as_micros()).unwrap_or(u64::MAX),
            response_length: sample.response_length,
            start_time_us: sample.start_ns / 1_000,
            error: sample.error.clone(),
        });
    }

    /// How many records the shard keeps.
    pub(crate) fn len(&self) -> u64 {
        u64::try_from(self.records.len() + self.full.len()).unwrap_or(u64::MAX)
    }

    /// The records, resolved: in the order they were made, except that those the table had
    /// no room for (more than 4,096 type, name and URL triples since the last flush) come
    /// after the others.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = crate::record::Record> + '_ {
        let keys = &self.keys;
        self.records
            .drain(..)
            .map(move |r| {
                let (method, name, url) = &keys[r.key as usize];
                crate::record::Record {
                    method: method.clone(),
                    test_url: url.clone(),
                    name: name.clone(),
                    status_code: r.status,
                    response_time_us: r.response_time_us,
                    response_length: r.response_length,
                    error: r.error,
                    start_time_us: r.start_time_us,
                }
            })
            .chain(self.full.drain(..))
    }

    /// Starts over after a flush; forgets the keys once the table is full.
    pub(crate) fn clear(&mut self) {
        self.records.clear();
        self.full.clear();
        if self.keys.len() >= SHARD_RECORD_KEYS {
            self.keys.clear();
            self.by_address.clear();
        }
        if self.records.capacity() > 1 << 16 {
            self.records.shrink_to(1 << 12);
        }
    }
}
