"""The order state machine: the table of legal moves, and what a broker's word means for us."""
import pytest

from rustro import order_machine as om


def test_the_happy_path_is_legal():
    m = om.OrderMachine(om.SENT)
    for target in (om.OPEN, om.MODIFY_PENDING, om.OPEN, om.PARTIAL, om.COMPLETE):
        m.move(m.trigger_to(target))
    assert m.state == om.COMPLETE


@pytest.mark.parametrize("final", [om.COMPLETE, om.CANCELLED, om.REJECTED])
@pytest.mark.parametrize("target", [om.OPEN, om.PARTIAL, om.SENT, om.UNKNOWN, om.MODIFY_PENDING])
def test_a_final_order_never_moves_back(final, target):
    m = om.OrderMachine(final)
    with pytest.raises(om.IllegalOrderMove):
        m.trigger_to(target)
    assert m.state == final


def test_a_partial_fill_is_never_reset_to_open_by_a_late_ack():
    m = om.OrderMachine(om.PARTIAL)
    with pytest.raises(om.IllegalOrderMove):
        m.trigger_to(om.OPEN)


def test_never_placed_is_revived_by_a_broker_sighting_and_can_be_resent():
    for target in (om.OPEN, om.PARTIAL, om.COMPLETE, om.CANCELLED, om.SENT):
        m = om.OrderMachine(om.NEVER_PLACED)
        m.move(m.trigger_to(target))
        assert m.state == target


def test_unknown_orders_are_in_flight_exposure_and_never_placed_is_not():
    assert om.UNKNOWN in om.IN_FLIGHT and om.SENT in om.IN_FLIGHT
    assert om.NEVER_PLACED not in om.IN_FLIGHT and om.NEVER_PLACED in om.TERMINAL
    assert not (om.IN_FLIGHT & {om.COMPLETE, om.CANCELLED, om.REJECTED})


def test_every_state_is_reachable_and_no_edge_leaves_complete():
    reach = {om.INTENT}
    frontier = [om.INTENT]
    while frontier:
        src = frontier.pop()
        for (a, b) in om.EDGE_BY_PAIR:
            if a == src and b not in reach:
                reach.add(b)
                frontier.append(b)
    assert reach == set(om.STATES)
    assert not [p for p in om.EDGE_BY_PAIR if p[0] in (om.COMPLETE, om.CANCELLED, om.REJECTED)]


@pytest.mark.parametrize("status, filled, qty, current, want", [
    ("put order req received", 0, 65, om.OPEN, om.OPEN),
    ("open", 0, 65, om.SENT, om.OPEN),
    ("open", 65, 130, om.OPEN, om.PARTIAL),
    ("complete", 130, 130, om.PARTIAL, om.COMPLETE),
    ("open", 130, 130, om.PARTIAL, om.COMPLETE),          # fills count before words
    ("cancelled", 65, 130, om.CANCEL_PENDING, om.CANCELLED),
    ("rejected", 0, 65, om.OPEN, om.REJECTED),
    ("open", 0, 65, om.CANCEL_PENDING, om.CANCEL_PENDING),  # the cancel is still on its way
    ("modified", 0, 65, om.MODIFY_PENDING, om.OPEN),
    ("open", 65, 130, om.MODIFY_PENDING, om.PARTIAL),
    ("some new word", 0, 65, om.OPEN, om.OPEN),             # an unknown word moves nothing
])
def test_broker_words_map_to_states(status, filled, qty, current, want):
    assert om.broker_target(status, filled, qty, current) == want


def test_old_journals_acked_state_reads_as_open():
    assert om.OrderMachine("acked").state == om.OPEN
    with pytest.raises(ValueError, match="unknown order state"):
        om.OrderMachine("bogus")


def test_order_machines_share_one_table_but_never_a_state():
    a, b = om.OrderMachine(om.INTENT), om.OrderMachine(om.INTENT)
    a.move("send")
    b.move("send")
    a.move(a.trigger_to(om.OPEN))
    assert (a.state, b.state) == (om.OPEN, om.SENT)
    assert om._ORDER_MACHINE.models == []
    with pytest.raises(om.IllegalOrderMove):
        b.move("modified")
    assert b.state == om.SENT
