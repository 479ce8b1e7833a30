"""The public API is deliberate: ``__all__`` is guarded, typed (py.typed), and small modules."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import receivers

PACKAGE = Path(receivers.__file__).parent

# What the README examples use; the rest is imported from its module (receivers.verify...).
EXPECTED = {
    # subscribing
    "Hub",
    "Subscription",
    "Poll",
    "Push",
    "PushEndpoint",
    "StreamClient",
    "StaticToken",
    "ClientCredentials",
    # acting on signals
    "ContinuousAccess",
    "Dispatcher",
    "ReceivedEvent",
    "Decision",
    "PolicyInput",
    "TokenCache",
    "CachedTokenAuth",
    "token_key",
    # refusing revoked callers
    "ContinuousAccessMiddleware",
    "JwksCache",
    "JwtVerifier",
    "BearerJwtIdentity",
    "TxnTokenIdentity",
    "AnyIdentity",
    "IntrospectionIdentity",
    "ReceiverError",
    # shared state for gateway replicas (receivers.stores, receivers.redis_state)
    "RedisState",
}

# Exported by the package before it was slimmed: each stays importable from it (same object as
# in its module) so existing code keeps working.
FORMERLY_EXPORTED = {
    "ANY_EVENT": "dispatch",
    "DEFAULT_ALGORITHMS": "verify",
    "POLL_METHOD": "discovery",
    "PUSH_METHOD": "discovery",
    "REVOKING_EVENTS": "continuous",
    "AccessDenied": "errors",
    "AuditLog": "audit",
    "AuditRecord": "audit",
    "AuthenticationFailed": "errors",
    "BearerAuth": "oauth",
    "CachedToken": "tokens",
    "Caller": "identity",
    "Credential": "identity",
    "DecisionRecord": "policy",
    "Deduplicator": "dedup",
    "DiscoveryError": "errors",
    "Handler": "dispatch",
    "Identity": "identity",
    "InvalidAudience": "errors",
    "InvalidIssuer": "errors",
    "InvalidKey": "errors",
    "InvalidRequest": "errors",
    "InvalidState": "errors",
    "InvalidSubject": "subjects",
    "IssuedToken": "tokenauth",
    "IssuerMismatch": "errors",
    "KeySource": "jwks",
    "KeysUnavailable": "errors",
    "PolicyFunction": "policy",
    "PollBatch": "poll",
    "PollConsumer": "poll",
    "ProcessResult": "receiver",
    "Receiver": "receiver",
    "Revocation": "revocations",
    "RevocationList": "revocations",
    "SetError": "errors",
    "SetVerifier": "verify",
    "StaticKeys": "jwks",
    "StreamConfig": "client",
    "StreamStatus": "client",
    "TokenError": "errors",
    "TokenKind": "tokens",
    "TokenSource": "oauth",
    "TransmitterError": "errors",
    "TransmitterMetadata": "discovery",
    "Verdict": "continuous",
    "VerificationStates": "verification",
    "default_policy": "policy",
    "fetch_metadata": "client",
    "parse_metadata": "discovery",
    "poll_delivery": "client",
    "principals_from_claims": "principals",
    "push_delivery": "client",
    "subject_key": "subjects",
    "subjects_match": "subjects",
    "unverified_claims": "principals",
    "validate_subject": "subjects",
    "well_known_urls": "discovery",
}


def test_all_is_exactly_the_public_api() -> None:
    assert set(receivers.__all__) == EXPECTED
    assert len(receivers.__all__) == len(set(receivers.__all__))
    for name in receivers.__all__:
        assert getattr(receivers, name) is not None
    assert len(receivers.__all__) <= 25  # small enough to read at a glance


def test_formerly_exported_names_still_import_from_the_package_and_their_module() -> None:
    for name, module in FORMERLY_EXPORTED.items():
        assert getattr(receivers, name) is getattr(importlib.import_module(f"receivers.{module}"), name)


def test_every_public_class_and_function_is_documented() -> None:
    for name in receivers.__all__:
        obj = getattr(receivers, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{name} has no docstring"


def test_the_package_is_typed_and_its_modules_small() -> None:
    assert (PACKAGE / "py.typed").exists()
    for path in PACKAGE.glob("*.py"):
        source = path.read_text()
        assert len(source.splitlines()) <= 400, path.name
        assert ast.get_docstring(ast.parse(source)), f"{path.name} has no module docstring"


def _imports(name: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{name}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_pure_core_does_no_io() -> None:
    """Pure modules, and everything they import from the package, stay off the network."""
    pure = ["verify", "dedup", "verification", "subjects", "index", "tokens", "principals", "revocations"]
    pure += ["policy", "events", "errors", "discovery", "continuous", "audit", "caller", "dispatch"]
    pure += ["typed", "streams", "stores"]
    for name in pure:
        seen, todo = set(), [name]
        while todo:
            module = todo.pop()
            if module in seen:
                continue
            seen.add(module)
            imported = _imports(module)
            roots = {m.split(".")[0] for m in imported}
            assert not roots & {"httpx", "starlette", "uvicorn", "asyncio", "socket", "hub"}, (name, module)
            todo += [m.split(".")[1] for m in imported if m.startswith("receivers.")]


def test_the_readme_examples_compile_and_use_only_public_names() -> None:
    readme = (PACKAGE.parent / "README.md").read_text()
    section = readme[readme.index("## The receivers library") :]
    blocks = [b.split("```", 1)[0] for b in section.split("```python\n")[1:]]
    assert len(blocks) == 4  # connecting, agent, tool server, gateway
    for block in blocks:
        tree = ast.parse(block)
        compile(tree, "<README>", "exec")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "receivers":
                assert {a.name for a in node.names} <= set(receivers.__all__)
