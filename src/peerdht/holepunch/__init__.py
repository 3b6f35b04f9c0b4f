"""Sans-IO holepunching: NAT classification per socket, secure holepunch payloads, punch strategies.

Mirrors hyperdht ``lib/nat.js``, ``lib/secure-payload.js`` and the decisions of ``lib/holepuncher.js``.
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
