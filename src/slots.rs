//! A counted limit: at most `max` holders at once, each holding a [`Slot`] until it is
//! dropped. Password hashing bounds its queue with one (`auth::password`), GraphQL its
//! subscription sockets with another (`graphql::SubscriptionSockets`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Clone)]
pub struct Slots(Arc<Inner>);

struct Inner {
    taken: AtomicUsize,
    max: usize,
}

impl Slots {
    pub fn new(max: usize) -> Self {
        Slots(Arc::new(Inner {
            taken: AtomicUsize::new(0),
            max,
        }))
    }

    /// A slot, held until dropped; `None` when all `max` are taken.
    pub fn try_take(&self) -> Option<Slot> {
        if self.0.taken.fetch_add(1, Ordering::AcqRel) >= self.0.max {
            self.0.taken.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(self.clone()))
    }
}

/// One taken slot; dropping it gives it back.
pub struct Slot(Slots);

impl Drop for Slot {
    fn drop(&mut self) {
        (self.0).0.taken.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;

    #[test]
    fn gives_out_at_most_max_and_takes_them_back() {
        let slots = Slots::new(2);
        let a = slots.try_take().unwrap();
        let b = slots.try_take().unwrap();
        assert!(slots.try_take().is_none());
        drop(a);
        let c = slots.try_take().unwrap();
        assert!(slots.try_take().is_none());
        drop((b, c));
        assert!(slots.try_take().is_some());
    }
}
