"""Root-only test tooling that is not installed with peerdht (it lives at the repository root).

* :mod:`tools.natlab`: a NAT lab in Linux network namespaces (public hosts, private hosts behind NAT
  routers of each classic type); needs root, ``ip`` and ``nft``. See ``docs/natlab.md``.
* :mod:`tools.delayline`: a userspace delay line (delay, jitter and loss between two interfaces, for
  kernels without netem); needs root. Run as ``python3 -m tools.delayline`` from the repository root.
* :mod:`tools.attack`: loopback attack roles (a server to attack, handshake floods, silent clients) run as
  ``python3 -m tools.attack ROLE`` by ``tests/attack`` and ``bench/attack.py``.

Tests, scripts and benches put the repository root on ``sys.path`` to import it. What users need for their
own tests stays in :mod:`peerdht.testing` (:class:`~peerdht.testing.FakeNet`) and
:mod:`peerdht.aio.hyperdht.testnet` (``Testnet``).
"""
