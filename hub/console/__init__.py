"""The web console (``/console``) for ``ssf.admin`` holders: overview, streams, revocation
drills watched live, traces with remediation receipts, issuers and upstreams, the audit.

Server-rendered (Jinja2) HTML fragments behind ``/console/api/...``, each requiring an admin
bearer token; one static page and one small script fetch them with the token the operator
pasted, kept in the tab's ``sessionStorage`` only (no cookie, so no request is ever ambient).
Every response carries a strict Content-Security-Policy: scripts and styles from this origin
only, nothing inline. The console never renders a push secret or a token.
"""

from hub.console.routes import console_routes

__all__ = ["console_routes"]
