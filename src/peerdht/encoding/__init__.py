"""Wire encodings shared by the DHT protocols (compact-encoding for HyperDHT)."""

from peerdht.encoding.compact import Address, Decoder, Encoder

__all__ = ["Address", "Decoder", "Encoder"]
