//! Per-user aggregation state and the feature table computed from it.

use rustc_hash::FxHashMap;

use crate::Flavor;
use crate::columns::{ABSENT, ColumnData, DictColumn, EventColumns, FeatureTable, OwnedDict};
use crate::schema::EVENT_TYPES;
use crate::{stats, time};

const MS_PER_SEC: i64 = 1_000;
const SECS_PER_DAY: i64 = 86_400;

/// Maps byte strings to dense ids, stable for the life of an aggregation.
#[derive(Default)]
#[cfg_attr(feature = "state", derive(serde::Serialize, serde::Deserialize))]
struct Interner {
    ids: FxHashMap<Box<[u8]>, u32>,
}

impl Interner {
    fn id(&mut self, bytes: &[u8]) -> u32 {
        // Looked up by the borrowed bytes: a key is copied only the first time it is seen.
        if let Some(&id) = self.ids.get(bytes) {
            return id;
        }
        let next = self.ids.len() as u32;
        self.ids.insert(bytes.into(), next);
        next
    }

    /// Global id of every entry of this batch's dictionary.
    fn remap(&mut self, column: &DictColumn<'_>) -> Vec<u32> {
        (0..column.entries()).map(|k| self.id(column.entry(k))).collect()
    }
}

/// Largest (user × value) grid counted densely; larger batches fall back to one call per event.
const MAX_GRID_CELLS: usize = 1 << 16;

/// Calls `apply(user_slot, value_code, count)` for every distinct (user, value) pair of a batch.
/// Small grids are counted in a dense array (one increment per event, one `apply` per pair);
/// `value_code` is [`ABSENT`] for missing values.
fn count_pairs(users: usize, values: &DictColumn<'_>, user_slots: &[u32], mut apply: impl FnMut(usize, u32, u64)) {
    let cols = values.entries() + 1;
    let slot = |code: u32| if code == ABSENT { cols - 1 } else { code as usize };
    let code_of = |slot: usize| if slot == cols - 1 { ABSENT } else { slot as u32 };
    if users * cols > MAX_GRID_CELLS {
        for (&u, &code) in user_slots.iter().zip(values.codes) {
            apply(u as usize, code, 1);
        }
        return;
    }
    let mut grid = vec![0u32; users * cols];
    for (&u, &code) in user_slots.iter().zip(values.codes) {
        grid[u as usize * cols + slot(code)] += 1;
    }
    for (cell, &n) in grid.iter().enumerate() {
        if n > 0 {
            apply(cell / cols, code_of(cell % cols), u64::from(n));
        }
    }
}

fn lookup(remap: &[u32], code: u32) -> u32 {
    if code == ABSENT { ABSENT } else { remap[code as usize] }
}

/// Everything kept per user between batches.
#[derive(Default)]
#[cfg_attr(feature = "state", derive(serde::Serialize, serde::Deserialize))]
struct UserState {
    total: u64,
    /// Events per source IP id ([`ABSENT`] for events without one).
    ip_counts: FxHashMap<u32, u64>,
    /// Events per event-type id.
    type_counts: Vec<u64>,
    threat_sum: f64,
    threat_n: u64,
    threat_max: f64,
    failed: u64,
    unusual_hour: u64,
    location_ids: rustc_hash::FxHashSet<u32>,
    hour_counts: [u64; 24],
    /// Event times in the flavor's interval unit (seconds or milliseconds).
    times: Vec<i64>,
    /// Whether `times` arrived out of order (and needs sorting).
    unsorted: bool,
    /// Destination ids (flavors that read `destination_ip`).
    destination_ids: rustc_hash::FxHashSet<u32>,
}

impl UserState {
    /// `n` more events from source IP `ip` ([`ABSENT`]: none).
    fn add_ip(&mut self, ip: u32, n: u64) {
        *self.ip_counts.entry(ip).or_default() += n;
    }

    /// `n` more events of type `t` ([`ABSENT`]: none), `known` type ids so far (sizing the
    /// counts once, not at every new type).
    fn add_type(&mut self, t: u32, n: u64, known: usize) {
        if t == ABSENT {
            return;
        }
        let t = t as usize;
        if self.type_counts.len() <= t {
            self.type_counts.resize(known.max(t + 1), 0);
        }
        self.type_counts[t] += n;
    }

    /// An event from `location` ([`ABSENT`]: none).
    fn add_location(&mut self, location: u32) {
        if location != ABSENT {
            self.location_ids.insert(location);
        }
    }

    /// An event to `destination` ([`ABSENT`]: none).
    fn add_destination(&mut self, destination: u32) {
        if destination != ABSENT {
            self.destination_ids.insert(destination);
        }
    }
}

/// Per-user aggregation over pushed event batches (the `aggregation` resource).
#[cfg_attr(feature = "state", derive(serde::Serialize, serde::Deserialize))]
pub struct Aggregator {
    flavor: Flavor,
    users: Interner,
    /// State index of each user id.
    user_state: Vec<usize>,
    /// Index of the state of events without a user, if any arrived.
    absent_user: Option<usize>,
    states: Vec<UserState>,
    ips: Interner,
    event_types: Interner,
    locations: Interner,
    destinations: Interner,
    /// For each event-type id, its count column among [`EVENT_TYPES`].
    type_column: Vec<Option<usize>>,
}

impl Aggregator {
    /// An empty aggregation computing `flavor`'s features.
    pub fn new(flavor: Flavor) -> Self {
        Aggregator {
            flavor,
            users: Interner::default(),
            user_state: Vec::new(),
            absent_user: None,
            states: Vec::new(),
            ips: Interner::default(),
            event_types: Interner::default(),
            locations: Interner::default(),
            destinations: Interner::default(),
            type_column: Vec::new(),
        }
    }

    /// The flavor it computes.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// Number of distinct users so far.
    pub fn users(&self) -> usize {
        self.states.len()
    }

    /// Folds a batch in. Fails (touching nothing) when the batch is malformed.
    pub fn push(&mut self, batch: &EventColumns<'_>) -> Result<(), String> {
        batch.validate()?;
        // State index of every user slot of this batch: dictionary codes, then "absent". Only
        // users with events here get a state: a dictionary may be shared with other rows (a
        // window's share of a batch), and a user without events has no row.
        let mut used = vec![false; batch.user.entries()];
        for &c in batch.user.codes {
            if c != ABSENT {
                used[c as usize] = true;
            }
        }
        let mut slot_state: Vec<usize> = (0..batch.user.entries())
            .map(|k| {
                if !used[k] {
                    return usize::MAX;
                }
                let id = self.users.id(batch.user.entry(k)) as usize;
                if id == self.user_state.len() {
                    self.user_state.push(self.states.len());
                    self.states.push(UserState::default());
                }
                self.user_state[id]
            })
            .collect();
        let absent_slot = slot_state.len();
        if batch.user.codes.contains(&ABSENT) {
            let states = &mut self.states;
            slot_state.push(*self.absent_user.get_or_insert_with(|| {
                states.push(UserState::default());
                states.len() - 1
            }));
        }
        // Each event's user slot, computed once for the passes below.
        let user_slots: Vec<u32> =
            batch.user.codes.iter().map(|&c| if c == ABSENT { absent_slot as u32 } else { c }).collect();

        let ip_ids = self.ips.remap(&batch.source_ip);
        let type_ids = self.event_types.remap(&batch.event_type);
        for (k, &id) in type_ids.iter().enumerate() {
            let id = id as usize;
            if id == self.type_column.len() {
                let name = batch.event_type.entry(k);
                self.type_column.push(EVENT_TYPES.iter().position(|t| t.as_bytes() == name));
            }
        }
        let location_column = if self.flavor.corrected() { &batch.geo_location } else { &batch.location };
        let location_ids = self.locations.remap(location_column);
        let failed: Vec<bool> =
            (0..batch.status.entries()).map(|k| batch.status.entry(k) == b"failed").collect();
        let ms_intervals = self.flavor.corrected();

        let destinations = match (self.flavor, &batch.destination_ip) {
            (Flavor::Streamguard2, Some(d)) => Some((d, self.destinations.remap(d))),
            _ => None,
        };
        let known_types = self.type_column.len();
        // With about one event per user in the batch, counting its (user, value) pairs densely
        // saves nothing: each event adds its pairs while its user's state is at hand.
        let users = slot_state.len();
        // Users with events here: the dictionary's used entries, and the absent user's slot if
        // one was added.
        let present = used.iter().filter(|&&u| u).count() + usize::from(users > absent_slot);
        let pairs_per_event = 2 * present > user_slots.len();

        for (i, &slot) in user_slots.iter().enumerate() {
            let st = &mut self.states[slot_state[slot as usize]];
            st.total += 1;
            let ms = batch.timestamp_ms[i];
            let hour = time::hour_of_day(ms);
            st.hour_counts[hour] += 1;
            st.unusual_hour += u64::from(hour <= 6);
            // The legacy job reads `from_unixtime(ms / 1000)`: truncated to whole seconds.
            let t = if ms_intervals { ms } else { time::truncated_secs(ms) };
            st.unsorted |= st.times.last().is_some_and(|&last| t < last);
            st.times.push(t);
            let score = batch.threat_score[i];
            if !score.is_nan() {
                st.threat_max = if st.threat_n == 0 { score } else { st.threat_max.max(score) };
                st.threat_sum += score;
                st.threat_n += 1;
            }
            let status = batch.status.codes[i];
            st.failed += u64::from(status != ABSENT && failed[status as usize]);
            if pairs_per_event {
                st.add_ip(lookup(&ip_ids, batch.source_ip.codes[i]), 1);
                st.add_type(lookup(&type_ids, batch.event_type.codes[i]), 1, known_types);
                st.add_location(lookup(&location_ids, location_column.codes[i]));
                if let Some((column, ids)) = &destinations {
                    st.add_destination(lookup(ids, column.codes[i]));
                }
            }
        }
        if pairs_per_event {
            return Ok(());
        }

        // (user, value) pairs: counted densely per batch, then folded into the per-user maps.
        let states = &mut self.states;
        count_pairs(users, &batch.source_ip, &user_slots, |u, code, n| {
            states[slot_state[u]].add_ip(lookup(&ip_ids, code), n);
        });
        count_pairs(users, &batch.event_type, &user_slots, |u, code, n| {
            states[slot_state[u]].add_type(lookup(&type_ids, code), n, known_types);
        });
        count_pairs(users, location_column, &user_slots, |u, code, _| {
            states[slot_state[u]].add_location(lookup(&location_ids, code));
        });
        if let Some((column, ids)) = &destinations {
            count_pairs(users, column, &user_slots, |u, code, _| states[slot_state[u]].add_destination(lookup(ids, code)));
        }
        Ok(())
    }

    /// The per-user feature table, rows ordered by user (absent user first); resets the state.
    pub fn take(&mut self) -> FeatureTable {
        let fresh = Aggregator::new(self.flavor);
        let mut done = std::mem::replace(self, fresh);
        // Rows go in user-name order: (name, state index) pairs are sorted, the states stay put.
        let mut order: Vec<(Option<Box<[u8]>>, u32)> = (0..done.states.len() as u32).map(|i| (None, i)).collect();
        for (name, id) in done.users.ids {
            order[done.user_state[id as usize]].0 = Some(name);
        }
        order.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut table = TableBuilder::new(done.flavor, order.len(), &done.type_column);
        for &(_, i) in &order {
            table.push_row(&mut done.states[i as usize]);
        }
        table.finish(OwnedDict::from_values(order.iter().map(|(k, _)| k.as_deref())))
    }
}

/// Builds the output columns row by row.
struct TableBuilder<'a> {
    flavor: Flavor,
    rows: usize,
    type_column: &'a [Option<usize>],
    ints: Vec<Vec<i64>>,
    floats: Vec<Vec<f64>>,
    /// Per-row scratch, kept across rows so a row allocates nothing.
    ip_events: Vec<u64>,
    gaps: Vec<i64>,
    gaps_secs: Vec<f64>,
}

/// Output slots, in schema order after `user`: `I(n)` an integer column, `F(n)` a float one.
mod slot {
    pub const TOTAL: usize = 0;
    pub const UNIQUE_IPS: usize = 1;
    pub const UNIQUE_TYPES: usize = 2;
    pub const FAILED: usize = 3;
    pub const UNUSUAL: usize = 4;
    pub const LOCATIONS: usize = 5;
    pub const FIRST_SEEN: usize = 6;
    pub const LAST_SEEN: usize = 7;
    pub const ACTIVITY_DAYS: usize = 8;
    pub const TYPE_COUNTS: usize = 9; // five columns
    pub const RARE_IP: usize = 14;
    pub const MIN_INTERVAL_INT: usize = 15;
    pub const BURST: usize = 16;
    pub const DESTINATIONS: usize = 17;
    pub const INTS: usize = 18;

    pub const AVG_THREAT: usize = 0;
    pub const MAX_THREAT: usize = 1;
    pub const FAILED_RATE: usize = 2;
    pub const UNUSUAL_RATE: usize = 3;
    pub const IP_DIVERSITY: usize = 4;
    pub const EVENTS_PER_DAY: usize = 5;
    pub const HOURLY_STDDEV: usize = 6;
    pub const HOURLY_VARIANCE: usize = 7;
    pub const AVG_IP_FREQ: usize = 8;
    pub const IP_FREQ_STDDEV: usize = 9;
    pub const RARE_IP_RATIO: usize = 10;
    pub const AVG_INTERVAL: usize = 11;
    pub const INTERVAL_STDDEV: usize = 12;
    pub const MIN_INTERVAL_FLOAT: usize = 13;
    pub const FLOATS: usize = 14;
}

impl<'a> TableBuilder<'a> {
    fn new(flavor: Flavor, rows: usize, type_column: &'a [Option<usize>]) -> Self {
        TableBuilder {
            flavor,
            rows,
            type_column,
            ints: (0..slot::INTS).map(|_| Vec::with_capacity(rows)).collect(),
            floats: (0..slot::FLOATS).map(|_| Vec::with_capacity(rows)).collect(),
            ip_events: Vec::new(),
            gaps: Vec::new(),
            gaps_secs: Vec::new(),
        }
    }

    fn int(&mut self, s: usize, v: i64) {
        self.ints[s].push(v);
    }

    fn float(&mut self, s: usize, v: f64) {
        // Spark's `na.fill(0)`: every null or NaN becomes 0.
        self.floats[s].push(if v.is_finite() { v } else { 0.0 });
    }

    fn push_row(&mut self, st: &mut UserState) {
        let compat = !self.flavor.corrected();
        let total = st.total as f64;
        let unique_ips = st.ip_counts.keys().filter(|&&ip| ip != ABSENT).count();
        self.int(slot::TOTAL, st.total as i64);
        self.int(slot::UNIQUE_IPS, unique_ips as i64);
        self.int(slot::UNIQUE_TYPES, st.type_counts.iter().filter(|&&n| n > 0).count() as i64);
        self.float(slot::AVG_THREAT, st.threat_sum / st.threat_n as f64);
        self.float(slot::MAX_THREAT, if st.threat_n > 0 { st.threat_max } else { 0.0 });
        self.int(slot::FAILED, st.failed as i64);
        self.int(slot::UNUSUAL, st.unusual_hour as i64);
        self.int(slot::LOCATIONS, st.location_ids.len() as i64);

        if st.unsorted {
            st.times.sort_unstable();
        }
        let (first, last) = (st.times[0], st.times[st.times.len() - 1]);
        let to_ms = |t: i64| if compat { t * MS_PER_SEC } else { t };
        let (first_ms, last_ms) = (to_ms(first), to_ms(last));
        self.int(slot::FIRST_SEEN, first_ms);
        self.int(slot::LAST_SEEN, last_ms);
        self.float(slot::FAILED_RATE, st.failed as f64 / total);
        self.float(slot::UNUSUAL_RATE, st.unusual_hour as f64 / total);
        self.float(slot::IP_DIVERSITY, unique_ips as f64 / total);
        let day = |ms: i64| ms.div_euclid(MS_PER_SEC * SECS_PER_DAY);
        let activity_days = day(last_ms) - day(first_ms) + 1;
        self.int(slot::ACTIVITY_DAYS, activity_days);
        self.float(slot::EVENTS_PER_DAY, total / activity_days as f64);

        let mut per_type = [0i64; EVENT_TYPES.len()];
        for (id, &n) in st.type_counts.iter().enumerate() {
            if let Some(c) = self.type_column[id] {
                per_type[c] += n as i64;
            }
        }
        for (c, n) in per_type.into_iter().enumerate() {
            self.int(slot::TYPE_COUNTS + c, n);
        }

        let mut active_hours = [0f64; 24];
        let mut active = 0;
        for &n in st.hour_counts.iter().filter(|&&n| n > 0) {
            active_hours[active] = n as f64;
            active += 1;
        }
        let hourly_variance = stats::sample_variance(&active_hours[..active]);
        self.float(slot::HOURLY_STDDEV, hourly_variance.sqrt());
        self.float(slot::HOURLY_VARIANCE, hourly_variance);

        // Each event carries n = the user's event count from its IP. The legacy job keeps events
        // without an IP as one more "IP"; the corrected one leaves them out.
        let counts = &mut self.ip_events;
        counts.clear();
        counts.extend(st.ip_counts.iter().filter(|&(&ip, _)| compat || ip != ABSENT).map(|(_, &n)| n));
        // Summed in a fixed order: a map's iteration order depends on its history (e.g. a state
        // imported after an upgrade), and float sums on their order.
        counts.sort_unstable();
        let (mean_n, var_n) = stats::weighted_self_moments(counts);
        let rare = counts.iter().filter(|&&n| n == 1).count();
        self.float(slot::AVG_IP_FREQ, mean_n);
        self.float(slot::IP_FREQ_STDDEV, var_n.sqrt());
        self.int(slot::RARE_IP, rare as i64);
        let rare_ratio_denominator = if compat { mean_n } else { unique_ips as f64 };
        self.float(slot::RARE_IP_RATIO, rare as f64 / rare_ratio_denominator);

        // Gaps between consecutive events, in seconds (compat: whole seconds).
        let (gaps, gaps_secs) = (&mut self.gaps, &mut self.gaps_secs);
        gaps.clear();
        gaps.extend(st.times.windows(2).map(|w| w[1] - w[0]));
        let unit = if compat { 1.0 } else { MS_PER_SEC as f64 };
        gaps_secs.clear();
        gaps_secs.extend(gaps.iter().map(|&g| g as f64 / unit));
        let (avg_interval, interval_variance) = (stats::mean(gaps_secs), stats::sample_variance(gaps_secs));
        let min_gap = gaps.iter().copied().min().unwrap_or(0);
        let one_second = if compat { 1 } else { MS_PER_SEC };
        let bursts = gaps.iter().filter(|&&g| g < one_second).count();
        self.float(slot::AVG_INTERVAL, avg_interval);
        self.float(slot::INTERVAL_STDDEV, interval_variance.sqrt());
        self.int(slot::MIN_INTERVAL_INT, min_gap);
        self.float(slot::MIN_INTERVAL_FLOAT, min_gap as f64 / unit);
        self.int(slot::BURST, bursts as i64);
        self.int(slot::DESTINATIONS, st.destination_ids.len() as i64);
    }

    fn finish(mut self, users: OwnedDict) -> FeatureTable {
        let compat = !self.flavor.corrected();
        let mut i = |s: usize| ColumnData::Int64(std::mem::take(&mut self.ints[s]));
        let mut ints: Vec<ColumnData> = (0..slot::INTS).map(&mut i).collect();
        let mut f = |s: usize| ColumnData::Float64(std::mem::take(&mut self.floats[s]));
        let mut floats: Vec<ColumnData> = (0..slot::FLOATS).map(&mut f).collect();
        let mut int = |s: usize| std::mem::replace(&mut ints[s], ColumnData::Int64(Vec::new()));
        let mut float = |s: usize| std::mem::replace(&mut floats[s], ColumnData::Float64(Vec::new()));
        let ts = |c: ColumnData| match c {
            ColumnData::Int64(v) => ColumnData::TimestampMs(v),
            other => other,
        };
        let mut columns = vec![
            ColumnData::Utf8(users),
            int(slot::TOTAL),
            int(slot::UNIQUE_IPS),
            int(slot::UNIQUE_TYPES),
            float(slot::AVG_THREAT),
            float(slot::MAX_THREAT),
            int(slot::FAILED),
            int(slot::UNUSUAL),
            int(slot::LOCATIONS),
            ts(int(slot::FIRST_SEEN)),
            ts(int(slot::LAST_SEEN)),
            float(slot::FAILED_RATE),
            float(slot::UNUSUAL_RATE),
            float(slot::IP_DIVERSITY),
            int(slot::ACTIVITY_DAYS),
            float(slot::EVENTS_PER_DAY),
            int(slot::TYPE_COUNTS),
            int(slot::TYPE_COUNTS + 1),
            int(slot::TYPE_COUNTS + 2),
            int(slot::TYPE_COUNTS + 3),
            int(slot::TYPE_COUNTS + 4),
            float(slot::HOURLY_STDDEV),
            float(slot::HOURLY_VARIANCE),
            float(slot::AVG_IP_FREQ),
            float(slot::IP_FREQ_STDDEV),
            int(slot::RARE_IP),
            float(slot::RARE_IP_RATIO),
            float(slot::AVG_INTERVAL),
            float(slot::INTERVAL_STDDEV),
            if compat { int(slot::MIN_INTERVAL_INT) } else { float(slot::MIN_INTERVAL_FLOAT) },
            int(slot::BURST),
        ];
        if self.flavor == Flavor::Streamguard2 {
            columns.push(int(slot::DESTINATIONS));
        }
        FeatureTable { rows: self.rows, columns }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::{ColumnData, OwnedDict};

    fn column(values: &[Option<String>]) -> OwnedDict {
        OwnedDict::from_values(values.iter().map(|v| v.as_deref().map(str::as_bytes)))
    }

    /// Pushes `n` events of two users where every event has its own IP, so the (user × IP)
    /// grid of the batch is too large to count densely and the per-event path runs.
    #[test]
    fn large_dictionaries_take_the_per_event_path() {
        let n = 40_000usize;
        assert!(2 * (n + 1) > MAX_GRID_CELLS);
        let users: Vec<Option<String>> = (0..n).map(|i| Some(["a", "b"][i % 2].to_string())).collect();
        let ips: Vec<Option<String>> = (0..n).map(|i| Some(format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255))).collect();
        let types: Vec<Option<String>> = (0..n).map(|_| Some("dns_query".to_string())).collect();
        let none: Vec<Option<String>> = vec![None; n];
        let (user, ip, ty, absent) = (column(&users), column(&ips), column(&types), column(&none));
        let timestamps: Vec<i64> = (0..n as i64).map(|i| 1_704_067_200_000 + i).collect();
        let scores = vec![0.5; n];
        let batch = EventColumns {
            timestamp_ms: &timestamps,
            event_type: ty.view(),
            user: user.view(),
            source_ip: ip.view(),
            status: absent.view(),
            threat_score: &scores,
            location: absent.view(),
            geo_location: absent.view(),
            destination_ip: None,
        };
        let mut agg = Aggregator::new(Flavor::Streamguard);
        agg.push(&batch).unwrap();
        let table = agg.take();
        let schema = Flavor::Streamguard.schema();
        let ColumnData::Int64(unique) = table.column(schema, "unique_ips").unwrap() else { panic!() };
        assert_eq!(unique, &vec![n as i64 / 2, n as i64 / 2]);
        let ColumnData::Int64(rare) = table.column(schema, "rare_ip_count").unwrap() else { panic!() };
        assert_eq!(rare, &vec![n as i64 / 2, n as i64 / 2]);
        let ColumnData::Int64(dns) = table.column(schema, "dns_query").unwrap() else { panic!() };
        assert_eq!(dns, &vec![n as i64 / 2, n as i64 / 2]);
    }

    #[test]
    fn dictionary_entries_without_events_make_no_rows() {
        // A window's share of a batch keeps the batch's dictionaries: "b" has no event here.
        let user = OwnedDict { dict_bytes: b"ab".to_vec(), dict_offsets: vec![0, 1, 2], codes: vec![0, 0] };
        let absent = OwnedDict { dict_bytes: Vec::new(), dict_offsets: vec![0], codes: vec![ABSENT; 2] };
        let (ts, scores) = ([1_000i64, 2_000], [0.1, 0.2]);
        let batch = EventColumns {
            timestamp_ms: &ts,
            event_type: absent.view(),
            user: user.view(),
            source_ip: absent.view(),
            status: absent.view(),
            threat_score: &scores,
            location: absent.view(),
            geo_location: absent.view(),
            destination_ip: None,
        };
        for flavor in [Flavor::SparkCompat, Flavor::Streamguard, Flavor::Streamguard2] {
            let mut agg = Aggregator::new(flavor);
            agg.push(&batch).unwrap();
            let table = agg.take();
            assert_eq!(table.rows, 1, "{flavor:?}");
        }
    }

    #[test]
    fn malformed_batches_are_refused() {
        let user = OwnedDict::from_values([Some(&b"a"[..])]);
        let mut bad = user.clone();
        bad.codes[0] = 7;
        let ts = [1i64];
        let scores = [0.1];
        fn batch<'a>(u: &'a OwnedDict, other: &'a OwnedDict, ts: &'a [i64], scores: &'a [f64]) -> EventColumns<'a> {
            EventColumns {
                timestamp_ms: ts,
                event_type: other.view(),
                user: u.view(),
                source_ip: other.view(),
                status: other.view(),
                threat_score: scores,
                location: other.view(),
                geo_location: other.view(),
                destination_ip: None,
            }
        }
        let mut agg = Aggregator::new(Flavor::SparkCompat);
        let err = agg.push(&batch(&bad, &user, &ts, &scores)).unwrap_err();
        assert!(err.contains("code 7 outside a dictionary of 1"), "{err}");
        agg.push(&batch(&user, &user, &ts, &scores)).unwrap();
        assert_eq!(agg.take().rows, 1);
    }
}
