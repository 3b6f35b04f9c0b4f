"""The ``peerdht`` command line.

:mod:`~peerdht.cli.main` is the entry point; :mod:`~peerdht.cli.common` holds the conventions every command
shares; :mod:`~peerdht.cli.hyper` the HyperDHT commands, :mod:`~peerdht.cli.pipe` ``serve`` / ``connect``,
:mod:`~peerdht.cli.mainline` ``peerdht mainline ...``, :mod:`~peerdht.cli.web` ``peerdht web``,
:mod:`~peerdht.cli.rooms` ``peerdht tracker`` / ``peerdht room`` and :mod:`~peerdht.cli.demo` ``peerdht demo``.
"""
