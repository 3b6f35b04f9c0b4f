"""Sans-IO holepunching: NAT classification per socket, secure holepunch payloads, punch strategies.

Mirrors hyperdht ``lib/nat.js``, ``lib/secure-payload.js`` and the decisions of ``lib/holepuncher.js``:

* :mod:`~peerdht.holepunch.nat`: NAT classification of one socket from how DHT nodes see it;
* :mod:`~peerdht.holepunch.payload`: encrypted PEER_HOLEPUNCH payloads and address tokens;
* :mod:`~peerdht.holepunch.strategy`: which punch to run for a pair of NAT classes, and the node-wide
  limit on punches involving a RANDOM NAT;
* :mod:`~peerdht.holepunch.session`: the punch session both sides share (NAT sampling, the peer's
  state, the consistent / random-probes / birthday strategies, with their timers);
* :mod:`~peerdht.holepunch.client` and :mod:`~peerdht.holepunch.server`: the two sides' round
  exchange (probe round, punch round, aborts, TRY_LATER, fast open);
* :mod:`~peerdht.holepunch.events`: what a session asks its driver for and reports.

All of it is sans-IO (the five methods of DESIGN.md, a caller's clock, injected randomness);
:mod:`peerdht.aio.hyperdht.punch` runs a session on a node's sockets.
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
