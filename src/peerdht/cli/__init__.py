"""The ``peerdht`` command line."""
