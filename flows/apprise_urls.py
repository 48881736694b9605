"""Whether Apprise can use a URL at all (its scheme is a service it knows, its parts parse):
checked when the org chart loads, so `jsonx://` is a load error at its line, not a first
report given up at 3 a.m. Whether the endpoint answers is only known by sending."""

from __future__ import annotations

import logging

import apprise
from apprise.logger import LOGGER_NAME


def usable_url(url: str) -> bool:
    # Apprise explains a URL it cannot use in its log; the load error says it instead.
    logger = logging.getLogger(LOGGER_NAME)
    was = logger.disabled
    logger.disabled = True
    try:
        return apprise.Apprise.instantiate(url) is not None
    finally:
        logger.disabled = was
