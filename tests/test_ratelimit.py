from datetime import datetime

import pytest

from rustro.broker import ratelimit as rl
from rustro.broker.ratelimit import RateLimiter, default_limits
from rustro.clock import IST, VirtualClock

T0 = datetime(2026, 1, 6, 9, 15, tzinfo=IST)


@pytest.fixture
def clock():
    return VirtualClock(T0)


def elapsed(clock) -> float:
    return (clock.now() - T0).total_seconds()


def test_first_call_is_free_second_waits_a_second(clock):
    lim = RateLimiter(clock)
    assert lim.acquire(rl.ORDER_BOOK) == 0
    assert lim.acquire(rl.ORDER_BOOK) == pytest.approx(1.0)
    assert elapsed(clock) == pytest.approx(1.0)


def test_per_second_burst_then_wait(clock):
    lim = RateLimiter(clock)
    waits = [lim.acquire(rl.LTP) for _ in range(11)]
    assert waits[:10] == [0] * 10
    assert waits[10] == pytest.approx(1.0)


def test_per_minute_window_binds_after_per_second(clock):
    lim = RateLimiter(clock)
    for _ in range(500):
        lim.acquire(rl.LTP)             # 10/s: the 500th goes at t=49 s
    assert elapsed(clock) == pytest.approx(49.0)
    lim.acquire(rl.LTP)                 # 500/min: the 501st must wait for the first to age out
    assert elapsed(clock) == pytest.approx(60.0)


def test_hourly_window(clock):
    lim = RateLimiter(clock)
    for _ in range(1000):
        lim.acquire(rl.GENERATE_TOKENS)  # 1/s, 1000/h
    assert elapsed(clock) == pytest.approx(999.0)
    lim.acquire(rl.GENERATE_TOKENS)
    assert elapsed(clock) == pytest.approx(3600.0)


def test_window_slides_rather_than_resets(clock):
    lim = RateLimiter(clock, limits={"x": ((60.0, 2),)}, parents={})
    lim.acquire("x")                    # t=0
    clock.advance(30)
    lim.acquire("x")                    # t=30
    clock.advance(1)
    lim.acquire("x")                    # full until t=60, when the t=0 hit leaves the window
    assert elapsed(clock) == pytest.approx(60.0)
    lim.acquire("x")                    # now t=30 and t=60 are inside: wait for t=90
    assert elapsed(clock) == pytest.approx(90.0)


def test_all_order_actions_share_ten_per_second(clock):
    lim = RateLimiter(clock)
    for group in [rl.PLACE] * 4 + [rl.MODIFY] * 3 + [rl.CANCEL] * 3:
        assert lim.acquire(group) == 0
    assert lim.acquire(rl.PLACE) == pytest.approx(1.0)
    # and an order action does not slow a read down
    assert lim.acquire(rl.LTP) == 0


def test_each_order_route_has_its_own_minute_window(clock):
    lim = RateLimiter(clock)
    for _ in range(500):
        lim.acquire(rl.PLACE)           # 10/s through the shared cap: t = 49 s
    assert elapsed(clock) == pytest.approx(49.0)
    clock.advance(1)                    # past the shared 10/s
    assert lim.acquire(rl.MODIFY) == 0  # modify has its own 500/min
    lim.acquire(rl.PLACE)
    assert elapsed(clock) == pytest.approx(60.0)


def test_groups_are_independent(clock):
    lim = RateLimiter(clock)
    lim.acquire(rl.ORDER_BOOK)
    assert lim.acquire(rl.POSITION) == 0
    assert lim.acquire(rl.TRADE_BOOK) == 0


def test_backoff_blocks_only_that_group(clock):
    lim = RateLimiter(clock)
    lim.backoff(rl.CANDLES, 4.0)
    assert lim.acquire(rl.LTP) == 0
    assert lim.acquire(rl.CANDLES) == pytest.approx(4.0)
    lim.backoff(rl.CANDLES, 1.0)
    lim.backoff(rl.CANDLES, 0.5)        # a shorter backoff does not shorten a longer one
    assert lim.acquire(rl.CANDLES) == pytest.approx(1.0)


def test_quote_rate_is_configurable_and_strict_by_default(clock):
    assert default_limits()[rl.QUOTE][0] == (1.0, 1)
    lim = RateLimiter(clock)
    lim.acquire(rl.QUOTE)
    assert lim.acquire(rl.QUOTE) == pytest.approx(1.0)
    fast = RateLimiter(clock, default_limits(quote_per_sec=10))
    assert [fast.acquire(rl.QUOTE) for _ in range(10)] == [0] * 10
    with pytest.raises(ValueError, match="quote_per_sec"):
        default_limits(quote_per_sec=0)


def test_spec_table(clock):
    lim = default_limits()
    assert lim[rl.LOGIN] == ((1.0, 1),)
    assert lim[rl.GENERATE_TOKENS] == ((1.0, 1), (3600.0, 1000))
    assert lim[rl.PROFILE] == ((1.0, 3), (3600.0, 1000))
    assert lim[rl.RMS] == ((1.0, 2),)
    for g in (rl.PLACE, rl.MODIFY, rl.CANCEL):
        assert lim[g] == ((1.0, 20), (60.0, 500), (3600.0, 1000))
    assert lim[rl.ORDERS] == ((1.0, 10),)
    for g in (rl.LTP, rl.ORDER_DETAILS):
        assert lim[g] == ((1.0, 10), (60.0, 500), (3600.0, 5000))
    assert lim[rl.CANDLES] == ((1.0, 3), (60.0, 500), (3600.0, 5000))
    for g in (rl.ORDER_BOOK, rl.POSITION, rl.TRADE_BOOK):
        assert lim[g] == ((1.0, 1),)


def test_margin_is_added_to_each_wait(clock):
    lim = RateLimiter(clock, margin=0.05)
    lim.acquire(rl.ORDER_BOOK)
    assert lim.acquire(rl.ORDER_BOOK) == pytest.approx(1.05)


def test_time_passing_frees_slots_without_waiting(clock):
    lim = RateLimiter(clock)
    lim.acquire(rl.ORDER_BOOK)
    clock.advance(1)
    assert lim.acquire(rl.ORDER_BOOK) == 0


def test_bad_input_is_named(clock):
    lim = RateLimiter(clock)
    with pytest.raises(KeyError, match="nope"):
        lim.acquire("nope")
    with pytest.raises(KeyError, match="nope"):
        lim.backoff("nope", 1)
    with pytest.raises(ValueError, match="'x'"):
        RateLimiter(clock, limits={"x": ((1.0, 0),)}, parents={})
    with pytest.raises(ValueError, match="'orders'"):
        RateLimiter(clock, limits={"p": ((1.0, 1),)}, parents={"p": ("orders",)})
