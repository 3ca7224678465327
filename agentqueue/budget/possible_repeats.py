"""Provider calls of a job whose outcome is unknown: charged at the job's reservation, each."""

from __future__ import annotations

from dataclasses import dataclass

POSSIBLE_REPEAT_REASON = (
    "possibly_repeated: an earlier attempt died after its provider call may have been sent "
    "and before the answer was kept; charged at that call's reservation"
)
IN_TRANSIT_REPEAT_REASON = (
    "possibly_repeated: a request the provider may have received failed in transit (sent "
    "again, or the job gave up); charged at the job's reservation for each such request"
)
_BOTH_REASON = (
    "possibly_repeated: an earlier attempt's provider call may have been sent without its "
    "answer being kept, and a request the provider may have received failed in transit and "
    "was sent again; each charged at the job's reservation"
)


@dataclass(frozen=True, slots=True)
class PossibleRepeat:
    """Why a job's settlement charges calls it holds no answer for.

    `carried_over`: an earlier attempt reserved and never settled (it died, or it failed
    after its request may have reached the provider), so its call may have been paid.
    `in_transit`: requests of this attempt that failed after the provider may have received
    them (a dropped connection, a read timeout) before the job got its answer or gave up.
    """

    carried_over: bool = False
    in_transit: int = 0

    @property
    def calls(self) -> int:
        """How many calls are charged at the reservation."""
        return int(self.carried_over) + self.in_transit

    @property
    def reason(self) -> str:
        """The ledger entry's `charge_reason` (always starting `possibly_repeated:`)."""
        if not self.in_transit:
            return POSSIBLE_REPEAT_REASON
        return _BOTH_REASON if self.carried_over else IN_TRANSIT_REPEAT_REASON
