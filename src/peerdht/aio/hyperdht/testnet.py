"""``Testnet``: a local HyperDHT network of persistent nodes (hyperdht ``testnet.js``).

Example::

    async with await Testnet.create(10) as testnet:
        async with testnet.node() as dht:   # an ephemeral client node bootstrapped from the testnet
            ...
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from peerdht.aio.hyperdht import HyperDHT

Address = tuple[str, int]


class Testnet:
    """``size`` persistent, non-firewalled HyperDHT nodes on ``host`` (ports chosen by the OS).

    Attributes:
        nodes: the running nodes; ``nodes[0]`` is the bootstrap node.
        bootstrap: ``[(host, port)]`` to pass to other nodes (Python or JS) joining this network.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, nodes: list[HyperDHT], bootstrap: list[Address], host: str) -> None:
        self.nodes = nodes
        self.bootstrap = bootstrap
        self.host = host
        self._extra: list[HyperDHT] = []

    @classmethod
    async def create(
        cls, size: int = 10, *, host: str = "127.0.0.1", bootstrap: Sequence[Address] = ()
    ) -> Testnet:
        """Start ``size`` nodes; the first bootstraps from ``bootstrap`` (default: none, a new network).

        Raises:
            OSError: a socket cannot be bound on ``host``.
        """
        nodes: list[HyperDHT] = []
        boot = list(bootstrap)
        try:
            if size > 0:
                first = HyperDHT(bootstrap=boot, host=host, ephemeral=False, firewalled=False, public_host=host)
                await first.open()
                nodes.append(first)
                await first.fully_bootstrapped()
                if not boot:
                    boot = [(host, first.local_address()[1])]
            while len(nodes) < size:
                node = HyperDHT(bootstrap=boot, host=host, ephemeral=False, firewalled=False, public_host=host)
                await node.open()
                nodes.append(node)
                await node.fully_bootstrapped()
        except BaseException:
            for node in nodes:
                await node.destroy()
            raise
        return cls(nodes, boot, host)

    def node(self, **opts: Any) -> HyperDHT:
        """A new (ephemeral by default) node bootstrapped from this testnet; open it with ``async with``."""
        opts.setdefault("bootstrap", self.bootstrap)
        opts.setdefault("host", self.host)
        dht = HyperDHT(**opts)
        self._extra.append(dht)
        return dht

    async def close(self) -> None:
        """Stop every node, including those made with :meth:`node`."""
        for node in [*self._extra, *reversed(self.nodes)]:
            with contextlib.suppress(Exception):
                await node.close()

    async def destroy(self) -> None:
        """The same as :meth:`close` (hyperdht ``testnet.destroy()``)."""
        await self.close()

    async def __aenter__(self) -> Testnet:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
