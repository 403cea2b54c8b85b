//! The model expert: LRB-style learned eviction (history, model, sampled eviction, S3-FIFO fallback before the
//! first fit, read-ahead). [`Learned`](super::Learned) runs it as one of its shadow experts.

use std::collections::VecDeque;

use super::history::{FEATURES, History, NOT_RESIDENT, features};
use super::model::Model;
use super::prefetch::Prefetcher;
use super::{LearnedConfig, Objective};
use crate::policy::S3Fifo;
use crate::rng::Rng;
use crate::{Access, ObjectId, Policy};

/// A training sample waiting for its label.
#[derive(Debug, Clone, Copy)]
struct Pending {
    id: ObjectId,
    at: u64,
    x: [f32; FEATURES],
    label: Option<f32>,
}

/// Accesses between history clean-ups.
const SWEEP_EVERY: u64 = 1 << 16;
/// Bounds of the label horizon, in accesses.
const MIN_HORIZON: u64 = 4_096;
const MAX_HORIZON: u64 = 1 << 22;

/// The model expert, in the spirit of LRB (Song et al., NSDI'20): a model trained online on the recent access
/// history predicts each object's time to its next access; eviction samples resident candidates and evicts the
/// one with the least predicted reuse per byte.
///
/// - **Features** (`history.rs`): age since the last access, the last 3 gaps, 3 exponentially decayed counters,
///   size, whether the last access was a scan and how much of that scan was left, the access count.
/// - **Labels**: every access, one random resident is sampled with its features; its label is
///   ln(1 + accesses until its next access), censored at twice the horizon if none comes within the horizon
///   (16 × residents, at least 4,096 accesses).
/// - **Model** (`model.rs`): ridge regression refit every 8,192 labelled samples on the last 32,768.
/// - **Eviction**: 64 random unpinned residents are scored `predicted ln distance + ln bytes` (the
///   object-hit-ratio objective: a large object must promise proportionally more hits) or just the predicted
///   distance ([`Objective::Bytes`]); the highest score leaves.
/// - **Fallback**: an S3-FIFO tracks the same residents all along and chooses victims (and refuses what it
///   would refuse) until the first fit, after 1,024 labelled samples.
/// - **Prefetch** (`prefetch.rs`): periodic objects coming due, and the continuation of the current statement.
#[derive(Debug, Clone)]
pub(crate) struct Lrb {
    config: LearnedConfig,
    history: History,
    model: Model,
    fallback: S3Fifo,
    prefetcher: Prefetcher,
    residents: Vec<ObjectId>,
    rng: Rng,
    /// Virtual time: accesses seen.
    now: u64,
    horizon: u64,
    pending: VecDeque<Pending>,
    /// Sequence number of `pending[0]`.
    pending_head: u64,
    model_evictions: u64,
    fallback_evictions: u64,
}

impl Lrb {
    /// The model expert with explicit parameters.
    pub(crate) fn with_config(capacity_bytes: u64, config: LearnedConfig) -> Self {
        Self {
            config,
            history: History::default(),
            model: Model::new(),
            fallback: S3Fifo::new(capacity_bytes),
            prefetcher: Prefetcher::default(),
            residents: Vec::new(),
            rng: Rng::new(config.seed),
            now: 0,
            horizon: MIN_HORIZON,
            pending: VecDeque::new(),
            pending_head: 0,
            model_evictions: 0,
            fallback_evictions: 0,
        }
    }

    fn censored(&self) -> f32 {
        (2.0 * self.horizon as f64).ln_1p() as f32
    }

    /// Samples one random resident for training, unless it already waits for a label.
    fn sample_resident(&mut self) {
        if self.residents.is_empty() {
            return;
        }
        let id = self.residents[self.rng.below(self.residents.len() as u64) as usize];
        let seq = self.pending_head + self.pending.len() as u64;
        let (now, horizon) = (self.now, self.horizon);
        let Some(meta) = self.history.map.get_mut(&id) else { return };
        if meta.open_sample.is_some() {
            return;
        }
        meta.open_sample = Some(seq);
        self.pending.push_back(Pending { id, at: now, x: features(meta, now, horizon), label: None });
    }

    /// Moves samples whose label is known (or whose horizon has passed: censored) into the model, oldest first.
    fn train(&mut self) {
        let censored = self.censored();
        while let Some(front) = self.pending.front() {
            let expired = front.at + self.horizon < self.now;
            if front.label.is_none() && !expired {
                break;
            }
            let Some(p) = self.pending.pop_front() else { break };
            let seq = self.pending_head;
            self.pending_head += 1;
            if p.label.is_none()
                && let Some(meta) = self.history.map.get_mut(&p.id)
                && meta.open_sample == Some(seq)
            {
                meta.open_sample = None;
            }
            self.model.add(p.x, p.label.unwrap_or(censored));
        }
    }

    fn sweep(&mut self) {
        self.horizon = (16 * self.residents.len() as u64).clamp(MIN_HORIZON, MAX_HORIZON);
        self.history.forget_older_than(self.now.saturating_sub(2 * self.horizon));
        self.prefetcher.prune(&self.history);
    }

    fn forget_resident(&mut self, id: ObjectId) {
        let Some(slot) = self.history.map.get_mut(&id).map(|m| std::mem::replace(&mut m.slot, NOT_RESIDENT)) else { return };
        if slot == NOT_RESIDENT {
            return;
        }
        self.residents.swap_remove(slot as usize);
        if let Some(&moved) = self.residents.get(slot as usize)
            && let Some(m) = self.history.map.get_mut(&moved)
        {
            m.slot = slot;
        }
    }

    fn score(&self, id: ObjectId) -> Option<f32> {
        let meta = self.history.map.get(&id)?;
        let distance = self.model.predict(&features(meta, self.now, self.horizon))?;
        Some(match self.config.objective {
            Objective::Objects => distance + (meta.bytes.max(1) as f32).ln(),
            Objective::Bytes => distance,
        })
    }

    /// The model's choice among sampled candidates; None if it has no model or found only pinned candidates.
    fn model_victim(&mut self, pinned: &dyn Fn(ObjectId) -> bool) -> Option<ObjectId> {
        if !self.model.is_ready() || self.residents.is_empty() {
            return None;
        }
        let mut best: Option<(f32, ObjectId)> = None;
        for _ in 0..self.config.candidates {
            let id = self.residents[self.rng.below(self.residents.len() as u64) as usize];
            if pinned(id) {
                continue;
            }
            let Some(s) = self.score(id) else { continue };
            if best.is_none_or(|(b, _)| s > b) {
                best = Some((s, id));
            }
        }
        best.map(|(_, id)| id)
    }
}

impl Policy for Lrb {
    fn name(&self) -> &str {
        "lrb"
    }

    fn on_access(&mut self, access: &Access, resident: bool) {
        self.now += 1;
        self.fallback.on_access(access, resident);
        let now = self.now;
        let horizon = self.horizon;
        let (meta, _) = self.history.record(access, now);
        if let Some(seq) = meta.open_sample.take()
            && let Some(p) = seq.checked_sub(self.pending_head).and_then(|i| self.pending.get_mut(i as usize))
        {
            let distance = now - p.at;
            p.label = Some(if distance <= horizon { (distance as f64).ln_1p() as f32 } else { (2.0 * horizon as f64).ln_1p() as f32 });
        }
        let meta = *meta;
        self.prefetcher.observe(access, &meta);
        self.sample_resident();
        self.train();
        if self.now.is_multiple_of(SWEEP_EVERY) {
            self.sweep();
        }
    }

    fn admits(&self, access: &Access) -> bool {
        // Until the model exists the fallback decides everything, its refusals included.
        self.model.is_ready() || self.fallback.admits(access)
    }

    fn on_admit(&mut self, access: &Access) {
        if !self.history.map.contains_key(&access.id) {
            // Admitted without an access (a prefetch): start its history without counting an access.
            self.history.record(access, self.now);
        }
        let slot = self.residents.len() as u32;
        if let Some(meta) = self.history.map.get_mut(&access.id)
            && meta.slot == NOT_RESIDENT
        {
            meta.slot = slot;
            self.residents.push(access.id);
            if self.fallback.admits(access) {
                self.fallback.on_admit(access);
            }
        }
    }

    fn victim(&mut self, pinned: &dyn Fn(ObjectId) -> bool) -> Option<ObjectId> {
        let id = match self.model_victim(pinned) {
            Some(id) => {
                self.fallback.on_remove(id);
                self.model_evictions += 1;
                id
            }
            None => {
                // The fallback tracks only what it admitted; anything else left is found by a scan (rare: the
                // model refused nothing, or sampling met only pinned objects).
                let id = match self.fallback.victim(pinned) {
                    Some(id) => id,
                    None => self.residents.iter().copied().find(|&id| !pinned(id))?,
                };
                self.fallback_evictions += 1;
                id
            }
        };
        self.forget_resident(id);
        Some(id)
    }

    fn on_remove(&mut self, id: ObjectId) {
        self.fallback.on_remove(id);
        self.forget_resident(id);
    }

    fn set_capacity(&mut self, capacity_bytes: u64) {
        self.fallback.set_capacity(capacity_bytes);
    }

    fn diagnostics(&self) -> Vec<(&'static str, f64)> {
        let fits = self.model.fits as f64;
        vec![
            ("fits", fits),
            ("mean_fit_us", if fits > 0.0 { self.model.fit_nanos as f64 / fits / 1e3 } else { 0.0 }),
            ("model_evictions", self.model_evictions as f64),
            ("fallback_evictions", self.fallback_evictions as f64),
            ("history_objects", self.history.map.len() as f64),
            ("horizon", self.horizon as f64),
            ("pending_samples", self.pending.len() as f64),
            ("training_samples", self.model.samples() as f64),
        ]
    }

    fn prefetch(&mut self, now_us: u64, max: usize) -> Vec<ObjectId> {
        let history = &self.history;
        self.prefetcher.predict(now_us, max, history, |id| history.map.get(&id).is_some_and(|m| m.slot != NOT_RESIDENT))
    }
}
