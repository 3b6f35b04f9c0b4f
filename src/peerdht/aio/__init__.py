"""The asyncio layer: every socket, timer and future of peerdht lives under this package."""
