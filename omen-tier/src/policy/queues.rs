//! Doubly linked queues sharing one slab, indexed by object id.
//!
//! Every classic policy is a few FIFO or LRU queues whose entries move between them; this gives each move, push,
//! unlink and lookup in O(1) without a pointer per node (links are `u32` slab indexes, freed slots are reused).
//! The front of a queue is its newest (most recently inserted or used) entry; the back its oldest.

use rustc_hash::FxHashMap;

use crate::ObjectId;

/// The "no neighbour" link.
const NIL: u32 = u32::MAX;

/// One tracked object: its id, its size and the policy's per-object state `T`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<T> {
    pub(crate) id: ObjectId,
    pub(crate) bytes: u64,
    /// The queue it is linked in.
    pub(crate) queue: u8,
    pub(crate) data: T,
    prev: u32,
    next: u32,
}

#[derive(Debug, Clone, Copy)]
struct Ends {
    /// Newest entry.
    front: u32,
    /// Oldest entry.
    back: u32,
    len: usize,
    bytes: u64,
}

impl Ends {
    const EMPTY: Ends = Ends { front: NIL, back: NIL, len: 0, bytes: 0 };
}

/// A fixed number of queues over one slab; an object is in at most one of them.
#[derive(Debug, Clone)]
pub(crate) struct Queues<T: Copy> {
    slots: Vec<Entry<T>>,
    free: Vec<u32>,
    ends: Vec<Ends>,
    index: FxHashMap<ObjectId, u32>,
}

/// A handle to a linked entry (its slab slot), valid until the entry is removed.
pub(crate) type Slot = u32;

impl<T: Copy> Queues<T> {
    pub(crate) fn new(queues: usize) -> Self {
        Self { slots: Vec::new(), free: Vec::new(), ends: vec![Ends::EMPTY; queues], index: FxHashMap::default() }
    }

    pub(crate) fn find(&self, id: ObjectId) -> Option<Slot> {
        self.index.get(&id).copied()
    }

    pub(crate) fn contains(&self, id: ObjectId) -> bool {
        self.index.contains_key(&id)
    }

    pub(crate) fn entry(&self, slot: Slot) -> &Entry<T> {
        &self.slots[slot as usize]
    }

    pub(crate) fn entry_mut(&mut self, slot: Slot) -> &mut Entry<T> {
        &mut self.slots[slot as usize]
    }

    /// Entries in queue `q`.
    #[cfg(test)]
    pub(crate) fn len(&self, q: u8) -> usize {
        self.ends[q as usize].len
    }

    /// Bytes in queue `q`.
    pub(crate) fn bytes(&self, q: u8) -> u64 {
        self.ends[q as usize].bytes
    }

    /// Entries in all queues.
    pub(crate) fn total_len(&self) -> usize {
        self.index.len()
    }

    /// Links a new entry at the front of `q`. An id already present is moved there instead, keeping its data.
    pub(crate) fn push_front(&mut self, q: u8, id: ObjectId, bytes: u64, data: T) -> Slot {
        if let Some(slot) = self.find(id) {
            self.move_to_front(slot, q);
            return slot;
        }
        let entry = Entry { id, bytes, queue: q, data, prev: NIL, next: NIL };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = entry;
                slot
            }
            None => {
                self.slots.push(entry);
                // Policies track at most one entry per resident or ghost object: far below 2^32.
                u32::try_from(self.slots.len() - 1).unwrap_or(NIL - 1)
            }
        };
        self.index.insert(id, slot);
        self.link_front(q, slot);
        slot
    }

    /// Moves an entry to the front of `q` (the same or another queue).
    pub(crate) fn move_to_front(&mut self, slot: Slot, q: u8) {
        self.unlink(slot);
        self.link_front(q, slot);
    }

    /// Unlinks and forgets an entry, returning it.
    pub(crate) fn remove(&mut self, slot: Slot) -> Entry<T> {
        self.unlink(slot);
        let entry = self.slots[slot as usize];
        self.index.remove(&entry.id);
        self.free.push(slot);
        entry
    }

    /// Removes `id` if present.
    pub(crate) fn remove_id(&mut self, id: ObjectId) -> Option<Entry<T>> {
        self.find(id).map(|slot| self.remove(slot))
    }

    /// The oldest entry of `q`.
    pub(crate) fn back(&self, q: u8) -> Option<Slot> {
        let back = self.ends[q as usize].back;
        (back != NIL).then_some(back)
    }

    /// The oldest entry of `q` whose object is not pinned. Walks past pinned entries, so it costs O(1 + pinned
    /// entries at the back); pins are few and short-lived (a running scan's current objects).
    pub(crate) fn back_unpinned(&self, q: u8, pinned: &dyn Fn(ObjectId) -> bool) -> Option<Slot> {
        let mut slot = self.ends[q as usize].back;
        while slot != NIL {
            let e = &self.slots[slot as usize];
            if !pinned(e.id) {
                return Some(slot);
            }
            slot = e.prev;
        }
        None
    }

    /// The ids of `q`, front (newest) to back (oldest).
    #[cfg(test)]
    pub(crate) fn ids(&self, q: u8) -> Vec<ObjectId> {
        let mut out = Vec::new();
        let mut slot = self.ends[q as usize].front;
        while slot != NIL {
            let e = &self.slots[slot as usize];
            out.push(e.id);
            slot = e.next;
        }
        out
    }

    fn link_front(&mut self, q: u8, slot: Slot) {
        let ends = &mut self.ends[q as usize];
        let old_front = ends.front;
        ends.front = slot;
        if old_front == NIL {
            ends.back = slot;
        }
        ends.len += 1;
        ends.bytes += self.slots[slot as usize].bytes;
        let e = &mut self.slots[slot as usize];
        e.queue = q;
        e.prev = NIL;
        e.next = old_front;
        if old_front != NIL {
            self.slots[old_front as usize].prev = slot;
        }
    }

    fn unlink(&mut self, slot: Slot) {
        let Entry { prev, next, queue, bytes, .. } = self.slots[slot as usize];
        if prev == NIL && next == NIL && self.ends[queue as usize].front != slot {
            return; // not linked (fresh from the slab)
        }
        let ends = &mut self.ends[queue as usize];
        if prev == NIL {
            ends.front = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            ends.back = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
        ends.len -= 1;
        ends.bytes -= bytes;
        let e = &mut self.slots[slot as usize];
        e.prev = NIL;
        e.next = NIL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_between_queues_keep_counts() {
        let mut q: Queues<u8> = Queues::new(2);
        for id in 1..=4 {
            q.push_front(0, id, id * 10, 0);
        }
        assert_eq!(q.ids(0), vec![4, 3, 2, 1]);
        assert_eq!(q.bytes(0), 100);
        let s2 = q.find(2).unwrap();
        q.move_to_front(s2, 1);
        let s3 = q.find(3).unwrap();
        q.move_to_front(s3, 1);
        assert_eq!(q.ids(0), vec![4, 1]);
        assert_eq!(q.ids(1), vec![3, 2]);
        assert_eq!((q.len(0), q.bytes(0), q.len(1), q.bytes(1)), (2, 50, 2, 50));
        assert_eq!(q.remove_id(4).map(|e| e.bytes), Some(40));
        assert_eq!(q.back_unpinned(0, &|id| id == 1), None);
        assert_eq!(q.back_unpinned(1, &|id| id == 2).map(|s| q.entry(s).id), Some(3));
        // A freed slot is reused and the new entry links cleanly.
        q.push_front(0, 9, 1, 0);
        assert_eq!(q.ids(0), vec![9, 1]);
        assert_eq!(q.total_len(), 4);
    }
}
