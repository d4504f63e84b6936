//! Tumbling event-time windows over a partitioned stream, as pure bookkeeping (no Kafka, no
//! component): which window an event belongs to, when windows close, and which offsets are
//! safe to commit.
//!
//! - An event below the checkpoint's covered offset of its partition is already in the output
//!   (re-read after a commit that did not happen) and is skipped; an event for a window that is
//!   already written is late.
//! - The watermark is the minimum over partitions of their newest event time, less the
//!   lateness, so a partition read ahead of another does not close windows the other still
//!   feeds; an assigned partition that has delivered nothing yet holds the watermark back
//!   unless it is idle (empty, or committed at its end).
//! - The safe offset of a partition is the smallest offset of an event still in an open window,
//!   else the next offset to read: committing it never skips an unwritten event.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use crate::component::features::Window;
use crate::sink::Checkpoint;
use crate::source::Position;

/// Where an event goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Already in the output (below the checkpoint): skip it.
    Covered,
    /// Its window, starting here, is already written.
    Late(i64),
    /// Into the open window starting here.
    Open(i64),
}

/// An open window: the caller's state for it, its event count, and the smallest offset per
/// partition of an event in it.
#[derive(Debug)]
pub struct OpenWindow<W> {
    /// The caller's aggregation.
    pub state: W,
    /// Events aggregated.
    pub events: u64,
    first: BTreeMap<i32, i64>,
}

/// The open windows of a stream and what is safe to commit.
#[derive(Debug)]
pub struct Windows<W> {
    length_ms: i64,
    lateness_ms: i64,
    checkpoint: Checkpoint,
    open: BTreeMap<i64, OpenWindow<W>>,
    /// Per partition, the offset after the last record read.
    next: BTreeMap<i32, i64>,
    /// Per partition, the newest event time seen.
    newest: BTreeMap<i32, i64>,
}

impl<W> Windows<W> {
    /// Windows of `length_ms`, closing `lateness_ms` after the watermark passes their end,
    /// resuming from `checkpoint`.
    pub fn new(length_ms: i64, lateness_ms: i64, checkpoint: Checkpoint) -> Windows<W> {
        assert!(length_ms > 0, "a window has a positive length");
        Windows { length_ms, lateness_ms, checkpoint, open: BTreeMap::new(), next: BTreeMap::new(), newest: BTreeMap::new() }
    }

    /// The bounds of the window starting at `start`.
    pub fn bounds(&self, start: i64) -> Window {
        Window { start_ms: start, end_ms: start.saturating_add(self.length_ms) }
    }

    /// Notes records read: per partition, the offset after the last one.
    pub fn read(&mut self, read: BTreeMap<i32, i64>) {
        self.next.extend(read);
    }

    /// Where the event at `position` with event time `ts` goes; an event that is not covered
    /// counts towards its partition's newest event time.
    pub fn route(&mut self, position: Position, ts: i64) -> Route {
        if let Position::Kafka { partition, offset } = position
            && self.checkpoint.covered.get(&partition).is_some_and(|&c| offset < c)
        {
            return Route::Covered;
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
            Entry::Vacant(e) => e.insert(OpenWindow { state: open(bounds)?, events: 0, first: BTreeMap::new() }),
        })
    }

    /// Notes that the events at `positions` are in the window starting at `start`.
    pub fn hold(&mut self, start: i64, positions: &[Position]) {
        let Some(w) = self.open.get_mut(&start) else { return };
        for p in positions {
            if let Position::Kafka { partition, offset } = *p {
                let first = w.first.entry(partition).or_insert(offset);
                *first = (*first).min(offset);
            }
        }
    }

    /// Open windows, oldest first.
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    /// The watermark: the minimum newest event time over the partitions, less the lateness; no
    /// window closes (`i64::MIN`) while one of the `assigned` partitions has delivered nothing
    /// and is not `idle`.
    pub fn watermark(&self, assigned: &[i32], idle: impl Fn(i32) -> bool) -> i64 {
        if assigned.iter().any(|p| !self.newest.contains_key(p) && !idle(*p)) {
            return i64::MIN;
        }
        self.newest.values().copied().min().map_or(i64::MIN, |t| t.saturating_sub(self.lateness_ms))
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn at(partition: i32, offset: i64) -> Position {
        Position::Kafka { partition, offset }
    }

    /// Routes one event and, when it opens or joins a window, counts it there.
    fn feed(w: &mut Windows<()>, partition: i32, offset: i64, ts: i64) -> Route {
        let route = w.route(at(partition, offset), ts);
        if let Route::Open(start) = route {
            w.window::<()>(start, |_| Ok(())).unwrap().events += 1;
            w.hold(start, &[at(partition, offset)]);
        }
        w.read(BTreeMap::from([(partition, offset + 1)]));
        route
    }

    fn none_idle(_: i32) -> bool {
        false
    }

    #[test]
    fn a_partition_read_ahead_does_not_close_windows_another_still_feeds() {
        let mut w = Windows::<()>::new(H, 0, Checkpoint::default());
        feed(&mut w, 0, 0, 10);
        feed(&mut w, 0, 1, 3 * H + 5); // partition 0 is in the fourth hour
        feed(&mut w, 1, 0, 20); // partition 1 is still in the first
        let mark = w.watermark(&[0, 1], none_idle);
        assert_eq!(mark, 20);
        assert!(w.closing(mark).is_empty());
        feed(&mut w, 1, 1, 2 * H);
        let mark = w.watermark(&[0, 1], none_idle);
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
        let mut w = Windows::<()>::new(H, 0, Checkpoint::default());
        feed(&mut w, 0, 0, 10);
        feed(&mut w, 0, 1, 2 * H);
        assert_eq!(w.watermark(&[0, 1], none_idle), i64::MIN, "partition 1 may still hold events of the first hour");
        let mark = w.watermark(&[0, 1], |p| p == 1);
        assert_eq!(mark, 2 * H, "an empty (or fully committed) partition does not hold it");
        assert_eq!(w.closing(mark), vec![0]);
        // A partition not assigned to this member does not count at all.
        assert_eq!(w.watermark(&[0], none_idle), 2 * H);
    }

    #[test]
    fn lateness_keeps_a_window_open_past_its_end() {
        let mut w = Windows::<()>::new(H, 10 * 60_000, Checkpoint::default());
        feed(&mut w, 0, 0, 10);
        feed(&mut w, 0, 1, H + 5 * 60_000);
        assert!(w.closing(w.watermark(&[0], none_idle)).is_empty());
        feed(&mut w, 0, 2, H + 10 * 60_000);
        assert_eq!(w.closing(w.watermark(&[0], none_idle)), vec![0]);
    }

    #[test]
    fn safe_offsets_stop_at_the_oldest_event_of_an_open_window() {
        let mut w = Windows::<()>::new(H, 0, Checkpoint::default());
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
        let mut w = Windows::<()>::new(H, 0, Checkpoint::default());
        feed(&mut w, 0, 0, 10);
        feed(&mut w, 0, 1, H + 10);
        w.remove(0).unwrap();
        let (checkpoint, _) = w.written(0);
        let saved = checkpoint.clone();
        feed(&mut w, 1, 0, H + 20);
        w.revoked();
        assert_eq!(w.open_windows(), 0);
        assert!(w.safe_offsets().is_empty(), "nothing read before the revocation may be committed");
        assert_eq!(w.watermark(&[], none_idle), i64::MIN, "event times are forgotten too");
        // The next assignment starts from the committed offsets; the checkpoint still skips
        // what is written.
        assert_eq!(w.route(at(0, 0), 10), Route::Covered);
        assert_eq!(w.written(H).0.covered, saved.covered);
    }

    #[test]
    fn a_restart_from_a_checkpoint_skips_what_is_written_and_refuses_late_events() {
        let checkpoint = Checkpoint { closed_until: Some(2 * H), covered: BTreeMap::from([(0, 100), (1, 7)]) };
        let mut w = Windows::<()>::new(H, 0, checkpoint);
        assert_eq!(w.route(at(0, 99), 2 * H + 1), Route::Covered, "below the covered offset: in the output already");
        assert_eq!(w.route(at(0, 100), H + 1), Route::Late(H), "window [1h, 2h) is written");
        assert_eq!(w.route(at(1, 7), 2 * H - 1), Route::Late(H));
        assert_eq!(w.route(at(1, 8), 2 * H), Route::Open(2 * H));
        assert_eq!(w.route(Position::Line(1), 10), Route::Late(0), "files have no covered offsets");
    }

    #[test]
    fn late_events_after_a_window_is_written() {
        let mut w = Windows::<()>::new(H, 0, Checkpoint::default());
        assert_eq!(feed(&mut w, 0, 0, 10), Route::Open(0));
        feed(&mut w, 0, 1, H);
        for start in w.closing(w.watermark(&[0], none_idle)) {
            w.remove(start).unwrap();
            w.written(start);
        }
        assert_eq!(feed(&mut w, 0, 2, 59 * 60_000), Route::Late(0));
        assert_eq!(feed(&mut w, 0, 3, H + 1), Route::Open(H));
        assert_eq!(feed(&mut w, 0, 4, -1), Route::Late(-H), "before the first window: late too");
    }
}
