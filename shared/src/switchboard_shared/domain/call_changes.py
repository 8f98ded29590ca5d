"""Typed changes to a stored call, and the guard of a conditional update
(`CallStore.update_call`).

Both name a call's fields with `Call`'s own types (both are `CallFields`), so a misspelt
or frozen field (`call_id`, `tenant_id`, `created_at`) or a value of the wrong type is
refused when the model is built, and mypy finds it before that. Only the fields given
count (`model_fields_set`): `CallChanges(dial_claim=None)` clears the claim,
`CallChanges()` changes nothing; the defaults inherited from `Call` are never read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import ConfigDict

from switchboard_shared.domain.calls import CallFields, CallStatus


class _GivenCallFields(CallFields):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Required on a call, optional here like every other field; the default is never read.
    agent: str = ""
    phone: str = ""

    def __eq__(self, other: object) -> bool:
        # Equal when the same fields are given with the same values; the defaults (some
        # of them times of construction) mean nothing here.
        if not isinstance(other, _GivenCallFields) or type(other) is not type(self):
            return NotImplemented
        return self._given() == other._given()

    def __hash__(self) -> int:
        return hash(frozenset(self.model_fields_set))

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Show what was given, not the defaults that mean nothing here.
        for name in self.__class__.model_fields:
            if name in self.model_fields_set:
                yield name, getattr(self, name)

    def _given(self, *, leaving: frozenset[str] = frozenset()) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set if name not in leaving}


class CallChanges(_GivenCallFields):
    """The fields one update sets, each to the value given (None included)."""

    def changed(self) -> dict[str, Any]:
        """The changes, by field name."""
        return self._given()

    def plus(self, later: CallChanges) -> CallChanges:
        """These changes and `later`'s in one; `later` wins on a field both set."""
        return CallChanges.model_validate(self.changed() | later.changed())


_GUARD_ONLY = frozenset({"statuses"})


class CallGuard(_GivenCallFields):
    """The compare-and-set guard of an update: the call's status must be one of
    `statuses` (when given), and each call field given must equal its value here; None
    matches a missing or null field. `status` may be given too: both must hold."""

    statuses: frozenset[CallStatus] | None = None

    def equalities(self) -> dict[str, Any]:
        """The call fields the guard compares, by name, with the values they must have."""
        return self._given(leaving=_GUARD_ONLY)

    def plus_equal(self, **fields: object) -> CallGuard:
        """This guard, with each of `fields` also required to equal its value here."""
        return CallGuard.model_validate(self._given() | fields)

    def requiring(self, statuses: frozenset[CallStatus]) -> CallGuard:
        """This guard, with the status also required to be one of `statuses`."""
        allowed = statuses if self.statuses is None else statuses & self.statuses
        return CallGuard.model_validate(self.equalities() | {"statuses": allowed})
