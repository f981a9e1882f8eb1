from bot.transports.cli import main

raise SystemExit(main())
