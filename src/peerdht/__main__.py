from peerdht.cli.main import main

raise SystemExit(main())
