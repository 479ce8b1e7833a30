"""Upstream subscriptions: the hub subscribes to identity providers' SSF transmitters (issue #4).

``credentials`` turns a configured token source into access tokens, ``feed`` hands polled
SETs to ingest, ``link`` keeps one upstream's stream alive, ``supervisor`` runs a link per
upstream in the hub's lifespan (one replica per upstream, by store lease).
"""
