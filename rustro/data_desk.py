"""Desks on recorded data: a backtest day served from the market-data store, and the replay of a
recorded paper or live day. The same `Desk` (strategy, risk, orders) and the paper broker as every
other mode; only the market data differs (rustro/market/stored.py)."""
from __future__ import annotations

from pathlib import Path

from .broker.paper import ContractSpec, PaperBroker
from .desk import Desk
from .market.store import MarketStore, StoreError, default_store_path
from .market.stored import StoredMarket

FILL_CHOICES = ("none", "model")


def store_path_for(spec: str, journal_path: str | Path, configured: str = "") -> Path | None:
    """`--data` value -> the store to read: None for synthetic, `store` = the default store
    beside the journal, `store:PATH` = PATH."""
    if spec == "synthetic":
        return None
    if spec == "store":
        return default_store_path(journal_path, configured)
    if spec.startswith("store:") and spec[6:].strip():
        return Path(spec[6:])
    raise ValueError(f"--data: one of synthetic, store, store:PATH, got {spec!r}")


def stored_market(svc, day, path: Path, fill_missing: str = "none") -> StoredMarket:
    """A StoredMarket whose gaps and modeled prices are journaled on `svc.journal`."""
    store = svc.extra.get("store_conn")
    if store is None:
        store = svc.extra["store_conn"] = MarketStore(path, readonly=True)

    def gap(payload: dict) -> None:
        svc.journal.record("data_gap", payload, day=day)

    def modeled(payload: dict) -> None:
        svc.journal.record("quote_modeled", payload, day=day)
    return StoredMarket(store, svc.clock, fill_missing, on_gap=gap, on_model=modeled)


def paper_desk(svc, day, market, broker_market=None) -> Desk:
    """The desk on `market` with the paper broker (config [paper]), as build_desk wires it."""
    names = [u.name for u in svc.cfg.underlyings]
    box: list[Desk] = []

    def contract(token: str) -> ContractSpec:
        inst = box[0].feed.master.by_token(token)
        freeze = svc.cfg.underlying(inst.name).freeze_qty if inst.name in names else 0
        return ContractSpec(inst.lot_size, inst.tick_size, freeze)

    p = svc.cfg.paper
    broker = PaperBroker(svc.extra["paper_db"], svc.clock, broker_market or market, contract,
                         svc.cfg.bot.capital, latency_ms=p.latency_ms,
                         partial_fill_prob=p.partial_fill_prob, seed=svc.extra["seed"],
                         allow_short=p.allow_short, short_margin_per_unit=p.short_margin_per_unit,
                         book_lag_sec=p.book_lag_sec,
                         stores=svc.extra.get("paper_stores"))  # a backtest's, kept open
    desk = Desk(svc, day, market, broker)
    box.append(desk)
    svc.market, svc.broker, svc.desk = market, broker, desk
    return desk


class StoreDesk:
    """A picklable `build_desk` for `backtest --data store`: each day on the store's data."""

    def __init__(self, path: str | Path, fill_missing: str = "none"):
        if fill_missing not in FILL_CHOICES:
            raise ValueError(f"--fill-missing: one of {', '.join(FILL_CHOICES)}, got {fill_missing!r}")
        self.path, self.fill_missing = Path(path), fill_missing

    def check(self) -> None:
        """Refuse a store that cannot be read before any day runs."""
        MarketStore(self.path, readonly=True).close()

    def __call__(self, svc, day, secrets) -> None:
        paper_desk(svc, day, stored_market(svc, day, self.path, self.fill_missing))


def data_source(cfg, journal_path: Path, args) -> tuple[str, str]:
    """(store path or "" for synthetic, fill-missing choice) from backtest --data /
    --fill-missing; a bad choice or an unreadable store is a ConfigError (exit 2)."""
    from .config import ConfigError
    spec, fill = getattr(args, "data", "synthetic"), getattr(args, "fill_missing", "none")
    try:
        path = store_path_for(spec, journal_path, cfg.store.path)
        if path is None:
            if fill != "none":
                raise ValueError("--fill-missing is for --data store")
            return "", "none"
        StoreDesk(path, fill).check()
    except (ValueError, StoreError) as exc:
        raise ConfigError(str(exc)) from None
    return str(path.resolve()), fill


__all__ = ["data_source", "FILL_CHOICES", "StoreDesk", "StoreError", "paper_desk", "store_path_for",
           "stored_market"]
