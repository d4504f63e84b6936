//! Tumbling event-time windows over a partitioned stream, as pure bookkeeping (no Kafka, no
//! component): which window an event belongs to, when windows close, and which offsets are
//! safe to commit.
//!
//! - An event below the checkpoint's covered offset of its partition is already in the output
//!   (re-read after a commit that did not happen) and is skipped; an event for a window that is
//!   already written is late.
//! - An event stamped more than the future skew past the wall clock is refused (`Future`): it
//!   neither opens a window nor moves the watermark, so one forged timestamp cannot close every
//!   window early and then pin the commits behind a window that never closes.
//! - The watermark is the minimum over partitions of their newest event time, less the
//!   lateness, so a partition read ahead of another does not close windows the other still
//!   feeds; an assigned partition that has delivered nothing yet holds the watermark back
//!   unless it is idle (empty, or committed at its end). As Flink's `withIdleness`, a partition
//!   that has delivered no record for the idle timeout (wall clock) stops holding it, and holds
//!   it again once it delivers; when every partition is quiet, the newest of them sets it.
//! - The safe offset of a partition is the smallest offset of an event still in an open window,
//!   else the next offset to read: committing it never skips an unwritten event.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use sg_core::component::features::Window;
use sg_pipeline::sink::Checkpoint;
use sg_pipeline::source::Position;

/// Where an event goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Already in the output (below the checkpoint): skip it.
    Covered,
    /// Its window, starting here, is already written.
    Late(i64),
    /// Into the open window starting here.
    Open(i64),
    /// Stamped further in the future than the skew allows; the limit it passed, epoch ms.
    Future(i64),
}

/// Whether a window may open beside those open already (each holds a component instance).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Room {
    /// It is open already, or there is room.
    Fits,
    /// The oldest open window, starting here, must be written first (early).
    CloseOldest(i64),
    /// At the limit, and older than every open window: its events are refused.
    Refuse,
}

/// How event time is judged against the wall clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventTime {
    /// How far behind the newest event time a window stays open, ms.
    pub lateness_ms: i64,
    /// Events stamped later than the wall clock plus this are refused, ms.
    pub max_future_skew_ms: i64,
    /// A partition with no new record for this long stops holding the watermark, ms.
    pub idle_timeout_ms: Option<i64>,
}

impl EventTime {
    /// `lateness_ms` of lateness, one hour of future skew, and partitions that never go idle.
    pub fn with_lateness(lateness_ms: i64) -> EventTime {
        EventTime { lateness_ms, max_future_skew_ms: 3_600_000, idle_timeout_ms: None }
    }
}

/// An open window: the caller's state for it, its event count, the smallest offset per
/// partition of an event in it, and (when the stream keeps one) its ledger.
#[derive(Debug)]
pub struct OpenWindow<W> {
    /// The caller's aggregation.
    pub state: W,
    /// Events aggregated.
    pub events: u64,
    first: BTreeMap<i32, i64>,
    /// The positions of the events aggregated, when the stream keeps a ledger.
    pub ledger: Option<Vec<Position>>,
}

impl<W> OpenWindow<W> {
    /// Events found failing after they were held (dead-lettered by the caller) leave the window.
    pub fn refused(&mut self, positions: &[Position]) {
        self.events -= positions.len() as u64;
        if let Some(ledger) = &mut self.ledger {
            let gone: std::collections::HashSet<(i32, i64, u64)> = positions.iter().map(key).collect();
            ledger.retain(|p| !gone.contains(&key(p)));
        }
    }
}

/// A position as a hashable key.
fn key(p: &Position) -> (i32, i64, u64) {
    match *p {
        Position::Kafka { partition, offset } => (partition, offset, 0),
        Position::Line(l) => (-1, -1, l),
    }
}

/// The open windows of a stream and what is safe to commit.
#[derive(Debug)]
pub struct Windows<W> {
    length_ms: i64,
    time: EventTime,
    checkpoint: Checkpoint,
    open: BTreeMap<i64, OpenWindow<W>>,
    /// Per partition, the offset after the last record read.
    next: BTreeMap<i32, i64>,
    /// Per partition, the newest event time seen.
    newest: BTreeMap<i32, i64>,
    /// Per partition, when (wall clock, ms) it last delivered a record, or was first assigned.
    heard: BTreeMap<i32, i64>,
    ledger: bool,
}

impl<W> Windows<W> {
    /// Windows of `length_ms`, event time judged by `time`, resuming from `checkpoint`.
    pub fn new(length_ms: i64, time: EventTime, checkpoint: Checkpoint) -> Windows<W> {
        assert!(length_ms > 0, "a window has a positive length");
        let (open, next, newest, heard) = Default::default();
        Windows { length_ms, time, checkpoint, open, next, newest, heard, ledger: false }
    }

    /// Windows that keep the positions of their events (`OpenWindow::ledger`) when `ledger`.
    pub fn keeping_ledger(mut self, ledger: bool) -> Windows<W> {
        self.ledger = ledger;
        self
    }

    /// The bounds of the window starting at `start`.
    pub fn bounds(&self, start: i64) -> Window {
        Window { start_ms: start, end_ms: start.saturating_add(self.length_ms) }
    }

    /// Notes records read at wall-clock time `now_ms`: per partition, the offset after the
    /// last one.
    pub fn read(&mut self, read: BTreeMap<i32, i64>, now_ms: i64) {
        for (p, next) in read {
            if self.next.insert(p, next) != Some(next) {
                self.heard.insert(p, now_ms);
            }
        }
    }

    /// Where the event at `position` with event time `ts` goes, at wall-clock time `now_ms`; an
    /// event that is neither covered nor from the future counts towards its partition's newest
    /// event time.
    pub fn route(&mut self, position: Position, ts: i64, now_ms: i64) -> Route {
        if let Position::Kafka { partition, offset } = position
            && self.checkpoint.covered.get(&partition).is_some_and(|&c| offset < c)
        {
            return Route::Covered;
        }
        let limit = now_ms.saturating_add(self.time.max_future_skew_ms);
        if ts > limit {
            return Route::Future(limit);
        }
        if let Position::Kafka { partition, .. } = position {
            let n = self.newest.entry(partition).or_insert(ts);
            *n = (*n).max(ts);
        }
        let start = ts.div_euclid(self.length_ms) * self.length_ms;
        match self.checkpoint.closed_until {
            Some(closed) if start.saturating_add(self.length_ms) <= closed => Route::Late(start),
            _ => Route::Open(start),
        }
    }

    /// The open window starting at `start`, opened with `open` if it is not yet.
    pub fn window<E>(&mut self, start: i64, open: impl FnOnce(Window) -> Result<W, E>) -> Result<&mut OpenWindow<W>, E> {
        let bounds = self.bounds(start);
        Ok(match self.open.entry(start) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(OpenWindow { state: open(bounds)?, events: 0, first: BTreeMap::new(), ledger: self.ledger.then(Vec::new) }),
        })
    }

    /// Notes that the events at `positions` are in the window starting at `start` (counted,
    /// held back from commits, and in its ledger).
    pub fn hold(&mut self, start: i64, positions: &[Position]) {
        let Some(w) = self.open.get_mut(&start) else { return };
        w.events += positions.len() as u64;
        if let Some(ledger) = &mut w.ledger {
            ledger.extend_from_slice(positions);
        }
        for p in positions {
            if let Position::Kafka { partition, offset } = *p {
                let first = w.first.entry(partition).or_insert(offset);
                *first = (*first).min(offset);
            }
        }
    }

    /// Whether the window starting at `start` can be open with at most `max` open at once.
    pub fn room(&self, start: i64, max: usize) -> Room {
        if self.open.contains_key(&start) || self.open.len() < max.max(1) {
            return Room::Fits;
        }
        match self.open.keys().next() {
            Some(&oldest) if oldest < start => Room::CloseOldest(oldest),
            _ => Room::Refuse,
        }
    }

    /// Open windows, oldest first.
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    /// The watermark at wall-clock time `now_ms`: the minimum newest event time over the
    /// partitions that are not quiet (no record for the idle timeout), less the lateness — the
    /// newest over all when every one is quiet; no window closes (`i64::MIN`) while one of the
    /// `assigned` partitions has delivered nothing and is neither `idle` (empty, or committed
    /// at its end) nor quiet.
    pub fn watermark(&mut self, assigned: &[i32], idle: impl Fn(i32) -> bool, now_ms: i64) -> i64 {
        for &p in assigned {
            self.heard.entry(p).or_insert(now_ms);
        }
        let quiet = |p: i32| match (self.time.idle_timeout_ms, self.heard.get(&p)) {
            (Some(timeout), Some(&heard)) => now_ms.saturating_sub(heard) >= timeout,
            _ => false,
        };
        if assigned.iter().any(|&p| !self.newest.contains_key(&p) && !idle(p) && !quiet(p)) {
            return i64::MIN;
        }
        let active = self.newest.iter().filter(|&(&p, _)| !quiet(p)).map(|(_, &t)| t).min();
        let newest = active.or_else(|| self.newest.values().copied().max());
        newest.map_or(i64::MIN, |t| t.saturating_sub(self.time.lateness_ms))
    }

    /// Starts of the open windows the `watermark` has passed, oldest first.
    pub fn closing(&self, watermark: i64) -> Vec<i64> {
        self.open.keys().copied().filter(|&w| w.saturating_add(self.length_ms) <= watermark).collect()
    }

    /// Takes the window starting at `start` out of the open ones, to be written.
    pub fn remove(&mut self, start: i64) -> Option<OpenWindow<W>> {
        self.open.remove(&start)
    }

    /// Records that the window starting at `start` is written (or had nothing to write): the
    /// checkpoint to save now, and the offsets that are then safe to commit.
    pub fn written(&mut self, start: i64) -> (&Checkpoint, BTreeMap<i32, i64>) {
        let end = start.saturating_add(self.length_ms);
        self.checkpoint.closed_until = Some(self.checkpoint.closed_until.map_or(end, |c| c.max(end)));
        let safe = self.safe_offsets();
        for (&p, &o) in &safe {
            let c = self.checkpoint.covered.entry(p).or_insert(o);
            *c = (*c).max(o);
        }
        (&self.checkpoint, safe)
    }

    /// Per partition: the smallest offset of an event still in an open window, else the next
    /// offset to read.
    pub fn safe_offsets(&self) -> BTreeMap<i32, i64> {
        let mut safe = self.next.clone();
        for w in self.open.values() {
            for (&p, &o) in &w.first {
                let s = safe.entry(p).or_insert(o);
                *s = (*s).min(o);
            }
        }
        safe
    }

    /// Partitions were taken away: every open window and what was read is dropped (whoever owns
    /// the partitions now re-reads it from the committed offsets). The checkpoint stays.
    pub fn revoked(&mut self) {
        self.open.clear();
        self.next.clear();
        self.newest.clear();
        self.heard.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    /// The wall clock of the tests: far past every event time they use.
    const NOW: i64 = 1_000 * H;

    fn at(partition: i32, offset: i64) -> Position {
        Position::Kafka { partition, offset }
    }

    /// Routes one event and, when it opens or joins a window, counts it there.
    fn feed(w: &mut Windows<()>, partition: i32, offset: i64, ts: i64) -> Route {
        let route = w.route(at(partition, offset), ts, NOW);
        if let Route::Open(start) = route {
            w.window::<()>(start, |_| Ok(())).unwrap();
            w.hold(start, &[at(partition, offset)]);
        }
        w.read(BTreeMap::from([(partition, offset + 1)]), NOW);
        route
    }

    fn none_idle(_: i32) -> bool {
        false
    }

    #[test]
    fn a_partition_read_ahead_does_not_close_windows_another_still_feeds() {
        let mut w = Windows::<()>::new(H, EventTime::with_lateness(0), Checkpoint::default());
        feed(&mut w, 0, 0, 10);
        feed(&mut w, 0, 1, 3 * H + 5); // partition 0 is in the fourth hour
        feed(&mut w, 1, 0, 20); // partition 1 is still in the first
        let mark = w.watermark(&[0, 1], none_idle, NOW);
        assert_eq!(mark, 20);
        assert!(w.closing(mark).is_empty());
        feed(&mut w, 1, 1, 2 * H);
        let mark = w.watermark(&[0, 1], none_idle, NOW);
        assert_eq!(mark, 2 * H);
        assert_eq!(w.closing(mark), vec![0], "only the first hour is behind both partitions");
        // Partition 0's later event keeps its offset 1 unsafe until its window is written.
        w.remove(0).unwrap();
        let (checkpoint, safe) = w.written(0);
        assert_eq!(checkpoint.closed_until, Some(H));
        assert_eq!(safe, BTreeMap::from([(0, 1), (1, 1)]));
    }

    #[test]
    fn an_unseen_partition_holds_the_watermark_unless_it_is_idle() {
        let mut w = Windows::<()>::new(H, EventTime::with_lateness(0), Checkpoint::default());
        feed(&mut w, 0, 0, 10);
        feed(&mut w, 0, 1, 2 * H);
        assert_eq!(w.watermark(&[0, 1], none_idle, NOW), i64::MIN, "partition 1 may still hold events of the first hour");
        let mark = w.watermark(&[0, 1], |p| p == 1, NOW);
        assert_eq!(mark, 2 * H, "an empty (or fully committed) partition does not hold it");
        assert_eq!(w.closing(mark), vec![0]);
        // A partition not assigned to this member does not count at all.
        assert_eq!(w.watermark(&[0], none_idle, NOW), 2 * H);
    }

    #[test]
    fn lateness_keeps_a_window_open_past_its_end() {
        let mut w = Windows::<()>::new(H, EventTime::with_lateness(10 * 60_000), Checkpoint::default());
        feed(&mut w, 0, 0, 10);
        feed(&mut w, 0, 1, H + 5 * 60_000);
        let mark = w.watermark(&[0], none_idle, NOW);
        assert!(w.closing(mark).is_empty());
        feed(&mut w, 0, 2, H + 10 * 60_000);
        let mark = w.watermark(&[0], none_idle, NOW);
        assert_eq!(w.closing(mark), vec![0]);
    }

    #[test]
    fn safe_offsets_stop_at_the_oldest_event_of_an_open_window() {
        let mut w = Windows::<()>::new(H, EventTime::with_lateness(0), Checkpoint::default());
        feed(&mut w, 0, 5, 10); // window 0
        feed(&mut w, 0, 6, H + 1); // window 1
        feed(&mut w, 0, 7, 20); // window 0 again, after an event of window 1
        assert_eq!(w.safe_offsets(), BTreeMap::from([(0, 5)]));
        feed(&mut w, 0, 8, 2 * H);
        w.remove(0).unwrap();
        let (_, safe) = w.written(0);
        assert_eq!(safe, BTreeMap::from([(0, 6)]), "offset 6 is in window 1, still open");
        w.remove(H).unwrap();
        let (checkpoint, safe) = w.written(H);
        assert_eq!(safe, BTreeMap::from([(0, 8)]));
        assert_eq!(checkpoint.covered, BTreeMap::from([(0, 8)]));
        assert_eq!(checkpoint.closed_until, Some(2 * H));
    }

    #[test]
    fn a_revocation_drops_open_windows_and_keeps_the_checkpoint() {
        let mut w = Windows::<()>::new(H, EventTime::with_lateness(0), Checkpoint::default());
        feed(&mut w, 0, 0, 10);
        feed(&mut w, 0, 1, H + 10);
        w.remove(0).unwrap();
        let (checkpoint, _) = w.written(0);
        let saved = checkpoint.clone();
        feed(&mut w, 1, 0, H + 20);
        w.revoked();
        assert_eq!(w.open_windows(), 0);
        assert!(w.safe_offsets().is_empty(), "nothing read before the revocation may be committed");
        assert_eq!(w.watermark(&[], none_idle, NOW), i64::MIN, "event times are forgotten too");
        // The next assignment starts from the committed offsets; the checkpoint still skips
        // what is written.
        assert_eq!(w.route(at(0, 0), 10, NOW), Route::Covered);
        assert_eq!(w.written(H).0.covered, saved.covered);
    }

    #[test]
    fn a_restart_from_a_checkpoint_skips_what_is_written_and_refuses_late_events() {
        let checkpoint = Checkpoint { closed_until: Some(2 * H), covered: BTreeMap::from([(0, 100), (1, 7)]) };
        let mut w = Windows::<()>::new(H, EventTime::with_lateness(0), checkpoint);
        assert_eq!(w.route(at(0, 99), 2 * H + 1, NOW), Route::Covered, "below the covered offset: in the output already");
        assert_eq!(w.route(at(0, 100), H + 1, NOW), Route::Late(H), "window [1h, 2h) is written");
        assert_eq!(w.route(at(1, 7), 2 * H - 1, NOW), Route::Late(H));
        assert_eq!(w.route(at(1, 8), 2 * H, NOW), Route::Open(2 * H));
        assert_eq!(w.route(Position::Line(1), 10, NOW), Route::Late(0), "files have no covered offsets");
    }

    #[test]
    fn late_events_after_a_window_is_written() {
        let mut w = Windows::<()>::new(H, EventTime::with_lateness(0), Checkpoint::default());
        assert_eq!(feed(&mut w, 0, 0, 10), Route::Open(0));
        feed(&mut w, 0, 1, H);
        let mark = w.watermark(&[0], none_idle, NOW);
        for start in w.closing(mark) {
            w.remove(start).unwrap();
            w.written(start);
        }
        assert_eq!(feed(&mut w, 0, 2, 59 * 60_000), Route::Late(0));
        assert_eq!(feed(&mut w, 0, 3, H + 1), Route::Open(H));
        assert_eq!(feed(&mut w, 0, 4, -1), Route::Late(-H), "before the first window: late too");
    }

    #[test]
    fn a_far_future_event_is_refused_and_moves_nothing() {
        let mut w = Windows::<()>::new(H, EventTime::with_lateness(0), Checkpoint::default());
        feed(&mut w, 0, 0, 10);
        feed(&mut w, 1, 0, 20);
        let forged = NOW + 365 * 24 * H;
        assert_eq!(feed(&mut w, 0, 1, forged), Route::Future(NOW + H));
        assert_eq!(feed(&mut w, 1, 1, NOW + H - 1), Route::Open((NOW + H - 1).div_euclid(H) * H), "within the skew: accepted");
        assert_eq!(w.watermark(&[0, 1], none_idle, NOW), 10, "partition 0's watermark is still its real newest event");
        assert_eq!(w.safe_offsets(), BTreeMap::from([(0, 0), (1, 0)]));
    }

    #[test]
    fn a_quiet_partition_stops_holding_the_watermark_until_it_delivers() {
        let time = EventTime { idle_timeout_ms: Some(60_000), ..EventTime::with_lateness(0) };
        let mut w = Windows::<()>::new(H, time, Checkpoint::default());
        let route = |w: &mut Windows<()>, p: i32, o: i64, ts: i64, now: i64| {
            let r = w.route(at(p, o), ts, now);
            if let Route::Open(start) = r {
                w.window::<()>(start, |_| Ok(())).unwrap();
                w.hold(start, &[at(p, o)]);
            }
            w.read(BTreeMap::from([(p, o + 1)]), now);
            r
        };
        route(&mut w, 0, 0, 10, NOW);
        route(&mut w, 1, 0, 20, NOW);
        route(&mut w, 0, 1, 2 * H, NOW + 30_000);
        assert_eq!(w.watermark(&[0, 1], none_idle, NOW + 59_000), 20, "partition 1 is not quiet yet");
        assert_eq!(w.watermark(&[0, 1], none_idle, NOW + 61_000), 2 * H, "quiet for a minute: it no longer holds");
        assert_eq!(w.closing(2 * H), vec![0]);
        w.remove(0).unwrap();
        w.written(0);
        // It delivers again: late for the written hour, and it holds the watermark again.
        assert_eq!(route(&mut w, 1, 1, 30, NOW + 62_000), Route::Late(0));
        assert_eq!(route(&mut w, 1, 2, 2 * H + 10, NOW + 62_000), Route::Open(2 * H));
        route(&mut w, 0, 2, 5 * H, NOW + 62_000);
        assert_eq!(w.watermark(&[0, 1], none_idle, NOW + 63_000), 2 * H + 10);
        // Every partition quiet: the newest of them sets the watermark.
        assert_eq!(w.watermark(&[0, 1], none_idle, NOW + 200_000), 5 * H);
    }

    #[test]
    fn an_assigned_partition_that_never_delivers_stops_holding_after_the_idle_timeout() {
        let time = EventTime { idle_timeout_ms: Some(60_000), ..EventTime::with_lateness(0) };
        let mut w = Windows::<()>::new(H, time, Checkpoint::default());
        feed(&mut w, 0, 0, 10);
        feed(&mut w, 0, 1, 2 * H);
        assert_eq!(w.watermark(&[0, 1], none_idle, NOW), i64::MIN);
        assert_eq!(w.watermark(&[0, 1], none_idle, NOW + 30_000), i64::MIN);
        assert_eq!(w.watermark(&[0, 1], none_idle, NOW + 60_000), 2 * H);
    }

    #[test]
    fn at_the_open_window_limit_the_oldest_is_written_early_or_an_older_one_refused() {
        let mut w = Windows::<()>::new(H, EventTime::with_lateness(100 * H), Checkpoint::default());
        for (i, ts) in [5 * H, 3 * H, 4 * H].into_iter().enumerate() {
            assert_eq!(w.room(ts, 3), Room::Fits);
            feed(&mut w, 0, i as i64, ts);
        }
        assert_eq!(w.room(4 * H, 3), Room::Fits, "open already");
        assert_eq!(w.room(6 * H, 3), Room::CloseOldest(3 * H));
        assert_eq!(w.room(2 * H, 3), Room::Refuse, "older than every open window");
        w.remove(3 * H).unwrap();
        w.written(3 * H);
        assert_eq!(w.room(6 * H, 3), Room::Fits);
        assert_eq!(w.route(at(0, 9), 3 * H + 1, NOW), Route::Late(3 * H), "written early: its later events are late");
    }
}
