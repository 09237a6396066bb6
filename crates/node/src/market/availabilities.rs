//! A host's availabilities and the reservations made against them
//! (archivist/sales/reservations.nim), kept in `market/availabilities.json`, written whole
//! to a temporary file and renamed over the old one so a crash leaves one or the other.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use neverust_market::ids::{AvailabilityId, RequestId, ReservationId};
use neverust_market::request::{
    Amount, Availability, AvailabilityParams, OfferTerms, StorageAsk, ValidationError,
};
use neverust_market::views::Reservation;
use serde::{Deserialize, Serialize};

const FILE: &str = "availabilities.json";

#[derive(Debug, thiserror::Error)]
pub enum AvailabilityError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("not enough storage quota: {asked} bytes asked, {free} free for availabilities")]
    Quota { asked: u64, free: u64 },
    #[error("totalSize {asked} is less than the {used} bytes already reserved")]
    BelowUsed { asked: u64, used: u64 },
    #[error("no availability {0}")]
    NotFound(AvailabilityId),
    #[error("cannot save availabilities to {path}: {source}")]
    Save {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Body of `PATCH /sales/availability/{id}`: any field of [`AvailabilityParams`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AvailabilityPatch {
    pub total_size: Option<u64>,
    pub duration: Option<u64>,
    #[serde(default, with = "opt_amount")]
    pub min_price_per_byte_per_second: Option<Amount>,
    #[serde(default, with = "opt_amount")]
    pub total_collateral: Option<Amount>,
    pub enabled: Option<bool>,
    pub until: Option<u64>,
}

mod opt_amount {
    use super::Amount;
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Amount>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| {
                s.parse::<Amount>()
                    .map_err(|_| serde::de::Error::custom("not a decimal amount"))
            })
            .transpose()
    }
}

#[derive(Default, Serialize, Deserialize)]
struct Saved {
    availabilities: Vec<Availability>,
    reservations: Vec<Reservation>,
}

pub struct Availabilities {
    path: PathBuf,
    saved: Mutex<Saved>,
}

impl Availabilities {
    pub fn open(dir: &Path) -> Result<Self, AvailabilityError> {
        let path = dir.join(FILE);
        let saved = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ok(Availabilities {
            path,
            saved: Mutex::new(saved),
        })
    }

    fn save(&self, saved: &Saved) -> Result<(), AvailabilityError> {
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(saved).expect("availabilities serialize");
        std::fs::write(&tmp, body)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|source| AvailabilityError::Save {
                path: self.path.clone(),
                source,
            })
    }

    pub fn list(&self) -> Vec<Availability> {
        self.saved
            .lock()
            .expect("availabilities lock")
            .availabilities
            .clone()
    }

    /// Bytes all availabilities hold (free or reserved), which the store's quota must cover.
    fn promised(saved: &Saved) -> u64 {
        saved.availabilities.iter().map(|a| a.total_size).sum()
    }

    /// `quota_free`: bytes the store could still take.
    pub fn create(
        &self,
        params: &AvailabilityParams,
        quota_free: u64,
    ) -> Result<Availability, AvailabilityError> {
        let availability = Availability::new(AvailabilityId(rand::random()), params)?;
        let mut saved = self.saved.lock().expect("availabilities lock");
        let free = quota_free.saturating_sub(Self::promised(&saved));
        if params.total_size > free {
            return Err(AvailabilityError::Quota {
                asked: params.total_size,
                free,
            });
        }
        saved.availabilities.push(availability.clone());
        if let Err(e) = self.save(&saved) {
            saved.availabilities.pop();
            return Err(e);
        }
        Ok(availability)
    }

    pub fn update(
        &self,
        id: &AvailabilityId,
        patch: &AvailabilityPatch,
        quota_free: u64,
    ) -> Result<(), AvailabilityError> {
        let mut saved = self.saved.lock().expect("availabilities lock");
        let promised_elsewhere = Self::promised(&saved);
        let a = saved
            .availabilities
            .iter_mut()
            .find(|a| a.id == *id)
            .ok_or(AvailabilityError::NotFound(*id))?;
        let mut next = a.clone();
        if let Some(total) = patch.total_size {
            let used = a.total_size - a.free_size;
            if total < used {
                return Err(AvailabilityError::BelowUsed { asked: total, used });
            }
            let free = quota_free.saturating_sub(promised_elsewhere - a.total_size);
            if total > free {
                return Err(AvailabilityError::Quota { asked: total, free });
            }
            next.free_size = total - used;
            next.total_size = total;
        }
        if let Some(c) = patch.total_collateral {
            let used = a
                .total_collateral
                .saturating_sub(a.total_remaining_collateral);
            next.total_remaining_collateral = c.saturating_sub(used);
            next.total_collateral = c;
        }
        next.duration = patch.duration.unwrap_or(next.duration);
        next.min_price_per_byte_per_second = patch
            .min_price_per_byte_per_second
            .unwrap_or(next.min_price_per_byte_per_second);
        next.enabled = patch.enabled.unwrap_or(next.enabled);
        next.until = patch.until.unwrap_or(next.until);
        AvailabilityParams {
            total_size: next.total_size,
            duration: next.duration,
            min_price_per_byte_per_second: next.min_price_per_byte_per_second,
            total_collateral: next.total_collateral,
            enabled: Some(next.enabled),
            until: Some(next.until),
        }
        .validate()?;
        let before = std::mem::replace(a, next);
        if let Err(e) = self.save(&saved) {
            if let Some(a) = saved.availabilities.iter_mut().find(|a| a.id == *id) {
                *a = before;
            }
            return Err(e);
        }
        Ok(())
    }

    pub fn reservations(&self, id: &AvailabilityId) -> Result<Vec<Reservation>, AvailabilityError> {
        let saved = self.saved.lock().expect("availabilities lock");
        if !saved.availabilities.iter().any(|a| a.id == *id) {
            return Err(AvailabilityError::NotFound(*id));
        }
        Ok(saved
            .reservations
            .iter()
            .filter(|r| r.availability_id == *id)
            .cloned()
            .collect())
    }

    /// Takes room and collateral for one slot of `ask` from the first availability that
    /// matches; `None` if none does.
    pub fn reserve(
        &self,
        ask: &StorageAsk,
        request_id: RequestId,
        slot_index: u64,
        valid_until: u64,
    ) -> Result<Option<Reservation>, AvailabilityError> {
        let mut saved = self.saved.lock().expect("availabilities lock");
        let Some(a) = saved
            .availabilities
            .iter_mut()
            .find(|a| a.matches(ask, valid_until))
        else {
            return Ok(None);
        };
        if a.reserve(ask).is_none() {
            return Ok(None);
        }
        let reservation = Reservation {
            id: ReservationId(rand::random()),
            availability_id: a.id,
            size: ask.slot_size,
            request_id,
            slot_index,
            valid_until,
        };
        saved.reservations.push(reservation.clone());
        self.save(&saved)?;
        Ok(Some(reservation))
    }

    /// The reservation held for a slot (a restarted host picks its sales up again by it).
    pub fn reservation_for(&self, request_id: &RequestId, slot_index: u64) -> Option<Reservation> {
        let saved = self.saved.lock().expect("availabilities lock");
        saved
            .reservations
            .iter()
            .find(|r| r.request_id == *request_id && r.slot_index == slot_index)
            .cloned()
    }

    /// Gives a reservation's room back, with whatever collateral came back.
    pub fn release(
        &self,
        id: &ReservationId,
        returned_collateral: Amount,
    ) -> Result<(), AvailabilityError> {
        let mut saved = self.saved.lock().expect("availabilities lock");
        let Some(pos) = saved.reservations.iter().position(|r| r.id == *id) else {
            return Ok(());
        };
        let r = saved.reservations.remove(pos);
        if let Some(a) = saved
            .availabilities
            .iter_mut()
            .find(|a| a.id == r.availability_id)
        {
            a.release(r.size, returned_collateral);
        }
        self.save(&saved)
    }

    /// What this host publishes: the terms of its enabled availabilities.
    pub fn terms(&self) -> Vec<OfferTerms> {
        self.list()
            .iter()
            .filter(|a| a.enabled)
            .map(Availability::terms)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(total_size: u64) -> AvailabilityParams {
        AvailabilityParams {
            total_size,
            duration: 600,
            min_price_per_byte_per_second: 1,
            total_collateral: 1 << 40,
            enabled: None,
            until: None,
        }
    }

    fn ask(slot_size: u64) -> StorageAsk {
        StorageAsk {
            proof_probability: 1,
            price_per_byte_per_second: 2,
            collateral_per_byte: 1,
            slots: 3,
            slot_size,
            duration: 300,
            max_slot_loss: 1,
        }
    }

    #[test]
    fn reservations_take_and_give_back_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let avail = Availabilities::open(dir.path()).unwrap();
        let err = avail.create(&params(10 << 20), 1 << 20).unwrap_err();
        assert!(matches!(err, AvailabilityError::Quota { .. }), "{err}");
        let a = avail.create(&params(1 << 20), 1 << 30).unwrap();
        assert!(avail
            .reserve(&ask(2 << 20), RequestId([1; 32]), 0, 100)
            .unwrap()
            .is_none());
        let r = avail
            .reserve(&ask(1 << 19), RequestId([1; 32]), 0, 100)
            .unwrap()
            .expect("half of it fits");
        let patch = AvailabilityPatch {
            total_size: Some(1 << 18),
            ..Default::default()
        };
        let err = avail.update(&a.id, &patch, 1 << 30).unwrap_err();
        assert!(matches!(err, AvailabilityError::BelowUsed { .. }), "{err}");

        let reopened = Availabilities::open(dir.path()).unwrap();
        assert_eq!(reopened.list()[0].free_size, 1 << 19);
        assert_eq!(
            reopened.reservation_for(&RequestId([1; 32]), 0),
            Some(r.clone())
        );
        assert_eq!(reopened.reservation_for(&RequestId([1; 32]), 1), None);
        assert_eq!(reopened.reservations(&a.id).unwrap(), vec![r.clone()]);
        reopened.release(&r.id, 0).unwrap();
        assert_eq!(reopened.list()[0].free_size, 1 << 20);
        let missing = reopened.reservations(&AvailabilityId([9; 32])).unwrap_err();
        assert!(matches!(missing, AvailabilityError::NotFound(_)));
    }
}
