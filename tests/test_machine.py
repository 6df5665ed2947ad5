import pytest

from rustro import machine as m
from rustro.machine import DayMachine, IllegalTransition

from conftest import DAY

LEGAL = [(src, trig, dst) for trig, srcs, dst in m.TRANSITIONS
         for src in (srcs if isinstance(srcs, list) else [srcs])]


@pytest.mark.parametrize("src,trigger,dst", LEGAL)
def test_every_legal_transition_is_journaled(journal, src, trigger, dst):
    dm = DayMachine(journal, DAY, src)
    assert dm.fire(trigger, "because") == dst
    assert dm.state == dst
    rows = journal.query("SELECT src, dst, trigger, reason FROM transitions")
    assert [tuple(r) for r in rows] == [(src, dst, trigger, "because")]
    assert journal.day_state(DAY) == dst


ILLEGAL = [(s, t) for s in m.STATES for t, _, _ in m.TRANSITIONS
           if (s, t) not in {(a, b) for a, b, _ in LEGAL}]


@pytest.mark.parametrize("src,trigger", ILLEGAL)
def test_illegal_transition_raises_and_is_journaled_as_rejected(journal, src, trigger):
    dm = DayMachine(journal, DAY, src)
    with pytest.raises(IllegalTransition):
        dm.fire(trigger, "try")
    assert dm.state == src
    assert journal.query("SELECT COUNT(*) FROM transitions")[0][0] == 0
    rej = journal.events(DAY, kinds=("transition_rejected",))
    assert rej[0].payload == {"src": src, "trigger": trigger, "reason": "try"}


def test_full_day_path(journal):
    dm = DayMachine(journal, DAY)
    for trig in ["start_warmup", "open_entries", "position_opened", "flat", "halt", "resume", "eod",
                 "close"]:
        dm.fire(trig)
    assert dm.state == m.CLOSED
    assert [r[0] for r in journal.query("SELECT dst FROM transitions ORDER BY seq")] == [
        "warmup", "entry_window", "managing", "entry_window", "halted", "entry_window", "eod_exit",
        "closed"]


def test_memory_never_ahead_of_journal(journal, monkeypatch):
    dm = DayMachine(journal, DAY)

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(journal, "record", boom)
    with pytest.raises(OSError):
        dm.fire("start_warmup")
    assert dm.state == m.PRE_OPEN


def test_unknown_state_from_journal_is_refused(journal):
    with pytest.raises(ValueError, match="unknown day state"):
        DayMachine(journal, DAY, "lunch")
    dm = DayMachine(journal, DAY)
    with pytest.raises(ValueError, match="unknown day state 'lunch'"):  # at start-up (resume)
        dm.resume("lunch")
    assert dm.state == m.PRE_OPEN
    dm.resume(m.MANAGING)
    assert dm.state == m.MANAGING and dm.can("flat") and not dm.can("start_warmup")


def test_day_machines_share_one_table_but_never_a_state(journal):
    """Each DayMachine is a model of one shared transitions Machine (rustro/fsm.py): moving one
    moves no other, the shared Machine keeps no reference to any (nothing accumulates over a
    backtest's days), and an illegal trigger is still refused."""
    from rustro.machine import _DAY_MACHINE
    a, b = DayMachine(journal, DAY), DayMachine(journal, DAY, m.MANAGING)
    a.fire("start_warmup")
    assert (a.state, b.state) == (m.WARMUP, m.MANAGING)
    b.fire("flat")
    assert (a.state, b.state) == (m.WARMUP, m.ENTRY_WINDOW)
    assert _DAY_MACHINE.models == []
    with pytest.raises(IllegalTransition):
        a.fire("close")
    assert a.state == m.WARMUP
