"""Blind relays (npm ``blind-relay`` over ``protomux``), sans-IO: framing, messages, pairing state.

* :mod:`~peerdht.relay.protomux`: the subset of Protomux blind-relay needs (channels over one framed stream);
* :mod:`~peerdht.relay.messages`: blind-relay's ``pair`` and ``unpair`` messages;
* :mod:`~peerdht.relay.pairing`: a relay's pairing table and capacity bounds.

The asyncio layer (splicing UDX streams, the client) is :mod:`peerdht.aio.hyperdht.relay`.
"""
