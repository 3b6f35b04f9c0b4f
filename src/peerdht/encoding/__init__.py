"""Wire encodings shared by the DHT protocols, sans-IO.

* :mod:`~peerdht.encoding.compact`: compact-encoding and compact-encoding-net (HyperDHT, dht-rpc).
* :mod:`~peerdht.encoding.bencode`: strict bencode (BEP 3), the wire format of KRPC.
"""

from peerdht.encoding.compact import Address, Decoder, Encoder

__all__ = ["Address", "Decoder", "Encoder"]
