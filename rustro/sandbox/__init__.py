"""A local SmartAPI sandbox: Angel One's REST shapes over the synthetic market and a paper exchange.

`python rustro.py sandbox` serves it on 127.0.0.1 with a shared accelerated clock, so a full
`run --live` day can be rehearsed end to end (with injected faults) without touching Angel.
"""
from .service import Sandbox, build_sandbox, main

__all__ = ["Sandbox", "build_sandbox", "main"]
