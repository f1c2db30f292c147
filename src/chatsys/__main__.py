from chatsys.cli import main

raise SystemExit(main())
