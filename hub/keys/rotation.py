"""Signing-key rotation: on a schedule, or at once when an operator asks (key compromise)."""

from __future__ import annotations

import logging

from hub import logs, metrics
from hub.config import Settings
from hub.keys.ring import SigningKeyRing
from hub.keys.storage import KeyStorage

log = logging.getLogger("hub.keys")
DAY = 86400.0


async def rotate_signing_keys(
    storage: KeyStorage,
    ring: SigningKeyRing,
    settings: Settings,
    now: float,
    *,
    force: bool = False,
    retire_now: bool = False,
) -> bool:
    """Drop keys past their overlap, rotate when due (or forced), persist; True if anything changed.

    The previous key stays in the JWKS for ``key_overlap_days`` so SETs signed with it and
    still queued keep verifying. With shared storage the edit applies to the newest stored
    ring, so a rotation another replica just made is not made twice (unless forced).
    """

    def edit(current: SigningKeyRing) -> bool:
        if retire_now:  # a leaked key: out of the JWKS at once; queued SETs are re-signed
            current.rotate(now, 0.0, alg=settings.signing_alg)
            current.prune(now)
            return True
        changed = current.prune(now)
        if force or current.needs_rotation(now, settings.key_rotation_days * DAY):
            current.rotate(now, settings.key_overlap_days * DAY, alg=settings.signing_alg)
            changed = True
        return changed

    before = ring.active.kid
    changed = await storage.change_ring(ring, edit)
    if ring.active.kid != before:
        reason = "retired" if retire_now else "forced" if force else "scheduled"
        metrics.KEY_ROTATIONS.labels(reason).inc()
        logs.event(log, logging.WARNING if force else logging.INFO, "key_rotated",
                   kid=ring.active.kid, previous_kid=before, reason=reason)  # fmt: skip
    return changed
