"""The trading desk: strategy, risk, orders and positions behind the engine's job hooks.

Placeholder until the strategy issue lands: no desk means the engine journals "no signal".
"""
from __future__ import annotations


def build_desk(svc, day, secrets) -> None:
    svc.desk = None
