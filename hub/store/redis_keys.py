"""Every Redis key the hub uses, built in this one module.

Layout (``P`` is the prefix, ``<namespace>:v1:``; the version segment changes when the
layout does, so an old and a new hub never read each other's records)::

    P{s:<sid>}:stream            hash   record (JSON), owner, mode, created_at
    P{s:<sid>}:subjects          hash   subject key -> {"subject", "excluded", "index", "member"}
    P{s:<sid>}:queue             zset   pending SETs, jti scored by sequence number
    P{s:<sid>}:control           zset   the pending control SETs among them
    P{s:<sid>}:sets              zset   every SET of the stream, pending or finished
    P{s:<sid>}:set:<jti>         hash   one SET: jwt, type, txn, state, attempts, times
    P{s:<sid>}:attempts:<jti>    list   push attempts of that SET (JSON), oldest first
    P{s:<sid>}:health            string delivery health (JSON)
    P{s:<sid>}:set-errors        list   receiver-reported setErrs (JSON), newest first, capped

    P{hub}:streams               zset   every stream id scored by created_at
    P{hub}:owner:<owner>         zset   one owner's stream ids scored by created_at
    P{hub}:all-subjects          zset   streams whose subject mode is ALL
    P{hub}:pending-streams       set    streams with at least one pending SET
    P{hub}:seq                   string the sequence counter that orders every queued SET
    P{hub}:finished              zset   finished SETs (member) scored by done_at: retention
    P{hub}:trace:jti:<jti>       zset   stream ids holding a SET with this jti, by sequence
    P{hub}:trace:txn:<txn>       zset   SETs (member) of one txn, by sequence
    P{hub}:subject:<index_key>   set    subjects (member) filed under one index key
    P{hub}:lease:<name>          hash   holder, expires_at
    P{hub}:audit                 list   audit records (JSON), newest first, capped
    P{hub}:audit:<sid>           list   the same, one stream's, capped
    P{hub}:key:<name>            string the signing key ring and the token key (JSON)
    P{hub}:issuers               hash   trusted upstream issuer -> record (JSON)
    P{hub}:issuers-version       string bumped on every issuer change
    P{hub}:ingested              zset   ingest receipts (member [iss, jti]) by expires_at
    P{hub}:ingested:<member>     hash   one receipt; Redis expires it after its window
    P{hub}:upstreams             zset   upstream ids by created_at
    P{hub}:upstream:<id>         hash   config (JSON), state (JSON)

The first ``{...}`` of a key is its Redis Cluster hash tag: everything about one stream
lives in that stream's slot, so the scripts that change one stream touch one slot.
A "member" names one stream's SET or subject (or an issuer's SET: ``[iss, jti]``) in a
shared index: a JSON pair, always encoded here (Lua only stores and compares the strings
it is given, and decodes them to find the keys they name).
"""

from __future__ import annotations

import json

DEFAULT_NAMESPACE = "ssfhub"
LAYOUT_VERSION = "v1"


def prefix(namespace: str = DEFAULT_NAMESPACE) -> str:
    return f"{namespace}:{LAYOUT_VERSION}:"


def member(stream_id: str, ident: str) -> str:
    """One stream's SET (by jti) or subject (by key), as stored in a shared index."""
    return json.dumps([stream_id, ident], separators=(",", ":"), ensure_ascii=False)


def parse_member(text: str) -> tuple[str, str]:
    stream_id, ident = json.loads(text)
    return str(stream_id), str(ident)


class RedisKeys:
    """Key names under one prefix; the Lua scripts get the same names from :data:`LUA_KEYS`."""

    def __init__(self, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.prefix = prefix(namespace)
        self._hub = self.prefix + "{hub}:"

    # -- one stream's slot ---------------------------------------------------------------------
    def _stream_slot(self, stream_id: str) -> str:
        return f"{self.prefix}{{s:{stream_id}}}:"

    def stream(self, stream_id: str) -> str:
        return self._stream_slot(stream_id) + "stream"

    def subjects(self, stream_id: str) -> str:
        return self._stream_slot(stream_id) + "subjects"

    def queue(self, stream_id: str) -> str:
        return self._stream_slot(stream_id) + "queue"

    def control(self, stream_id: str) -> str:
        return self._stream_slot(stream_id) + "control"

    def sets(self, stream_id: str) -> str:
        return self._stream_slot(stream_id) + "sets"

    def set(self, stream_id: str, jti: str) -> str:
        return self._stream_slot(stream_id) + "set:" + jti

    def attempts(self, stream_id: str, jti: str) -> str:
        return self._stream_slot(stream_id) + "attempts:" + jti

    def health(self, stream_id: str) -> str:
        return self._stream_slot(stream_id) + "health"

    def set_errors(self, stream_id: str) -> str:
        return self._stream_slot(stream_id) + "set-errors"

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

    @property
    def seq(self) -> str:
        return self._hub + "seq"

    @property
    def finished(self) -> str:
        return self._hub + "finished"

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

    def receipt(self, receipt_member: str) -> str:
        return self._hub + "ingested:" + receipt_member

    @property
    def upstreams(self) -> str:
        return self._hub + "upstreams"

    def upstream(self, upstream_id: str) -> str:
        return self._hub + "upstream:" + upstream_id


# The same names for scripts that find keys while they run (a stream's SETs on delete,
# finished SETs on retention). ARGV[1] is always the prefix. Keep in step with RedisKeys.
LUA_KEYS = """
local P = ARGV[1]
local function k_slot(sid) return P .. '{s:' .. sid .. '}:' end
local function k_stream(sid) return k_slot(sid) .. 'stream' end
local function k_subjects(sid) return k_slot(sid) .. 'subjects' end
local function k_queue(sid) return k_slot(sid) .. 'queue' end
local function k_control(sid) return k_slot(sid) .. 'control' end
local function k_sets(sid) return k_slot(sid) .. 'sets' end
local function k_set(sid, jti) return k_slot(sid) .. 'set:' .. jti end
local function k_attempts(sid, jti) return k_slot(sid) .. 'attempts:' .. jti end
local function k_health(sid) return k_slot(sid) .. 'health' end
local function k_set_errors(sid) return k_slot(sid) .. 'set-errors' end
local H = P .. '{hub}:'
local K_STREAMS = H .. 'streams'
local function k_owner(owner) return H .. 'owner:' .. owner end
local K_ALL_SUBJECTS = H .. 'all-subjects'
local K_PENDING_STREAMS = H .. 'pending-streams'
local K_SEQ = H .. 'seq'
local K_FINISHED = H .. 'finished'
local function k_trace_jti(jti) return H .. 'trace:jti:' .. jti end
local function k_trace_txn(txn) return H .. 'trace:txn:' .. txn end
local function k_subject_index(key) return H .. 'subject:' .. key end
local K_RECEIPTS = H .. 'ingested'
local function k_receipt(receipt_member) return H .. 'ingested:' .. receipt_member end
"""
