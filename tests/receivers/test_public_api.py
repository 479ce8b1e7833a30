"""The public API is deliberate: ``__all__`` is guarded, typed (py.typed), and small modules."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import receivers

PACKAGE = Path(receivers.__file__).parent

EXPECTED = {
    # receiving
    "Receiver",
    "ProcessResult",
    "PushEndpoint",
    "PollConsumer",
    "PollBatch",
    "Dispatcher",
    "Handler",
    "ANY_EVENT",
    "ReceivedEvent",
    # verification core
    "SetVerifier",
    "DEFAULT_ALGORITHMS",
    "Deduplicator",
    "VerificationStates",
    "JwksCache",
    "StaticKeys",
    "KeySource",
    "validate_subject",
    "subjects_match",
    "subject_key",
    "InvalidSubject",
    # transmitter management
    "StreamClient",
    "StreamConfig",
    "StreamStatus",
    "TransmitterMetadata",
    "fetch_metadata",
    "parse_metadata",
    "well_known_urls",
    "poll_delivery",
    "push_delivery",
    "POLL_METHOD",
    "PUSH_METHOD",
    # OAuth
    "TokenSource",
    "StaticToken",
    "ClientCredentials",
    "BearerAuth",
    # acting on signals
    "ContinuousAccess",
    "Verdict",
    "REVOKING_EVENTS",
    "TokenCache",
    "CachedToken",
    "TokenKind",
    "CachedTokenAuth",
    "IssuedToken",
    "principals_from_claims",
    "unverified_claims",
    "Revocation",
    "RevocationList",
    "Decision",
    "DecisionRecord",
    "PolicyInput",
    "PolicyFunction",
    "default_policy",
    "ContinuousAccessMiddleware",
    "Identity",
    "Caller",
    "Credential",
    "JwtVerifier",
    "BearerJwtIdentity",
    "TxnTokenIdentity",
    "AnyIdentity",
    "AuditLog",
    "AuditRecord",
    # errors
    "ReceiverError",
    "SetError",
    "InvalidRequest",
    "InvalidKey",
    "InvalidIssuer",
    "InvalidAudience",
    "AuthenticationFailed",
    "AccessDenied",
    "InvalidState",
    "TransmitterError",
    "DiscoveryError",
    "IssuerMismatch",
    "KeysUnavailable",
    "TokenError",
}


def test_all_is_exactly_the_public_api() -> None:
    assert set(receivers.__all__) == EXPECTED
    assert len(receivers.__all__) == len(set(receivers.__all__))
    for name in receivers.__all__:
        assert getattr(receivers, name) is not None


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
    assert len(blocks) == 3  # agent, tool server, gateway
    for block in blocks:
        tree = ast.parse(block)
        compile(tree, "<README>", "exec")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "receivers":
                assert {a.name for a in node.names} <= set(receivers.__all__)
