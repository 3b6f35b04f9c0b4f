"""Sans-IO holepunching: NAT classification per socket, secure holepunch payloads, punch strategies.

Mirrors hyperdht ``lib/nat.js``, ``lib/secure-payload.js`` and the decisions of ``lib/holepuncher.js``:

* :mod:`~peerdht.holepunch.nat`: NAT classification of one socket from how DHT nodes see it;
* :mod:`~peerdht.holepunch.payload`: encrypted PEER_HOLEPUNCH payloads and address tokens;
* :mod:`~peerdht.holepunch.strategy`: which punch to run for a pair of NAT classes.

The punch rounds themselves (pings, probes, timers) run in :mod:`peerdht.aio.connect` (client) and
:mod:`peerdht.aio.server` (server).
"""

from peerdht.holepunch.nat import NatAnalyzer
from peerdht.holepunch.payload import SecurePayload
from peerdht.holepunch.strategy import Strategy, choose_strategy, coerce_firewall, match_address, random_port

__all__ = [
    "NatAnalyzer",
    "SecurePayload",
    "Strategy",
    "choose_strategy",
    "coerce_firewall",
    "match_address",
    "random_port",
]
