"""HyperDHT wire formats: dht-rpc datagrams, command payloads, constants and signatures."""
