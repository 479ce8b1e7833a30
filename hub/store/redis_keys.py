"""Every Redis key the hub uses, built in this one module.

Layout (``P`` is the prefix, ``<namespace>:v2:``; the version segment changes when the
layout does, so an old and a new hub never read each other's records)::

    P{s:<sid>}:stream            hash   record (JSON), owner, mode, created_at
    P{s:<sid>}:subjects          hash   subject key -> {"subject", "excluded", "index", "member"}
    P{s:<sid>}:seq               string the stream's own counter: orders its SETs
    P{s:<sid>}:queue             zset   pending SETs, jti scored by the stream's seq
    P{s:<sid>}:control           zset   the pending control SETs among them
    P{s:<sid>}:sets              zset   every SET of the stream, pending or finished, by seq
    P{s:<sid>}:finished          zset   the finished ones, jti scored by done_at: retention
    P{s:<sid>}:set:<jti>         hash   one SET: jwt, type, txn, state, attempts, times, order
    P{s:<sid>}:attempts:<jti>    list   push attempts of that SET (JSON), oldest first
    P{s:<sid>}:remediation:<jti> list   remediation receipts for that SET (JSON), capped
    P{s:<sid>}:health            string delivery health (JSON)
    P{s:<sid>}:set-errors        list   receiver-reported setErrs (JSON), newest first, capped

    P{r:<receipt>}:receipt       hash   one ingest receipt ([iss, jti]) and, until its fan-out
                                        is done, the SETs it queues; Redis expires it

    P{hub}:streams               zset   every stream id scored by created_at        (superset)
    P{hub}:owner:<owner>         zset   one owner's stream ids scored by created_at (superset)
    P{hub}:all-subjects          zset   streams whose subject mode is ALL           (superset)
    P{hub}:pending-streams       set    streams with at least one pending SET       (superset)
    P{hub}:trace:jti:<jti>       zset   stream ids holding a SET with this jti      (superset)
    P{hub}:trace:txn:<txn>       zset   SETs (member [sid, jti]) of one txn         (superset)
    P{hub}:subject:<index_key>   set    subject members filed under one index key   (superset)
    P{hub}:ingested              zset   receipt members by expires_at: retention    (superset)
    P{hub}:lease:<name>          hash   holder, expires_at                          (exact)
    P{hub}:audit                 list   audit records (JSON), newest first, capped  (exact)
    P{hub}:audit:<sid>           list   the same, one stream's, capped              (exact)
    P{hub}:key:<name>            string the signing key ring and the token key (JSON)
    P{hub}:issuers               hash   trusted upstream issuer -> record (JSON)
    P{hub}:issuers-version       string bumped on every issuer change
    P{hub}:upstreams             zset   upstream ids by created_at
    P{hub}:upstream:<id>         hash   config (JSON), state (JSON)

    Pchanges                     pub/sub channel: the id of a stream whose record or
                                 subjects changed (published by the script that changed them)

The first ``{...}`` of a key is its Redis Cluster hash tag. Everything about one stream
lives in that stream's slot and is the source of truth: each change to one stream is one
Lua script that declares its keys and touches that slot only. A script that must find
keys while it runs (a stream's SETs on delete, finished SETs on retention) builds them
inside the same ``{s:<sid>}`` tag from the slot prefix it is given. Each ingest receipt
has a slot of its own. The ``{hub}`` keys marked "exact" are only ever written on their
own (by one command, a MULTI or a script within ``{hub}``).

The ``{hub}`` keys marked "superset" are derived indexes, written by separate commands
after or before the stream's slot, never in the same atomic step (on a cluster they live
on another node). They are kept as supersets of the truth:

* an entry is added BEFORE the record it points at is written (and, where a concurrent
  remover could race it, added again AFTER: ``pending-streams``, ``all-subjects`` and a
  changed owner), and removed only AFTER the record is gone or changed;
* whoever removes an entry because it looked stale re-reads the record afterwards and
  puts the entry back if it is wanted after all (remove-then-recheck), so a concurrent
  writer's entry is never lost;
* subject members carry a nonce of the write that made them, so removing the entries of
  a replaced or removed subject can never remove those of a newer write.

So a crash between the steps (or a stream deleted while an emit was routed to it) leaves
at most a dangling entry, never a missing one. Every reader verifies what an index gives
it against the stream's slot, in the round trip it makes anyway, and skips dangling
entries: ``list_streams`` (the record and its owner), ``streams_with_all_subjects`` (the
mode), ``find_subjects`` (the member's nonce; records and entries may come from the
process's ``redis_cache``, which every change empties), ``trace`` (the SET itself and its txn),
``streams_with_pending`` (the queue's length). What cleans them up:

* ``streams_with_pending`` drops streams whose queue it finds empty (remove-then-recheck);
* ``delete_stream``, ``remove_subject``/``put_subject`` and ``delete_finished`` remove the
  entries of what they removed, right after removing it;
* ``delete_finished`` (the retention job, hourly) walks the stream registry and, besides
  trimming each stream's finished SETs, drops registry entries whose record is gone (left
  by a crash mid-create or mid-delete, older than the cut-off) and puts streams with a
  non-empty queue back into ``pending-streams`` (the one entry a crash could lose: an
  enqueue killed between its queue write and its second add, while a concurrent reader
  removed the first);
* ``forget_ingested`` drops expired receipts and their index entries.

What is left are entries a crash orphaned whose record never existed (a subject member or
a trace entry whose write never happened) and the owner-index entry of a registry entry
retention dropped: nothing names them any more, so they stay, a few bytes per crash, and
every reader skips them.

A "member" names one stream's SET (or an issuer's SET: ``[iss, jti]``) in a shared index:
a JSON list, always encoded here.
"""

from __future__ import annotations

import json
import secrets

DEFAULT_NAMESPACE = "ssfhub"
LAYOUT_VERSION = "v2"


def prefix(namespace: str = DEFAULT_NAMESPACE) -> str:
    return f"{namespace}:{LAYOUT_VERSION}:"


def member(stream_id: str, ident: str) -> str:
    """One stream's SET (by jti), or an issuer's SET (``iss``, ``jti``), in a shared index."""
    return json.dumps([stream_id, ident], separators=(",", ":"), ensure_ascii=False)


def parse_member(text: str) -> tuple[str, str]:
    stream_id, ident = json.loads(text)[:2]
    return str(stream_id), str(ident)


def subject_member(stream_id: str, key: str) -> str:
    """A subject as filed in the subject index, unique to this one write (a fresh nonce)."""
    return json.dumps([stream_id, key, secrets.token_hex(8)], separators=(",", ":"), ensure_ascii=False)


class RedisKeys:
    """Key names under one prefix."""

    def __init__(self, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.prefix = prefix(namespace)
        self._hub = self.prefix + "{hub}:"

    # -- one stream's slot ---------------------------------------------------------------------
    def stream_slot(self, stream_id: str) -> str:
        """The prefix of every key of one stream; scripts build per-SET keys from it."""
        return f"{self.prefix}{{s:{stream_id}}}:"

    def stream(self, stream_id: str) -> str:
        return self.stream_slot(stream_id) + "stream"

    def subjects(self, stream_id: str) -> str:
        return self.stream_slot(stream_id) + "subjects"

    def stream_seq(self, stream_id: str) -> str:
        return self.stream_slot(stream_id) + "seq"

    def queue(self, stream_id: str) -> str:
        return self.stream_slot(stream_id) + "queue"

    def control(self, stream_id: str) -> str:
        return self.stream_slot(stream_id) + "control"

    def sets(self, stream_id: str) -> str:
        return self.stream_slot(stream_id) + "sets"

    def finished(self, stream_id: str) -> str:
        return self.stream_slot(stream_id) + "finished"

    def set(self, stream_id: str, jti: str) -> str:
        return self.stream_slot(stream_id) + "set:" + jti

    def attempts(self, stream_id: str, jti: str) -> str:
        return self.stream_slot(stream_id) + "attempts:" + jti

    def remediation(self, stream_id: str, jti: str) -> str:
        return self.stream_slot(stream_id) + "remediation:" + jti

    def health(self, stream_id: str) -> str:
        return self.stream_slot(stream_id) + "health"

    def set_errors(self, stream_id: str) -> str:
        return self.stream_slot(stream_id) + "set-errors"

    # -- one receipt's slot --------------------------------------------------------------------
    def receipt(self, receipt_member: str) -> str:
        return f"{self.prefix}{{r:{receipt_member}}}:receipt"

    # -- pub/sub -------------------------------------------------------------------------------
    @property
    def changes_channel(self) -> str:
        """Where every change to a stream's record or subjects is announced (``redis_cache``)."""
        return self.prefix + "changes"

    # -- shared indexes ------------------------------------------------------------------------
    @property
    def streams(self) -> str:
        return self._hub + "streams"

    def owner(self, owner: str) -> str:
        return self._hub + "owner:" + owner

    @property
    def all_subjects(self) -> str:
        return self._hub + "all-subjects"

    @property
    def pending_streams(self) -> str:
        return self._hub + "pending-streams"

    def trace_jti(self, jti: str) -> str:
        return self._hub + "trace:jti:" + jti

    def trace_txn(self, txn: str) -> str:
        return self._hub + "trace:txn:" + txn

    def subject_index(self, index_key: str) -> str:
        return self._hub + "subject:" + index_key

    def lease(self, name: str) -> str:
        return self._hub + "lease:" + name

    def audit(self, stream_id: str | None = None) -> str:
        return self._hub + "audit" + ("" if stream_id is None else ":" + stream_id)

    def key_document(self, name: str) -> str:
        return self._hub + "key:" + name

    @property
    def issuers(self) -> str:
        return self._hub + "issuers"

    @property
    def issuers_version(self) -> str:
        return self._hub + "issuers-version"

    @property
    def receipts(self) -> str:
        return self._hub + "ingested"

    @property
    def upstreams(self) -> str:
        return self._hub + "upstreams"

    def upstream(self, upstream_id: str) -> str:
        return self._hub + "upstream:" + upstream_id
