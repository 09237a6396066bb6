//! The lifecycles of a purchase (client side), a sale (host side), a request and a slot, as
//! state machines that refuse illegal transitions.
//!
//! Names and edges follow Archivist: purchase states in archivist/purchasing/states/*.nim
//! (their `$` names are the `Purchase.state` enum of openapi.yaml), sale states in
//! archivist/sales/states/*.nim (the `SlotAgent.state` enum), request and slot states in
//! archivist/contracts/requests.nim (`RequestState`, `SlotState`).

use serde::{Deserialize, Serialize};

/// Refused transition, with both ends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{machine}: no transition from {from} to {to}")]
pub struct IllegalTransition {
    pub machine: &'static str,
    pub from: &'static str,
    pub to: &'static str,
}

/// A state machine over `Self`: [`Lifecycle::can_go`] is its edge set.
pub trait Lifecycle: Copy + Sized + 'static {
    const MACHINE: &'static str;
    /// Every state, in declaration order (for series that show each one, even at zero).
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
    fn can_go(self, to: Self) -> bool;
    fn is_terminal(self) -> bool;

    /// Moves to `to` if the edge exists.
    fn go(&mut self, to: Self) -> Result<(), IllegalTransition> {
        if self.can_go(to) {
            *self = to;
            Ok(())
        } else {
            Err(IllegalTransition {
                machine: Self::MACHINE,
                from: self.name(),
                to: to.name(),
            })
        }
    }
}

/// A client's purchase. `unknown` is where a restarted node resumes from the market's view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PurchaseState {
    Pending,
    Submitted,
    Started,
    Finished,
    Failed,
    Cancelled,
    Errored,
    Unknown,
}

impl Lifecycle for PurchaseState {
    const MACHINE: &'static str = "purchase";
    const ALL: &'static [Self] = &[
        Self::Pending,
        Self::Submitted,
        Self::Started,
        Self::Finished,
        Self::Failed,
        Self::Cancelled,
        Self::Errored,
        Self::Unknown,
    ];

    fn name(self) -> &'static str {
        use PurchaseState::*;
        match self {
            Pending => "pending",
            Submitted => "submitted",
            Started => "started",
            Finished => "finished",
            Failed => "failed",
            Cancelled => "cancelled",
            Errored => "errored",
            Unknown => "unknown",
        }
    }

    /// pending → submitted (request posted); submitted → started (all slots filled) or
    /// cancelled (expired unfilled); started → finished or failed (too many slots lost);
    /// unknown → whatever the market says; any non-final state → errored. Failed also leads to
    /// errored: purchasing/states/failed.nim reports the failure as an error.
    fn can_go(self, to: Self) -> bool {
        use PurchaseState::*;
        matches!(
            (self, to),
            (Pending, Submitted)
                | (Submitted, Started)
                | (Submitted, Cancelled)
                | (Started, Finished)
                | (Started, Failed)
                | (Unknown, Submitted | Started | Cancelled | Finished | Failed)
                | (Pending | Submitted | Started | Unknown | Failed, Errored)
        )
    }

    fn is_terminal(self) -> bool {
        matches!(
            self,
            PurchaseState::Finished | PurchaseState::Cancelled | PurchaseState::Errored
        )
    }
}

/// A host's sale of one slot (sales/states/*.nim; JSON names are the state type names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SaleState {
    SalePreparing,
    SaleSlotReserving,
    SaleDownloading,
    SaleInitialProving,
    SaleFilling,
    SaleFilled,
    SaleProving,
    SalePayout,
    SaleFinished,
    SaleIgnored,
    SaleCancelled,
    SaleFailed,
    SaleErrored,
    SaleUnknown,
}

impl Lifecycle for SaleState {
    const MACHINE: &'static str = "sale";
    const ALL: &'static [Self] = &[
        Self::SalePreparing,
        Self::SaleSlotReserving,
        Self::SaleDownloading,
        Self::SaleInitialProving,
        Self::SaleFilling,
        Self::SaleFilled,
        Self::SaleProving,
        Self::SalePayout,
        Self::SaleFinished,
        Self::SaleIgnored,
        Self::SaleCancelled,
        Self::SaleFailed,
        Self::SaleErrored,
        Self::SaleUnknown,
    ];

    fn name(self) -> &'static str {
        use SaleState::*;
        match self {
            SalePreparing => "SalePreparing",
            SaleSlotReserving => "SaleSlotReserving",
            SaleDownloading => "SaleDownloading",
            SaleInitialProving => "SaleInitialProving",
            SaleFilling => "SaleFilling",
            SaleFilled => "SaleFilled",
            SaleProving => "SaleProving",
            SalePayout => "SalePayout",
            SaleFinished => "SaleFinished",
            SaleIgnored => "SaleIgnored",
            SaleCancelled => "SaleCancelled",
            SaleFailed => "SaleFailed",
            SaleErrored => "SaleErrored",
            SaleUnknown => "SaleUnknown",
        }
    }

    /// The happy path preparing → slotReserving → downloading → initialProving → filling →
    /// filled → proving → payout → finished; preparing, slotReserving and filling may be
    /// ignored (no matching availability, slot taken); preparing and downloading jump to
    /// filled when the slot fill is observed; every live state goes to cancelled (request
    /// expired), failed (request failed) or errored; unknown resumes into filled, payout,
    /// finished, failed or cancelled (sales/states/unknown.nim).
    fn can_go(self, to: Self) -> bool {
        use SaleState::*;
        let live = matches!(
            self,
            SalePreparing
                | SaleSlotReserving
                | SaleDownloading
                | SaleInitialProving
                | SaleFilling
                | SaleFilled
                | SaleProving
                | SalePayout
                | SaleFinished
                | SaleUnknown
        );
        matches!(
            (self, to),
            (SalePreparing, SaleSlotReserving | SaleIgnored | SaleFilled)
                | (SaleSlotReserving, SaleDownloading | SaleIgnored)
                | (SaleDownloading, SaleInitialProving | SaleFilled)
                | (SaleInitialProving, SaleFilling)
                | (SaleFilling, SaleFilled | SaleIgnored)
                | (SaleFilled, SaleProving)
                | (SaleProving, SalePayout)
                | (SalePayout, SaleFinished)
                | (
                    SaleUnknown,
                    SaleFilled | SalePayout | SaleFinished | SaleFailed | SaleCancelled
                )
        ) || (live && matches!(to, SaleCancelled | SaleFailed | SaleErrored))
            || (matches!(self, SaleCancelled | SaleFailed | SaleIgnored) && to == SaleErrored)
    }

    fn is_terminal(self) -> bool {
        use SaleState::*;
        matches!(self, SaleIgnored | SaleErrored | SaleCancelled | SaleFailed)
    }
}

/// A request as the market holds it (requests.nim `RequestState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RequestState {
    New,
    Started,
    Cancelled,
    Finished,
    Failed,
}

impl Lifecycle for RequestState {
    const MACHINE: &'static str = "request";
    const ALL: &'static [Self] = &[
        Self::New,
        Self::Started,
        Self::Cancelled,
        Self::Finished,
        Self::Failed,
    ];

    fn name(self) -> &'static str {
        use RequestState::*;
        match self {
            New => "New",
            Started => "Started",
            Cancelled => "Cancelled",
            Finished => "Finished",
            Failed => "Failed",
        }
    }

    /// New → Started when the last slot is filled, New → Cancelled at expiry; Started →
    /// Finished at the end of the duration, Started → Failed once more than `maxSlotLoss`
    /// slots were freed.
    fn can_go(self, to: Self) -> bool {
        use RequestState::*;
        matches!(
            (self, to),
            (New, Started) | (New, Cancelled) | (Started, Finished) | (Started, Failed)
        )
    }

    fn is_terminal(self) -> bool {
        !matches!(self, RequestState::New | RequestState::Started)
    }
}

/// A slot as the market holds it (requests.nim `SlotState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SlotState {
    Free,
    Filled,
    Finished,
    Failed,
    Paid,
    Cancelled,
    Repair,
}

impl Lifecycle for SlotState {
    const MACHINE: &'static str = "slot";
    const ALL: &'static [Self] = &[
        Self::Free,
        Self::Filled,
        Self::Finished,
        Self::Failed,
        Self::Paid,
        Self::Cancelled,
        Self::Repair,
    ];

    fn name(self) -> &'static str {
        use SlotState::*;
        match self {
            Free => "Free",
            Filled => "Filled",
            Finished => "Finished",
            Failed => "Failed",
            Paid => "Paid",
            Cancelled => "Cancelled",
            Repair => "Repair",
        }
    }

    /// Free/Repair → Filled by a host; Filled → Repair when freed for missed proofs; the
    /// request's end moves slots to Finished, Cancelled or Failed, and paying the host out
    /// moves them on to Paid.
    fn can_go(self, to: Self) -> bool {
        use SlotState::*;
        matches!(
            (self, to),
            (Free | Repair, Filled)
                | (Filled, Repair)
                | (Free | Filled | Repair, Finished | Cancelled | Failed)
                | (Finished | Cancelled | Failed, Paid)
        )
    }

    fn is_terminal(self) -> bool {
        self == SlotState::Paid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `name()` is what the API shows (the serde name), once per state.
    fn names_are_the_json_names<S: Lifecycle + Serialize + PartialEq + std::fmt::Debug>() {
        for (i, s) in S::ALL.iter().enumerate() {
            assert_eq!(serde_json::to_value(s).unwrap(), s.name(), "{s:?}");
            assert!(!S::ALL[..i].contains(s), "{s:?} listed twice");
        }
    }

    #[test]
    fn every_machine_lists_its_states_by_their_json_names() {
        names_are_the_json_names::<PurchaseState>();
        names_are_the_json_names::<SaleState>();
        names_are_the_json_names::<RequestState>();
        names_are_the_json_names::<SlotState>();
    }

    #[test]
    fn purchase_happy_path_and_refusals() {
        let mut p = PurchaseState::Pending;
        for s in [
            PurchaseState::Submitted,
            PurchaseState::Started,
            PurchaseState::Finished,
        ] {
            p.go(s).unwrap();
        }
        assert!(p.is_terminal());
        let err = p.go(PurchaseState::Started).unwrap_err();
        assert_eq!(
            err.to_string(),
            "purchase: no transition from finished to started"
        );
        let mut p = PurchaseState::Pending;
        assert!(
            p.go(PurchaseState::Started).is_err(),
            "must be submitted first"
        );
        assert_eq!(
            serde_json::to_string(&PurchaseState::Cancelled).unwrap(),
            "\"cancelled\""
        );
    }

    #[test]
    fn sale_happy_path_and_refusals() {
        use SaleState::*;
        let mut s = SalePreparing;
        for t in [
            SaleSlotReserving,
            SaleDownloading,
            SaleInitialProving,
            SaleFilling,
            SaleFilled,
            SaleProving,
            SalePayout,
            SaleFinished,
        ] {
            s.go(t).unwrap();
        }
        assert!(s.go(SaleProving).is_err());
        let mut s = SaleProving;
        s.go(SaleFailed).unwrap();
        assert!(s.go(SaleProving).is_err());
        assert!(!SalePreparing.can_go(SaleFilling));
        assert!(SaleIgnored.is_terminal());
        assert_eq!(
            serde_json::to_string(&SaleInitialProving).unwrap(),
            "\"SaleInitialProving\""
        );
    }

    #[test]
    fn terminal_states_only_lead_to_errored_or_paid() {
        for s in [
            PurchaseState::Finished,
            PurchaseState::Cancelled,
            PurchaseState::Errored,
        ] {
            for t in [
                PurchaseState::Pending,
                PurchaseState::Submitted,
                PurchaseState::Started,
                PurchaseState::Finished,
                PurchaseState::Failed,
                PurchaseState::Cancelled,
                PurchaseState::Unknown,
            ] {
                assert!(!s.can_go(t), "{s:?} -> {t:?}");
            }
        }
        assert!(RequestState::New.can_go(RequestState::Started));
        assert!(!RequestState::Cancelled.can_go(RequestState::Started));
        assert!(SlotState::Repair.can_go(SlotState::Filled));
        assert!(!SlotState::Paid.can_go(SlotState::Filled));
    }
}
