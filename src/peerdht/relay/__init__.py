"""Blind relays (npm ``blind-relay`` over ``protomux``), sans-IO: framing, messages, pairing state."""
