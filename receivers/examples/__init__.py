"""Runnable examples: an agent, a tool server and an LLM gateway acting on hub signals.

Each runs against a hub with one command (see the README section "The receivers library")::

    python -m receivers.examples.tool_server
    python -m receivers.examples.llm_gateway
    python -m receivers.examples.agent
"""
