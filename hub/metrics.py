"""What the hub counts for Prometheus (``GET /metrics``), in one place.

Counters and histograms are process-wide (``prometheus_client``'s registry, as every exporter
does): each replica exposes its own and Prometheus sums them. Gauges about the shared state
(queue depth, oldest undelivered SET, streams by status) are read from the store when
``/metrics`` is scraped, so every replica reports the same cluster-wide figure; take ``max``
of them, not ``sum``. The processes of one ``serve --processes`` answer as one: the supervisor
points prometheus_client's multiprocess mode at a directory of theirs, and a scrape of any of
them sums the counters of all (:mod:`hub.web.metrics`).

Labels are bounded: a delivery method, an outcome class, an ``err`` code, a status, a stage;
an issuer only when the operator registered it (anything else is ``unregistered``). Never a
stream, subject or token: per-stream detail is in the API and ``ssf-hub streams``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from prometheus_client import Counter, Gauge, Histogram

NAMESPACE = "ssf_hub"
FoldProcesses = Literal["livemostrecent", "livesum"]


def _counter(name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
    return Counter(name, doc, labels, namespace=NAMESPACE)


def _gauge(
    name: str, doc: str, labels: Sequence[str] = (), *, processes: FoldProcesses = "livemostrecent"
) -> Gauge:
    # ``processes``: how ``serve --processes`` folds the processes' values into one (prometheus
    # multiprocess mode): the latest store reading, or a sum over the live processes.
    return Gauge(name, doc, labels, namespace=NAMESPACE, multiprocess_mode=processes)


# -- SETs through the hub ------------------------------------------------------------------------
SETS_ISSUED = _counter("sets_issued", "SETs signed and durably queued, by delivery method", ["method"])
SETS_DELIVERED = _counter("sets_delivered", "SETs acknowledged by receivers (push 2xx, poll ack)", ["method"])
SETS_FAILED = _counter("sets_failed", "SETs a receiver refused for good (push err, poll setErrs)", ["method"])
SETS_DROPPED = _counter("sets_dropped", "SETs not queued, by reason (a disabled stream)", ["reason"])
EMITS_UNROUTED = _counter("emits_unrouted", "Emitted or ingested events that matched no stream")
DELIVERY_LATENCY = Histogram(
    "delivery_latency_seconds",
    "From the SET being queued to its push 2xx or poll ack",
    ["method"],
    namespace=NAMESPACE,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)

# -- push -----------------------------------------------------------------------------------------
PUSH_ATTEMPTS = _counter("push_attempts", "Push attempts by outcome class", ["outcome"])
PUSH_ATTEMPT_SECONDS = Histogram(
    "push_attempt_seconds",
    "Duration of one push attempt (request to answer or error)",
    namespace=NAMESPACE,
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STREAM_AUTO_PAUSES = _counter("stream_auto_pauses", "Streams the hub paused because delivery kept failing")
STATUS_CHANGES = _counter(
    "stream_status_changes", "Stream status changes by new status and who", ["status", "by"]
)

# -- remediation receipts (issue #14) -------------------------------------------------------------
REMEDIATION_RECEIPTS = _counter(
    "remediation_receipts", "Receipts receivers reported, by action and whether kept", ["action", "result"]
)

# -- polls ----------------------------------------------------------------------------------------
LONG_POLLS_HELD = _gauge("long_polls_held", "Long polls waiting in this process", processes="livesum")

# -- ingest and upstreams -------------------------------------------------------------------------
INGEST = _counter(
    "ingest", "SETs pushed to /ssf/ingest by issuer and result (accepted or err)", ["issuer", "result"]
)
INGEST_TOLERATED = _counter(
    "ingest_tolerated",
    "Optional claims of accepted upstream SETs repaired rather than refused, by issuer, event and action",
    ["issuer", "event", "action"],
)
UPSTREAM_LINK_CHANGES = _counter(
    "upstream_link_changes", "Upstream link state changes by new state", ["state"]
)
UPSTREAM_ADAPTATIONS = _counter(
    "upstream_adaptations",
    "Times an upstream link worked around a transmitter's deviation, by kind",
    ["kind"],
)

# -- the process and what it depends on ------------------------------------------------------------
STORE_OUTAGES = _counter("store_outages", "Requests answered 503 because the store was unavailable")
SIGNING_RESTARTS = _counter("signing_process_restarts", "Signing child processes restarted after dying")
HUB_PROCESS_STARTS = _counter(
    "process_starts", "Hub processes started by serve --processes (above `processes`: restarts)"
)
SLOW_CLIENTS_CUT = _counter(
    "slow_clients_cut", "Connections closed for sending a request too slowly", ["stage"]
)
REQUESTS_REFUSED = _counter(
    "requests_refused", "Requests refused (4xx, 503) by status and err", ["status", "err"]
)
KEY_ROTATIONS = _counter("key_rotations", "Signing key rotations by reason", ["reason"])

# -- read from the store when /metrics is scraped ----------------------------------------------------
QUEUE_DEPTH = _gauge("queue_depth", "SETs queued and not yet acknowledged, all streams")
OLDEST_UNDELIVERED = _gauge("oldest_undelivered_seconds", "Age of the oldest queued SET (0 when none)")
STREAMS = _gauge("streams", "Streams by status and delivery method", ["status", "method"])
STREAMS_FAILING = _gauge("streams_failing", "Push streams whose last attempt failed and is being retried")

METHOD_NAMES = {"urn:ietf:rfc:8935": "push", "urn:ietf:rfc:8936": "poll"}


def method_label(method: str) -> str:
    return METHOD_NAMES.get(method, "other")
