"""rustro: an auditable intraday index-options bot for Angel One SmartAPI."""
