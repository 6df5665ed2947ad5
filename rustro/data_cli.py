"""`rustro data import DIR` and `rustro data download --from D --to D` (the market-data store)."""
from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

EXIT_OK, EXIT_USAGE, EXIT_BROKER = 0, 2, 5


def add_parser(sub, date_type) -> None:
    dp = sub.add_parser("data", help="fill the market-data store: import CSV/Parquet minute bars, "
                        "or download Angel's historical candles")
    dsub = dp.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    imp = dsub.add_parser("import", help="import minute bars: one file per instrument, named by "
                          "trading symbol; columns timestamp (IST),open,high,low,close,volume,oi")
    imp.add_argument("dir", help="directory of <SYMBOL>.csv (or .parquet, with pyarrow) files")
    dl = dsub.add_parser("download", help="index, VIX and listed option candles from Angel "
                         "(needs credentials); resumable")
    dl.add_argument("--from", dest="start", type=date_type, required=True, help="first day")
    dl.add_argument("--to", dest="end", type=date_type, required=True, help="last day")
    dl.add_argument("--expiries", type=int, default=1, help="nearest expiries of options (default 1)")
    dl.add_argument("--strikes", type=int, default=10, help="strikes each side of the money (default 10)")
    for p in (imp, dl):
        p.add_argument("--store", help="market-data store (default: <journal>.market.sqlite)")
        p.add_argument("--journal", default=None, help="journal whose store is meant (default: bot.journal)")
        p.add_argument("--config", default="config.toml", help="config file (default: config.toml)")


def main(cfg, journal_path: Path, args) -> int:
    from .market.store import MarketStore, StoreError, default_store_path
    path = Path(args.store) if args.store else default_store_path(journal_path, cfg.store.path)
    try:
        store = MarketStore(path)
    except StoreError as exc:
        print(f"data: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.data_command == "import":
            return _import(store, Path(args.dir))
        return _download(cfg, store, journal_path, args)
    finally:
        store.close()


def _import(store, directory: Path) -> int:
    from .market.importer import ImportError_, import_dir, parquet_available
    if not directory.is_dir():
        print(f"data import: {directory} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    try:
        done = import_dir(directory, store)
    except ImportError_ as exc:
        print(f"data import: rejected, nothing imported: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for c in done:
        print(f"{c.path.name}: {len(c.rows)} minute bars of {c.symbol} (token {c.token})")
    print(f"imported {sum(len(c.rows) for c in done)} bars from {len(done)} file(s) into "
          f"{store.path}" + ("" if parquet_available() else
                             " (Parquet files need pyarrow: pip install 'rustro[parquet]')"))
    return EXIT_OK


def _download(cfg, store, journal_path: Path, args) -> int:
    from .broker.angelone import connect
    from .broker.base import BrokerError
    from .clock import WallClock
    from .credentials import Secrets
    from .market.download import download
    if args.end < args.start:
        print(f"data download: --to {args.end} is before --from {args.start}", file=sys.stderr)
        return EXIT_USAGE
    secrets = Secrets.from_env()
    if not secrets.complete:
        print(f"data download: needs broker credentials; missing {', '.join(secrets.missing())}",
              file=sys.stderr)
        return EXIT_BROKER
    clock = WallClock()
    broker, market = connect(cfg, secrets, clock, home=journal_path.parent)

    def said(t, p) -> None:
        print(f"{t.symbol} {t.interval}: {p.bars} bars so far, {p.skipped_days} day(s) already held",
              flush=True)
    try:
        broker.login()
        got = download(cfg, market, store, args.start, args.end, clock.now().date(),
                       args.expiries, args.strikes, on_target=said)
    except BrokerError as exc:
        print(f"data download: {secrets.redact(str(exc))} (rerun to resume)", file=sys.stderr)
        return EXIT_BROKER
    print(f"downloaded {got.bars} bars ({got.requests_days} instrument-days fetched, "
          f"{got.skipped_days} already held) into {store.path}")
    return EXIT_OK
