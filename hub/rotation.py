"""Signing-key rotation: on a schedule, or at once when an operator asks (key compromise)."""

from __future__ import annotations

import asyncio
import logging

from hub.config import Settings
from hub.keys import SigningKeyRing, save_signing_keys

log = logging.getLogger("hub.keys")
DAY = 86400.0


async def rotate_signing_keys(
    ring: SigningKeyRing, settings: Settings, now: float, *, force: bool = False
) -> bool:
    """Drop keys past their overlap, rotate when due (or forced), persist; True if anything changed.

    The previous key stays in the JWKS for ``key_overlap_days`` so SETs signed with it and
    still queued keep verifying.
    """
    changed = ring.prune(now)
    if force or ring.needs_rotation(now, settings.key_rotation_days * DAY):
        ring.rotate(now, settings.key_overlap_days * DAY, alg=settings.signing_alg)
        changed = True
        log.info("signing key rotated; active kid %s", ring.active.kid)
    if changed:
        await asyncio.to_thread(save_signing_keys, settings.data_dir, ring)
    return changed
