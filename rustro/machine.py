"""The trading-day state machine (transitions library), journaled before it moves.

`fire(trigger, reason)` writes a `state_changed` event (whose projection updates `day_state` and
`transitions` in the same commit) and only then changes the in-memory state, so a crash can never
leave memory ahead of the journal. An illegal trigger is journaled as `transition_rejected` and raises.
"""
from __future__ import annotations

from datetime import date

from transitions import MachineError

from .fsm import new_model, shared_machine

PRE_OPEN, WARMUP, ENTRY_WINDOW, MANAGING = "pre_open", "warmup", "entry_window", "managing"
EOD_EXIT, CLOSED, HALTED = "eod_exit", "closed", "halted"
STATES = [PRE_OPEN, WARMUP, ENTRY_WINDOW, MANAGING, EOD_EXIT, CLOSED, HALTED]

# trigger, source(s), destination: the whole day in one table.
TRANSITIONS = [
    ("start_warmup", PRE_OPEN, WARMUP),
    ("holiday", PRE_OPEN, CLOSED),
    ("open_entries", WARMUP, ENTRY_WINDOW),
    ("position_opened", ENTRY_WINDOW, MANAGING),
    ("flat", MANAGING, ENTRY_WINDOW),
    ("halt", [WARMUP, ENTRY_WINDOW, MANAGING], HALTED),
    ("resume", HALTED, ENTRY_WINDOW),
    ("eod", [PRE_OPEN, WARMUP, ENTRY_WINDOW, MANAGING, HALTED], EOD_EXIT),
    ("close", EOD_EXIT, CLOSED),
]


_DAY_MACHINE = shared_machine(STATES, TRANSITIONS, PRE_OPEN)


class IllegalTransition(RuntimeError):
    pass


class DayMachine:
    def __init__(self, journal, day: date, state: str = PRE_OPEN):
        if state not in STATES:
            raise ValueError(f"unknown day state {state!r} (journal day_state for {day})")
        self.journal = journal
        self.day = day
        self._fsm = new_model(_DAY_MACHINE, state)

    @property
    def state(self) -> str:
        return self._fsm.state

    def can(self, trigger: str) -> bool:
        return trigger in _DAY_MACHINE.get_triggers(self.state)

    def destination(self, trigger: str) -> str:
        for t in _DAY_MACHINE.get_transitions(trigger, source=self.state):
            return t.dest
        raise IllegalTransition(f"'{trigger}' is not allowed from '{self.state}'")

    def resume(self, state: str) -> None:
        """Take the state the journal rebuilt (start-up), checked as the constructor checks it."""
        if state not in STATES:
            raise ValueError(f"unknown day state {state!r} (journal day_state for {self.day})")
        _DAY_MACHINE.set_state(state, model=self._fsm)

    def restore(self, state: str) -> None:
        """Put the state back after the commit that journaled a move failed (memory follows the
        journal, never leads it)."""
        _DAY_MACHINE.set_state(state, model=self._fsm)

    def fire(self, trigger: str, reason: str = "") -> str:
        src = self.state
        try:
            dst = self.destination(trigger)
        except IllegalTransition:
            self.journal.record("transition_rejected", {"src": src, "trigger": trigger,
                                                        "reason": reason}, day=self.day)
            raise
        self.journal.record("state_changed", {"src": src, "dst": dst, "trigger": trigger,
                                              "reason": reason}, day=self.day)
        try:
            self._fsm.trigger(trigger)
        except MachineError as exc:  # pragma: no cover - destination() already checked
            raise IllegalTransition(str(exc)) from None
        return dst
